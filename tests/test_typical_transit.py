"""The typical transit per destination is a yardstick that stays put: a full run keeps the one the scores were
made with while the store's own moves by less than TYPICAL_DRIFT, and takes the new one once it has moved."""

from __future__ import annotations

import json

import pytest

from detectors.features import TYPICAL_DRIFT, settled_typical
from tracker.db import get_meta, open_db, set_meta
from tracker.detection import pipeline, readers
from tracker.importers import import_file

world = pytest.importorskip("tracker.world.world")


def test_settled_typical_keeps_the_stored_one_until_it_drifts():
    kept = {"*": 10.0, "ES": 12.0, "RU": 20.0}
    near = {k: v * (1 + TYPICAL_DRIFT / 2) for k, v in kept.items()}
    assert settled_typical(near, kept) == kept
    assert settled_typical(near, None) == near
    far = dict(kept, RU=20.0 * (1 + 2 * TYPICAL_DRIFT))
    assert settled_typical(far, kept) == far
    assert settled_typical(dict(near, FR=9.0), kept) == dict(near, FR=9.0)  # a destination gained its own
    assert settled_typical({k: v for k, v in near.items() if k != "ES"}, kept)["*"] == near["*"]


def _stored(db) -> dict[str, float]:
    return json.loads(get_meta(db, readers.TYPICAL_TRANSIT_META))


@pytest.mark.slow
def test_a_full_run_keeps_the_yardstick_until_the_store_moves(tmp_path):
    world.write_world(tmp_path, 600, seed=11)
    db = open_db(tmp_path / "store.db")
    for kind in ("orders", "events", "messages"):
        import_file(db, kind, tmp_path / f"{kind}.csv")
    as_of = world._as_of(None)
    pipeline.detect(db, as_of, full=True)
    fresh = _stored(db)
    assert fresh and all(v > 0 for v in fresh.values())
    scores = dict(db.conn.execute("SELECT order_id, score FROM scores"))

    # a stored yardstick within the drift of the store's own stays, and the scores are made with it
    near = {k: v * (1 + TYPICAL_DRIFT / 2) for k, v in fresh.items()}
    with db.conn:
        set_meta(db, readers.TYPICAL_TRANSIT_META, json.dumps(near, sort_keys=True))
    pipeline.detect(db, as_of, full=True)
    assert _stored(db) == pytest.approx(near)
    moved = dict(db.conn.execute("SELECT order_id, score FROM scores"))
    assert any(abs(moved[o] - s) > 0 for o, s in scores.items())  # relative times read against `near`

    # one that is far from it is replaced by the store's own: the first scores again
    far = {k: v * 2 for k, v in fresh.items()}
    with db.conn:
        set_meta(db, readers.TYPICAL_TRANSIT_META, json.dumps(far, sort_keys=True))
    pipeline.detect(db, as_of, full=True)
    assert _stored(db) == pytest.approx(fresh)
    assert dict(db.conn.execute("SELECT order_id, score FROM scores")) == scores
    db.close()
