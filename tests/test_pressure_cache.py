"""A whole-store run fills the message model's cache of seller messages in a child process while the rules run
(`tracker.detection.pressure_cache`): the cache holds every seller message after the rules stage, with the
probabilities the scoring stage would have worked out itself, and the run's scores are the same bit for bit."""

from __future__ import annotations

import random

import pytest
from processes import ended
from worlds import imported_world, opened_copy

world = pytest.importorskip("tracker.world.world")


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    return imported_world(tmp_path_factory.mktemp("pressure-world"), 1500, 11)


def _cache(db) -> dict[int, tuple[str, float]]:  # noqa: ANN001
    return {r[0]: (r[1], r[2]) for r in db.conn.execute("SELECT message_id, model, probability FROM message_pressure")}


def test_the_child_fills_the_cache_during_the_rules_with_the_scorers_probabilities(imported, tmp_path, thresholds):
    from tracker.detection import registry
    from tracker.detection.flagging import run_rules
    from tracker.detection.scoring import message_scorer, score_orders
    from tracker.detection.store import frame

    as_of = world._as_of(None)
    thresholds(whole_pressure_cache_from=1)
    db = opened_copy(imported, tmp_path, "child.db")
    seller = {r[0] for r in db.conn.execute("SELECT id FROM messages WHERE lower(sender) = 'seller'")}
    assert len(seller) > 100 and not _cache(db)
    run_rules(db, as_of, full=True)
    filled = _cache(db)
    assert set(filled) == seller  # every seller message, before the scoring stage asked for any
    assert {model for model, _ in filled.values()} == {registry.message_model_key()}
    # the scorer working them out itself (the cache emptied) gives the same probabilities, bit for bit
    messages = frame(db.conn, "SELECT id, order_id, text FROM messages WHERE lower(sender) = 'seller' ORDER BY id", [])
    with db.conn:
        db.conn.execute("DELETE FROM message_pressure")
    mine = message_scorer(db)(messages)
    assert dict(zip(messages["id"].tolist(), mine.tolist(), strict=True)) == {k: p for k, (_, p) in filled.items()}
    # a later whole-store run has nothing to fill, and scoring after the child's run gives a full run's scores
    with db.conn:
        db.conn.executemany("INSERT OR REPLACE INTO message_pressure VALUES (?, ?, ?)",
                            [(k, m, p) for k, (m, p) in filled.items()])
    score_orders(db, set(), as_of, full=True)
    child_scores = dict(db.conn.execute("SELECT order_id, score FROM scores"))
    db.close()

    thresholds(whole_pressure_cache_from=10**9, never_children=True)
    plain = opened_copy(imported, tmp_path, "plain.db")
    run_rules(plain, as_of, full=True)
    assert not _cache(plain)  # no child below the threshold: the scoring stage fills it
    score_orders(plain, set(), as_of, full=True)
    assert dict(plain.conn.execute("SELECT order_id, score FROM scores")) == child_scores
    assert _cache(plain) == filled
    plain.close()


def test_a_failed_run_ends_the_child_and_leaves_a_consistent_cache(imported, tmp_path, thresholds, monkeypatch):
    from tracker.detection import flagging, pressure_cache

    thresholds(whole_pressure_cache_from=1)
    db = opened_copy(imported, tmp_path, "failed.db")
    processes = []
    real_start = pressure_cache.start

    def watched(conn, plan):  # noqa: ANN001, ANN202
        filling = real_start(conn, plan)
        processes.extend(filling.children.processes())
        return filling

    def broken(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise RuntimeError("a rule failed")

    monkeypatch.setattr(pressure_cache, "start", watched)
    monkeypatch.setattr(flagging, "_run", broken)
    with pytest.raises(RuntimeError, match="a rule failed"):
        flagging.run_rules(db, world._as_of(None), full=True)
    assert processes  # the child had started
    for child in processes:  # ended with the failed run, not left running
        assert ended(child.pid)
    # whatever the child wrote before it was ended is whole: rows of this model with a probability in [0, 1]
    rows = list(db.conn.execute("SELECT model, probability FROM message_pressure"))
    assert all(0.0 <= p <= 1.0 for _, p in rows)
    assert db.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    db.close()


def test_the_child_ends_once_the_cache_is_filled_not_with_the_run(imported, tmp_path, thresholds):
    """Its memory goes back as soon as its one task is done: the rules that run meanwhile do not carry it."""
    from tracker.detection import pressure_cache
    from tracker.plan import plan_for

    thresholds(whole_pressure_cache_from=1)
    db = opened_copy(imported, tmp_path, "ends.db")
    filling = pressure_cache.start(db.conn, plan_for(db.conn))
    assert filling.children.background  # niced: the scans' readers beside it go first
    processes = filling.children.processes()
    assert processes and filling.future.result()[0] > 100
    for child in processes:  # ended before anyone waited for the filling
        assert ended(child.pid)
    assert filling.wait() > 100
    db.close()


def test_each_text_scores_the_same_in_any_batch():
    """The cache's premise: the message model scores a text the same whatever else is in its batch."""
    from detectors.message_model import pressure_of
    from tracker.detection.registry import message_model
    from tracker.world.messages import MessageWriter

    writer, rng = MessageWriter(), random.Random(3)
    texts = [writer.write(rng, kind, tracking="LP00729888729802") for kind in writer.templates for _ in range(20)]
    whole = dict(zip(texts, pressure_of(message_model(), texts), strict=True))
    for _ in range(5):
        batch = rng.sample(texts, 37)
        assert pressure_of(message_model(), batch) == [whole[t] for t in batch]


def test_the_rules_read_the_childs_cache_once_it_is_filled(imported, tmp_path, thresholds, monkeypatch):
    """The rules' seller_pressure asks for texts the child is scoring: once it is done they are read from the
    cache, with the probabilities the model gives; only a text the cache lacks is worked out."""
    from tracker.detection import pressure_cache, registry
    from tracker.plan import plan_for

    thresholds(whole_pressure_cache_from=1)
    db = opened_copy(imported, tmp_path, "rules.db")
    texts = [r[0] or "" for r in db.conn.execute("SELECT text FROM messages WHERE lower(sender) = 'seller'")]
    stranger = "a text no seller of this store wrote: confirm receipt now"
    expected = registry.message_pressure([*texts, stranger])
    filling = pressure_cache.start(db.conn, plan_for(db.conn))
    pressure = filling.pressure(db.conn)
    assert filling.future is not None
    filling.future.result(timeout=300)
    asked = []
    real = registry.message_pressure
    monkeypatch.setattr(registry, "message_pressure", lambda some: asked.append(list(some)) or real(some))
    assert pressure([*texts, stranger]) == expected and len(texts) > 100
    assert asked == [[stranger]]  # every seller text came from the cache
    assert filling.wait() == len(texts)
    # no child (or one not done yet): the model works them all out
    asked.clear()
    assert pressure_cache.Filling(None, None).pressure(db.conn)(texts[:5]) == expected[:5] and asked == [texts[:5]]
    db.close()


def test_an_incremental_runs_rules_read_the_cache_of_their_orders_messages(imported, tmp_path, thresholds,
                                                                           monkeypatch):
    """After a run that scored the seller messages, the next run's rules read their orders' messages from the
    cache: only a new text is worked out by the model, and the flags are those the model gives."""
    from tracker.detection import registry
    from tracker.detection.flagging import run_rules
    from tracker.detection.scoring import score_orders

    as_of = world._as_of(None)
    thresholds(whole_pressure_cache_from=10**9, never_children=True)
    flags = {}
    for name in ("cached", "uncached"):
        db = opened_copy(imported, tmp_path, f"{name}.db")
        run_rules(db, as_of, full=True)
        score_orders(db, set(), as_of, full=True)  # fills the cache with every seller message
        orders = [r[0] for r in db.conn.execute(
            "SELECT DISTINCT order_id FROM messages WHERE lower(sender) = 'seller' AND (lower(text) LIKE '%confirm%' "
            "OR lower(text) LIKE '%dispute%') ORDER BY order_id LIMIT 30")]
        new = "please confirm receipt today so the payment is released, or I will report you"
        with db.conn:
            db.conn.executemany(
                "INSERT INTO messages(order_id, sender, sent_at, text, message_key) VALUES (?, 'seller', ?, ?, ?)",
                [(o, "2026-01-01T00:00:00Z", new, f"k-{o}") for o in orders])
            if name == "uncached":
                db.conn.execute("DELETE FROM message_pressure")
        asked: list[list[str]] = []
        real = registry.message_pressure
        monkeypatch.setattr(registry, "message_pressure",
                            lambda some, asked=asked, real=real: asked.append(list(some)) or real(some))
        result = run_rules(db, as_of)
        monkeypatch.undo()
        assert len(orders) > 5 and set(orders) <= result.order_ids
        if name == "cached":
            assert asked == [[new]]  # the other texts of these orders came from the cache
        else:
            assert len(asked) == 1 and new in asked[0] and len(asked[0]) > 1
        flags[name] = db.conn.execute(
            "SELECT order_id, code, severity, explanation, evidence, resolved_at FROM flags ORDER BY 1, 2").fetchall()
        db.close()
    assert flags["cached"] == flags["uncached"]
