"""A generated marketplace world: orders, their parcels' tracking scans, buyer-seller chat, and the
ground truth of which orders are fraud. The demo, the tests, the benchmarks and the shipped model
stand on it. Deterministic for a seed; all rates, places and texts are data under data/world/.

API
---
``generate(n_orders: int, seed: int = 7, as_of: datetime | None = None, profile=DEFAULT) -> World``
    In memory, for up to ~200k orders. ``as_of`` defaults to 2026-11-01T00:00:00Z so worlds are
    reproducible. Orders spread over the 120 days before ``as_of``; scans, confirmations and
    messages later than ``as_of`` are not emitted (parcels still on their way).

``profiles.sample(seed, region="train"|"outside") -> Profile``
    The world's settings drawn at random (tracker/world/profiles.py, data/world/profiles.toml):
    every knob within its training range, or some beyond it for held-out evaluation. Pass it as
    ``profile=`` to generate / write_world / write_orders_csv; ``profiles.DEFAULT`` is
    data/world/rates.toml as it is. ``Profile.write(path)`` / ``profiles.read(path)`` keep one.
    How the files are written (clock noise, blank statuses, missing cells) is tracker/world/noise.py.

``World``
    ``orders``   list of dicts with the contract's orders columns (order_id, buyer_id, seller_id,
                 ordered_at, dest_country, dest_city, dest_postcode, tracking_number, carrier,
                 shipped_at, promised_days, buyer_confirmed_at, buyer_received, amount, currency,
                 item_title); every value a string as a CSV carries it, times 'YYYY-MM-DDTHH:MM:SSZ',
                 empty string = unknown. Written the way people write: some lower-case countries,
                 upper-case cities, postcodes without their space or hyphen, numbers with spaces.
    ``events``   list of dicts with the contract's events columns (tracking_number, occurred_at,
                 status, description, location, city, postcode, country, carrier, raw_code);
                 raw_code is the canonical Cainiao actionCode of the stage (GWMS_ACCEPT ...
                 GTMS_SIGNED, GTMS_DEL_FAILURE); status is normalised. Stages without a code of
                 their own reuse the nearest one and say it in the status: a pickup-point arrival
                 is GTMS_DO_ARRIVE + available_for_pickup, an address exception and the return to
                 sender are GTMS_DEL_FAILURE + exception / returned. Numbers are normalised.
    ``messages`` list of dicts: order_id, sender ('buyer'/'seller'), sent_at, text.
    ``labels``   list of dicts: order_id, fraud (int 0/1), pattern ('honest', a name in
                 FRAUD_PATTERNS, or a look-alike in LOOKALIKE_PATTERNS, labelled fraud 0).
    ``as_of``    the world's "now" (aware UTC datetime); ``seed``.
    ``journeys() -> dict[str, list[dict]]`` events grouped by tracking number, oldest first.
    ``write(folder)`` → orders.csv, events.csv, messages.csv, labels.csv (UTF-8, header row).

``write_world(folder, n_orders, seed=7, as_of=None, *, workers=1, profile=DEFAULT) -> dict[str, int]``
    The same files as ``generate(...).write(folder)``, streamed chunk by chunk in bounded memory
    (a million orders / ~9M scans in ~40 MB). ``workers`` > 1 shares the chunks among processes;
    the files are byte-identical whatever the number. Returns the row count per file.

``write_orders_csv(path, n_orders, seed=7, as_of=None) -> int``
    Only orders.csv of the same world, to ``path`` (for import benchmarks).

Also: ``canonical_city(country, name)`` and ``canonical_postcode(country, text)`` compare what a
buyer wrote with what a carrier scanned ("Moskva" = "Moscow", "PL-00950" = "00-950").

CLI: ``tracker generate --orders N [--seed S] [--as-of T] [--workers W] [--profile P] --out DIR``.

How it is built: a world is a sequence of chunks of 1000 order slots; each chunk has its own random
stream (seed, chunk number) and draws buyers and sellers from a population built once per
(seed, n_orders). Multi-order schemes stay inside a chunk. So the same (n_orders, seed, as_of) always
gives the same files, in memory or streamed, in one process or several.

Patterns (see DOMAIN.md §2): fraud — tracking_reused (clusters of 5-40 buyers on one number),
wrong_destination (other country / other city / same city other postcode), accepted_before_order,
impossible_transit, delivered_not_received, early_confirmation (with seller pressure messages),
invalid_tracking_number (no scans), never_moves, fast_seller (a seller whose parcels are all
about twice as fast as the route's norm). Look-alikes (honest) — consolidated, depot_delivered,
late_first_scan, untracked, doorstep_confirm, address_variant, express, seller_messages,
relabelled (the trail stops at the hand-over to the local post), timezone (the order time reads 8 h
late: first scan a few hours "before" the order), typo_number (seller corrects it in chat; the
order keeps the mistyped number, the scans are on the right one), returned (an address problem:
an 'exception' scan at the delivery office, then 'returned'; the buyer often says "no").

Carriers with numbers of their own (data/world/carriers.toml: FedEx, DHL Express, UPS, Amazon, USPS,
Canada Post, Royal Mail, Yodel, Landmark) carry a share of the orders, honest ones and some frauds
(rates.toml [numbers] real_carrier_share, 0 in the default world; which ones: [real_carriers]): valid
numbers of their real formats (USPS ones sometimes routed to the buyer's ZIP), scans in a courier's or a
post's words without the carrier's own codes, at express speed for an express service's number; invalid
numbers of their formats for the invalid-number scheme. Cainiao numbers take the AE… and …Y forms besides
LP… ([numbers] cainiao_forms). Buyers may live in the United Kingdom and Canada (weight 0 by default).
"""

from tracker.world.generator import (
    EVENT_COLUMNS,
    FRAUD_PATTERNS,
    LABEL_COLUMNS,
    LOOKALIKE_PATTERNS,
    MESSAGE_COLUMNS,
    ORDER_COLUMNS,
)
from tracker.world.places import canonical_city, canonical_postcode
from tracker.world.world import DEFAULT_AS_OF, World, generate, write_orders_csv, write_world

__all__ = [
    "DEFAULT_AS_OF",
    "EVENT_COLUMNS",
    "FRAUD_PATTERNS",
    "LABEL_COLUMNS",
    "LOOKALIKE_PATTERNS",
    "MESSAGE_COLUMNS",
    "ORDER_COLUMNS",
    "World",
    "canonical_city",
    "canonical_postcode",
    "generate",
    "write_orders_csv",
    "write_world",
]
