"""Shared fixtures: a fresh store in a temporary folder, and a CLI runner bound to it."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from tracker.db import open_db


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
