"""A generated world imported into a new store, as a user would: the setup many detection tests share."""

from __future__ import annotations

from pathlib import Path


def imported_world(folder: Path, n_orders: int, seed: int) -> Path:
    """Write a world of `n_orders` (`seed`) into `folder`, import its orders, scans and messages into
    `folder`/tracker.db, and return that store's path."""
    from tracker.world import world

    world.write_world(folder, n_orders, seed=seed)
    return imported_store(folder / "tracker.db", folder)


def imported_store(path: Path, world_folder: Path) -> Path:
    """A new store at `path` with a generated world's orders, scans and messages (`world.write_world`'s files in
    `world_folder`) imported as `tracker import` does; its path."""
    from tracker.db import open_db
    from tracker.importers import import_file

    db = open_db(path)
    try:
        for kind in ("orders", "events", "messages"):
            import_file(db, kind, world_folder / f"{kind}.csv")
    finally:
        db.close()
    return path


def opened_copy(store: Path, folder: Path, name: str):  # noqa: ANN201 - a tracker.db Database
    """A copy of `store` named `name` in `folder`, opened: each test changes its own."""
    import shutil

    from tracker.db import open_db

    path = folder / name
    shutil.copy(store, path)
    return open_db(path)
