"""A shipment's facts: what the tracking events of one tracking number say, defined once.

Rules and the classifier read the same facts (the store keeps them in `shipment_facts`, refreshed by
`tracker.detection.facts`); every reader of events, one process or several, computes them with these
functions. `FACTS` names each fact and says what it means; docs/detection.md shows the same table.

Input is columns of events (numpy only, so a child process reading the store need not import pandas): text
columns as `Coded` (integer codes, -1 for missing, and the distinct texts), times as epoch milliseconds
(`epoch_ms`; `NO_TIME` where a time cannot be read). `partial` reduces any set of events to one row per
number, `combine` merges the rows of several sets (a number's events may be split between them), `finish`
turns them into the facts. `shipment_facts` is the three in one.

Which scan is which kind is data (data/rules.toml [scans], `ScanKinds`): raw codes match shell-style
patterns (`fnmatch`, case-sensitive), statuses are the normalised ones, and a scan without a raw code counts
as export, import, customs or line-haul when its description holds one of that kind's words (any case).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from itertools import chain
from typing import Any, NamedTuple

import numpy as np

from detectors.view import PHYSICAL_STATUSES

# statuses that are not the carrier's record of the parcel: a lookup that found nothing, a code not understood
NOT_CARRIER_EVENTS = ("not_found", "unknown")

# name -> what it means, per tracking number (the columns of `shipment_facts` after `tracking_number`)
FACTS: dict[str, str] = {
    "n_events": "stored events of every status, 'not found' answers and codes not understood included",
    "n_scans": "physical scans: status in_transit, out_for_delivery, available_for_pickup, delivery_failed, "
               "delivered, exception or returned",
    "n_transit": "scans whose status is one of [scans] transit_statuses (in transit, out for delivery, pickup)",
    "n_export": "export customs scans: raw code in export_codes, or no raw code and a description with an "
                "export word",
    "n_import": "import customs scans: raw code in import_codes, or no raw code and a description with an "
                "import word",
    "n_customs": "customs scans of any kind: export, import, or raw code in customs_codes / a customs word",
    "n_linehaul": "line-haul scans: raw code in linehaul_codes, or no raw code and a line-haul word",
    "n_delivered": "delivered scans",
    "first_event_jd": "earliest carrier event: any status but not_found and unknown (info_received counts)",
    "last_event_jd": "latest carrier event, as first_event_jd",
    "first_scan_jd": "earliest physical scan",
    "last_scan_jd": "latest physical scan: the last hand-over, 'last seen since'",
    "delivered_jd": "earliest delivered scan",
    "delivered_country": "country of the earliest delivered scan (of the lowest event id when two tie)",
    "delivered_city": "city of that scan",
    "delivered_postcode": "postcode of that scan",
    "last_scan_status": "normalised status of the latest physical scan (of the highest event id when two tie)",
    "last_scan_raw_code": "the carrier's own code of that scan",
    "last_scan_country": "country of that scan: where the parcel was last seen",
    "last_scan_city": "city of that scan",
    "last_scan_postcode": "postcode of that scan",
    "locality_min": "destination-office scans (locality_codes or locality_statuses): the smallest of their "
                    "places packed as 'COUNTRY|City|Postcode' (missing parts empty), compared as UTF-8 bytes",
    "locality_max": "the largest of those packed places (both agreeing with the order: every one does, "
                    "almost surely)",
    "country_side_min": "scans after export (country_side_codes): the smallest of their countries",
    "country_side_max": "the largest of those countries",
    "max_event_id": "the newest event's id",
}
FACT_COLUMNS: tuple[str, ...] = tuple(FACTS)
COUNT_COLUMNS = ("n_events", "n_scans", "n_transit", "n_export", "n_import", "n_customs", "n_linehaul",
                 "n_delivered")
TIME_COLUMNS = ("first_event_jd", "last_event_jd", "first_scan_jd", "last_scan_jd", "delivered_jd")
TEXT_COLUMNS = tuple(c for c in FACT_COLUMNS if c not in COUNT_COLUMNS + TIME_COLUMNS + ("max_event_id",))
# the events columns the facts are made of
EVENT_COLUMNS = ("id", "tracking_number", "occurred_ms", "status", "raw_code", "description", "country", "city",
                 "postcode")

NO_TIME = np.iinfo(np.int64).min  # an event whose time cannot be read
_LATEST = np.iinfo(np.int64).max
# SQLite's julianday(): milliseconds since the Julian epoch, divided as a double
_JD_MS_AT_UNIX_EPOCH = 210_866_760_000_000


class Coded(NamedTuple):
    """A text column as integer codes (-1: missing) into its distinct values."""

    codes: np.ndarray
    values: Sequence[Any]


@dataclass(frozen=True)
class ScanKinds:
    """Which scans are which, by raw-code pattern, normalised status or description word (data/rules.toml
    [scans]). Patterns are shell-style (`fnmatch`, case-sensitive): 'CC_EX*' is every code starting CC_EX."""

    transit_statuses: tuple[str, ...] = ("in_transit", "out_for_delivery", "available_for_pickup")
    export_codes: tuple[str, ...] = ("CC_EX*",)
    import_codes: tuple[str, ...] = ("CC_IM*",)
    customs_codes: tuple[str, ...] = ("CC_*",)
    linehaul_codes: tuple[str, ...] = ("LH_*",)
    # scans without a raw code: the words in their description that say their kind
    export_words: tuple[str, ...] = ("export",)
    import_words: tuple[str, ...] = ("import",)
    customs_words: tuple[str, ...] = ("customs",)
    linehaul_words: tuple[str, ...] = ("line-haul", "linehaul")
    # scans made after export: their country must be the order's
    country_side_codes: tuple[str, ...] = ("CC_IM*", "GTMS_*")
    # scans at the delivery office, out for delivery or delivered: city and postcode must be the order's
    locality_codes: tuple[str, ...] = ("GTMS_DO_*", "GTMS_SIGNED", "GTMS_DEL_FAILURE")
    locality_statuses: tuple[str, ...] = ("out_for_delivery", "available_for_pickup", "delivery_failed", "delivered")

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> ScanKinds:
        scans = settings.get("scans", {})
        return cls(**{k: tuple(v) for k, v in scans.items() if k in cls.__dataclass_fields__})

    def is_locality(self, raw_code: str | None, status: str | None) -> bool:
        return status in self.locality_statuses or _matches(raw_code, self.locality_codes)

    def is_country_side(self, raw_code: str | None, status: str | None) -> bool:
        return self.is_locality(raw_code, status) or _matches(raw_code, self.country_side_codes)

    def fingerprint(self) -> str:
        """Changes whenever a pattern, status or word does (the stored facts are then made anew)."""
        return repr(sorted((k, getattr(self, k)) for k in self.__dataclass_fields__))


@lru_cache(maxsize=8192)
def _matches(raw_code: str | None, patterns: tuple[str, ...]) -> bool:
    # a store holds a few dozen raw codes: each (code, patterns) pair is matched once per process
    return isinstance(raw_code, str) and any(fnmatch.fnmatchcase(raw_code, p) for p in patterns)


# the kinds of each event, in this order: the columns of `classify`'s answer
KINDS = ("carrier_event", "scan", "transit", "export", "import", "customs", "linehaul", "delivered", "locality",
         "country_side")


def classify(kinds: ScanKinds, status: Coded, raw_code: Coded, description: Coded) -> dict[str, np.ndarray]:
    """Per event, whether it is of each kind in KINDS: decided once per distinct (status, raw code) pair and once
    per distinct description of the events without a raw code, spread back with one take."""
    s_values = [v if isinstance(v, str) else None for v in status.values] + [None]  # code -1: missing
    r_values = [v if isinstance(v, str) and v else None for v in raw_code.values] + [None]
    width = len(r_values)
    pair = np.asarray(status.codes, dtype=np.int64) % len(s_values) * width \
        + np.asarray(raw_code.codes, dtype=np.int64) % width
    used, inverse = _distinct(pair, len(s_values) * width)
    table = np.array([_pair_kinds(kinds, s_values[p // width], r_values[p % width]) for p in used.tolist()],
                     dtype=bool).reshape(len(used), len(KINDS))
    verdicts = table[inverse]
    out = {name: verdicts[:, k] for k, name in enumerate(KINDS)}
    # scans without a raw code: their kind by the words of their description
    no_code = np.flatnonzero(np.asarray([v is None for v in r_values], dtype=bool)[raw_code.codes % width])
    if len(no_code):
        words = {"export": kinds.export_words, "import": kinds.import_words, "customs": kinds.customs_words,
                 "linehaul": kinds.linehaul_words}
        d_codes = np.asarray(description.codes, dtype=np.int64)[no_code]
        d_values = [v if isinstance(v, str) else "" for v in description.values] + [""]
        distinct, d_inverse = np.unique(d_codes % len(d_values), return_inverse=True)
        for name, listed in words.items():
            if not listed:
                continue
            pattern = re.compile("|".join(re.escape(w) for w in listed), re.IGNORECASE)
            said = np.array([bool(pattern.search(d_values[d])) for d in distinct.tolist()], dtype=bool)
            out[name] = out[name].copy()
            out[name][no_code] |= said[d_inverse.reshape(-1)]
    out["customs"] = out["customs"] | out["export"] | out["import"]
    return out


def _distinct(keys: np.ndarray, bound: int) -> tuple[np.ndarray, np.ndarray]:
    """`np.unique(keys, return_inverse=True)` for keys in [0, bound): by counting when the bound is small (a few
    hundred (status, raw code) pairs), with no sort of every event."""
    if bound > 4 * len(keys) + 1024:
        used, inverse = np.unique(keys, return_inverse=True)
        return used, inverse.reshape(-1)
    seen = np.bincount(keys, minlength=bound) > 0
    used = np.flatnonzero(seen)
    slot = np.cumsum(seen) - 1
    return used, slot[keys]


def _pair_kinds(kinds: ScanKinds, status: str | None, raw_code: str | None) -> tuple[bool, ...]:
    locality = kinds.is_locality(raw_code, status)
    return (
        status is not None and status not in NOT_CARRIER_EVENTS,
        status in PHYSICAL_STATUSES,
        status in kinds.transit_statuses,
        _matches(raw_code, kinds.export_codes),
        _matches(raw_code, kinds.import_codes),
        _matches(raw_code, kinds.customs_codes),
        _matches(raw_code, kinds.linehaul_codes),
        status == "delivered",
        locality,
        _matches(raw_code, kinds.country_side_codes),
    )


# ------------------------------------------------------------------------------------------------ times

_CANONICAL = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z\Z")


def epoch_ms(texts: Sequence[Any]) -> np.ndarray:
    """Each time text as UTC epoch milliseconds (NO_TIME when it is no time). The store writes
    'YYYY-MM-DDTHH:MM:SSZ'; other ISO 8601 forms are read too (without an offset: UTC), as SQLite's julianday
    reads them."""
    values = np.asarray(texts, dtype=object)
    out = np.full(len(values), NO_TIME, dtype=np.int64)
    if not len(values):
        return out
    canonical = np.fromiter((isinstance(t, str) and _CANONICAL.match(t) is not None for t in values.tolist()),
                            dtype=bool, count=len(values))
    if canonical.any():
        try:
            stripped = np.array([t[:-1] for t in values[canonical].tolist()], dtype="datetime64[ms]")
            out[canonical] = stripped.astype(np.int64)
        except ValueError:  # the form of a time but no real one (a 13th month): each read on its own
            canonical[:] = False
    for i in np.flatnonzero(~canonical).tolist():
        out[i] = time_text_ms(values[i])
    return out


def time_text_ms(text: Any) -> int:
    """One time text (any ISO 8601 form) as UTC epoch milliseconds, NO_TIME when it is not one."""
    if not isinstance(text, str) or not text.strip():
        return int(NO_TIME)
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return int(NO_TIME)
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(round(when.timestamp() * 1000))


def julian_day(ms: np.ndarray) -> np.ndarray:
    """Epoch milliseconds as Julian days, as SQLite's julianday() computes them (NaN for NO_TIME)."""
    ms = np.asarray(ms, dtype=np.int64)
    jd = (ms.astype(np.float64) + _JD_MS_AT_UNIX_EPOCH) / 86_400_000.0
    return np.where((ms == NO_TIME) | (ms == _LATEST), np.nan, jd)


# ------------------------------------------------------------------------------------------------ facts

# (the event picked, by its time then id: earliest or latest) -> the columns taken from that event
_PICKS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    # pick name: (kind of event, earliest / latest, the event's columns kept)
    "first_event": ("carrier_event", "first", ()),
    "last_event": ("carrier_event", "last", ()),
    "first_scan": ("scan", "first", ()),
    "last_scan": ("scan", "last", ("status", "raw_code", "country", "city", "postcode")),
    "delivered": ("delivered", "first", ("country", "city", "postcode")),
}
_EXTREMES = ("locality", "country_side")


def partial(events: Mapping[str, Any], kinds: ScanKinds) -> dict[str, Any]:
    """One row per tracking number of these events (EVENT_COLUMNS; text as `Coded`), in a form `combine` can
    merge with the rows of other events: counts, the picked events' (time, id) and text, text extremes. Text
    stays coded (codes into the events' own distinct values): cheap to send from one process to another."""
    number: Coded = events["tracking_number"]
    codes = np.asarray(number.codes, dtype=np.int64)
    keep = codes >= 0
    if not keep.all():  # an event without a number belongs to no shipment
        events = {k: (_take(v, keep) if isinstance(v, Coded) else np.asarray(v)[keep]) for k, v in events.items()}
        codes = codes[keep]
    n = len(number.values)
    ms = np.asarray(events["occurred_ms"], dtype=np.int64)
    ids = np.asarray(events["id"], dtype=np.int64)
    kind = classify(kinds, events["status"], events["raw_code"], events["description"])
    out: dict[str, Any] = {"tracking_number": np.asarray(list(number.values), dtype=object)}
    out["n_events"] = np.bincount(codes, minlength=n)
    for name, kind_name in (("n_scans", "scan"), ("n_transit", "transit"), ("n_export", "export"),
                            ("n_import", "import"), ("n_customs", "customs"), ("n_linehaul", "linehaul"),
                            ("n_delivered", "delivered")):
        out[name] = np.bincount(codes[kind[kind_name]], minlength=n)
    max_id = np.full(n, -1, dtype=np.int64)
    np.maximum.at(max_id, codes, ids)
    out["max_event_id"] = max_id
    # every pick from one sort by (number, time, id): a kind's earliest event is the first of its run (events
    # read in id order need no id key: the sort is stable)
    order = np.lexsort((ms, codes) if bool(np.all(ids[1:] > ids[:-1])) else (ids, ms, codes))
    timed = ms[order] != NO_TIME
    for pick, (kind_name, end, columns) in _PICKS.items():
        at = _ends(order[kind[kind_name][order] & timed], codes, end)
        owner = codes[at]
        out.update(_picked(pick, n, owner, ms[at], ids[at], {c: _take(events[c], at) for c in columns}))
    for name in _EXTREMES:
        rows = np.flatnonzero(kind[name])
        texts = _packed_places(events, rows) if name == "locality" else _take(events["country"], rows)
        out[f"{name}_min"], out[f"{name}_max"] = _text_extremes(codes[rows], n, texts)
    return _drop_empty(out)


def _ends(rows: np.ndarray, group_of: np.ndarray, end: str) -> np.ndarray:
    """The first (or last) row of each group's run in `rows`, sorted by group."""
    if not len(rows):
        return rows
    group = group_of[rows]
    if end == "first":
        return rows[np.r_[True, group[1:] != group[:-1]]]
    return rows[np.r_[group[1:] != group[:-1], True]]


def _picked(pick: str, n: int, owner: np.ndarray, ms: np.ndarray, ids: np.ndarray,
            columns: Mapping[str, Coded]) -> dict[str, Any]:
    """The columns of a pick: per number its event's time and id, and text columns coded (-1: none)."""
    out: dict[str, Any] = {f"{pick}_ms": np.full(n, NO_TIME, dtype=np.int64), f"{pick}_id": np.full(n, -1, dtype=np.int64)}
    out[f"{pick}_ms"][owner] = ms
    out[f"{pick}_id"][owner] = ids
    for column, values in columns.items():
        codes = np.full(n, -1, dtype=np.int64)
        codes[owner] = values.codes
        out[f"{pick}_{column}"] = Coded(codes, values.values)
    return out


def _take(column: Coded, rows: np.ndarray) -> Coded:
    return Coded(np.asarray(column.codes, dtype=np.int64)[rows], column.values)


def _packed_places(events: Mapping[str, Any], rows: np.ndarray) -> Coded:
    """The place of each event at `rows` packed as 'COUNTRY|City|Postcode' (missing parts empty), coded once per
    distinct (country, city, postcode)."""
    parts = [_take(events[c], rows) for c in ("country", "city", "postcode")]
    widths = [len(p.values) + 1 for p in parts]
    key = np.zeros(len(rows), dtype=np.int64)
    for part, width in zip(parts, widths, strict=True):
        key = key * width + part.codes % width  # -1 (missing) -> width - 1: the '' appended below
    used, inverse = np.unique(key, return_inverse=True)
    texts = [[v if isinstance(v, str) else "" for v in p.values] + [""] for p in parts]
    packed = []
    for k in used.tolist():
        pieces = []
        for text, width in zip(reversed(texts), reversed(widths), strict=True):
            pieces.append(text[k % width])
            k //= width
        packed.append("|".join(reversed(pieces)))
    return Coded(inverse.reshape(-1).astype(np.int64), packed)


def _text_extremes(group: np.ndarray, n: int, texts: Coded) -> tuple[Coded, Coded]:
    """Per number, its smallest and largest text (-1 where it has none), compared as SQLite's BINARY collation
    compares: UTF-8 bytes, which order as code points do, as Python's str does."""
    codes = np.asarray(texts.codes, dtype=np.int64)
    present = codes >= 0
    values = list(texts.values)
    low = np.full(n, -1, dtype=np.int64)
    high = np.full(n, -1, dtype=np.int64)
    if present.any():
        order = np.array(sorted(range(len(values)), key=values.__getitem__), dtype=np.int64)
        rank = np.empty(len(values), dtype=np.int64)
        rank[order] = np.arange(len(values))
        smallest = np.full(n, _LATEST, dtype=np.int64)
        largest = np.full(n, -1, dtype=np.int64)
        np.minimum.at(smallest, group[present], rank[codes[present]])
        np.maximum.at(largest, group[present], rank[codes[present]])
        found = largest >= 0
        low[found] = order[smallest[found]]
        high[found] = order[largest[found]]
    return Coded(low, values), Coded(high, values)


def _drop_empty(part: dict[str, Any]) -> dict[str, Any]:
    """Without the numbers that had no event here (a coded column may list values no event uses)."""
    used = part["n_events"] > 0
    if used.all():
        return part
    return {k: _take(v, used) if isinstance(v, Coded) else v[used] for k, v in part.items()}


def _joined(columns: Sequence[Coded]) -> Coded:
    """Coded columns of several parts as one, over the union of their distinct values (numbered in order of first
    appearance). Each part lists every distinct place of its events, tens of thousands: hashed in C."""
    import pandas as pd  # in the process that combines (never a child reader)

    every = np.fromiter(chain.from_iterable(c.values for c in columns), dtype=object,
                        count=sum(len(c.values) for c in columns))
    if pd.api.types.infer_dtype(every, skipna=False) not in ("string", "empty"):  # None, bytes: hashed by Python
        return _joined_by_dict(columns)
    number, distinct = pd.factorize(every)
    pieces, start = [], 0
    for column in columns:
        mapping = np.append(number[start:start + len(column.values)].astype(np.int64), -1)
        start += len(column.values)
        pieces.append(mapping[np.asarray(column.codes, dtype=np.int64)])  # -1 -> the appended -1
    return Coded(np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.int64), list(distinct))


def _joined_by_dict(columns: Sequence[Coded]) -> Coded:
    """`_joined` of any values, hashed by a dict."""
    index: dict[Any, int] = {}
    pieces = []
    for column in columns:
        mapping = np.array([index.setdefault(v, len(index)) for v in column.values] + [-1], dtype=np.int64)
        pieces.append(mapping[np.asarray(column.codes, dtype=np.int64)])  # -1 -> the appended -1
    return Coded(np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.int64), list(index))


def combine(parts: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """One row per number from the `partial` rows of several sets of events (a number may be in several)."""
    parts = [p for p in parts if len(p["tracking_number"])]
    if len(parts) <= 1:
        return dict(parts[0]) if parts else partial(_no_events(), ScanKinds())
    import pandas as pd  # in the process that combines (never a child reader): hashing a million numbers in C

    codes, uniques = pd.factorize(np.concatenate([p["tracking_number"] for p in parts]))
    codes = codes.astype(np.int64)
    n = len(uniques)
    out: dict[str, Any] = {"tracking_number": np.asarray(uniques, dtype=object)}

    def joined(name: str) -> Any:
        first = parts[0][name]
        return _joined([p[name] for p in parts]) if isinstance(first, Coded) else \
            np.concatenate([p[name] for p in parts])

    for name in COUNT_COLUMNS:
        out[name] = np.bincount(codes, weights=joined(name), minlength=n).astype(np.int64)
    max_id = np.full(n, -1, dtype=np.int64)
    np.maximum.at(max_id, codes, joined("max_event_id"))
    out["max_event_id"] = max_id
    for pick, (_, end, columns) in _PICKS.items():
        ms, ids = joined(f"{pick}_ms"), joined(f"{pick}_id")
        at = _winners(codes, n, ms, ids, end)
        out.update(_picked(pick, n, codes[at], ms[at], ids[at],
                           {c: _take(joined(f"{pick}_{c}"), at) for c in columns}))
    for name in _EXTREMES:
        low = joined(f"{name}_min")
        high = joined(f"{name}_max")
        out[f"{name}_min"], _ = _text_extremes(codes, n, low)
        _, out[f"{name}_max"] = _text_extremes(codes, n, high)
    return out


def _winners(codes: np.ndarray, n: int, ms: np.ndarray, ids: np.ndarray, end: str) -> np.ndarray:
    """Per number, the row whose event is its earliest (`end` 'first') or latest, by time then id (rows without a
    time left out): grouped minima and maxima, no sort of every row."""
    timed = np.flatnonzero(ms != NO_TIME)
    group, ms, ids = codes[timed], ms[timed], ids[timed]
    if end == "first":
        best_ms = np.full(n, _LATEST, dtype=np.int64)
        np.minimum.at(best_ms, group, ms)
        tied = ms == best_ms[group]
        best_id = np.full(n, _LATEST, dtype=np.int64)
        np.minimum.at(best_id, group[tied], ids[tied])
    else:
        best_ms = np.full(n, NO_TIME, dtype=np.int64)
        np.maximum.at(best_ms, group, ms)
        tied = ms == best_ms[group]
        best_id = np.full(n, -1, dtype=np.int64)
        np.maximum.at(best_id, group[tied], ids[tied])
    return timed[tied & (ids == best_id[group])]


def texts(column: Coded) -> np.ndarray:
    """A coded column as an object array (None where missing)."""
    values = np.empty(len(column.values) + 1, dtype=object)
    values[:-1] = list(column.values)
    values[-1] = None
    return values[np.asarray(column.codes, dtype=np.int64)]


def finish(part: Mapping[str, Any], *, decode: bool = True) -> dict[str, Any]:
    """The facts (tracking_number, then FACT_COLUMNS) of a `partial` or `combine` result, as columns: counts and
    ids int64, times Julian days (NaN: none), text as object arrays (None: none), or as `Coded` when not
    `decode`."""
    out: dict[str, Any] = {"tracking_number": np.asarray(part["tracking_number"], dtype=object)}
    for name in COUNT_COLUMNS:
        out[name] = np.asarray(part[name], dtype=np.int64)
    for pick in ("first_event", "last_event", "first_scan", "last_scan", "delivered"):
        out[f"{pick}_jd"] = julian_day(part[f"{pick}_ms"])
    for column in ("country", "city", "postcode"):
        out[f"delivered_{column}"] = part[f"delivered_{column}"]
    for column in ("status", "raw_code", "country", "city", "postcode"):
        out[f"last_scan_{column}"] = part[f"last_scan_{column}"]
    for name in _EXTREMES:
        out[f"{name}_min"], out[f"{name}_max"] = part[f"{name}_min"], part[f"{name}_max"]
    out["max_event_id"] = np.asarray(part["max_event_id"], dtype=np.int64)
    out = {name: out[name] for name in ("tracking_number", *FACT_COLUMNS)}
    return decoded(out) if decode else out


def decoded(columns: Mapping[str, Any]) -> dict[str, Any]:
    """Columns with every `Coded` one as an object array (None where missing)."""
    return {k: texts(v) if isinstance(v, Coded) else v for k, v in columns.items()}


def shipment_facts(events: Mapping[str, Any], kinds: ScanKinds) -> dict[str, np.ndarray]:
    """The facts of every number among these events (see `partial` for the columns)."""
    return finish(partial(events, kinds))


def from_finished(columns: Mapping[str, Any]) -> dict[str, Any]:
    """Facts `finish` gave (tracking_number and FACT_COLUMNS; text as objects or `Coded`) as a `partial`, to
    `combine` with the partial of newer events: the facts of a number's older events and newer events together
    are the facts of all its events. Every newer event has a higher id than every older one, so a picked older
    event (id unknown here) loses a tie of times to a newer one for the latest and wins it for the earliest."""
    n = len(columns["tracking_number"])
    out: dict[str, Any] = {"tracking_number": np.asarray(columns["tracking_number"], dtype=object)}
    for name in COUNT_COLUMNS:
        out[name] = np.asarray(columns[name], dtype=np.int64)
    out["max_event_id"] = np.asarray(columns["max_event_id"], dtype=np.int64)
    for pick, (_, _, carried) in _PICKS.items():
        out[f"{pick}_ms"] = _epoch_ms_of(np.asarray(columns[f"{pick}_jd"], dtype=np.float64))
        out[f"{pick}_id"] = np.full(n, -1, dtype=np.int64)  # lower than any event's: see above
        for column in carried:
            out[f"{pick}_{column}"] = _as_coded(columns[f"{pick}_{column}"])
    for name in _EXTREMES:
        out[f"{name}_min"] = _as_coded(columns[f"{name}_min"])
        out[f"{name}_max"] = _as_coded(columns[f"{name}_max"])
    return out


def _epoch_ms_of(jd: np.ndarray) -> np.ndarray:
    """Julian days (`julian_day`) back to epoch milliseconds, exactly (a double holds them to a few µs)."""
    ms = np.full(len(jd), NO_TIME, dtype=np.int64)
    known = ~np.isnan(jd)
    ms[known] = np.rint(jd[known] * 86_400_000.0 - _JD_MS_AT_UNIX_EPOCH).astype(np.int64)
    return ms


def _as_coded(values: Any) -> Coded:
    """A text column as `Coded` (it may be one already)."""
    if isinstance(values, Coded):
        return values
    import pandas as pd  # where stored facts are combined (never a child reader): hashing in C

    codes, uniques = pd.factorize(np.asarray(values, dtype=object), use_na_sentinel=True)
    return Coded(codes.astype(np.int64), list(uniques))


def _no_events() -> dict[str, Any]:
    empty = Coded(np.zeros(0, dtype=np.int64), [])
    return {"id": np.zeros(0, dtype=np.int64), "occurred_ms": np.zeros(0, dtype=np.int64),
            **{c: empty for c in EVENT_COLUMNS if c not in ("id", "occurred_ms")}}
