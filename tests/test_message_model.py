"""The seller-message model: its labelled set, quality on paraphrases it has not seen, and the shipped file."""

from __future__ import annotations

import numpy as np
import pytest

from detectors import message_model, message_scoring
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
    monkeypatch.setattr(message_scoring, "PRESSURE_BATCH", 7)
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
    assert message_model.lean_export(shipped()) is not None  # the shipped model takes the fast path
    stock = [float(p) for p in shipped().predict_proba(texts)[:, 1]]
    assert message_model.pressure_of(shipped(), texts) == stock


def test_each_distinct_text_is_normalised_once_and_each_normalised_text_scored_once(monkeypatch):
    """Seller messages differ mostly in their numbers: texts alike once normalised are scored once."""
    from tracker.detection.registry import message_model as shipped

    texts = _generated(6, 4) * 2 + ["Order 123 shipped", "order 456 shipped", "ORDER 7 SHIPPED", None, ""]
    expected = [float(p) for p in shipped().predict_proba([str(t or "") for t in texts])[:, 1]]
    normalised, scored = [], []
    original, proba = message_scoring.normalise_text, message_scoring.LeanMessageModel.proba
    monkeypatch.setattr(message_scoring, "normalise_text", lambda text: normalised.append(text) or original(text))
    monkeypatch.setattr(message_scoring.LeanMessageModel, "proba",
                        lambda self, batch: scored.extend(batch) or proba(self, batch))
    assert message_model.pressure_of(shipped(), texts) == expected
    assert sorted(normalised) == sorted({str(t or "") for t in texts})
    assert sorted(scored) == sorted({original(str(t or "")) for t in texts})
    assert scored.count("order 0 shipped") == 1


def test_a_model_of_another_shape_is_scored_by_its_own_predict_proba():
    texts, labels, _ = load_labelled()
    model = message_model.build_pipeline()
    model.set_params(features__words__ngram_range=(1, 3)).fit(texts, labels)
    assert message_model.lean_export(model) is None
    unseen = _generated(7, 2) + ODD_TEXTS
    assert message_model.pressure_of(model, unseen) == [float(p) for p in model.predict_proba(unseen)[:, 1]]


def test_normalising_skips_the_address_pattern_only_where_it_cannot_match():
    import re

    def unconditional(text: str) -> str:
        return re.sub(r"\d+", "0", re.sub(r"\S+@\S+|https?://\S+|www\.\S+", " emailaddr ", text.lower()))

    for text in ODD_TEXTS + _generated(8, 2) + ["a@b", "x HTTP://y", "Www.Z", "wwwx", "http", "@"]:
        assert message_model.normalise_text(text) == unconditional(text), text


def _model_copy(tmp_path, monkeypatch):  # noqa: ANN001, ANN202
    """The shipped message model, its metadata and its lean export copied to a folder the registry reads."""
    import shutil

    for name in ("message_model.skops", "message_model.json", "message_model.lean.npz"):
        shutil.copy(registry.MESSAGE_MODEL_PATH.with_name(name), tmp_path / name)
    monkeypatch.setattr(registry, "MESSAGE_MODEL_PATH", tmp_path / "message_model.skops")
    registry.forget_message_model()
    return tmp_path


def test_the_shipped_lean_export_scores_as_the_model_and_reads_back_whole(tmp_path, monkeypatch):
    from tracker.detection.registry import message_model as shipped

    lean = registry.lean_message_model()
    assert isinstance(lean, message_scoring.LeanMessageModel)
    meta = persistence.read_metadata(registry.MESSAGE_MODEL_PATH)
    assert lean.source["model_sha256"] == meta["sha256"] and meta["lean"]["format"] == message_scoring.FORMAT
    texts = _generated(9, 3) + ODD_TEXTS + [None]
    stock = [float(p) for p in shipped().predict_proba([str(t or "") for t in texts])[:, 1]]
    assert lean.pressure(texts) == stock == registry.message_pressure(texts)
    again = message_scoring.LeanMessageModel.of_arrays(lean.arrays())
    assert again.pressure(texts) == stock and again.char_terms == lean.char_terms
    arrays = lean.arrays()
    arrays["meta"] = np.frombuffer(bytes(arrays["meta"]).replace(message_scoring.FORMAT.encode(), b"messages-0"),
                                   dtype=np.uint8)
    with pytest.raises(ValueError, match="format"):
        message_scoring.LeanMessageModel.of_arrays(arrays)


@pytest.mark.parametrize("spoil", ["lean file", "version", "other model"])
def test_a_lean_export_that_cannot_be_vouched_for_is_not_used(tmp_path, monkeypatch, spoil):
    """An export edited, recorded beside a model made with another scikit-learn, or made from another model file:
    never scored with (the model itself is then loaded, with its own refusals)."""
    import json

    folder = _model_copy(tmp_path, monkeypatch)
    try:
        assert registry.lean_message_model() is not None  # the copy as it is: vouched for
        registry.forget_message_model()
        meta_file = folder / "message_model.json"
        meta = json.loads(meta_file.read_text())
        if spoil == "lean file":
            with open(folder / "message_model.lean.npz", "ab") as fh:
                fh.write(b"\0")
        elif spoil == "version":
            meta["library_versions"]["scikit-learn"] = "1.0.2"
        else:  # an export of the model whose SHA-256 is another's, recorded with its own hash
            with np.load(folder / "message_model.lean.npz") as arrays:
                lean = message_scoring.LeanMessageModel.of_arrays(dict(arrays))
            lean.source["model_sha256"] = "0" * 64
            meta["lean"]["sha256"] = persistence.save_lean(lean, folder / "message_model.lean.npz")
        meta_file.write_text(json.dumps(meta))
        assert registry.lean_message_model() is None
        if spoil != "version":  # the model itself still scores, as it did
            assert registry.message_pressure(["please confirm receipt now"])[0] > 0.5
        else:
            with pytest.raises(registry.VersionRefused):
                registry.message_pressure(["please confirm receipt now"])
    finally:
        registry.forget_message_model()


def _random_texts(seed: int, n: int) -> list[str]:
    """Texts from no template: words of Latin, Cyrillic, Greek, CJK, Arabic and full-width letters, digits of several
    scripts, joined by every kind of space and punctuation, with addresses and the shipped vocabulary mixed in."""
    import random

    rng = random.Random(seed)
    alphabets = ["abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "абвгдежзийклмнопрстуфхцчшщыэюя",
                 "αβγδεζηθικλμνξοπρστυφχψω", "你好快递包裹确认收货", "مرحباشكرا", "ＡＢＣａｂｃ", "0123456789", "٠١٢٣٤٥٦٧٨٩",
                 "²³¹", "_", "éèêëçñßøåæ"]
    spaces = [" ", "  ", "\t", "\n", "\u00a0", "\u2003", "\u3000", "\x1c", "\u2028", "\x85"]
    marks = ["", "", "", "!", "...", ",", "-", "'", "@", "/", ":", "?", "~", "^_^", "%", "$"]
    known = load_labelled()[0]
    vocabulary = [w for text in known for w in text.split()]
    out = []
    for _ in range(n):
        words = []
        for _ in range(rng.randint(0, 25)):
            pick = rng.random()
            if pick < 0.4:
                word = rng.choice(vocabulary)
            elif pick < 0.45:
                word = rng.choice(["me@shop.com", "https://pay.example/x?a=1", "www.shop.cn", "HTTP://X.Y", "a@b"])
            else:
                letters = rng.choice(alphabets)
                word = "".join(rng.choice(letters) for _ in range(rng.randint(1, 12)))
            words.append(word + rng.choice(marks))
        out.append("".join(w + rng.choice(spaces) for w in words))
    return out


def test_the_lean_export_gives_the_pipelines_probabilities_on_texts_from_no_template():
    from tracker.detection.registry import message_model as shipped

    texts = _random_texts(21, 3000)
    stock = [float(p) for p in shipped().predict_proba(texts)[:, 1]]
    got = registry.lean_message_model().pressure(texts)
    assert got == stock
    assert len({round(p, 6) for p in got}) > 1000  # varied texts, not one score


def test_threads_scoring_with_one_model_at_once_get_each_texts_own_probability():
    """A Dask worker's tasks share the model, and with it the words it has cut into n-grams: scoring at once from
    several threads gives every text the probability it gets alone."""
    from concurrent.futures import ThreadPoolExecutor

    arrays = registry.lean_message_model().arrays()
    batches = [_random_texts(40 + k, 400) + _generated(40 + k, 2) for k in range(8)]
    alone = [message_scoring.LeanMessageModel.of_arrays(arrays).pressure(texts) for texts in batches]
    shared = message_scoring.LeanMessageModel.of_arrays(arrays)
    with ThreadPoolExecutor(max_workers=4) as pool:
        together = list(pool.map(shared.pressure, batches))
    assert together == alone
    assert len(shared.known_words[0]) == shared.known_words[1].shape[0] > 1000


def test_lean_files_writes_a_message_models_export_and_says_so(tmp_path, monkeypatch, capsys):
    """`python -m tracker.detection.lean_files FILE` makes the export of a message model saved without one, which the
    registry then vouches for; `-h` shows the usage, an unknown option is refused (exit 2) and nothing written."""
    import json

    from tracker.detection import lean_files

    folder = _model_copy(tmp_path, monkeypatch)
    try:
        (folder / "message_model.lean.npz").unlink()
        meta = json.loads((folder / "message_model.json").read_text())
        del meta["lean"]
        (folder / "message_model.json").write_text(json.dumps(meta))
        assert registry.lean_message_model() is None
        assert lean_files.main(["--nope"]) == 2 and not (folder / "message_model.lean.npz").exists()
        assert lean_files.main(["-h"]) == 0 and "lean export" in capsys.readouterr().out
        assert lean_files.main([str(folder / "message_model.skops")]) == 0
        assert "lean export message_model.lean.npz" in capsys.readouterr().out
        assert persistence.read_metadata(folder / "message_model.skops")["lean"]["format"] == message_scoring.FORMAT
        texts = _generated(3, 2)
        assert registry.lean_message_model().pressure(texts) == \
            [float(p) for p in registry.message_model().predict_proba(texts)[:, 1]]
    finally:
        registry.forget_message_model()
