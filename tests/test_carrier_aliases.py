"""Every shipped carrier name and alias reaches its carrier: the importer stores a name the way the poller and
the registry compare it (one key on both sides)."""

from __future__ import annotations

import csv

import pytest

from tracker.carriers import load_carriers, resolve
from tracker.importers.fields import carrier_value

CARRIERS = load_carriers()
SPELLINGS = [(c.name, spelling) for c in CARRIERS.values() for spelling in (c.name, c.label, *c.aliases)]


def test_the_shipped_files_have_aliases():
    assert len(SPELLINGS) >= 10
    assert ("cainiao", "AliExpress Standard Shipping") in SPELLINGS and ("chinapost", "China Post Registered Air Mail") in SPELLINGS


@pytest.mark.parametrize("name, spelling", SPELLINGS)
def test_every_alias_resolves_and_the_stored_form_is_polled(name, spelling):
    assert resolve(CARRIERS, spelling).name == name
    assert resolve(CARRIERS, spelling.upper().replace(" ", "-")).name == name
    assert carrier_value(spelling) in CARRIERS[name].names()  # the poller selects shipments by these


def test_an_imported_alias_is_picked_up_by_the_pollers_names(db, tmp_path):
    from tracker.importers import import_file

    path = tmp_path / "orders.csv"
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["order_id", "buyer_id", "seller_id", "ordered_at", "dest_country", "tracking_number", "carrier"])
        for i, (_, spelling) in enumerate(SPELLINGS):
            w.writerow([f"O{i}", "B", "S", "2026-09-01", "ES", f"LP00{i:012d}", spelling])
    import_file(db, "orders", path)
    stored = dict(db.conn.execute("SELECT tracking_number, carrier FROM shipments").fetchall())
    for i, (name, _) in enumerate(SPELLINGS):
        assert stored[f"LP00{i:012d}"] in CARRIERS[name].names()


def _vectors_of_configured_carriers() -> list[tuple[str, str]]:
    from detectors.tracking_numbers import formats

    return [(f.carrier, n) for f in formats() if f.carrier in CARRIERS for n in f.valid_numbers]


@pytest.mark.parametrize("carrier, number", _vectors_of_configured_carriers())
def test_a_number_of_a_configured_carriers_format_goes_to_that_carrier(carrier, number):
    """Broad carrier-file patterns overlap (Yanwen's Y… takes YunExpress's YT…): the guess at import and the
    routing at poll time both follow the number's own format, whatever another file's pattern says."""
    from detectors.tracking_numbers import guess_carrier, normalize_number
    from tracker.carriers import claimant, number_patterns

    assert guess_carrier(number, number_patterns(CARRIERS)) == carrier
    assert claimant(CARRIERS, normalize_number(number)).name == carrier
