"""wrong_destination: destination-side scans (after export, at the delivery office, out for delivery,
delivered) in another country, city or postcode than the order's; or a USPS number routed to another ZIP.

Places are compared the forgiving way (`detectors.places`): countries by ISO code, cities without case or
accents, postcodes without case, spaces, hyphens or a country prefix. Scans before export (the seller's
city, the departure airport) never count.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from detectors import places
from detectors.places import Place
from detectors.rules import Evidence, Finding, RuleContext, per_distinct, place_text, rule, stamp
from detectors.tracking_numbers import validate

CODE = "wrong_destination"
VERSION = "1"
_WHAT = {"country": "country", "city": "city", "postcode": "postcode"}


def _distinct(values: pd.Series | np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Each row's code among the column's distinct texts, and those texts with '' for a non-text and, last, ''
    for code -1 (a missing value): one factorisation per column, every normalisation then runs per distinct text."""
    array = values.to_numpy(dtype=object) if isinstance(values, pd.Series) else np.asarray(values, dtype=object)
    codes, uniques = pd.factorize(array, use_na_sentinel=True)
    return codes, [u if isinstance(u, str) else "" for u in uniques] + [""]


def _each(texts: list[str], fn: Any, dtype: Any = object) -> np.ndarray:
    return np.array([fn(t) for t in texts], dtype=dtype)


def _postcodes(p: tuple[np.ndarray, list[str]], c: tuple[np.ndarray, list[str]]) -> np.ndarray:
    """places.normalize_postcode per row's (postcode, country), computed once per distinct pair of codes."""
    (p_codes, p_texts), (c_codes, c_texts) = p, c
    width = len(c_texts)
    pair = (np.where(p_codes < 0, len(p_texts) - 1, p_codes).astype(np.int64) * width
            + np.where(c_codes < 0, width - 1, c_codes))
    distinct, inverse = np.unique(pair, return_inverse=True)
    mapped = np.array([places.normalize_postcode(p_texts[k // width], c_texts[k % width]) for k in distinct.tolist()],
                      dtype=object)
    return mapped[inverse.reshape(-1)] if len(pair) else np.zeros(0, dtype=object)


def _scan_places(*columns: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """'CC|City|Postcode' packed places -> per column, per row the normalised country, city, whether the city is
    written in Latin letters, and the normalised postcode ('' and True for a missing place), each worked out once
    per distinct packed value of all the columns (the smallest and largest place of a number mostly agree)."""
    arrays = [np.asarray(c, dtype=object) for c in columns]
    codes, texts = _distinct(np.concatenate(arrays) if arrays else np.zeros(0, dtype=object))
    cc, city, latin, pc = [], [], [], []
    for text in texts:
        country, town, postcode = (text.split("|", 2) + ["", ""])[:3]
        cc.append(places.normalize_country(country))
        city.append(places.normalize_city(town))
        latin.append(places.is_latin(town))
        pc.append(places.normalize_postcode(postcode, country))
    per_text = (np.array(cc, dtype=object), np.array(city, dtype=object), np.array(latin, dtype=bool),
                np.array(pc, dtype=object))
    out, start = [], 0
    for array in arrays:
        mine = codes[start:start + len(array)]
        start += len(array)
        out.append(tuple(values[mine] for values in per_text))
    return out


def _own_places(country: tuple[np.ndarray, list[str]], city: tuple[np.ndarray, list[str]],
                postcode: tuple[np.ndarray, list[str]], *scan_places: np.ndarray) -> np.ndarray:
    """Per row: is every packed scan place missing or the order's own address packed the same way ('' for a
    part that is not text, a country and a city without '|')? Such rows agree part for part, so no comparison
    can find a mismatch: most orders' destination-office scans are where the order says."""
    (cc_codes, cc_texts), (city_codes, city_texts), (pc_codes, pc_texts) = country, city, postcode
    packable = (np.array(["|" not in t for t in cc_texts], dtype=bool)[cc_codes]
                & np.array(["|" not in t for t in city_texts], dtype=bool)[city_codes])
    # each distinct (country, city, postcode) of the orders packed once (a code -1 is the last text, '')
    n_city, n_pc = len(city_texts), len(pc_texts)
    key = ((cc_codes % len(cc_texts)).astype(np.int64) * n_city + city_codes % n_city) * n_pc + pc_codes % n_pc
    distinct, inverse = np.unique(key, return_inverse=True)
    packed = np.array([f"{cc_texts[k // (n_city * n_pc)]}|{city_texts[k // n_pc % n_city]}|{pc_texts[k % n_pc]}"
                       for k in distinct.tolist()], dtype=object)[inverse.reshape(-1)]
    own = packable
    for values in scan_places:
        missing = pd.isna(values)
        agree = missing.copy()
        agree[~missing] = values[~missing] == packed[~missing]  # only values compared: pd.NA has no truth value
        own &= agree
    return own


def candidate_mask(o: pd.DataFrame) -> np.ndarray:
    """Vectorised: orders whose packed destination-side places disagree with their address.

    Each column is factorised once and every normalisation runs once per distinct value, not once per order;
    the destination-office places are compared only where they are not the order's own address, packed."""
    country, city, postcode = _distinct(o["dest_country"]), _distinct(o["dest_city"]), _distinct(o["dest_postcode"])
    o_cc = _each(country[1], places.normalize_country)[country[0]]
    hit = np.zeros(len(o), dtype=bool)
    for col in ("country_side_min", "country_side_max"):
        s_cc = per_distinct(o[col], places.normalize_country)
        hit |= (o_cc != "") & (s_cc != "") & (o_cc != s_cc)
    scan_places = [o[col].to_numpy(dtype=object) for col in ("locality_min", "locality_max")]
    rows = np.flatnonzero(~_own_places(country, city, postcode, *scan_places))
    o_cc = o_cc[rows]
    o_city = _each(city[1], places.normalize_city)[city[0][rows]]
    o_city_ascii = _each(city[1], places.is_latin, bool)[city[0][rows]]
    o_pc = _postcodes((postcode[0][rows], postcode[1]), (country[0][rows], country[1]))
    found = np.zeros(len(rows), dtype=bool)
    for s_cc, s_city, s_city_ascii, s_pc in _scan_places(*(values[rows] for values in scan_places)):
        found |= (o_cc != "") & (s_cc != "") & (o_cc != s_cc)
        both_pc = (o_pc != "") & (s_pc != "")
        found |= both_pc & (o_pc != s_pc)
        found |= ~both_pc & (o_city != "") & (s_city != "") & (o_city_ascii == s_city_ascii) & (o_city != s_city)
    hit[rows] |= found
    return hit


def _usps_findings(ctx: RuleContext, o: pd.DataFrame, version: str, severity: str) -> list[Finding]:
    """USPS IMpb numbers carry the destination ZIP: it must be the order's."""
    out = []
    routed = o[np.fromiter((n.startswith("420") for n in o["tracking_number"].to_numpy(dtype=object)), dtype=bool,
                           count=len(o))]
    for row in routed.itertuples(index=False):
        best = validate(row.tracking_number).best
        if not best or best.carrier != "usps" or not best.dest_zip:
            continue
        order = Place.of(row.dest_country, row.dest_city, row.dest_postcode)
        if order.country and order.country != "US":
            reason = f"the order ships to {place_text(row.dest_city, row.dest_postcode, row.dest_country)}"
        elif order.postcode and order.postcode[:5] != best.dest_zip:
            reason = f"the order ships to ZIP {order.postcode[:5]}"
        else:
            continue
        out.append(Finding(
            row.order_id, CODE, severity,
            f"USPS tracking number {row.tracking_number} is routed to ZIP {best.dest_zip}; {reason}",
            {"tracking_number": row.tracking_number, "number_dest_zip": best.dest_zip, "event_ids": []},
            version,
        ))
    return out


@rule(CODE, VERSION, "high")
def check(ctx: RuleContext) -> list[Finding]:
    """Destination-side scans in another country, city or postcode than the order's."""
    cfg = ctx.settings.get(CODE, {})
    version = str(cfg.get("version", VERSION))
    severity = str(cfg.get("severity", "high"))
    o = ctx.tracked
    findings = _usps_findings(ctx, o, version, severity)
    flagged = {f.order_id for f in findings}
    # the few columns the findings read, picked before the rows (a pick copies every column it carries)
    hits = o[["order_id", "tracking_number", "dest_country", "dest_city", "dest_postcode"]][candidate_mask(o)]
    if hits.empty:
        return findings
    kinds = ctx.kinds
    by_number = ctx.events(hits["tracking_number"])
    for row in hits.itertuples(index=False):
        if row.order_id in flagged:
            continue
        order = Place.of(row.dest_country, row.dest_city, row.dest_postcode)
        bad_rows, what = [], None
        ev = by_number.get(row.tracking_number)
        for e in ev or []:
            locality = kinds.is_locality(e["raw_code"], e["status"])
            if not locality and not kinds.is_country_side(e["raw_code"], e["status"]):
                continue
            why = places.mismatch(order, Place.of(e["country"], e["city"], e["postcode"]), check_locality=locality)
            if why:
                bad_rows.append(e)
                what = what if what == "country" else why
        if not bad_rows:
            continue  # the packed min/max disagreed only by spelling
        shown = next((e for e in bad_rows if e["status"] == "delivered"), bad_rows[-1])
        verb = {"delivered": "delivered", "out_for_delivery": "out for delivery",
                "available_for_pickup": "waiting for pickup", "delivery_failed": "a failed delivery attempt"}.get(
            shown["status"], "scanned")
        scan_place = place_text(shown["city"], shown["postcode"], shown["country"])
        text = (f"{verb} in {scan_place} on {stamp(shown['occurred_at'])}; "
                f"the order ships to {place_text(row.dest_city, row.dest_postcode, row.dest_country)}")
        if len(bad_rows) > 1:
            text += f" ({len(bad_rows)} destination-side scans disagree, by {what})"
        evidence = Evidence(facts={
            "tracking_number": row.tracking_number, "mismatch": what,
            "scan_place": scan_place,
            "order_place": place_text(row.dest_city, row.dest_postcode, row.dest_country),
        }).add_events(*bad_rows)
        findings.append(Finding(row.order_id, CODE, severity, text, evidence.as_dict(), version))
    return findings

