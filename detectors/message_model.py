"""The seller-message model behind `seller_pressure`: TF-IDF word and character n-grams + logistic regression.

It estimates the probability that a seller's message pushes the buyer to confirm receipt early, to close
or cancel a dispute, or to take payment or a refund off the platform. Character n-grams (within word
boundaries) carry the broken spelling sellers use ("confirm receive", "pls", "paypa1"); word bigrams carry
the phrasing ("cancel dispute", "your paypal").

Trained on the labelled set the project ships (`data/messages/labelled.csv`: text, label, kind, family,
where a family groups paraphrases of one message); cross-validated with whole families held out, so the
figure is for phrasings the model has not seen. Pure: `tracker.detection.message_models` reads the labelled
file, trains, stores and loads the shipped model, and hands `pressure_of(model, texts)` to the rules.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from itertools import chain
from typing import Any, NamedTuple

import numpy as np
from scipy import sparse
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.feature_extraction.text import CountVectorizer, TfidfTransformer, TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, f1_score, precision_score, recall_score
from sklearn.model_selection import GroupKFold
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.utils.validation import check_is_fitted

DEFAULT_THRESHOLD = 0.5

_DIGITS = re.compile(r"\d+")
_URL_OR_EMAIL = re.compile(r"\S+@\S+|https?://\S+|www\.\S+")


def normalise_text(text: str) -> str:
    """Lower case; numbers and addresses become placeholders, so phone numbers and amounts generalise."""
    text = str(text).lower()
    if "@" in text or "http" in text or "www." in text:  # else the pattern cannot match: spare its slow search
        text = _URL_OR_EMAIL.sub(" emailaddr ", text)
    return _DIGITS.sub("0", text)


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


# texts scored at a time: a text's score does not depend on the others of its batch, and the char n-gram
# matrix of a million orders' seller messages at once would take gigabytes
PRESSURE_BATCH = 4096


def pressure_of(model: Pipeline, texts: list[str]) -> list[float]:
    """Probability, per message, that it pressures the buyer (confirm early, drop a dispute, go off-platform).

    The model sees a text only through `normalise_text`, so each distinct text is normalised once and each
    distinct normalised text scored once (seller messages differ mostly in numbers, which normalising drops);
    the model `build_pipeline` makes is scored by `NormalisedScorer`, the same probabilities as its own
    predict_proba, bit for bit, without normalising each text twice or counting n-grams a text at a time."""
    keys = [str(t or "") for t in texts]
    scorer = NormalisedScorer.of(model)
    if scorer is None:  # a model of another shape: its own predict_proba, each distinct text once
        distinct = list(dict.fromkeys(keys))
        score = {text: p for start in range(0, len(distinct), PRESSURE_BATCH)
                 for text, p in zip(distinct[start:start + PRESSURE_BATCH],
                                    model.predict_proba(distinct[start:start + PRESSURE_BATCH])[:, 1], strict=True)}
        return [float(score[text]) for text in keys]
    normalised = {text: normalise_text(text) for text in dict.fromkeys(keys)}
    distinct = list(dict.fromkeys(normalised.values()))
    score = {}
    for start in range(0, len(distinct), PRESSURE_BATCH):
        batch = distinct[start:start + PRESSURE_BATCH]
        score.update(zip(batch, scorer.proba(batch).tolist(), strict=True))
    return [score[normalised[text]] for text in keys]


class NormalisedScorer:
    """The pressure probabilities of the pipeline `build_pipeline` makes, from texts already normalised.

    The pipeline's own predict_proba normalises each text twice (once per vectorizer) and counts its n-grams
    in Python a text at a time. Here the counts are made for a whole batch at once: the word n-grams from each
    distinct token and each distinct pair of neighbouring tokens, the char n-grams from each distinct word (as
    `WordwiseCharTfidf`). Counts are integers, so however they are summed they are the pipeline's counts, in
    the same sorted sparse rows; from there the pipeline's own TF-IDF weighting and classifier do the floating
    point, so the probabilities are the pipeline's, bit for bit (tests/test_message_model.py holds them equal).
    """

    def __init__(self, words: TfidfVectorizer, chars: WordwiseCharTfidf, classifier: LogisticRegression):
        self.words, self.chars, self.classifier = words, chars, classifier
        self.tokenize = words.build_tokenizer()
        # the vectorizer's own weighting, given its counts (TfidfVectorizer.transform: counts, then this)
        self.word_weights = TfidfTransformer(norm=words.norm, use_idf=True, smooth_idf=words.smooth_idf,
                                             sublinear_tf=words.sublinear_tf)
        self.word_weights.idf_ = words.idf_
        self.n_word_features = len(words.vocabulary_)
        # each word met so far: its row of `grams`, its kept char n-gram counts
        self.gram_row: dict[str, int] = {}
        self.grams = sparse.csr_matrix((0, len(chars.keep_)), dtype=np.int64)

    @classmethod
    def of(cls, model: Any) -> NormalisedScorer | None:
        """The scorer of `model`, or None when it is not the pipeline `build_pipeline` makes."""
        steps = getattr(model, "named_steps", None)
        if not isinstance(model, Pipeline) or list(steps or ()) != ["features", "classifier"]:
            return None
        features, classifier = steps["features"], steps["classifier"]
        if not isinstance(features, FeatureUnion) or features.transformer_weights is not None:
            return None
        parts = dict(features.transformer_list)
        if [name for name, _ in features.transformer_list] != ["words", "chars"]:
            return None
        words, chars = parts["words"], parts["chars"]
        stock_words = (type(words) is TfidfVectorizer and words.preprocessor is _PREPROCESSOR
                       and words.analyzer == "word" and words.tokenizer is None and words.stop_words is None
                       and tuple(words.ngram_range) == (1, 2) and not words.binary and words.use_idf
                       and words.dtype == np.float64 and hasattr(words, "vocabulary_"))
        stock_chars = type(chars) is WordwiseCharTfidf and hasattr(chars, "tfidf_")
        binary = type(classifier) is LogisticRegression and len(getattr(classifier, "classes_", ())) == 2
        return cls(words, chars, classifier) if stock_words and stock_chars and binary else None

    def proba(self, texts: list[str]) -> np.ndarray:
        """The probability of each normalised text (the pipeline's predict_proba of any text it came from)."""
        # both vectorizers read a text's whitespace-separated words: the char n-grams stay within one, and so do
        # the word pattern's tokens (a run of word characters never holds a space)
        words = _numbered([text.split() for text in texts])
        features = sparse.hstack([self.word_weights.transform(self._word_counts(*words, len(texts)), copy=False),
                                  self.chars.tfidf_.transform(self._char_counts(*words, len(texts)))]).tocsr()
        return self.classifier.predict_proba(features)[:, 1]

    def _word_counts(self, rows: _Rows, words: list[str], n: int) -> sparse.csr_matrix:
        """CountVectorizer's counts of the word unigrams and bigrams of each text (float, as TfidfVectorizer's)."""
        vocabulary = self.words.vocabulary_
        pieces, tokens = _numbered([self.tokenize(word) for word in words])  # each distinct word's tokens
        # each text's tokens, in order: the tokens of each of its words in turn
        per_word = np.bincount(pieces.row, minlength=len(words))
        first = np.cumsum(per_word) - per_word
        taken = per_word[rows.code]
        at = np.arange(int(taken.sum())) + np.repeat(first[rows.code] - (np.cumsum(taken) - taken), taken)
        row, code = np.repeat(rows.row, taken), pieces.code[at]
        unigram = np.array([vocabulary.get(t, -1) for t in tokens], dtype=np.int64)
        # a bigram: two neighbouring tokens of a text, joined by a space (sklearn's _word_ngrams)
        pairs = np.flatnonzero(row[1:] == row[:-1])
        pair = code[pairs] * max(len(tokens), 1) + code[pairs + 1]
        distinct, pair_code = np.unique(pair, return_inverse=True)
        bigram = np.array([vocabulary.get(tokens[p // len(tokens)] + " " + tokens[p % len(tokens)], -1)
                           for p in distinct.tolist()], dtype=np.int64)
        return _counted(np.concatenate([row, row[pairs]]), np.concatenate([unigram[code], bigram[pair_code.ravel()]]),
                        (n, self.n_word_features), np.float64)

    def _char_counts(self, rows: _Rows, words: list[str], n: int) -> sparse.csr_matrix:
        """`WordwiseCharTfidf`'s kept counts: (texts x words) @ (words x char n-grams), as integers."""
        new = [w for w in words if w not in self.gram_row]
        if new:
            self.gram_row.update(zip(new, range(len(self.gram_row), len(self.gram_row) + len(new)), strict=True))
            counts = self.chars.grams_.transform(new)[:, self.chars.keep_]
            self.grams = sparse.vstack([self.grams, counts.astype(np.int64)], format="csr")
        per_text = _counted(rows.row, rows.code, (n, len(words)), np.int64)
        per_word = self.grams[np.array([self.gram_row[w] for w in words], dtype=np.int64)]
        return (per_text @ per_word).tocsr()


_PREPROCESSOR = normalise_text  # the function the shipped model's word vectorizer calls


class _Rows(NamedTuple):
    row: np.ndarray  # per item, the text it came from
    code: np.ndarray  # per item, its number among the distinct items


def _numbered(lists: list[list[str]]) -> tuple[_Rows, list[str]]:
    """The items of each text's list, numbered: (per item its text and its code, the distinct items)."""
    items = list(chain.from_iterable(lists))
    distinct = list(dict.fromkeys(items))
    number = dict(zip(distinct, range(len(distinct)), strict=True))
    lengths = np.fromiter(map(len, lists), dtype=np.int64, count=len(lists))
    code = np.fromiter(map(number.__getitem__, items), dtype=np.int64, count=len(items))
    return _Rows(np.repeat(np.arange(len(lists), dtype=np.int64), lengths), code), distinct


def _counted(rows: np.ndarray, columns: np.ndarray, shape: tuple[int, int], dtype: type) -> sparse.csr_matrix:
    """How often each (row, column) occurs (a negative column: not counted), as a CSR matrix with its columns
    sorted in each row, as CountVectorizer makes them."""
    kept = columns >= 0
    key, count = np.unique(rows[kept] * max(shape[1], 1) + columns[kept], return_counts=True)
    indptr = np.zeros(shape[0] + 1, dtype=np.int64)
    np.cumsum(np.bincount(key // max(shape[1], 1), minlength=shape[0]), out=indptr[1:])
    return sparse.csr_matrix((count.astype(dtype), key % max(shape[1], 1), indptr), shape=shape)
