"""The shipped message model's pressure probabilities without scikit-learn: its fitted numbers and their scoring.

`detectors.message_model.lean_export` reads the fitted pipeline of `message_model.build_pipeline` (word TF-IDF,
char_wb TF-IDF built word by word, logistic regression) into a `LeanMessageModel`: the word vocabulary and its
IDF weights, the token pattern, the kept char n-grams and their IDF weights, the n-gram range, the coefficients and
the intercept. `arrays` gives them as named plain arrays (`tracker.detection.persistence` writes them as one `.npz`
beside the model file, no pickle either way, naming the SHA-256 of the model file they were made from); `of_arrays`
reads them back, refusing (ValueError, KeyError, TypeError) arrays of another format or shape. Scoring needs numpy
and SciPy's sparse matrices and `expit` only: a third of a second of imports, against well over a second (and about
150 MB) for scikit-learn, in every process that scores seller messages (the detect run's pressure child, a run with
new seller messages).

The probabilities are the pipeline's `predict_proba`, bit for bit (`tests/test_message_model.py` holds them equal):
- the counts are integers, made for a whole batch at once from each distinct token, pair of neighbouring tokens and
  word, so however they are summed they are the pipeline's counts, in the same sorted sparse rows;
- from there each step is the operation scikit-learn performs, in its order (`TfidfTransformer.transform`: the
  logarithm plus one, times the IDF weight, divided by the row's L2 norm summed in row order;
  `FeatureUnion`'s horizontal stack; `LogisticRegression.decision_function`'s sparse product with the coefficient
  column, plus the intercept; `expit`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from itertools import chain
from typing import Any, NamedTuple

import numpy as np
from scipy import sparse
from scipy.special import expit

FORMAT = "messages-1"

_DIGITS = re.compile(r"\d+")
_URL_OR_EMAIL = re.compile(r"\S+@\S+|https?://\S+|www\.\S+")

# texts scored at a time: a text's score does not depend on the others of its batch, and the char n-gram
# matrix of a million orders' seller messages at once would take gigabytes
PRESSURE_BATCH = 4096


def normalise_text(text: str) -> str:
    """Lower case; numbers and addresses become placeholders, so phone numbers and amounts generalise."""
    text = str(text).lower()
    if "@" in text or "http" in text or "www." in text:  # else the pattern cannot match: spare its slow search
        text = _URL_OR_EMAIL.sub(" emailaddr ", text)
    return _DIGITS.sub("0", text)


class Tfidf(NamedTuple):
    """One TF-IDF step as scikit-learn's `TfidfTransformer` applies it: IDF weights, sublinear TF, L2 norm or none."""
    idf: np.ndarray
    sublinear: bool
    l2: bool

    def apply(self, x: sparse.csr_matrix) -> sparse.csr_matrix:
        """`TfidfTransformer.transform` of these counts (float64, as its input check makes them), in place."""
        if self.sublinear:
            np.log(x.data, x.data)
            x.data += 1.0
        x.data *= self.idf[x.indices]
        if self.l2:
            _normalise_rows(x)
        return x


def _normalise_rows(x: sparse.csr_matrix) -> None:
    """Each row divided by its L2 norm, in place, rows of zeros left (scikit-learn's
    `inplace_csr_row_normalize_l2`): the squares summed in row order, which SciPy's product with a column of ones
    does (each square times one is the square itself, added to the row's sum in turn)."""
    if not x.nnz:
        return
    squares = sparse.csr_matrix((x.data * x.data, x.indices, x.indptr), shape=x.shape)
    sums = (squares @ np.ones((x.shape[1], 1))).ravel()
    norms = np.sqrt(sums)
    norms[sums == 0.0] = 1.0
    x.data /= np.repeat(norms, np.diff(x.indptr))


class LeanMessageModel:
    """The message model's fitted numbers, and the pressure probability of texts (module docstring)."""

    def __init__(self, *, token_pattern: str, word_terms: Sequence[str], words: Tfidf, char_range: tuple[int, int],
                 char_terms: Sequence[str], chars: Tfidf, coef: np.ndarray, intercept: float,
                 source: Mapping[str, Any] | None = None):
        self.token_pattern, self.char_range = token_pattern, (int(char_range[0]), int(char_range[1]))
        self.word_terms, self.char_terms = list(word_terms), list(char_terms)
        self.words, self.chars = words, chars
        self.coef = np.asarray(coef, dtype=np.float64).reshape(-1)
        self.intercept = float(intercept)
        self.source = dict(source or {})
        if len(words.idf) != len(self.word_terms) or len(chars.idf) != len(self.char_terms):
            raise ValueError("IDF weights of another number of terms")
        if len(self.coef) != len(self.word_terms) + len(self.char_terms):
            raise ValueError("coefficients of another number of features")
        if not 1 <= self.char_range[0] <= self.char_range[1]:
            raise ValueError(f"char n-gram range {self.char_range}")
        self.tokenize = re.compile(token_pattern).findall
        self.word_column = {term: i for i, term in enumerate(self.word_terms)}
        self.char_column = {term: i for i, term in enumerate(self.char_terms)}
        if len(self.word_column) != len(self.word_terms) or len(self.char_column) != len(self.char_terms):
            raise ValueError("a term named twice")
        self._coef_column = self.coef.reshape(-1, 1)  # the shape LogisticRegression multiplies by
        # each word met so far: its row, and the rows of its kept char n-gram counts; one pair, replaced whole, so a
        # call scoring in another thread (a Dask worker's tasks share the model) reads one or the other, never half
        self.known_words: tuple[dict[str, int], sparse.csr_matrix] = (
            {}, sparse.csr_matrix((0, len(self.char_terms)), dtype=np.float64))

    # ------------------------------------------------------------------------------------------------- scoring

    def pressure(self, texts: Sequence[str | None]) -> list[float]:
        """Probability, per message, that it pressures the buyer. The model sees a text only through
        `normalise_text`, so each distinct text is normalised once and each distinct normalised text scored once
        (seller messages differ mostly in numbers, which normalising drops), `PRESSURE_BATCH` at a time."""
        keys = [str(t or "") for t in texts]
        normalised = {text: normalise_text(text) for text in dict.fromkeys(keys)}
        distinct = list(dict.fromkeys(normalised.values()))
        score: dict[str, float] = {}
        for start in range(0, len(distinct), PRESSURE_BATCH):
            batch = distinct[start:start + PRESSURE_BATCH]
            score.update(zip(batch, self.proba(batch).tolist(), strict=True))
        return [score[normalised[text]] for text in keys]

    def proba(self, texts: list[str]) -> np.ndarray:
        """The probability of each normalised text (the pipeline's predict_proba of any text it came from)."""
        # both vectorizers read a text's whitespace-separated words: the char n-grams stay within one, and so do
        # the word pattern's tokens (a run of word characters never holds a space)
        rows, words = _numbered([text.split() for text in texts])
        features = sparse.hstack([self.words.apply(self._word_counts(rows, words, len(texts))),
                                  self.chars.apply(self._char_counts(rows, words, len(texts)))]).tocsr()
        decision = (features @ self._coef_column + np.array([self.intercept])).reshape(-1)
        return expit(decision, out=decision)

    def _word_counts(self, rows: _Rows, words: list[str], n: int) -> sparse.csr_matrix:
        """CountVectorizer's counts of the word unigrams and bigrams of each text (float, as TfidfVectorizer's)."""
        vocabulary = self.word_column
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
                        (n, len(self.word_terms)), np.float64)

    def _char_counts(self, rows: _Rows, words: list[str], n: int) -> sparse.csr_matrix:
        """The kept char_wb n-gram counts of each text: (texts x words) @ (words x n-grams). The counts are whole
        numbers, far below 2**53, so in float64 (what the TF-IDF step makes of them) their sums are exact."""
        gram_row, grams = self.known_words
        new = [w for w in words if w not in gram_row]
        if new:
            gram_row = {**gram_row, **dict(zip(new, range(len(gram_row), len(gram_row) + len(new)), strict=True))}
            grams = sparse.vstack([grams, self._word_grams(new)], format="csr")
            self.known_words = (gram_row, grams)
        per_text = _counted(rows.row, rows.code, (n, len(words)), np.float64)
        per_word = grams[np.array([gram_row[w] for w in words], dtype=np.int64)]
        counts = (per_text @ per_word).tocsr()
        counts.sort_indices()  # a product's columns come in no set order; the sums after it add them in row order
        return counts

    def _word_grams(self, words: list[str]) -> sparse.csr_matrix:
        """Each word's counts of the kept char n-grams, as scikit-learn's char_wb analyzer cuts a word: padded with
        a space each side, every n-gram of each length in the range, a word shorter than a length counted once."""
        column = self.char_column
        low, high = self.char_range
        rows: list[int] = []
        columns: list[int] = []
        for i, word in enumerate(words):
            padded = f" {word} "
            size = len(padded)
            for n in range(low, high + 1):
                if size <= n:  # the whole padded word, once, and no longer n-gram after it
                    j = column.get(padded, -1)
                    if j >= 0:
                        rows.append(i)
                        columns.append(j)
                    break
                for offset in range(size - n + 1):
                    j = column.get(padded[offset:offset + n], -1)
                    if j >= 0:
                        rows.append(i)
                        columns.append(j)
        return _counted(np.array(rows, dtype=np.int64), np.array(columns, dtype=np.int64),
                        (len(words), len(self.char_terms)), np.float64)

    # ---------------------------------------------------------------------------------- plain arrays and back

    def arrays(self) -> dict[str, np.ndarray]:
        """The model as named plain arrays (what `persistence.save_lean` writes)."""
        words, word_ends = _packed(self.word_terms)
        grams, gram_ends = _packed(self.char_terms)
        meta = {"format": FORMAT, "token_pattern": self.token_pattern, "char_range": list(self.char_range),
                "words": {"sublinear": self.words.sublinear, "l2": self.words.l2},
                "chars": {"sublinear": self.chars.sublinear, "l2": self.chars.l2},
                "intercept": self.intercept.hex(), "source": self.source}
        return {"meta": np.frombuffer(json.dumps(meta, sort_keys=True).encode(), dtype=np.uint8),
                "word_terms": words, "word_ends": word_ends, "word_idf": self.words.idf,
                "char_terms": grams, "char_ends": gram_ends, "char_idf": self.chars.idf, "coef": self.coef}

    @classmethod
    def of_arrays(cls, arrays: Mapping[str, np.ndarray]) -> LeanMessageModel:
        """The model from `arrays` (ValueError / KeyError / TypeError where they are not what `arrays` writes)."""
        meta = json.loads(np.asarray(arrays["meta"], dtype=np.uint8).tobytes().decode())
        if meta.get("format") != FORMAT:
            raise ValueError(f"lean message model format {meta.get('format')!r}, this version reads {FORMAT}")

        def floats(name: str) -> np.ndarray:
            values = np.asarray(arrays[name])
            if values.dtype != np.float64 or values.ndim != 1:
                raise TypeError(f"{name}: {values.dtype} of {values.ndim} dimensions, not a row of float64")
            return values

        return cls(token_pattern=str(meta["token_pattern"]),
                   word_terms=_unpacked(arrays["word_terms"], arrays["word_ends"]),
                   words=Tfidf(floats("word_idf"), bool(meta["words"]["sublinear"]), bool(meta["words"]["l2"])),
                   char_range=(int(meta["char_range"][0]), int(meta["char_range"][1])),
                   char_terms=_unpacked(arrays["char_terms"], arrays["char_ends"]),
                   chars=Tfidf(floats("char_idf"), bool(meta["chars"]["sublinear"]), bool(meta["chars"]["l2"])),
                   coef=floats("coef"), intercept=float.fromhex(str(meta["intercept"])),
                   source=meta.get("source") or {})


def _packed(terms: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Terms as one UTF-8 byte array and each one's end in it (numpy's own text arrays drop trailing NULs)."""
    encoded = [t.encode("utf-8") for t in terms]
    ends = np.cumsum([len(b) for b in encoded], dtype=np.int64) if encoded else np.zeros(0, dtype=np.int64)
    return np.frombuffer(b"".join(encoded), dtype=np.uint8), ends


def _unpacked(blob: np.ndarray, ends: np.ndarray) -> list[str]:
    data = np.asarray(blob, dtype=np.uint8).tobytes()
    stops = np.asarray(ends, dtype=np.int64).tolist()
    if any(b < a for a, b in zip([0, *stops], stops, strict=False)) or (stops and stops[-1] != len(data)):
        raise ValueError("term ends out of order")
    return [data[a:b].decode("utf-8") for a, b in zip([0, *stops[:-1]], stops, strict=True)]


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
