"""A generated world imported into a new store, as a user would: the setup many detection tests share."""

from __future__ import annotations

from pathlib import Path


def imported_world(folder: Path, n_orders: int, seed: int) -> Path:
    """Write a world of `n_orders` (`seed`) into `folder`, import its orders, scans and messages into
    `folder`/tracker.db, and return that store's path."""
    from tracker.db import open_db
    from tracker.importers import import_file
    from tracker.world import world

    world.write_world(folder, n_orders, seed=seed)
    db = open_db(folder / "tracker.db")
    try:
        for kind in ("orders", "events", "messages"):
            import_file(db, kind, folder / f"{kind}.csv")
    finally:
        db.close()
    return folder / "tracker.db"


def opened_copy(store: Path, folder: Path, name: str):  # noqa: ANN201 - a tracker.db Database
    """A copy of `store` named `name` in `folder`, opened: each test changes its own."""
    import shutil

    from tracker.db import open_db

    path = folder / name
    shutil.copy(store, path)
    return open_db(path)
