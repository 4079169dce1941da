"""`python -m tracker.carriersite [--orders N] [--seed S]`: serve a generated world's journeys by hand.

Prints the base URL to export as TRACKER_CARRIER_BASE_URL, then serves on 127.0.0.1 until Ctrl-C.
"""

from __future__ import annotations

import argparse
import time

from tracker.carriersite import CarrierSite


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tracker.carriersite", description=__doc__)
    parser.add_argument("--orders", type=int, default=300, help="size of the generated world")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    args = parser.parse_args()
    from tracker.world import generate

    world = generate(args.orders, seed=args.seed)
    with CarrierSite(world.journeys(), as_of=world.as_of, port=args.port) as site:
        print(f"export TRACKER_CARRIER_BASE_URL={site.base_url}   # world as of {world.as_of:%Y-%m-%dT%H:%M:%SZ}",
              flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
