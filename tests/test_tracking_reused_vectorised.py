"""tracking_reused finds its parties for every number at once; the findings are those of the earlier per-cluster
loop, kept here as the oracle: on a generated world (with its reuse clusters and consolidated orders) and on
random frames built to chain buyers and addresses across the consolidation window."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from detectors.places import Place
from detectors.rules import Finding, RuleContext, day
from detectors.rules import tracking_reused as rule

T0 = datetime(2026, 11, 1, tzinfo=UTC)


# ---- the oracle: the rule as it was, one cluster at a time -----------------------------------------------

def _oracle_parties(cluster: pd.DataFrame, window: float) -> list[list[int]]:
    rows = cluster.sort_values(["ordered_jd", "order_id"])
    groups: list[dict] = []
    for idx, r in zip(rows.index, rows.itertuples(index=False), strict=True):
        address = Place.of(r.dest_country, r.dest_city, r.dest_postcode)
        key = (address.country, address.postcode or address.city)
        for g in groups:
            same_party = r.buyer_id in g["buyers"] or (all(key) and key in g["addresses"])
            if same_party and r.ordered_jd - g["first"] <= window:
                g["rows"].append(idx)
                g["buyers"].add(r.buyer_id)
                g["addresses"].add(key)
                break
        else:
            groups.append({"rows": [idx], "buyers": {r.buyer_id}, "addresses": {key}, "first": r.ordered_jd})
    return [g["rows"] for g in groups]


def _oracle(ctx: RuleContext) -> list[Finding]:
    cfg = ctx.settings.get(rule.CODE, {})
    version = str(cfg.get("version", rule.VERSION))
    window = float(cfg.get("consolidation_window_days", 6))
    many = int(cfg.get("many_buyers", 3))
    o = ctx.tracked
    shared = o[o["n_orders_on_number"] > 1]
    findings: list[Finding] = []
    for number, cluster in shared.groupby("tracking_number", sort=True):
        if len(cluster) < 2:
            continue
        parties = _oracle_parties(cluster, window)
        if len(parties) < 2:
            continue
        buyers = sorted(set(cluster["buyer_id"]))
        severity = str(cfg.get("many_severity", "high")) if len(buyers) >= many else str(cfg.get("severity", "medium"))
        first, last = cluster["ordered_jd"].min(), cluster["ordered_jd"].max()
        cities = sorted({str(c) for c in cluster["dest_city"].dropna() if str(c).strip()})
        for row in cluster.itertuples(index=False):
            others = sorted(set(cluster["order_id"]) - {row.order_id})
            findings.append(Finding(
                row.order_id, rule.CODE, severity,
                f"tracking number {number} is also on {len(others)} other order(s) of {len(buyers)} different "
                f"buyers ({len(parties)} separate parties, orders placed {day(first)} to {day(last)}"
                + (f", shipping to {', '.join(cities[:5])}" if cities else "") + ")",
                {"tracking_number": number, "reuse_cluster": sorted(cluster["order_id"]), "other_orders": others,
                 "buyers": len(buyers), "parties": len(parties), "event_ids": []},
                version,
            ))
    return findings


def _context(orders: pd.DataFrame, settings: dict | None = None) -> RuleContext:
    return RuleContext(T0, settings or {}, orders=orders)


# ---- on a generated world --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def world_orders(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    from tracker.db import open_db
    from tracker.detection import readers
    from tracker.importers import import_file
    from tracker.world import world

    folder = tmp_path_factory.mktemp("reuse-world")
    world.write_world(folder, 4000, seed=11)
    db = open_db(folder / "tracker.db")
    for kind in ("orders", "events"):
        import_file(db, kind, folder / f"{kind}.csv")
    frame = readers.rule_frame(db.conn, None)
    db.close()
    return frame


def test_same_findings_as_the_per_cluster_loop_on_a_generated_world(world_orders: pd.DataFrame) -> None:
    expected = _oracle(_context(world_orders))
    got = rule.check(_context(world_orders))
    assert len({f.evidence["tracking_number"] for f in expected}) >= 3  # the world has reuse clusters
    assert got == expected


@pytest.mark.parametrize("window", [0.5, 6.0, 30.0])
def test_same_findings_with_other_windows_on_a_generated_world(world_orders: pd.DataFrame, window: float) -> None:
    settings = {rule.CODE: {"consolidation_window_days": window, "many_buyers": 4}}
    assert rule.check(_context(world_orders, settings)) == _oracle(_context(world_orders, settings))


# ---- on frames built to chain parties ---------------------------------------------------------------------

def _tangled(seed: int) -> pd.DataFrame:
    """Numbers shared by a few buyers and addresses that overlap, times around the window's edge, ties in
    time, unknown parts of addresses, postcodes written differently, and an unknown time now and then."""
    rng = random.Random(seed)
    rows = []
    for n in range(60):
        size = rng.randint(1, 9)
        base = 2_461_000.0 + rng.random() * 50
        for i in range(size):
            when = base + rng.choice([0.0, 0.0, 1.0, 2.999, 3.0, 5.9999, 6.0, 6.0001, 7.5, 12.0, 30.0]) * rng.random()
            if rng.random() < 0.2:
                when = base + rng.choice([0, 3, 6, 9, 12])  # exactly on the window's edges
            city, postcode = rng.choice([("Moscow", "101000"), ("Moskva", "101 000"), ("Kazan", "420066"),
                                         ("", "RU-101000"), ("Kazan", ""), (None, None)])
            rows.append({
                "order_id": f"O{n:03d}-{rng.randrange(1000):03d}-{i}", "buyer_id": f"B{rng.randrange(6)}",
                "seller_id": "S1", "tracking_number": f"RR{n:09d}CN", "dest_country": rng.choice(["RU", "ru", ""]),
                "dest_city": city, "dest_postcode": postcode,
                "ordered_jd": float("nan") if rng.random() < 0.03 else when,
            })
    # text as plain objects with None where missing, as the store's readers give it
    frame = pd.DataFrame({name: pd.Series([r[name] for r in rows], dtype=float if name == "ordered_jd" else object)
                          for name in rows[0]})
    frame["n_orders_on_number"] = frame.groupby("tracking_number")["order_id"].transform("size")
    return frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)  # not in any helpful order


@pytest.mark.parametrize("seed", range(12))
def test_same_findings_as_the_per_cluster_loop_on_tangled_frames(seed: int) -> None:
    frame = _tangled(seed)
    expected = _oracle(_context(frame))
    assert rule.check(_context(frame)) == expected
    assert expected  # something to compare


def test_parties_follow_the_earliest_group_in_reach() -> None:
    """A chain: B1 at day 0, B1 with address A at day 4 (joins B1), B2 at address A on day 8 (the B1 party began
    8 days earlier: beyond the window, a party of its own), B2 on day 9 (joins it). With an 8-day window B2's first
    order joins the B1 party, and the second, 9 days after that party began, starts one of its own."""
    number = np.zeros(4, dtype=np.int64)
    buyer = np.array([1, 1, 2, 2])
    address = np.array([-1, 7, 7, -1])
    when = np.array([0.0, 4.0, 8.0, 9.0])
    assert rule.parties(number, buyer, address, when, 6.0).tolist() == [0, 0, 2, 2]
    assert rule.parties(number, buyer, address, when, 8.0).tolist() == [0, 0, 0, 3]
