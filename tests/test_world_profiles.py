"""Random world profiles: drawn within (or beyond) each knob's range, and each knob changes the world."""

from __future__ import annotations

import csv
import json
import math
import sqlite3
from collections import Counter
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from tracker import config
from tracker.errors import BadInput
from tracker.world import generate
from tracker.world.places import places
from tracker.world.profiles import DEFAULT, Profile, knobs, read, sample

AS_OF = "2026-11-01T00:00:00Z"


def _value_at(settings: dict, path: str) -> list[float]:
    """The drawn numbers at a knob's path (every key of a "table.*")."""
    section, *rest = path.split(".")
    table = settings[section]
    if rest[0] == "*":
        return [float(v) for v in table.values()]
    value = table[rest[0]]
    return [float(value[int(rest[1])])] if len(rest) > 1 else [float(value)]


def _plain_knobs():
    """Knobs whose drawn value is the setting itself (not a factor or a mix)."""
    return [k for k in knobs()[0] if k.kind in ("value", "log")]


def test_the_same_seed_gives_the_same_profile_and_seeds_differ():
    assert sample(5).settings == sample(5).settings
    assert sample(5).settings != sample(6).settings
    assert sample(5, "outside").settings != sample(5).settings


@pytest.mark.parametrize("seed", range(8))
def test_training_profiles_stay_within_every_training_range(seed):
    profile = sample(seed)
    assert profile.name == "random" and profile.outside == ()
    for knob in _plain_knobs():
        lo, hi = knob.train
        for value in _value_at(profile.settings, knob.path):
            assert lo - 0.5 * knob.integer <= value <= hi + 0.5 * knob.integer, (knob.name, value)
    for knob in knobs()[0]:
        if knob.kind == "mix":
            section, *rest = knob.path.split(".")
            shares = profile.settings[section][rest[0]] if rest else profile.settings[section]
            values = shares if isinstance(shares, list) else list(shares.values())
            assert math.isclose(sum(values), 1.0, abs_tol=1e-4), knob.name


@pytest.mark.parametrize("seed", range(8))
def test_outside_profiles_leave_the_training_range_on_the_knobs_they_name(seed):
    profile = sample(seed, "outside")
    assert profile.outside, "at least one knob is outside"
    by_name = {k.name: k for k in knobs()[0]}
    for name in profile.outside:
        knob = by_name[name]
        if knob.kind not in ("value", "log"):
            continue
        lo, hi = knob.train
        olo, ohi = knob.outside
        for value in _value_at(profile.settings, knob.path):
            assert olo - 0.5 <= value <= ohi + 0.5 if knob.integer else olo <= value <= ohi, (name, value)
            assert value <= lo + 0.5 * knob.integer or value >= hi - 0.5 * knob.integer, (name, value)


def test_defaults_written_out_change_nothing():
    """The new settings' defaults are today's world: stating them explicitly gives the same files."""
    explicit = Profile(
        "explicit",
        settings={
            "timing": {"transit_scale": 1.0, "handling_days": 5.0, "transit_low": 0.8, "transit_span": 0.5},
            "journey": {"scan_density": 1.0},
            "behaviour": {"say_no_scale": 1.0, "pressure_scale": 1.0},
            "noise": {"scan_jitter_hours": 0.0, "local_clock": 0.0, "blank_status": 0.0},
            "missing": {"shipped_at": 0.0},
            "buyers": {"price_scale": 1.0},
        },
    )
    a, b = generate(600, seed=3), generate(600, seed=3, profile=explicit)
    assert a.rows == b.rows
    assert generate(600, seed=3, profile=DEFAULT).rows == a.rows


def _with(settings: dict, n: int = 800, seed: int = 5):
    return generate(n, seed=seed, profile=Profile("test", settings=settings))


def test_noise_changes_how_scans_are_written_not_what_happened():
    plain = _with({})
    noisy = _with({"noise": {"blank_status": 1.0, "blank_raw_code": 1.0, "blank_place": 1.0}})
    assert plain.labels == noisy.labels
    assert len(plain.events) == len(noisy.events)
    assert all(e["status"] == "" and e["raw_code"] == "" and e["city"] == "" for e in noisy.events)
    assert all(e["description"] and e["country"] for e in noisy.events)
    assert [e["occurred_at"] for e in plain.events] == [e["occurred_at"] for e in noisy.events]


def test_local_clock_writes_each_scan_in_its_place_wall_time():
    plain = _with({})
    local = _with({"noise": {"local_clock": 1.0}})
    as_of = plain.as_of
    shifted = 0
    for p, q in zip(plain.events, local.events, strict=True):
        t = datetime.fromisoformat(p["occurred_at"].replace("Z", "+00:00"))
        zone = places().timezone(p["country"], p["city"])
        offset = datetime.fromtimestamp(t.timestamp(), ZoneInfo(zone)).utcoffset()
        expected = min(t + offset, as_of)
        assert q["occurred_at"] == expected.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        shifted += q["occurred_at"] != p["occurred_at"]
    assert shifted > len(plain.events) * 0.9


def test_missing_fields_are_blank_and_required_ones_never():
    world = _with({"missing": {"shipped_at": 1.0, "dest_postcode": 1.0, "promised_days": 0.5}})
    assert all(o["shipped_at"] == "" and o["dest_postcode"] == "" for o in world.orders)
    blank_promise = sum(o["promised_days"] == "" for o in world.orders) / len(world.orders)
    assert 0.35 < blank_promise < 0.65
    assert all(o["order_id"] and o["ordered_at"] and o["dest_country"] for o in world.orders)
    with pytest.raises(ValueError, match="order_id"):
        _with({"missing": {"order_id": 0.1}}, n=10)


def test_knobs_move_the_world_the_way_they_say():
    base = _with({})
    fraud = _with({"fraud": {k: v * 4 for k, v in config.load("world/rates")["fraud"].items()}})
    assert sum(lab["fraud"] for lab in fraud.labels) > 2.5 * sum(lab["fraud"] for lab in base.labels)
    dense = _with({"journey": {"scan_density": 3.0}})
    assert len(dense.events) > 1.15 * len(base.events)
    many = _with({"sellers": {"min_sellers": 200}})
    assert len({o["seller_id"] for o in many.orders}) > 2 * len({o["seller_id"] for o in base.orders})
    yun = _with({"carriers": {"cainiao": 0.0, "chinapost": 0.0, "yunexpress": 1.0}})
    carriers = Counter(e["carrier"] for e in yun.events)
    assert carriers["yunexpress"] > 0.8 * sum(carriers.values())
    slow = _with({"timing": {"transit_scale": 1.6}})

    def delivered_days(world):
        first, done = {}, {}
        for e in world.events:
            first.setdefault(e["tracking_number"], e["occurred_at"])
            if e["status"] == "delivered":
                done[e["tracking_number"]] = e["occurred_at"]
        days = [
            (datetime.fromisoformat(done[n][:-1]) - datetime.fromisoformat(first[n][:-1])).days for n in done
        ]
        return sorted(days)[len(days) // 2]

    assert delivered_days(slow) > 1.3 * delivered_days(base)


def test_a_bad_knob_file_is_one_clear_error(tmp_path, monkeypatch):
    (tmp_path / "world").mkdir()
    (tmp_path / "world" / "profiles.toml").write_text(
        '[knob.x]\npath = "journey.failed_attempt"\nkind = "value"\ntrain = [0.1, 0.5]\noutside = [0.2, 0.4]\n'
    )
    monkeypatch.setenv("TRACKER_CONFIG_DIR", str(tmp_path))
    config.reload()
    try:
        with pytest.raises(BadInput, match="knob x: outside"):
            sample(1)
    finally:
        monkeypatch.delenv("TRACKER_CONFIG_DIR")
        config.reload()


def test_cli_random_profile_saves_its_settings_and_remakes_the_same_world(run_cli, tmp_path):
    out = tmp_path / "a"
    result = run_cli("generate", "--orders", "300", "--seed", "11", "--profile", "outside", "--out", out)
    assert result.exit_code == 0, result.output
    assert "profile outside" in result.output
    saved = json.loads((out / "profile.json").read_text())
    assert saved["seed"] == 11 and saved["outside"] and saved["settings"]["fraud"]
    assert read(out / "profile.json").settings == sample(11, "outside").settings
    again = run_cli("generate", "--orders", "300", "--profile", out / "profile.json", "--out", tmp_path / "b")
    assert again.exit_code == 0, again.output
    for name in ("orders.csv", "events.csv", "messages.csv", "labels.csv"):
        assert (out / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    default = run_cli("generate", "--orders", "300", "--seed", "11", "--out", tmp_path / "c")
    assert default.exit_code == 0 and not (tmp_path / "c" / "profile.json").exists()
    assert (out / "events.csv").read_bytes() != (tmp_path / "c" / "events.csv").read_bytes()


def test_cli_refuses_an_unknown_profile_in_one_line(run_cli, tmp_path):
    bogus = run_cli("generate", "--orders", "10", "--profile", "wild", "--out", tmp_path / "x")
    assert bogus.exit_code == 2 and "--profile" in bogus.output and "Traceback" not in bogus.output
    bad = tmp_path / "bad.json"
    bad.write_text('{"settings": {"nope": {}}}')
    result = run_cli("generate", "--orders", "10", "--profile", bad, "--out", tmp_path / "x")
    assert result.exit_code == 2 and "settings.nope" in result.output
    bad.write_text("{not json")
    result = run_cli("generate", "--orders", "10", "--profile", bad, "--out", tmp_path / "x")
    assert result.exit_code == 2 and "not JSON" in result.output


def test_a_noisy_outside_world_imports_cleanly_and_blank_statuses_are_derived(run_cli, tmp_path, db_path):
    out = tmp_path / "world"
    profile = sample(3, "outside")
    settings = {**profile.settings, "noise": {**profile.settings["noise"], "blank_status": 1.0}}
    Profile("noisy", 3, settings).write(tmp_path / "noisy.json")
    assert run_cli("generate", "--orders", "500", "--profile", tmp_path / "noisy.json", "--out", out).exit_code == 0
    for kind in ("orders", "events", "messages"):
        result = run_cli("import", kind, out / f"{kind}.csv")
        assert result.exit_code == 0, result.output
    with open(out / "events.csv", encoding="utf-8", newline="") as fh:
        written = list(csv.DictReader(fh))
    assert written and all(e["status"] == "" for e in written)
    with sqlite3.connect(db_path) as conn:
        statuses = Counter(dict(conn.execute("SELECT status, count(*) FROM tracking_events GROUP BY status")))
    assert sum(statuses.values()) == len(written)
    assert statuses["unknown"] == 0 and statuses["delivered"] > 0 and statuses["in_transit"] > 0


@pytest.mark.timeout(120)
def test_a_small_world_with_extreme_settings_is_made_whole():
    """Settings at the edges of what a profile can say, in a world too small for them: more fast and fraudulent
    sellers than sellers, reuse clusters larger than the world's buyers, every buyer in one country. It is made
    (it failed for want of an honest seller, and drew distinct buyers forever), with honest orders, clusters no
    larger than its buyers, and wrong destinations elsewhere."""
    only_fr = {c.code: (1.0 if c.code == "FR" else 0.0) for c in places().countries}
    world = _with({"sellers": {"min_sellers": 2, "fraud_share": 0.6, "fast_share": 0.5},
                   "sizes": {"reuse_cluster": [30, 60]}, "countries": only_fr,
                   "fraud": {"tracking_reused": 0.3, "wrong_destination": 0.2}}, n=120, seed=4)
    orders = world.orders
    patterns = Counter(row["pattern"] for row in world.labels)
    assert patterns["honest"] and patterns["tracking_reused"] and patterns["wrong_destination"]
    buyers = {row["buyer_id"] for row in orders}
    per_number = Counter(row["tracking_number"] for row in orders if row["tracking_number"])
    assert max(per_number.values()) <= len(buyers)
    assert {row["dest_country"].upper() for row in orders} == {"FR"}
