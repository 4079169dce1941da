"""The rule registry: one seam through which every rule, built-in or not, reaches the engine.

A rule is one module that calls `register(Rule(...))` (or decorates its check with `@rule(...)`). Its check
reads only what a `RuleContext` hands it (vectorised frames, see `detectors.view`) and returns `Finding`s;
it never writes. The engine (`tracker.detection.flagging`) decides what to store.

Adding a rule: one new file here, its name in BUILTIN_RULES, its settings table in data/rules.toml, one
test. Its `code` is the flag code users see (CONTRACT.md).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from detectors import view
from detectors.facts import ScanKinds

SEVERITIES = ("low", "medium", "high")

BUILTIN_RULES = (
    "invalid_tracking_number",
    "tracking_reused",
    "wrong_destination",
    "accepted_before_order",
    "impossible_transit",
    "delivered_not_received",
    "early_confirmation",
    "seller_pressure",
    "no_tracking_progress",
)


@dataclass(frozen=True)
class Finding:
    """One thing wrong with one order, with the facts a mediator needs to see why."""

    order_id: str
    code: str
    severity: str
    explanation: str
    evidence: dict[str, Any]
    rule_version: str


Check = Callable[["RuleContext"], Iterable[Finding]]
Deadlines = Callable[["RuleContext"], pd.Series]


@dataclass(frozen=True)
class Rule:
    code: str  # the contract's flag code
    version: str
    severity: str  # the default; a check may raise or lower it per finding
    check: Check
    description: str = ""
    # Orders whose verdict may change with time alone: order_id -> Julian day when it next may.
    deadlines: Deadlines | None = None

    def settings(self, ctx: RuleContext) -> dict[str, Any]:
        return ctx.settings.get(self.code, {})


_REGISTRY: dict[str, Rule] = {}


def register(rule: Rule) -> Rule:
    if rule.severity not in SEVERITIES:
        raise ValueError(f"rule {rule.code}: severity {rule.severity!r} is not one of {SEVERITIES}")
    _REGISTRY[rule.code] = rule
    return rule


def rule(code: str, version: str, severity: str, description: str = "", deadlines: Deadlines | None = None):  # noqa: ANN201
    """Decorator form of `register` for a check function."""

    def wrap(check: Check) -> Check:
        register(Rule(code, version, severity, check, description or (check.__doc__ or "").strip(), deadlines))
        return check

    return wrap


def all_rules() -> list[Rule]:
    """Every registered rule (the built-ins first imported), in BUILTIN_RULES order then by code."""
    for name in BUILTIN_RULES:
        importlib.import_module(f"detectors.rules.{name}")
    order = {c: i for i, c in enumerate(BUILTIN_RULES)}
    return sorted(_REGISTRY.values(), key=lambda r: (order.get(r.code, len(order)), r.code))


Lazy = Callable[[], pd.DataFrame]
# every event of these numbers as plain records (id, tracking_number, occurred_at, status, raw_code,
# description, location, city, postcode, country, snapshot_sha256), by number then time
EventsOf = Callable[[set[str]], Iterable[dict[str, Any]]]
# the message model's pressure probability of each text (None: the phrase baseline alone)
Pressure = Callable[[list[str]], list[float]]


class ModelRefused(Exception):  # noqa: N818 - a refusal, not a bug
    """Raised by a `Pressure` whose model exists but cannot be vouched for (made with another scikit-learn):
    the run stops with its one line instead of falling back to the phrase baseline."""


class RuleContext:
    """What a rule may read: the examined orders' frame, their events, messages, disputes, settings and `as_of`.

    Whoever runs the rules hands everything over: frames, or callables that give them on first use (so a rule
    that needs no messages costs no read), and `events`, which gives the events of the numbers asked for. The
    store, a test or a worker on one partition of the data look the same to a rule. `orders` is the order
    frame of `detectors.view` (numbers corrected in the chat applied), `seller_messages` the seller messages
    of those orders (id, order_id, sent_jd, text), `disputes` when a dispute was opened on them (order_id,
    dispute_jd).
    """

    def __init__(self, as_of: datetime, settings: dict[str, Any], *, orders: pd.DataFrame | Lazy,
                 events: EventsOf | None = None, seller_messages: pd.DataFrame | Lazy | None = None,
                 disputes: pd.DataFrame | Lazy | None = None, pressure: Pressure | None = None):
        self.as_of = as_of
        self.as_of_jd = view.datetime_to_jd(as_of)
        self.settings = settings
        self.pressure = pressure
        self._sources = {"orders": orders, "seller_messages": seller_messages, "disputes": disputes}
        self._events_of = events
        self._events: dict[str, list[dict[str, Any]]] = {}
        # each repeated text of the cached events (a status, a code, a place, the number) kept once: tens of
        # thousands of flagged orders' events otherwise hold the same few texts hundreds of thousands of times
        self._texts: dict[str, str] = {}

    def _frame(self, name: str, columns: tuple[str, ...]) -> pd.DataFrame:
        source = self._sources[name]
        if source is None:
            return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
        return source if isinstance(source, pd.DataFrame) else source()

    @cached_property
    def kinds(self) -> ScanKinds:
        return ScanKinds.from_settings(self.settings)

    @cached_property
    def orders(self) -> pd.DataFrame:
        """The examined orders (see `detectors.view`), numbers corrected in the chat applied."""
        return self._frame("orders", ())

    @cached_property
    def tracked(self) -> pd.DataFrame:
        """Orders that carry a tracking number."""
        o = self.orders
        numbered = view.has_number(o["tracking_number"])
        # usually every order has a number, or the numbered ones come first (the store's reader puts them there):
        # then no second copy of a million-row frame, a view of it (rules only read it)
        count = int(numbered.sum())
        if numbered[:count].all():
            return o if count == len(o) else o.iloc[:count]
        return o[numbered]

    @cached_property
    def seller_messages(self) -> pd.DataFrame:
        return self._frame("seller_messages", ("id", "order_id", "sent_jd", "text"))

    @cached_property
    def disputes(self) -> pd.DataFrame:
        return self._frame("disputes", ("order_id", "dispute_jd"))

    def events(self, tracking_numbers: Iterable[str]) -> dict[str, list[dict[str, Any]]]:
        """Every event of these numbers as plain records, by number, in time order (cached across rules).

        Meant for the few orders a rule flags: their explanation and evidence, not their detection.
        """
        wanted = {n for n in tracking_numbers if isinstance(n, str) and n}
        missing = wanted - self._events.keys()
        if missing:
            for number in missing:
                self._events[number] = []
            shared = self._texts.setdefault
            for record in (self._events_of(missing) if self._events_of is not None else ()):
                for key, value in record.items():
                    if type(value) is str:
                        record[key] = shared(value, value)
                self._events[record["tracking_number"]].append(record)
        return {n: self._events[n] for n in wanted}


@dataclass
class Evidence:
    """Builds a finding's evidence dict: event ids and the page snapshots they came from, plus facts."""

    event_ids: list[int] = field(default_factory=list)
    snapshots: list[str] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)

    def add_events(self, *events: dict[str, Any]) -> Evidence:
        for e in events:
            if int(e["id"]) not in self.event_ids:
                self.event_ids.append(int(e["id"]))
            sha = e.get("snapshot_sha256")
            if isinstance(sha, str) and sha and sha not in self.snapshots:
                self.snapshots.append(sha)
        return self

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.facts)
        out["event_ids"] = sorted(self.event_ids)
        if self.snapshots:
            out["snapshot_sha256"] = self.snapshots
        return out


def place_text(city: Any, postcode: Any, country: Any) -> str:
    """'Kazan 420066, RU' from whichever parts are known."""
    parts = [str(p) for p in (city, postcode) if isinstance(p, str) and p.strip()]
    text = " ".join(parts)
    if isinstance(country, str) and country.strip():
        text = f"{text}, {country.strip().upper()}" if text else country.strip().upper()
    return text or "an unknown place"


def per_distinct(values: pd.Series | np.ndarray, fn: Any, dtype: Any = object) -> np.ndarray:
    """`fn` applied once per distinct value (non-text values become ''), spread back with one numpy take:
    a million rows hold a few thousand distinct places or answers, and a Python loop over the rows costs
    more than the normalisation itself."""
    array = values.to_numpy(dtype=object) if isinstance(values, pd.Series) else np.asarray(values, dtype=object)
    codes, uniques = pd.factorize(array, use_na_sentinel=True)
    mapped = np.array([fn(u if isinstance(u, str) else "") for u in uniques] + [fn("")], dtype=dtype)
    return mapped[codes]  # code -1 (None/NaN) picks the last entry, fn('')


def answer_in(values: pd.Series, answers: set[str]) -> np.ndarray:
    """Per row: is the (trimmed, lower-cased) text one of `answers`? ('yes', 'no' columns written by people)."""
    array = values.to_numpy(dtype=object)
    codes, uniques = pd.factorize(array, use_na_sentinel=True)
    mapped = np.array([isinstance(u, str) and u.strip().lower() in answers for u in uniques] + [False], dtype=bool)
    return mapped[codes]


def day(jd: float) -> str:
    return view.jd_to_date(jd)


def when(jd: float) -> str:
    """'2026-09-14 10:05 UTC'."""
    dt = view.jd_to_datetime(jd)
    return dt.strftime("%Y-%m-%d %H:%M UTC") if dt else "?"


def stamp(text: str | None) -> str:
    """A stored time ('2026-09-14T10:05:00Z') as '2026-09-14 10:05 UTC'."""
    if not isinstance(text, str) or len(text) < 16:
        return "?"
    return f"{text[:10]} {text[11:16]} UTC"
