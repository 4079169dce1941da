"""The seller-message model behind `seller_pressure`: TF-IDF word and character n-grams + logistic regression.

It estimates the probability that a seller's message pushes the buyer to confirm receipt early, to close
or cancel a dispute, or to take payment or a refund off the platform. Character n-grams (within word
boundaries) carry the broken spelling sellers use ("confirm receive", "pls", "paypa1"); word bigrams carry
the phrasing ("cancel dispute", "your paypal").

Trained on the labelled set the project ships (`data/messages/labelled.csv`: text, label, kind, family,
where a family groups paraphrases of one message); cross-validated with whole families held out, so the
figure is for phrasings the model has not seen. Pure: `tracker.detection.message_training` reads the labelled
file, trains and stores the shipped model (and, beside it, its lean export: `lean_export`, scored by
`detectors.message_scoring` without scikit-learn); `tracker.detection.registry` loads them and hands the
probabilities to the rules.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from scipy import sparse
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.feature_extraction.text import CountVectorizer, TfidfTransformer, TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, f1_score, precision_score, recall_score
from sklearn.model_selection import GroupKFold
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.utils.validation import check_is_fitted

from detectors import message_scoring

# the function the model's word vectorizer calls: the shipped model file names it as this module's
normalise_text = message_scoring.normalise_text

DEFAULT_THRESHOLD = 0.5


def _words(text: str) -> list[str]:
    return normalise_text(text).split()


class WordwiseCharTfidf(TransformerMixin, BaseEstimator):
    """TF-IDF of char_wb n-grams, the same matrix as `TfidfVectorizer(analyzer="char_wb")`, built word by word.

    char_wb n-grams never cross a word boundary, so a message's counts are the sum of its words' counts:
    (messages x words) @ (words x n-grams). Words repeat across messages far more than messages do, so
    each distinct word of a batch is cut into n-grams once, which makes scoring every seller message of
    a million orders several times faster than the stock analyzer.
    """

    def __init__(self, ngram_range: tuple[int, int] = (2, 5), min_df: int = 2, sublinear_tf: bool = True):
        self.ngram_range = ngram_range
        self.min_df = min_df
        self.sublinear_tf = sublinear_tf

    def _counts(self, texts: Sequence[str], *, fit: bool) -> sparse.csr_matrix:
        words = CountVectorizer(analyzer=_words)
        per_text = words.fit_transform(texts)
        vocabulary = words.get_feature_names_out()
        if fit:
            self.grams_ = CountVectorizer(analyzer="char_wb", ngram_range=self.ngram_range, lowercase=False)
            per_word = self.grams_.fit_transform(vocabulary)
        else:
            per_word = self.grams_.transform(vocabulary)
        return (per_text @ per_word).tocsr()

    def fit(self, X, y=None):  # noqa: ANN001, ANN201, N803
        counts = self._counts(list(X), fit=True)
        df = np.bincount(counts.indices, minlength=counts.shape[1])
        self.keep_ = np.flatnonzero(df >= self.min_df)
        self.tfidf_ = TfidfTransformer(sublinear_tf=self.sublinear_tf).fit(counts[:, self.keep_])
        return self

    def transform(self, X) -> sparse.csr_matrix:  # noqa: ANN001, N803
        check_is_fitted(self, "tfidf_")
        return self.tfidf_.transform(self._counts(list(X), fit=False)[:, self.keep_])


def build_pipeline(C: float = 4.0, seed: int = 0) -> Pipeline:  # noqa: N803 - sklearn's name
    features = FeatureUnion(
        [
            ("words", TfidfVectorizer(preprocessor=normalise_text, ngram_range=(1, 2), min_df=1,
                                      sublinear_tf=True)),
            ("chars", WordwiseCharTfidf(ngram_range=(2, 5), min_df=2, sublinear_tf=True)),
        ]
    )
    classifier = LogisticRegression(C=C, class_weight="balanced", max_iter=2000, random_state=seed)
    return Pipeline([("features", features), ("classifier", classifier)])


def labelled(rows: Iterable[Mapping[str, str]]) -> tuple[list[str], np.ndarray, list[str]]:
    """Labelled messages (rows with text, label, and family or kind): texts, labels (0/1) and paraphrase families
    (the grouping for CV)."""
    texts: list[str] = []
    labels: list[int] = []
    families: list[str] = []
    for row in rows:
        texts.append(row["text"])
        labels.append(int(row["label"]))
        families.append(row.get("family") or row.get("kind") or str(len(texts)))
    return texts, np.asarray(labels), families


def cross_validate(texts: Sequence[str], labels: np.ndarray, families: Sequence[str], *, n_splits: int = 5,
                   threshold: float = DEFAULT_THRESHOLD, seed: int = 0) -> dict[str, float]:
    """Out-of-fold quality with whole paraphrase families held out (GroupKFold)."""
    texts = list(texts)
    oof = np.zeros(len(texts))
    for train_idx, test_idx in GroupKFold(n_splits=n_splits).split(texts, labels, families):
        model = build_pipeline(seed=seed).fit([texts[i] for i in train_idx], labels[train_idx])
        oof[test_idx] = model.predict_proba([texts[i] for i in test_idx])[:, 1]
    predicted = (oof >= threshold).astype(int)
    return {
        "n_messages": len(texts),
        "n_families": len(set(families)),
        "n_pressure": int(labels.sum()),
        "folds": n_splits,
        "threshold": threshold,
        "f1": round(float(f1_score(labels, predicted)), 4),
        "precision": round(float(precision_score(labels, predicted)), 4),
        "recall": round(float(recall_score(labels, predicted)), 4),
        "pr_auc": round(float(average_precision_score(labels, oof)), 4),
    }


def lean_export(model: Any, source: Mapping[str, Any] | None = None) -> message_scoring.LeanMessageModel | None:
    """The fitted pipeline `build_pipeline` makes as a `detectors.message_scoring.LeanMessageModel` (its
    probabilities bit for bit the pipeline's, without scikit-learn), or None for a model of another shape (it is
    then scored by its own predict_proba). `source` names the model file it is made from (`model_sha256`, ...)."""
    steps = getattr(model, "named_steps", None)
    if not isinstance(model, Pipeline) or list(steps or ()) != ["features", "classifier"]:
        return None
    features, classifier = steps["features"], steps["classifier"]
    if not isinstance(features, FeatureUnion) or features.transformer_weights is not None:
        return None
    if [name for name, _ in features.transformer_list] != ["words", "chars"]:
        return None
    (_, words), (_, chars) = features.transformer_list
    stock_words = (type(words) is TfidfVectorizer and words.preprocessor is normalise_text
                   and words.analyzer == "word" and words.tokenizer is None and words.stop_words is None
                   and tuple(words.ngram_range) == (1, 2) and not words.binary and words.use_idf
                   and words.norm in ("l2", None) and words.dtype == np.float64 and hasattr(words, "vocabulary_"))
    stock_chars = (type(chars) is WordwiseCharTfidf and hasattr(chars, "tfidf_") and chars.tfidf_.use_idf
                   and chars.tfidf_.norm in ("l2", None) and type(chars.grams_) is CountVectorizer
                   and chars.grams_.analyzer == "char_wb" and not chars.grams_.lowercase
                   and chars.grams_.preprocessor is None and chars.grams_.strip_accents is None
                   and not chars.grams_.binary)
    binary = (type(classifier) is LogisticRegression and len(getattr(classifier, "classes_", ())) == 2
              and classifier.coef_.shape[0] == 1)
    if not (stock_words and stock_chars and binary):
        return None
    word_terms = sorted(words.vocabulary_, key=words.vocabulary_.__getitem__)
    gram_of = {column: gram for gram, column in chars.grams_.vocabulary_.items()}
    try:
        return message_scoring.LeanMessageModel(
            token_pattern=words.token_pattern, word_terms=word_terms,
            words=message_scoring.Tfidf(np.asarray(words.idf_, dtype=np.float64), bool(words.sublinear_tf),
                                        words.norm == "l2"),
            char_range=tuple(chars.grams_.ngram_range), char_terms=[gram_of[int(c)] for c in chars.keep_],
            chars=message_scoring.Tfidf(np.asarray(chars.tfidf_.idf_, dtype=np.float64),
                                        bool(chars.tfidf_.sublinear_tf), chars.tfidf_.norm == "l2"),
            coef=classifier.coef_[0], intercept=float(classifier.intercept_[0]), source=source)
    except (ValueError, KeyError, TypeError):
        return None


# each fitted pipeline's lean export (or None), made on first use: a run scores its texts in several calls
_lean_of: weakref.WeakKeyDictionary[Any, message_scoring.LeanMessageModel | None] = weakref.WeakKeyDictionary()


def pressure_of(model: Pipeline, texts: list[str]) -> list[float]:
    """Probability, per message, that it pressures the buyer (confirm early, drop a dispute, go off-platform).

    The model `build_pipeline` makes is scored by its lean export (`message_scoring`: the same probabilities as its
    own predict_proba, bit for bit, each distinct normalised text once, the n-grams of a batch counted at once); a
    model of another shape by its own predict_proba, each distinct text once."""
    if model not in _lean_of:
        _lean_of[model] = lean_export(model)
    lean = _lean_of[model]
    if lean is not None:
        return lean.pressure(texts)
    keys = [str(t or "") for t in texts]
    distinct = list(dict.fromkeys(keys))
    batch = message_scoring.PRESSURE_BATCH
    score = {text: p for start in range(0, len(distinct), batch)
             for text, p in zip(distinct[start:start + batch],
                                model.predict_proba(distinct[start:start + batch])[:, 1], strict=True)}
    return [float(score[text]) for text in keys]
