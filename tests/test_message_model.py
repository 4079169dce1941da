"""The seller-message model: its labelled set, quality on paraphrases it has not seen, and the shipped file."""

from __future__ import annotations

import numpy as np

from detectors import message_model
from tracker.detection import persistence, registry
from tracker.detection.message_training import load_labelled


def test_labelled_set_is_large_varied_and_has_hard_negatives():
    texts, labels, families = load_labelled()
    assert len(texts) >= 300
    assert len(set(texts)) == len(texts)
    assert 0.3 < labels.mean() < 0.6
    assert len(set(families)) >= 60
    negatives = " ".join(t.lower() for t, y in zip(texts, labels, strict=True) if y == 0)
    for hard in ("before open", "dispute", "confirm", "paypal", "review", "customs", "shipped"):
        assert hard in negatives, hard


def test_held_out_paraphrase_families_are_recognised():
    texts, labels, families = load_labelled()
    metrics = message_model.cross_validate(texts, labels, families, n_splits=4)
    assert metrics["f1"] >= 0.8
    assert metrics["pr_auc"] >= 0.88


def test_wordwise_char_ngrams_equal_the_stock_vectorizer():
    from sklearn.feature_extraction.text import TfidfVectorizer

    texts, _, _ = load_labelled()
    stock = TfidfVectorizer(
        preprocessor=message_model.normalise_text,
        analyzer="char_wb",
        ngram_range=(2, 5),
        min_df=2,
        sublinear_tf=True,
    ).fit(texts[:200])
    ours = message_model.WordwiseCharTfidf().fit(texts[:200])
    unseen = texts[200:] + ["pls confrim reciept my freind, add whatsapp +86 135 0000"]
    np.testing.assert_allclose(
        stock.transform(unseen).toarray(), ours.transform(unseen).toarray(), atol=1e-12
    )


def test_predict_pressure_on_unseen_messages():
    pushy = [
        "dear friend pls confirm recieve goods now, parcel will arrive next week i promise",
        "Hello my friend, please close the dispute and i send you money by paypal",
        "add my whatsapp 8613800001111 for refund, aliexpress chat not good",
    ]
    honest = [
        "Hello, your parcel was shipped today, tracking number will update in 3-5 days",
        "Sorry for the delay, the post office is very busy because of the holiday",
        "Glad you got the item, if you like it please leave us a good review",
        "If any problem please contact us before opening a dispute, we will help",
    ]
    scores = registry.message_pressure(pushy + honest)
    assert all(s > 0.5 for s in scores[:3]), scores
    assert all(s < 0.5 for s in scores[3:]), scores
    assert registry.message_pressure([]) == []


def test_shipped_message_model_is_verified_and_described():
    meta = persistence.read_metadata(registry.MESSAGE_MODEL_PATH)
    assert meta["sha256"] == persistence.sha256_file(registry.MESSAGE_MODEL_PATH)
    assert meta["metrics"]["f1"] >= 0.8
    assert "family" in meta["cv"]


def test_scoring_in_batches_gives_the_scores_of_one_batch(monkeypatch):
    """`pressure_of` scores a few thousand texts at a time (memory): the same probabilities as all at once."""
    import random

    from detectors import message_model
    from tracker.detection.registry import message_model as shipped
    from tracker.world.messages import MessageWriter

    writer, rng = MessageWriter(), random.Random(8)
    texts = [writer.write(rng, kind, tracking="LP00729888729802") for kind in writer.templates for _ in range(15)]
    texts += ["", None]
    whole = message_model.pressure_of(shipped(), texts)
    monkeypatch.setattr(message_model, "PRESSURE_BATCH", 7)
    assert message_model.pressure_of(shipped(), texts) == whole and len(whole) == len(texts)
    assert message_model.pressure_of(shipped(), []) == []


ODD_TEXTS = ["", " ", "a", "ok ok ok ok", "pls pls confirm confirm receive", "İstanbul ÇA straße ǅ", "tab\there\nnew line",
             "mail ME@Shop.COM or https://Pay.example/x?a=1 or WWW.shop.com, not www or http", "٣٤ digits ٣ ²",
             "under_score a_b __ x1 1x", "dear friend!!! 100% confirm-receive,pls... 5 stars", "ＦＵＬＬ ｗｉｄｔｈ ８８",
             "confirm receipt confirm receipt please", "\u00a0nbsp\u2003em space\u3000ideographic"]


def _generated(seed: int, repeat: int) -> list[str]:
    import random

    from tracker.world.messages import MessageWriter

    writer, rng = MessageWriter(), random.Random(seed)
    return [writer.write(rng, kind, tracking=f"LP{rng.randrange(10**14):014d}") for kind in writer.templates
            for _ in range(repeat)]


def test_the_scorer_of_normalised_texts_gives_the_pipelines_probabilities_bit_for_bit():
    """`pressure_of` scores the shipped model without its predict_proba: the same floats, not merely close ones."""
    from tracker.detection.registry import message_model as shipped

    texts, _, _ = load_labelled()
    texts = texts + _generated(5, 6) + ODD_TEXTS
    assert message_model.NormalisedScorer.of(shipped()) is not None  # the shipped model takes the fast path
    stock = [float(p) for p in shipped().predict_proba(texts)[:, 1]]
    assert message_model.pressure_of(shipped(), texts) == stock


def test_each_distinct_text_is_normalised_once_and_each_normalised_text_scored_once(monkeypatch):
    """Seller messages differ mostly in their numbers: texts alike once normalised are scored once."""
    from tracker.detection.registry import message_model as shipped

    texts = _generated(6, 4) * 2 + ["Order 123 shipped", "order 456 shipped", "ORDER 7 SHIPPED", None, ""]
    expected = [float(p) for p in shipped().predict_proba([str(t or "") for t in texts])[:, 1]]
    normalised, scored = [], []
    original, proba = message_model.normalise_text, message_model.NormalisedScorer.proba
    monkeypatch.setattr(message_model, "normalise_text", lambda text: normalised.append(text) or original(text))
    monkeypatch.setattr(message_model.NormalisedScorer, "proba",
                        lambda self, batch: scored.extend(batch) or proba(self, batch))
    assert message_model.pressure_of(shipped(), texts) == expected
    assert sorted(normalised) == sorted({str(t or "") for t in texts})
    assert sorted(scored) == sorted({original(str(t or "")) for t in texts})
    assert scored.count("order 0 shipped") == 1


def test_a_model_of_another_shape_is_scored_by_its_own_predict_proba():
    texts, labels, _ = load_labelled()
    model = message_model.build_pipeline()
    model.set_params(features__words__ngram_range=(1, 3)).fit(texts, labels)
    assert message_model.NormalisedScorer.of(model) is None
    unseen = _generated(7, 2) + ODD_TEXTS
    assert message_model.pressure_of(model, unseen) == [float(p) for p in model.predict_proba(unseen)[:, 1]]


def test_normalising_skips_the_address_pattern_only_where_it_cannot_match():
    import re

    def unconditional(text: str) -> str:
        return re.sub(r"\d+", "0", re.sub(r"\S+@\S+|https?://\S+|www\.\S+", " emailaddr ", text.lower()))

    for text in ODD_TEXTS + _generated(8, 2) + ["a@b", "x HTTP://y", "Www.Z", "wwwx", "http", "@"]:
        assert message_model.normalise_text(text) == unconditional(text), text
