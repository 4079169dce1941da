"""`tracker demo --no-serve`: the whole job end to end, on a small world and the real local carrier site."""

import json

import pytest
from click.testing import CliRunner

from tracker.cli import cli

CONTRACT_CODES = {
    "invalid_tracking_number", "tracking_reused", "wrong_destination", "accepted_before_order",
    "impossible_transit", "delivered_not_received", "early_confirmation", "seller_pressure",
    "no_tracking_progress",
}


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("demo")
    db = folder / "demo.db"
    result = CliRunner().invoke(cli, ["--db", str(db), "demo", "--no-serve", "--orders", "1000"])
    return folder, db, result


def test_demo_produces_every_flag_code_and_cases(demo_run):
    folder, db, result = demo_run
    assert result.exit_code == 0, result.output
    from tracker.db import open_db

    store = open_db(db, create=False)
    codes = {r[0] for r in store.execute("SELECT DISTINCT code FROM flags WHERE resolved_at IS NULL")}
    assert codes == CONTRACT_CODES
    assert store.execute("SELECT count(*) FROM cases").fetchone()[0] > 0
    # the events came from polling the local carrier site, not from an import
    sources = {r[0] for r in store.execute("SELECT DISTINCT source FROM tracking_events")}
    assert sources == {"poll"}
    assert store.execute("SELECT count(*) FROM scores").fetchone()[0] > 900


def test_demo_writes_a_complaint_packet(demo_run):
    folder, _db, result = demo_run
    packets = list(folder.glob("packet-case-*"))
    assert len(packets) == 1
    manifest = json.loads((packets[0] / "manifest.json").read_text())
    assert {"complaint.txt", "evidence.json", "evidence.csv", "timeline.png"} <= set(manifest["files"])
    assert len((packets[0] / "complaint.txt").read_text()) <= 1000


def test_demo_refuses_to_replace_a_database_it_did_not_create(tmp_path):
    mine = tmp_path / "mine.db"
    assert CliRunner().invoke(cli, ["--db", str(mine), "init"]).exit_code == 0
    result = CliRunner().invoke(cli, ["--db", str(mine), "demo", "--no-serve", "--orders", "100"])
    assert result.exit_code == 2
    assert "not a demo database" in result.output
