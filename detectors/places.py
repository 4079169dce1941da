"""Place comparison that does not cry wolf: countries by ISO code, cities without case or accents,
postcodes without case, spaces, hyphens or a country prefix ("RU-101000", "ru 101 000", "101000").

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


@lru_cache(maxsize=65536)
def normalize_city(text: str | None) -> str:
    """Lower-case ASCII letters and digits only: 'SÃO PAULO', 'Sao-Paulo' and 'são paulo' agree."""
    if not text:
        return ""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    ascii_only = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return _NON_ALNUM.sub("", ascii_only) if ascii_only.isascii() else re.sub(r"[\W_]+", "", ascii_only)


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
    return texts, np.where(codes < 0, len(texts) - 1, codes).astype(np.int64)


def normalised_postcodes(postcodes: tuple[np.ndarray, Any], countries: tuple[np.ndarray, Any]
                         ) -> tuple[list[str], np.ndarray]:
    """For factorised postcode and country columns of the same rows: `normalize_postcode` per distinct
    (postcode, country) pair, and each row's index into that list."""
    (p_codes, p_uniques), (c_codes, c_uniques) = postcodes, countries
    width = len(c_uniques) + 1
    pair = (p_codes.astype(np.int64) + 1) * width + (c_codes.astype(np.int64) + 1)
    distinct, inverse = np.unique(pair, return_inverse=True)
    p_text = [""] + [str(u) for u in p_uniques]
    c_text = [""] + [str(u) for u in c_uniques]
    return ([normalize_postcode(p_text[p // width], c_text[p % width]) for p in distinct.tolist()],
            inverse.reshape(-1))


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

    @classmethod
    def of(cls, country: str | None, city: str | None, postcode: str | None) -> Place:
        return cls(normalize_country(country), normalize_city(city), normalize_postcode(postcode, country))


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
    # different scripts ('moscow' / 'москва') cannot be compared without transliteration: no verdict
    if order.city and scan.city and order.city.isascii() == scan.city.isascii() and order.city != scan.city:
        return "city"
    return None
