"""Shared fixtures: a fresh store in a temporary folder, a CLI runner bound to it, a quick model."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from tracker.db import open_db


@pytest.fixture(autouse=True, scope="session")
def _model_cache(tmp_path_factory):
    """Rebuilt models are cached in a folder of the test session, not the user's (see tracker.detection.persistence)."""
    import os

    folder = tmp_path_factory.mktemp("model-cache")
    previous = os.environ.get("TRACKER_CACHE_DIR")
    os.environ["TRACKER_CACHE_DIR"] = str(folder)
    yield folder
    if previous is None:
        os.environ.pop("TRACKER_CACHE_DIR", None)
    else:
        os.environ["TRACKER_CACHE_DIR"] = previous


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / "tracker.db"


@pytest.fixture
def db(db_path):
    database = open_db(db_path)
    yield database
    database.close()


@pytest.fixture
def run_cli(db_path):
    """Invoke the real CLI in-process against the temporary store: run_cli('flags', '--format', 'json')."""
    from tracker.cli import cli

    def invoke(*args, input=None):  # noqa: A002
        return CliRunner().invoke(cli, ["--db", str(db_path), *map(str, args)], input=input, catch_exceptions=False)

    return invoke


@pytest.fixture
def quick_model(tmp_path, monkeypatch):
    """A smaller booster, so each test trains in a second or two."""
    from tracker import config

    folder = tmp_path / "config"
    folder.mkdir()
    (folder / "model.toml").write_text("[classifier]\nmax_iter = 40\n[training]\nmin_labels = 30\n")
    monkeypatch.setenv("TRACKER_CONFIG_DIR", str(folder))
    config.reload()
    yield
    config.reload()


@pytest.fixture
def thresholds():
    """Change the fast paths' thresholds (`tracker.plan.override`, the one knob) for the rest of the test:
    `thresholds(arrow_min_orders=0)`."""
    from contextlib import ExitStack

    from tracker.plan import override

    with ExitStack() as stack:
        yield lambda **changes: stack.enter_context(override(**changes))
