"""Opening many cases at once gives what opening them one by one gives: the deadlines of cases with no dispute
yet, worked out for all at once, are `compute_deadlines`' own; and a store's cases, events and deadlines after
several syncs are those the one-by-one path writes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from tracker.cases.deadlines import (
    PLAIN_DEADLINES,
    CaseFacts,
    before_any_dispute,
    compute_deadlines,
    next_deadline,
)
from tracker.cases.settings import load_settings

EPOCH = datetime(2015, 6, 1, tzinfo=UTC)  # timer sets change in 2017: both are drawn
seconds = st.integers(min_value=0, max_value=12 * 365 * 86400)
maybe_time = st.one_of(st.none(), seconds.map(lambda s: EPOCH + timedelta(seconds=s)))


def _text(when: datetime | None) -> str | None:
    return None if when is None else when.strftime("%Y-%m-%dT%H:%M:%SZ")


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(maybe_time, maybe_time, st.one_of(st.none(), st.integers(0, 120)), maybe_time, maybe_time),
                min_size=1, max_size=30), maybe_time.filter(lambda t: t is not None))
def test_deadlines_before_any_dispute_are_compute_deadlines_own(cases, as_of) -> None:
    config = load_settings()
    chosen, names, due = before_any_dispute([_text(c[0]) for c in cases], [_text(c[1]) for c in cases],
                                            [c[2] for c in cases], [_text(c[3]) for c in cases],
                                            [_text(c[4]) for c in cases], config)
    for i, (ordered, shipped, promised, confirmed, delivered) in enumerate(cases):
        timers, expected = compute_deadlines(CaseFacts(ordered_at=ordered, shipped_at=shipped, promised_days=promised,
                                                       buyer_confirmed_at=confirmed, delivered_at=delivered), config)
        assert config.timer_sets[chosen[i]] == timers
        got = [] if PLAIN_DEADLINES[names[i]] is None else [(PLAIN_DEADLINES[names[i]], due[i].item())]
        assert got == [(d.name, d.due_at.replace(tzinfo=None)) for d in expected]
        upcoming = next_deadline(expected, as_of)
        assert (upcoming is not None) == bool(got and got[0][1] > as_of.replace(tzinfo=None))


def test_a_store_synced_many_times_holds_the_cases_events_and_deadlines_of_the_one_by_one_path(db) -> None:
    """The same orders synced at once (new cases: the set-based path) and one at a time, with disputes,
    confirmations and a resolved flag between runs: the same tables."""
    import hashlib

    from test_cases_support import add_event, add_flag, add_order, add_score

    from tracker.cases.sync import sync_cases

    def build(database) -> list[str]:  # noqa: ANN001
        ids = []
        for i in range(60):
            order_id = f"o{i:03d}"
            ids.append(order_id)
            add_order(database, order_id, tracking_number=f"LP{i:014d}",
                      ordered_at=_text(EPOCH + timedelta(days=700 + i * 17)),
                      promised_days=[None, 0, 30, 60][i % 4])
            if i % 3 == 0:
                add_flag(database, order_id, "wrong_destination", "high")
            if i % 4 == 1:
                add_score(database, order_id, 0.9, codes="delivered_not_received")
            if i % 5 == 0:
                add_event(database, f"LP{i:014d}", _text(EPOCH + timedelta(days=712 + i * 17)), "delivered")
        return ids

    def run(database, one_by_one: bool) -> str:  # noqa: ANN001
        ids = build(database)
        when = EPOCH + timedelta(days=1800)
        for order_id in (ids if one_by_one else [None]):
            sync_cases(database, {order_id} if order_id else set(ids), when)
        with database.conn:
            database.conn.execute("UPDATE cases SET dispute_opened_at = '2020-05-20T10:00:00Z' WHERE id % 4 = 0")
            database.conn.execute("UPDATE orders SET buyer_confirmed_at = '2020-05-25T10:00:00Z' WHERE rowid % 5 = 0")
            database.conn.execute("UPDATE flags SET resolved_at = '2020-05-30T00:00:00Z' WHERE rowid % 7 = 0")
        sync_cases(database, set(ids), when + timedelta(days=2))
        digest = hashlib.sha256()
        for table, key in (("cases", "order_id"), ("case_events", "case_id, id"), ("case_deadlines", "case_id, name")):
            for row in database.conn.execute(f"SELECT * FROM {table} ORDER BY {key}"):
                digest.update(repr(row[1:] if table != "cases" else row).encode())
        return digest.hexdigest()

    from tracker.db import open_db

    other = open_db(str(db.conn.execute("PRAGMA database_list").fetchone()[2]) + ".other")
    try:
        assert run(db, one_by_one=False) == run(other, one_by_one=True)
    finally:
        other.close()
    assert db.conn.execute("SELECT count(*) FROM cases").fetchone()[0] >= 20


def test_a_case_takes_its_first_delivered_scan_from_the_facts_when_they_are_current_else_from_the_events(db):
    """The sync reads each order's first delivered scan from `shipment_facts` when the table is current (one
    lookup a case) and from the events otherwise (a cluster run, or scans imported since): both give the same
    cases, events and deadlines; a delivered scan imported after the facts' refresh still shortens the deadline."""
    import hashlib

    from test_cases_support import add_event, add_order, add_score

    from tracker.cases import sync
    from tracker.db import open_db
    from tracker.detection import shipment_facts

    def build(database) -> list[str]:  # noqa: ANN001
        ids = []
        for i in range(40):
            order_id, number = f"d{i:03d}", f"LP{i:014d}"
            ids.append(order_id)
            add_order(database, order_id, tracking_number=number, promised_days=60,
                      ordered_at=_text(EPOCH + timedelta(days=100 + i * 8)))
            add_score(database, order_id, 0.9, codes="delivered_not_received")
            day = first_delivered(i)
            add_event(database, number, _text(day - timedelta(days=3)), "in_transit")
            if i % 3:  # the later delivered scan first (a lower event id), then the earlier one
                add_event(database, number, _text(day + timedelta(days=2)), "delivered")
                add_event(database, number, _text(day), "delivered")
        return ids

    def first_delivered(i: int) -> datetime:  # orders of 2015-16: a delivered scan shortens protection to 5 days
        return EPOCH + timedelta(days=112 + i * 8, seconds=3600 * i + 7)

    def tables(database) -> str:  # noqa: ANN001
        digest = hashlib.sha256()
        for table, key in (("cases", "order_id"), ("case_events", "case_id, id"), ("case_deadlines", "case_id, name")):
            for row in database.conn.execute(f"SELECT * FROM {table} ORDER BY {key}"):
                digest.update(repr(row[1:] if table != "cases" else row).encode())
        return digest.hexdigest()

    def due(database) -> dict[str, str]:  # noqa: ANN001
        return dict(database.conn.execute("SELECT c.order_id, d.due_at FROM case_deadlines d JOIN cases c "
                                          "ON c.id = d.case_id WHERE d.name = 'protection_end'"))

    when = EPOCH + timedelta(days=110)
    ids = build(db)
    shipment_facts.refresh(db)
    assert shipment_facts.current(db) and sync._delivered_sql(db) == sync._DELIVERED_FROM_FACTS
    sync.sync_cases(db, set(ids), when)
    other = open_db(str(db.conn.execute("PRAGMA database_list").fetchone()[2]) + ".events")
    try:
        build(other)  # no facts: read from the events
        assert not shipment_facts.current(other) and sync._delivered_sql(other) == sync._DELIVERED_FROM_EVENTS
        sync.sync_cases(other, set(ids), when)
        assert tables(db) == tables(other)
    finally:
        other.close()
    before = due(db)  # the earliest delivered scan's, five days on, to the second
    assert {f"d{i:03d}": _text(first_delivered(i) + timedelta(days=5)) for i in range(40) if i % 3} == \
        {k: v for k, v in before.items() if int(k[1:]) % 3}
    # a delivered scan of an order without one, imported after the refresh: the facts are behind, the events say
    add_event(db, "LP00000000000000", _text(first_delivered(0)), "delivered")
    assert not shipment_facts.current(db) and sync._delivered_sql(db) == sync._DELIVERED_FROM_EVENTS
    sync.sync_cases(db, {"d000"}, when)
    after = due(db)
    assert after["d000"] == _text(first_delivered(0) + timedelta(days=5)) < before["d000"]
    assert {k: v for k, v in after.items() if k != "d000"} == {k: v for k, v in before.items() if k != "d000"}
