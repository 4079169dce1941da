"""Place comparison that does not cry wolf: countries by ISO code, cities without case or accents,
postcodes without case, spaces, hyphens or a country prefix ("RU-101000", "ru 101 000", "101000").

A city is compared as its words, transliterated to Latin letters (anyascii: Cyrillic, Greek, Han, accents),
without the facility words carriers print around it ("MADRID CTM", "CHICAGO IL NETWORK DISTRIBUTION
CENTER"), with pinyin province+city forms cut to the city ("AnHuiShengChiZhouShi" -> "chizhou") and
local names put in one form ("Moskva" -> "moscow"). The word lists are data: data/places.toml.

Pure functions; the `*_series` forms apply the same normalisation to a pandas Series by normalising each
distinct value once (a million rows hold a few thousand distinct cities).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pandas only for the *_series forms: the readers' child processes import this module too
    import pandas as pd

_NON_ALNUM = re.compile(r"[^0-9a-z]+")
_POSTCODE_STRIP = re.compile(r"[\s\-\.]+")
_PREFIX = re.compile(r"^([A-Z]{2})(?=\d)")


@lru_cache(maxsize=65536)
def normalize_country(text: str | None) -> str:
    """ISO 3166-1 alpha-2, upper-case ('ru ' -> 'RU'); empty when unknown."""
    return (text or "").strip().upper()


_CAMEL = re.compile(r"[A-Z][a-z]+")
_WORDS = re.compile(r"[0-9a-z]+")


@lru_cache(maxsize=1)
def _vocabulary() -> dict[str, Any]:
    """data/places.toml (and $TRACKER_CONFIG_DIR/places.toml over it), compiled for normalize_city."""
    from detectors.reference_data import settings_with_override

    settings = settings_with_override("places")
    phrases = sorted({tuple(_WORDS.findall(_latin(p))) for p in settings.get("facility", {}).get("phrases", [])},
                     key=len, reverse=True)
    pinyin = settings.get("pinyin", {})
    return {
        "phrases": [p for p in phrases if p],
        "regions": frozenset(settings.get("regions", {}).get("codes", [])),
        "abbreviations": dict(settings.get("abbreviations", {})),
        "exonyms": dict(settings.get("exonyms", {})),
        "province": {w.capitalize() for w in pinyin.get("province", [])},
        "suffixes": {w.capitalize() for w in pinyin.get("suffixes", []) if " " not in w},
    }


def _latin(text: str) -> str:
    """The text in Latin letters, lower-case, accents dropped ('Москва' -> 'moskva', 'São' -> 'sao')."""
    from anyascii import anyascii

    return anyascii(unicodedata.normalize("NFKC", text)).lower()


@lru_cache(maxsize=65536)
def is_latin(text: str | None) -> bool:
    """Whether a name is written in Latin letters (accents allowed); two names in different scripts that do
    not agree after transliteration are no evidence of another city (exonyms and spellings vary)."""
    return all(not ch.isalpha() or unicodedata.name(ch, "").startswith("LATIN") for ch in text or "")


def _pinyin_city(text: str) -> str:
    """'AnHuiShengChiZhouShi' -> 'ChiZhou': the city of a pinyin province+city name (else the text)."""
    vocabulary = _vocabulary()
    syllables = _CAMEL.findall(text)
    if len(syllables) < 3 or "".join(syllables) != text:
        return text
    cut = max((i for i, s in enumerate(syllables) if s in vocabulary["province"]), default=-1)
    rest = syllables[cut + 1:]
    if len(rest) > 2 and rest[-1] in vocabulary["suffixes"]:
        rest = rest[:-1]
    return "".join(rest) if (cut >= 0 or len(rest) < len(syllables)) and rest else text


@lru_cache(maxsize=65536)
def normalize_city(text: str | None) -> str:
    """A city as the words that name it: lower-case Latin letters and digits, joined. 'SÃO PAULO',
    'Sao-Paulo', 'são paulo' agree; so do 'MADRID CTM' and 'Madrid', 'CHICAGO IL NETWORK DISTRIBUTION
    CENTER' and 'Chicago', 'AnHuiShengChiZhouShi' and 'Chizhou', 'Москва' and 'Moscow'."""
    if not text:
        return ""
    vocabulary = _vocabulary()
    words = [_pinyin_city(w) for w in text.split()]
    tokens = _WORDS.findall(_latin(" ".join(words)))
    for phrase in vocabulary["phrases"]:  # facility words, longest phrase first
        n = len(phrase)
        i = 0
        while i <= len(tokens) - n:
            if tuple(tokens[i:i + n]) == phrase:
                del tokens[i:i + n]
            else:
                i += 1
    while len(tokens) > 1 and tokens[-1] in vocabulary["regions"]:
        tokens.pop()
    joined = "".join(vocabulary["abbreviations"].get(t, t) for t in tokens)
    return vocabulary["exonyms"].get(joined, joined)


@lru_cache(maxsize=262144)
def normalize_postcode(text: str | None, country: str | None = None) -> str:
    """Upper-case, no spaces, hyphens or dots, no 'RU-'-style country prefix; US ZIP+4 cut to the ZIP."""
    if not text:
        return ""
    code = _POSTCODE_STRIP.sub("", text.upper())
    m = _PREFIX.match(code)
    # a leading country code followed by digits ('RU101000', 'DE-10115') is a prefix, not part of the code
    if m and (not country or m.group(1) == normalize_country(country)):
        code = code[2:]
    if normalize_country(country) == "US" and len(code) == 9 and code.isdigit():
        code = code[:5]
    return code


def normalised_per_value(codes: np.ndarray, uniques: Any, normalise: Any) -> tuple[list[str], np.ndarray]:
    """For a factorised column (codes, -1 for missing; distinct values): `normalise(str(value))` per distinct
    value, `normalise('')` last (for a missing value), and each row's index into that list."""
    texts = [normalise(str(u)) for u in uniques] + [normalise("")]
    index = np.array(codes, dtype=np.int64)  # one copy, changed in place
    index[index < 0] = len(texts) - 1
    return texts, index


def normalised_postcodes(postcodes: tuple[np.ndarray, Any], countries: tuple[np.ndarray, Any]
                         ) -> tuple[list[str], np.ndarray]:
    """For factorised postcode and country columns of the same rows: `normalize_postcode` per distinct
    (postcode, country) pair, in order of the pair's key (postcode code, then country code; missing first),
    and each row's index into that list."""
    texts, index = _normalised_postcodes(postcodes, countries)
    return (texts if isinstance(texts, list) else texts.to_pylist()), index.astype(np.int64, copy=False)


def normalised_postcode_array(postcodes: tuple[np.ndarray, Any], countries: tuple[np.ndarray, Any]
                              ) -> tuple[Any, np.ndarray]:
    """`normalised_postcodes` with the texts as an arrow string array and the index as int32 when it fits, for
    a reader that writes both to arrow anyway: a postcode column's distinct values may be an arrow string
    array too (a dictionary's), so no postcode becomes a Python string unless it is not ASCII."""
    import pyarrow as pa

    texts, index = _normalised_postcodes(postcodes, countries)
    return (pa.array(texts, pa.string()) if isinstance(texts, list) else texts), index


def _normalised_postcodes(postcodes: tuple[np.ndarray, Any], countries: tuple[np.ndarray, Any]
                          ) -> tuple[Any, np.ndarray]:
    """`normalised_postcodes`' texts as a list or an arrow string array, and its index."""
    import pyarrow as pa

    (p_codes, p_uniques), (c_codes, c_uniques) = postcodes, countries
    width = len(c_uniques) + 1
    pair = np.array(p_codes, dtype=np.int64)  # (p + 1) * width + (c + 1), in one array changed in place
    pair += 1
    pair *= width
    pair += c_codes
    pair += 1
    distinct, inverse = _distinct(pair, (len(p_uniques) + 1) * width)
    p_at, c_at = np.divmod(distinct, width)
    c_text = [""] + [str(u) for u in c_uniques]
    if isinstance(p_uniques, pa.Array) and not (
            (pa.types.is_string(p_uniques.type) or pa.types.is_large_string(p_uniques.type))
            and not p_uniques.null_count):
        p_uniques = p_uniques.to_pylist()  # not plain text: str() of each value, as for any other sequence
    try:  # code 0 (a missing postcode) is ''; the others str(value), as the per-value function sees them
        if isinstance(p_uniques, pa.Array):
            values = pa.concat_arrays([pa.array([""], pa.string()), p_uniques.cast(pa.string())])
        else:
            values = pa.array([""] + [str(u) for u in p_uniques], pa.string())
    except UnicodeError:  # a lone surrogate, which UTF-8 (so arrow) cannot hold: the per-value function
        p_text = [""] + [str(u) for u in p_uniques]
        return [normalize_postcode(p_text[p], c_text[c])
                for p, c in zip(p_at.tolist(), c_at.tolist(), strict=True)], inverse
    return _postcode_texts(values, c_text, p_at, c_at), inverse


def _distinct(keys: np.ndarray, bound: int) -> tuple[np.ndarray, np.ndarray]:
    """`np.unique(keys, return_inverse=True)` for integer keys in [0, bound) (the inverse may be int32): when
    the bound is not much more than the number of keys, by marking each key in a table of all of them, without
    sorting the keys."""
    if bound > 4 * len(keys) + 65536 or bound >= 2 ** 31:
        distinct, inverse = np.unique(keys, return_inverse=True)
        return distinct, inverse.reshape(-1)
    seen = np.zeros(bound, dtype=bool)
    seen[keys] = True
    distinct = np.flatnonzero(seen)
    rank = np.empty(bound, dtype=np.int32)  # only marked keys are read; int32: half the cache misses of int64
    rank[distinct] = np.arange(len(distinct), dtype=np.int32)
    return distinct, rank[keys]


# normalize_postcode on ASCII text, byte by byte: str.upper, `_POSTCODE_STRIP`'s class (Python's `\s` on str
# also matches \x0b and \x1c-\x1f), and `_PREFIX`'s letters and digits
_UPPER = np.array([ord(chr(i).upper()) for i in range(128)] + list(range(128, 256)), dtype=np.uint8)
_STRIPPED = np.array([i < 128 and bool(_POSTCODE_STRIP.fullmatch(chr(i))) for i in range(256)])
_LETTER = np.array([i < 128 and bool(re.fullmatch("[A-Z]", chr(i))) for i in range(256)])
_DIGIT = np.array([i < 128 and bool(re.fullmatch(r"\d", chr(i))) for i in range(256)])


def _postcode_texts(values: Any, c_text: list[str], p_at: np.ndarray, c_at: np.ndarray) -> Any:
    """`normalize_postcode(values[p], c_text[c])` for each (p, c) of (p_at, c_at), as an arrow string array.

    ASCII postcodes are normalised once each, with numpy over the bytes of all of them at once; the result for
    a pair is a slice of its postcode's normalised bytes. Other postcodes (Unicode case, spaces and digits)
    go to `normalize_postcode` itself, pair by pair.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    values = values.cast(pa.string())  # int32 offsets: every position below fits an int32
    offsets = np.frombuffer(values.buffers()[1], dtype=np.int32, count=len(values) + 1, offset=4 * values.offset)
    data = values.buffers()[2]
    data = (np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, np.uint8)
            )[offsets[0]:offsets[-1]]
    offsets = offsets - offsets[0]
    # upper-cased without the stripped bytes: each postcode's code at code[start:start + length]
    keep = ~np.take(_STRIPPED, data)
    kept = np.concatenate(([0], np.cumsum(keep, dtype=np.int32)))[offsets]
    code = np.concatenate((np.take(_UPPER, data)[keep], np.zeros(3, np.uint8)))  # 3 past the end: read, unused
    start, length = kept[:-1], np.diff(kept)
    first, second = np.take(code, start), np.take(code, start + 1)
    prefixed = (length >= 3) & _LETTER[first] & _LETTER[second] & _DIGIT[np.take(code, start + 2)]
    prefix = first.astype(np.int32) * 256 + second
    unicode = (~pc.string_is_ascii(values).to_numpy(zero_copy_only=False) if data.max(initial=0) >= 128
               else np.zeros(len(values), dtype=bool))
    # per country: whether it is missing (any prefix goes), its code as a prefix would read, and whether US
    country = [normalize_country(c) for c in c_text]
    no_country = np.array([not c for c in c_text], dtype=bool)
    country_prefix = np.array([ord(c[0]) * 256 + ord(c[1]) if len(c) == 2 and c.isascii() else -1
                               for c in country], dtype=np.int32)
    us = np.array([c == "US" for c in country], dtype=bool)
    # per pair, as normalize_postcode decides
    cut = prefixed[p_at] & (no_country[c_at] | (prefix[p_at] == country_prefix[c_at]))
    begin = start[p_at] + 2 * cut.astype(np.int32)
    end = start[p_at] + length[p_at]
    zip4 = np.flatnonzero(us[c_at] & (end - begin == 9))
    zip4 = zip4[np.take(_DIGIT, np.take(code, begin[zip4, None] + np.arange(9))).all(axis=1)]
    end[zip4] = begin[zip4] + 5
    odd = np.flatnonzero(unicode[p_at])
    if len(odd):
        texts = [normalize_postcode(values[int(p)].as_py(), c_text[c])
                 for p, c in zip(p_at[odd].tolist(), c_at[odd].tolist(), strict=True)]
        encoded = [t.encode() for t in texts]
        sizes = np.array([len(e) for e in encoded], dtype=np.int64)
        begin, end = begin.astype(np.int64), end.astype(np.int64)  # past the ASCII bytes: may pass int32
        begin[odd] = len(code) + np.concatenate(([0], np.cumsum(sizes)[:-1]))
        end[odd] = begin[odd] + sizes
        code = np.concatenate((code, np.frombuffer(b"".join(encoded), dtype=np.uint8)))
    sizes = end - begin
    out = np.concatenate(([0], np.cumsum(sizes, dtype=np.int64)))
    taken = np.take(code, np.repeat(begin - out[:-1], sizes) + np.arange(out[-1]))
    if out[-1] < 2 ** 31:
        return pa.StringArray.from_buffers(len(sizes), pa.py_buffer(out.astype(np.int32)), pa.py_buffer(taken))
    return pa.LargeStringArray.from_buffers(len(sizes), pa.py_buffer(out), pa.py_buffer(taken))


def _map(values: pd.Series, fn) -> pd.Series:  # noqa: ANN001
    """fn over each distinct value once; None/NaN become ''."""
    import pandas as pd

    cache: dict = {}
    out = []
    for v in values.to_numpy(dtype=object):
        key = v if isinstance(v, str) else ""
        r = cache.get(key)
        if r is None:
            r = cache[key] = fn(key)
        out.append(r)
    return pd.Series(out, index=values.index, dtype=object)


def country_series(values: pd.Series) -> pd.Series:
    return _map(values, normalize_country)


def city_series(values: pd.Series) -> pd.Series:
    return _map(values, normalize_city)


def postcode_series(values: pd.Series, countries: pd.Series) -> pd.Series:
    import pandas as pd

    out = [normalize_postcode(v if isinstance(v, str) else "", c if isinstance(c, str) else "")
           for v, c in zip(values.to_numpy(dtype=object), countries.to_numpy(dtype=object), strict=True)]
    return pd.Series(out, index=values.index, dtype=object)


@dataclass(frozen=True)
class Place:
    country: str = ""
    city: str = ""
    postcode: str = ""
    latin: bool = True  # the city was written in Latin letters

    @classmethod
    def of(cls, country: str | None, city: str | None, postcode: str | None) -> Place:
        return cls(normalize_country(country), normalize_city(city), normalize_postcode(postcode, country),
                   is_latin(city))


def mismatch(order: Place, scan: Place, *, check_locality: bool = True) -> str | None:
    """What differs between the order's address and a destination-side scan, or None when they agree.

    Unknown parts never disagree. The postcode is the finer key: the same postcode under another city
    spelling is the same place, and the same city under another postcode is not.
    """
    if order.country and scan.country and order.country != scan.country:
        return "country"
    if not check_locality:
        return None
    if order.postcode and scan.postcode:
        return None if order.postcode == scan.postcode else "postcode"
    # names in different scripts that do not agree after transliteration: no verdict (spellings vary)
    if order.city and scan.city and order.latin == scan.latin and order.city != scan.city:
        return "city"
    return None
