"""Per-value checks and normalisers for import columns: text in, stored value out, ValueError(reason).

Validation is the import's hot path (a million rows means ~20 million calls), so each function does the
cheapest test first: canonical times skip the ISO parser, countries are looked up once per code.
"""

from __future__ import annotations

import math
import re
from functools import lru_cache

import pycountry

from detectors.tracking_numbers import carrier_key, normalize_number
from tracker.events import NORMALISED_STATUSES
from tracker.timeutil import normalize_time


def shown(text: str, limit: int = 40) -> str:
    """A user's value quoted for an error line, cut so one bad cell cannot flood the terminal."""
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")


# 'YYYY-MM-DDTHH:MM:SSZ' with the clock fields in range; the date part is checked (cached) separately.
_CANONICAL_TIME = re.compile(r"\d{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])T(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\dZ")


@lru_cache(maxsize=8192)
def _real_date(ymd: str) -> bool:
    from datetime import date

    try:
        date.fromisoformat(ymd)
    except ValueError:
        return False
    return True


def time_value(text: str) -> str:
    """ISO 8601 date or datetime (no offset = UTC) -> canonical UTC text."""
    if len(text) == 20 and _CANONICAL_TIME.fullmatch(text) and _real_date(text[:10]):
        return text
    try:
        value = normalize_time(text)
    except (ValueError, OverflowError):
        value = ""
    if len(value) != 20:  # years before 1000 would not sort as text
        raise ValueError(f"not an ISO 8601 date or datetime ({shown(text)})")
    return value


@lru_cache(maxsize=4096)
def _country(code: str) -> str | None:
    if len(code) != 2 or not code.isalpha() or not code.isascii():
        return None
    return code if pycountry.countries.get(alpha_2=code) is not None else None


def country_value(text: str) -> str:
    """ISO 3166-1 alpha-2 code, any case -> upper case."""
    code = _country(text.upper())
    if code is None:
        raise ValueError(f"{shown(text)} is not an ISO 3166-1 alpha-2 country code")
    return code


def days_value(text: str) -> int:
    """A non-negative whole number of days ('30', also '30.0' as spreadsheets write it)."""
    if text.isdigit() and text.isascii() and len(text) < 10:
        return int(text)
    try:
        number = float(text)
    except ValueError:
        number = math.nan
    if math.isfinite(number) and number >= 0 and number.is_integer() and number < 1e9:
        return int(number)
    raise ValueError(f"must be a whole number of days, 0 or more ({shown(text)})")


_YES_NO = {
    "yes": "yes", "y": "yes", "true": "yes", "t": "yes", "1": "yes",
    "no": "no", "n": "no", "false": "no", "f": "no", "0": "no",
}


def yes_no_value(text: str) -> str:
    """yes / no, accepting the usual spellings (y/n, true/false, 1/0) -> 'yes' or 'no'."""
    value = _YES_NO.get(text.lower())
    if value is None:
        raise ValueError(f"must be yes or no ({shown(text)})")
    return value


_DECIMAL_COMMA = re.compile(r"-?\d+,\d{1,2}")


def amount_value(text: str) -> float:
    """A finite number, 0 or more; '12,50' (a decimal comma, as semicolon CSVs from Excel write it) is 12.5."""
    try:
        number = float(text)
    except ValueError:
        if not _DECIMAL_COMMA.fullmatch(text):
            raise ValueError(f"not a number ({shown(text)})") from None
        number = float(text.replace(",", "."))
    if not math.isfinite(number):
        raise ValueError(f"not a finite number ({shown(text)})")
    if number < 0:
        raise ValueError(f"a negative amount ({shown(text)}); a price paid is 0 or more")
    return number + 0.0  # -0.0 is 0


def sender_value(text: str) -> str:
    value = text.lower()
    if value not in ("seller", "buyer"):
        raise ValueError(f"must be seller or buyer ({shown(text)})")
    return value


_STATUSES = frozenset(NORMALISED_STATUSES)


def status_value(text: str) -> str:
    value = text.lower()
    if value not in _STATUSES:
        raise ValueError(f"{shown(text)} is not a normalised status (one of {', '.join(NORMALISED_STATUSES)})")
    return value


def tracking_number_value(text: str) -> str:
    """Upper case, no spaces or hyphens; a cell of only separators is a missing number."""
    if text.isalnum():  # no separators to strip: normalize_number would only upper-case it
        return text.upper()
    number = normalize_number(text)
    if not number:
        raise ValueError(f"no tracking number in {shown(text)}")
    return number


def carrier_value(text: str) -> str:
    """Carrier ids are compared as `carrier_key` makes them, here and in the carrier registry:
    'China Post' -> 'chinapost', 'AliExpress Standard Shipping' -> 'aliexpressstandardshipping'."""
    value = text.lower()
    return value if value.isalnum() else carrier_key(value)
