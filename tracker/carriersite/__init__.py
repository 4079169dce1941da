"""A local carrier site: serves journeys as three carriers' tracking pages, and misbehaves on demand.

For `tracker demo`, the tests and the benchmarks. It listens on a free port of 127.0.0.1 and nowhere
else. Point the poller at it with TRACKER_CARRIER_BASE_URL=site.base_url (or poll(base_url=...)).

    with CarrierSite(world.journeys(), as_of=now) as site:
        site.set_fault("429", carrier="cainiao", times=2, retry_after=1)
        poll(db, now, base_url=site.base_url)
"""

from __future__ import annotations

from tracker.carriersite.server import DEFAULT_ROUTES, FAULT_KINDS, CarrierSite, Fault, RequestRecord, Route

__all__ = ["DEFAULT_ROUTES", "FAULT_KINDS", "CarrierSite", "Fault", "RequestRecord", "Route"]
