"""`tracker validate`, `tracker detect`, `tracker flags` from the command line."""

from __future__ import annotations

import csv
import io
import json

from test_rules_builders import add_journey, add_order

from tracker.db import open_db


def test_validate_valid_numbers_exit_0(run_cli):
    result = run_cli(
        "validate", "rr 473124829 cn", "LP00123456789012", "1Z999AA10123456784", "--format", "json"
    )
    assert result.exit_code == 0
    rows = {r["number"]: r for r in json.loads(result.output)}
    assert rows["RR473124829CN"]["carrier"] == "chinapost" and rows["RR473124829CN"]["check_digit"] == "ok"
    assert rows["RR473124829CN"]["country"] == "CN"
    assert (
        rows["LP00123456789012"]["check_digit"] == "none" and rows["LP00123456789012"]["carrier"] == "cainiao"
    )
    assert rows["1Z999AA10123456784"]["formats"] == "ups"


def test_validate_reads_the_usps_destination_zip(run_cli):
    from detectors.tracking_numbers import mod10_31_check_digit

    body = "940011189922319742812"
    number = f"42090210{body}{mod10_31_check_digit(body)}"
    result = run_cli("validate", number, "--format", "csv")
    row = next(csv.DictReader(io.StringIO(result.output)))
    assert result.exit_code == 0 and row["dest_zip"] == "90210" and row["check_digit"] == "ok"


def test_validate_invalid_number_exits_2_with_one_line_each(run_cli):
    result = run_cli("validate", "RR473124828CN", "HELLO", "YT1234567890123456", "1Z999AA10123456785")
    assert result.exit_code == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("tracker: error:")]
    assert len(errors) == 2  # the two invalid ones; HELLO is unknown, not invalid
    assert "RR473124828CN" in errors[0] and "check digit is 8, expected 9" in errors[0]
    assert "1Z999AA10123456785" in errors[1] and "check digit is 5, expected 4" in errors[1]
    assert "Traceback" not in result.output + result.stderr
    assert "fails" in result.stdout  # the table is still printed


def test_validate_says_yes_no_unknown_and_exits_0_for_unknown(run_cli):
    result = run_cli("validate", "986578788855", "HELLO", "RR473124828CN", "--format", "json")
    rows = {r["number"]: r for r in json.loads(result.stdout)}
    assert rows["986578788855"]["valid"] == "yes" and rows["986578788855"]["carrier"] == "fedex"
    assert rows["HELLO"]["valid"] == "unknown" and rows["HELLO"]["formats"] == "none"
    assert rows["RR473124828CN"]["valid"] == "no"
    only_unknown = run_cli("validate", "HELLO", "0000 1234")
    assert only_unknown.exit_code == 0 and "unknown" in only_unknown.output


def test_validate_recognises_a_configured_carriers_number_pattern(run_cli, tmp_path, monkeypatch):
    from pathlib import Path

    shipped = (Path(__file__).resolve().parent.parent / "data" / "carriers" / "yunexpress.toml").read_text()
    folder = tmp_path / "carriers"
    folder.mkdir()
    (folder / "acme.toml").write_text(shipped.replace('name = "yunexpress"', 'name = "acme"').replace(
        "number_pattern = '^YT\\d{16}$'", "number_pattern = '^ACME\\d{8}$'"))
    before = json.loads(run_cli("validate", "ACME12345678", "--format", "json").output)[0]
    assert before["valid"] == "unknown"
    monkeypatch.setenv("TRACKER_CARRIERS_DIR", str(folder))
    after = json.loads(run_cli("validate", "ACME12345678", "--format", "json").output)[0]
    assert after["valid"] == "yes" and after["carrier"] == "acme" and after["formats"] == "carrier:acme"


def test_validate_needs_a_number(run_cli):
    assert run_cli("validate").exit_code == 2


def test_detect_bad_as_of_exits_2(run_cli):
    result = run_cli("detect", "--as-of", "yesterday-ish")
    assert result.exit_code == 2 and "--as-of" in result.stderr and "Traceback" not in result.stderr


def test_detect_prints_the_summary_and_flags_lists_them(run_cli, db_path):
    db = open_db(db_path)
    number = add_order(db, "O1", received="no")
    add_journey(db, number, dest=("Kazan", "420066", "RU"))
    db.close()
    result = run_cli("detect", "--as-of", "2026-10-11T08:00:00Z")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("examined 1 orders: 2 flags raised, 0 resolved")

    as_json = json.loads(run_cli("flags", "--format", "json").output)
    assert {f["code"] for f in as_json} == {"wrong_destination", "delivered_not_received"}
    wrong = next(f for f in as_json if f["code"] == "wrong_destination")
    assert set(wrong) == {
        "order_id",
        "code",
        "severity",
        "explanation",
        "evidence",
        "detected_at",
        "rule_version",
    }
    assert wrong["evidence"]["event_ids"] and "Kazan 420066" in wrong["explanation"]
    assert wrong["detected_at"] == "2026-10-11T08:00:00Z"

    rows = list(csv.DictReader(io.StringIO(run_cli("flags", "--format", "csv").output)))
    assert len(rows) == 2 and json.loads(rows[0]["evidence"])["event_ids"]
    table = run_cli("flags").output
    assert table.splitlines()[0].split()[:3] == ["order_id", "code", "severity"]

    again = run_cli("detect", "--as-of", "2026-10-11T09:00:00Z")
    assert again.output.startswith("examined 0 orders: 0 flags raised, 0 resolved")
    full = run_cli("detect", "--as-of", "2026-10-11T10:00:00Z", "--full")
    assert full.output.startswith("examined 1 orders: 0 flags raised, 0 resolved")


def test_flags_on_a_missing_store_exits_2(tmp_path):
    from click.testing import CliRunner

    from tracker.cli import cli

    result = CliRunner().invoke(cli, ["--db", str(tmp_path / "none.db"), "flags"])
    assert result.exit_code == 2
