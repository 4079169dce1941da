"""The readers' and the writing child's processes never load pandas (`Children(lean=True)`): pyarrow would
import it on its first conversion of any value, at about 0.2 s of CPU and 40 MB in each child."""

from __future__ import annotations

import sys

import pytest

from tracker.detection.children import Children

pytest.importorskip("adbc_driver_sqlite")


def _pandas_loaded() -> bool:
    return "pandas" in sys.modules


@pytest.fixture(scope="module")
def world_store(tmp_path_factory):
    world = pytest.importorskip("tracker.world.world")
    from tracker.db import open_db
    from tracker.importers import import_file

    folder = tmp_path_factory.mktemp("lean")
    world.write_world(folder, 300, seed=5)
    db = open_db(folder / "store.db")
    for kind in ("orders", "events", "messages"):
        import_file(db, kind, folder / f"{kind}.csv")
    db.close()
    return folder / "store.db"


def _facts_in_a_child(path, lean: bool) -> tuple[dict, bool, int]:
    from tracker.detection import arrow, shipment_facts

    kinds = shipment_facts.scan_kinds()
    out = str(path.parent / f"orders-{lean}.arrow")
    with Children(1, lean=lean) as child:
        low, high = child.submit(arrow.event_bounds, str(path)).result()
        computed = child.submit(arrow.facts_of_slice, str(path), kinds, low, high + 1).result()
        rows = child.submit(arrow.read_to_file, str(path), "SELECT rowid, order_id, seller_id FROM orders "
                            "ORDER BY rowid", out, (1, 2)).result()
        loaded = child.submit(_pandas_loaded).result()
    return computed, loaded, rows


def test_the_readers_work_alike_without_pandas(world_store):
    import numpy as np

    lean, lean_loaded, lean_rows = _facts_in_a_child(world_store, True)
    full, full_loaded, full_rows = _facts_in_a_child(world_store, False)
    # pyarrow did load pandas in the child that allowed it: the hook is what keeps it out of the lean one
    assert full_loaded and not lean_loaded
    assert lean_rows == full_rows == 300
    assert lean is not None and lean.keys() == full.keys() and len(lean) > 5
    for name, value in full.items():
        mine = lean[name]
        if isinstance(value, np.ndarray):
            assert np.array_equal(mine, value, equal_nan=value.dtype.kind == "f"), name
        else:
            assert repr(mine) == repr(value), name


def test_pandas_is_refused_in_a_lean_child_only_as_an_import():
    from tracker.detection.children import WithoutPandas

    hook = WithoutPandas()
    with pytest.raises(ModuleNotFoundError):
        hook.find_spec("pandas")
    with pytest.raises(ModuleNotFoundError):
        hook.find_spec("pandas.core.frame")
    assert hook.find_spec("pyarrow") is None and hook.find_spec("pandasx") is None


def test_a_driver_error_in_a_child_reaches_the_parent_with_its_message(world_store):
    """The ADBC driver's own errors cannot be rebuilt from a pickle: one raised in a child broke the pool and its
    message was lost. They come back as sqlite3 errors, the SQLite message kept."""
    import sqlite3

    from tracker.detection import arrow

    with Children(1, lean=True) as child:
        future = child.submit(arrow.read_tables, str(world_store), "SELECT * FROM no_such_table")
        with pytest.raises(sqlite3.OperationalError, match="no such table: no_such_table"):
            future.result()
        # the pool is whole: the same child answers the next task
        assert child.submit(arrow.event_bounds, str(world_store)).result()[1] > 0


def _niceness() -> int:
    import os

    return os.nice(0)


def test_a_background_child_runs_niced_and_the_others_at_this_processs_priority():
    """The message model's cache is filled by a background child (`Children(background=True)`): beside the two
    readers of the scans on two cores, the scheduler gives the readers the cores first. The readers and the writing
    child keep this process's niceness."""
    import os

    from tracker.detection.children import BACKGROUND_NICENESS

    mine = os.nice(0)
    with Children(1, background=True) as child:
        assert child.submit(_niceness).result() == min(mine + BACKGROUND_NICENESS, 19)
    with Children(1, lean=True, background=True) as child:  # both at once
        assert child.submit(_niceness).result() == min(mine + BACKGROUND_NICENESS, 19)
        assert child.submit(_pandas_loaded).result() is False
    with Children(1, lean=True) as child:
        assert child.submit(_niceness).result() == mine
