"""The scenario engine: orders, their parcels' scans, chat and ground-truth labels, one chunk at a time.

A world is a sequence of chunks of CHUNK order slots. Each chunk draws from its own random stream
(seeded by the world seed and the chunk number) and from the shared population, so a chunk is the
same whether the world is built in memory (`generate`) or streamed to disk (`write_world`), and
multi-order schemes (reuse clusters, consolidated orders) never straddle two chunks.
"""

from __future__ import annotations

import bisect
import itertools
import random
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from detectors.tracking_numbers import validate
from tracker.config import load, merge
from tracker.events import CONTRACT_EVENT_COLUMNS
from tracker.world.journeys import CUSTOMS_AND_LINEHAUL, DAY, HOUR, Clock, JourneyMaker, Place, Scan, place
from tracker.world.messages import MessageWriter
from tracker.world.noise import Noise
from tracker.world.numbers import NumberMaker, typo
from tracker.world.places import City, Country
from tracker.world.population import Population, Seller

CHUNK = 1000

ORDER_COLUMNS = (
    "order_id",
    "buyer_id",
    "seller_id",
    "ordered_at",
    "dest_country",
    "dest_city",
    "dest_postcode",
    "tracking_number",
    "carrier",
    "shipped_at",
    "promised_days",
    "buyer_confirmed_at",
    "buyer_received",
    "amount",
    "currency",
    "item_title",
)
EVENT_COLUMNS = CONTRACT_EVENT_COLUMNS
MESSAGE_COLUMNS = ("order_id", "sender", "sent_at", "text")
LABEL_COLUMNS = ("order_id", "fraud", "pattern")

FRAUD_PATTERNS = (
    "tracking_reused",
    "wrong_destination",
    "accepted_before_order",
    "impossible_transit",
    "delivered_not_received",
    "early_confirmation",
    "invalid_tracking_number",
    "never_moves",
    "fast_seller",
)
LOOKALIKE_PATTERNS = tuple(
    f"lookalike_{name}"
    for name in (
        "consolidated",
        "depot_delivered",
        "late_first_scan",
        "untracked",
        "doorstep_confirm",
        "address_variant",
        "express",
        "seller_messages",
        "relabelled",
        "timezone",
        "typo_number",
        "returned",
    )
)
_SELLER_SCHEMES = tuple(p for p in FRAUD_PATTERNS if p != "fast_seller")
_ORIGIN_STAGES = frozenset({"SC_INBOUND_SUCCESS", "SC_OUTBOUND_SUCCESS"})


class _Order:
    """One order while it is being made; written out as a row of ORDER_COLUMNS."""

    __slots__ = (
        "slot", "order_id", "buyer", "seller", "country", "city", "postcode", "ordered", "shipped", "carrier",
        "number", "written_number", "written_carrier", "promised", "confirmed", "received", "pattern", "fraud",
        "chat", "amount", "currency", "title", "written_city", "written_postcode", "written_country", "recorded_ordered", "disputed",
    )  # fmt: skip

    def __init__(self) -> None:
        self.confirmed: int | None = None
        self.received = ""
        self.chat: list[tuple[int, str, str]] = []
        self.written_city: str | None = None
        self.written_postcode: str | None = None
        self.written_country: str | None = None
        self.written_number: str | None = None
        self.written_carrier: str | None = None
        self.recorded_ordered: int | None = None
        self.disputed: int | None = None


class WorldGenerator:
    def __init__(
        self, n_orders: int, seed: int, as_of: datetime, settings: Mapping[str, Any] | None = None
    ):
        """`settings`: changes merged over data/world/rates.toml (a profile's, tracker.world.profiles)."""
        if n_orders < 0:
            raise ValueError("n_orders must be >= 0")
        self.n = n_orders
        self.seed = seed
        self.as_of = int(as_of.timestamp())
        cfg = load("world/rates")
        if settings:
            cfg = merge(cfg, dict(settings))
        self.cfg = cfg
        self.pop = Population(seed, n_orders, _SELLER_SCHEMES, cfg)
        self.numbers = NumberMaker(seed, cfg.get("numbers"))
        self.journeys = JourneyMaker(cfg)
        self.writer = MessageWriter(cfg.get("style", {}).get("typo_rate"))
        self.clock = Clock()
        timing, behaviour = cfg["timing"], cfg["behaviour"]
        self._handling = float(timing["handling_days"]) * DAY
        self._handling_skew = float(timing["handling_skew"])
        self._transit_low = float(timing["transit_low"])
        self._transit_span = float(timing["transit_span"])
        self._say_no_scale = float(behaviour["say_no_scale"])
        self._pressure_scale = float(behaviour["pressure_scale"])
        self._noise = Noise(cfg, self.as_of, ORDER_COLUMNS)
        self._last_mile_p = float(self.journeys.cfg["last_mile_number"])
        items = load("world/items")["items"]
        self.items = [(i["title"], float(i["usd"][0]), float(i["usd"][1])) for i in items]
        id_rng = random.Random(f"ids/{seed}")
        self._oid_mul = id_rng.randrange(1, 10**13) * 10 + 7
        self._oid_add = id_rng.randrange(10**14)
        self.carriers = list(cfg["carriers"])
        self.carrier_weights = [float(cfg["carriers"][c]) for c in self.carriers]
        b = cfg["buyers"]
        self.promised = list(b["promised_days"])
        self.promised_weights = list(b["promised_weights"])
        self._price_scale = float(b["price_scale"])
        self._promised_cum = list(itertools.accumulate(self.promised_weights))
        self._carrier_cum = list(itertools.accumulate(self.carrier_weights))
        # carriers with numbers of their own (data/world/carriers.toml): how often, and which
        self._real_share = float(cfg.get("numbers", {}).get("real_carrier_share", 0.0))
        real = {name: float(w) for name, w in cfg.get("real_carriers", {}).items() if float(w) > 0}
        self._real_carriers = [(name, w) for name, w in real.items() if self.numbers.is_real(name)]
        self.days = int(cfg["sizes"]["days"])
        self.mess = cfg["messiness"]
        self._build_scenarios()

    # ---- scenario table ---------------------------------------------------------------------

    def _build_scenarios(self) -> None:
        cfg = self.cfg
        lo, hi = cfg["sizes"]["reuse_cluster"]
        reuse_mean = lo + (hi - lo) / 3.5
        c_lo, c_hi = cfg["sizes"]["consolidated"]
        table: list[tuple[str, float, Callable[[random.Random, int, int], int]]] = []
        for name, rate in cfg["fraud"].items():
            size = reuse_mean if name == "tracking_reused" else 1.0
            table.append((name, float(rate) / size, getattr(self, f"_fraud_{name}")))
        for name, rate in cfg["lookalike"].items():
            size = (c_lo + c_hi) / 2 if name == "consolidated" else 1.0
            table.append((f"lookalike_{name}", float(rate) / size, getattr(self, f"_look_{name}")))
        # Expected scheme starts per order slot; the rest of the slots are ordinary honest orders.
        self._schemes: list[tuple[float, Callable[[random.Random, int, int], int]]] = [
            (w, handler) for _, w, handler in table
        ]

    # ---- chunks -----------------------------------------------------------------------------

    def n_chunks(self) -> int:
        return (self.n + CHUNK - 1) // CHUNK

    def chunk(self, c: int) -> tuple[list[tuple], list[tuple], list[tuple], list[tuple]]:
        """Rows (orders, events, messages, labels) of chunk c, as tuples in the *_COLUMNS order."""
        rng = random.Random(f"chunk/{self.seed}/{c}")
        self._orders: list[tuple] = []
        self._events: list[tuple] = []
        self._messages: list[tuple] = []
        self._labels: list[tuple] = []
        self._noise.start_chunk(self.seed, c)
        slot = c * CHUNK
        end = min(self.n, slot + CHUNK)
        # Stratified: each chunk gets its expected number of each scheme (rounded at random) at random
        # places, so even a 3000-order world shows every pattern at about its rate.
        tickets = []
        for per_slot, handler in self._schemes:
            expected = per_slot * (end - slot)
            tickets += [handler] * (int(expected) + (rng.random() < expected - int(expected)))
        rng.shuffle(tickets)
        places = sorted(rng.sample(range(slot, end), min(len(tickets), end - slot)))
        due = list(zip(places, tickets, strict=False))
        i = 0
        while slot < end:
            if i < len(due) and due[i][0] <= slot:
                slot += due[i][1](rng, slot, end - slot)
                i += 1
            else:
                slot += self._honest(rng, slot, end - slot)
        return self._orders, self._events, self._messages, self._labels

    # ---- building blocks --------------------------------------------------------------------

    def _order(
        self,
        rng: random.Random,
        slot: int,
        pattern: str,
        seller: Seller,
        *,
        buyer: int | None = None,
        min_age: float = 0.0,
        ordered: int | None = None,
    ) -> _Order:
        o = _Order()
        o.slot = slot
        o.order_id = f"30{(slot * self._oid_mul + self._oid_add) % 10**14:014d}"
        o.pattern = pattern
        o.fraud = 0 if pattern == "honest" or pattern.startswith("lookalike_") else 1
        o.seller = seller
        pop = self.pop
        b = pop.pick_buyer(rng) if buyer is None else buyer
        o.buyer = b
        o.country = pop.countries[pop.buyer_country[b]]
        o.city = pop.buyer_city[b]
        o.postcode = pop.buyer_postcode[b]
        if ordered is None:
            age = (min_age + (self.days - min_age) * rng.random()) * DAY
            ordered = self.as_of - int(age)
        o.ordered = ordered
        # Most sellers ship within two days; a few take the whole handling time.
        o.shipped = ordered + int(HOUR + self._handling * rng.random() ** self._handling_skew)
        o.promised = self.promised[bisect.bisect(self._promised_cum, rng.random() * self._promised_cum[-1])]
        o.carrier = self.carriers[bisect.bisect(self._carrier_cum, rng.random() * self._carrier_cum[-1])]
        if self._real_share and rng.random() < self._real_share:  # nothing drawn when the share is 0
            o.carrier = self._real_carrier(rng, o.country.code) or o.carrier
        title, lo, hi = self.items[int(rng.random() * len(self.items))]
        usd = (lo + (hi - lo) * rng.random()) * self._price_scale
        o.currency = o.country.currency
        value = usd * o.country.usd_rate
        o.amount = f"{value:.0f}" if o.currency == "KRW" else f"{value:.2f}"
        o.title = title
        return o

    def _real_carrier(self, rng: random.Random, country: str) -> str | None:
        """One of the carriers with numbers of their own that deliver to `country`, by weight (None: none)."""
        serving = [(name, w) for name, w in self._real_carriers if self.numbers.serves(name, country)]
        if not serving:
            return None
        cum = list(itertools.accumulate(w for _, w in serving))
        return serving[bisect.bisect(cum, rng.random() * cum[-1])][0]

    def _marketplace_carrier(self, rng: random.Random, o: _Order, serial: int) -> None:
        """The schemes that fake a marketplace parcel's speed keep to the marketplace's carriers."""
        if self.numbers.is_real(o.carrier):
            o.carrier = self.carriers[bisect.bisect(self._carrier_cum, rng.random() * self._carrier_cum[-1])]
            o.number = self._number(rng, o, serial)

    def _dest(self, o: _Order) -> Place:
        return place(o.city.name, o.postcode, o.country.code)

    def _places(self, o: _Order, dest: tuple[Country, City, str] | None = None) -> dict[str, Place]:
        country, city, postcode = dest if dest else (o.country, o.city, o.postcode)
        return {
            "origin": o.seller.origin,
            "export": o.seller.export,
            "hub": place(country.hub_city, country.hub_postcode, country.code),
            "dest": place(city.name, postcode, country.code),
        }

    def _start(self, rng: random.Random, o: _Order) -> int:
        """When the carrier first hears of the parcel: around the time the seller marks it shipped."""
        return max(
            o.ordered + 1800 + int(6 * HOUR * rng.random()),
            o.shipped - int(6 * HOUR) + int(24 * HOUR * rng.random()),
        )

    def _factor(self, rng: random.Random, country: Country) -> float:
        return country.transit_factor * (self._transit_low + self._transit_span * rng.random())

    def _number(self, rng: random.Random, o: _Order, serial: int, *, untracked: bool = False) -> str:
        return self.numbers.make(o.carrier, serial, rng, untracked=untracked, postcode=o.postcode)

    def _emit_scans(self, number: str, carrier: str, scans: list[Scan]) -> int | None:
        """Write the scans that have happened by as_of; return the delivered time if it is among them."""
        if self.numbers.is_real(carrier):  # their scans come from an export without the carrier's own codes
            scans = [(t, "", status, text, where) for t, _code, status, text, where in scans]
        if self._noise.on:
            return self._noise.emit(self._events.append, self.clock.iso, number, carrier, scans)
        as_of = self.as_of
        clock = self.clock
        dates, times = clock.dates, clock.times  # Clock.iso inlined: this loop writes every scan of the world
        delivered = None
        append = self._events.append
        for t, code, status, text, (city, postcode, country, location) in scans:
            if t > as_of:
                break
            day, sec = divmod(t, DAY)
            ds = dates.get(day) or clock.iso(t)[:10]
            append((number, ds + times[sec], status, text, location, city, postcode, country, carrier, code))
            if status == "delivered":
                delivered = t
        return delivered

    def _journey(
        self,
        rng: random.Random,
        o: _Order,
        number: str,
        *,
        dest: tuple[Country, City, str] | None = None,
        start: int | None = None,
        factor: float | None = None,
        **kw: Any,
    ) -> tuple[list[Scan], int | None]:
        """Build the parcel's scans (to the order's address unless `dest`), emit those before as_of."""
        if start is None:
            start = self._start(rng, o)
        country = dest[0] if dest else o.country
        if factor is None:
            factor = self._factor(rng, country)
            if self.numbers.is_real(o.carrier) and self.numbers.express(number):  # an express service's speed
                factor = 0.3 + 0.15 * rng.random()
                kw.setdefault("show_all", True)
        if o.carrier == "cainiao" and rng.random() < self._last_mile_p:
            kw["last_mile_number"] = self.numbers.last_mile(o.slot, country.code)
        scans = self.journeys.build(rng, o.carrier, start, self._places(o, dest), factor=factor, **kw)
        if o.shipped > self.as_of:  # not handed over yet: the number is not out there
            return scans, None
        return scans, self._emit_scans(number, o.carrier, scans)

    def _honest_outcome(self, rng: random.Random, o: _Order, delivered: int | None) -> None:
        b = self.cfg["buyers"]
        if delivered is None:
            # Impatient buyers answer "not received" while the parcel is still on its way.
            if o.shipped + 25 * DAY < self.as_of and rng.random() < b["impatient_no"]:
                o.received = "no"
            return
        if rng.random() < b["confirm_after_delivery"]:
            o.confirmed = delivered + int(2 * HOUR + 5 * DAY * rng.random() ** 2)
        if rng.random() < b["say_received"]:
            o.received = "yes"

    def _fooled(
        self, rng: random.Random, o: _Order, delivered: int | None, confirm: float, say_no: float
    ) -> None:
        """A defrauded buyer: sometimes confirms because the tracking says delivered; often says 'no'."""
        if delivered is not None and rng.random() < confirm:
            o.confirmed = delivered + int(3 * HOUR + 3 * DAY * rng.random())
        elif rng.random() < say_no * self._say_no_scale:
            o.received = "no"

    def _chatter(self, rng: random.Random, o: _Order, delivered: int | None) -> None:
        """Honest small talk on some orders: shipping notices, 'where is it', thanks."""
        if rng.random() >= self.cfg["buyers"]["chatty"]:
            return
        w = self.writer
        if o.shipped - o.ordered > 2 * DAY and rng.random() < 0.4:
            o.chat.append(
                (o.ordered + int(DAY + DAY * rng.random()), "buyer", w.write(rng, "ask_ship", broken=False))
            )
        if rng.random() < 0.6:
            o.chat.append(
                (
                    o.shipped + int(HOUR + 10 * HOUR * rng.random()),
                    "seller",
                    w.write(rng, "shipped", tracking=o.number),
                )
            )
        late = o.shipped + 20 * DAY
        if (delivered is None or delivered > late) and rng.random() < 0.5:
            self._ask_where(rng, o, late + int(DAY * rng.random()))
            o.chat.append(
                (
                    late + int(DAY + 20 * HOUR * rng.random()),
                    "seller",
                    w.write(rng, rng.choice(("delay", "reply")), tracking=o.number),
                )
            )
        if delivered is not None and rng.random() < 0.25:
            o.chat.append(
                (
                    delivered + int(2 * HOUR + DAY * rng.random()),
                    "buyer",
                    w.write(rng, "thanks", broken=False),
                )
            )

    def _ask_where(self, rng: random.Random, o: _Order, t: int) -> None:
        days = str(max(2, (t - o.shipped) // DAY))
        o.chat.append((t, "buyer", self.writer.write(rng, "ask_where", broken=False, days_n=days)))

    def _pressure(
        self,
        rng: random.Random,
        o: _Order,
        first: int,
        last: int,
        kinds: tuple[str, ...] = ("confirm", "confirm", "confirm", "off_platform", "close_dispute"),
    ) -> None:
        """One to three seller messages pushing to confirm / close the dispute / pay off-platform.

        A plea to close a dispute follows the buyer's message opening one.
        """
        n = rng.choice((1, 1, 2, 2, 3))
        span = max(HOUR, last - first)
        times = sorted(first + int(span * rng.random()) for _ in range(n))
        disputed = o.disputed is not None
        for t in times:
            kind = rng.choice(kinds)
            if kind in ("close_dispute", "off_platform") and not disputed:
                o.disputed = t - int(HOUR + 10 * HOUR * rng.random())
                o.chat.append((o.disputed, "buyer", self.writer.write(rng, "dispute_open", broken=False)))
                disputed = True
            o.chat.append((t, "seller", self.writer.write(rng, kind, tracking=o.number)))

    def _finish(self, rng: random.Random, o: _Order) -> int:
        """Write the order (with the harmless messiness people add), its label and its chat. Returns 1."""
        iso = self.clock.iso
        as_of = self.as_of
        m = self.mess
        country = o.written_country or o.country.code
        if rng.random() < m["lower_country"]:
            country = country.lower()
        city = o.written_city or o.city.name
        if rng.random() < m["upper_city"]:
            city = city.upper()
        postcode = o.written_postcode or o.postcode
        if o.written_postcode is None and rng.random() < m["postcode_spacing"]:
            postcode = _respace(rng, postcode)
        number = o.written_number if o.written_number is not None else o.number
        r = rng.random()
        if r < m["number_spaces"]:
            number = _space_number(rng, number)
        elif r < m["number_spaces"] + m["number_lower"]:
            number = number.lower()
        r = rng.random()
        carrier = (
            ""
            if r < m["empty_carrier"]
            else o.carrier.upper()
            if r < m["empty_carrier"] + m["carrier_upper"]
            else o.carrier
        )
        if o.written_carrier is not None:
            carrier = o.written_carrier
        confirmed = iso(o.confirmed) if o.confirmed is not None and o.confirmed <= as_of else ""
        if o.shipped > as_of:  # not shipped yet: no number to give
            number, carrier = "", ""
        ordered = o.recorded_ordered if o.recorded_ordered is not None else o.ordered
        row = (
            o.order_id,
            self.pop.buyer_id(o.buyer),
            o.seller.seller_id,
            iso(ordered),
            country,
            city,
            postcode,
            number,
            carrier,
            iso(o.shipped) if o.shipped <= as_of else "",
            str(o.promised),
            confirmed,
            o.received,
            o.amount,
            o.currency,
            o.title,
        )
        self._orders.append(self._noise.blank_order_fields(row) if self._noise.on else row)
        self._labels.append((o.order_id, o.fraud, o.pattern))
        if o.chat:
            o.chat.sort(key=lambda c: c[0])
            for t, sender, text in o.chat:
                if t <= as_of:
                    self._messages.append((o.order_id, sender, iso(t), text))
        return 1

    def _seller_for(self, rng: random.Random, pattern: str) -> Seller:
        pop = self.pop
        if pattern == "fast_seller":
            return pop.fast.pick(rng)
        if pattern in pop.by_pattern:
            if rng.random() < self.cfg["sellers"]["fraud_by_fraud_sellers"]:
                return pop.by_pattern[pattern].pick(rng)
            return pop.honest.pick(rng)
        if rng.random() < self.cfg["sellers"]["honest_at_fraud_sellers"]:
            return pop.fraud.pick(rng)
        return pop.honest.pick(rng)

    def _simple(self, rng: random.Random, slot: int, pattern: str, **kw) -> _Order:
        o = self._order(rng, slot, pattern, self._seller_for(rng, pattern), **kw)
        o.number = self._number(rng, o, slot)
        return o

    # ---- honest orders and their look-alikes ------------------------------------------------

    def _honest(self, rng: random.Random, slot: int, room: int) -> int:
        o = self._simple(rng, slot, "honest")
        scans, delivered = self._journey(rng, o, o.number)
        self._honest_outcome(rng, o, delivered)
        self._chatter(rng, o, delivered)
        return self._finish(rng, o)

    def _look_consolidated(self, rng: random.Random, slot: int, room: int) -> int:
        lo, hi = self.cfg["sizes"]["consolidated"]
        k = min(rng.randint(lo, hi), room)
        if k < 2:
            return self._honest(rng, slot, room)
        seller = self._seller_for(rng, "honest")
        buyer = self.pop.pick_buyer(rng)
        first = self._order(rng, slot, "lookalike_consolidated", seller, buyer=buyer)
        orders = [first] + [
            self._order(
                rng,
                slot + i,
                "lookalike_consolidated",
                seller,
                buyer=buyer,
                ordered=first.ordered + int(min(5 * DAY, self.as_of - first.ordered) * rng.random()),
            )
            for i in range(1, k)
        ]
        # One parcel, sent once the last order is in.
        last_ordered = max(x.ordered for x in orders)
        shipped = last_ordered + int(HOUR + 2 * DAY * rng.random())
        number = self._number(rng, first, slot)
        for x in orders:
            x.shipped = shipped
            x.carrier = first.carrier
            x.number = number
        start = max(self._start(rng, first), last_ordered + 1800)
        scans, delivered = self._journey(rng, first, number, start=start)
        for x in orders:
            self._honest_outcome(rng, x, delivered)
            self._finish(rng, x)
        return k

    def _look_depot_delivered(self, rng: random.Random, slot: int, room: int) -> int:
        o = self._simple(rng, slot, "lookalike_depot_delivered", min_age=35)
        scans, delivered = self._journey(rng, o, o.number, ending="plain")
        if delivered is not None:
            got = delivered + int(DAY + 2 * DAY * rng.random())
            o.received = "yes"
            o.confirmed = got + int(HOUR + 20 * HOUR * rng.random())
            if rng.random() < 0.35:
                o.chat.append(
                    (
                        delivered + int(6 * HOUR + 12 * HOUR * rng.random()),
                        "buyer",
                        self.writer.write(rng, "not_received", broken=False),
                    )
                )
                o.chat.append(
                    (got + int(HOUR * rng.random()), "buyer", self.writer.write(rng, "thanks", broken=False))
                )
        return self._finish(rng, o)

    def _look_late_first_scan(self, rng: random.Random, slot: int, room: int) -> int:
        o = self._simple(rng, slot, "lookalike_late_first_scan")
        start = o.shipped + int(3 * DAY + 12 * DAY * rng.random())
        scans, delivered = self._journey(rng, o, o.number, start=start)
        self._honest_outcome(rng, o, delivered)
        if rng.random() < 0.4:
            t = o.shipped + int(3 * DAY + 2 * DAY * rng.random())
            self._ask_where(rng, o, t)
            o.chat.append(
                (
                    t + int(2 * HOUR + 20 * HOUR * rng.random()),
                    "seller",
                    self.writer.write(rng, "reply", tracking=o.number),
                )
            )
        return self._finish(rng, o)

    def _look_untracked(self, rng: random.Random, slot: int, room: int) -> int:
        o = self._order(rng, slot, "lookalike_untracked", self._seller_for(rng, "honest"))
        o.carrier = "chinapost"
        o.number = self._number(rng, o, slot, untracked=True)
        stop = "LH_DEPART" if rng.random() < 0.5 else None
        scans, delivered = self._journey(rng, o, o.number, sparse=0.75, stop_after=stop, ending="plain")
        arrived = o.shipped + int((12 + 18 * rng.random()) * DAY * o.country.transit_factor)
        if arrived <= self.as_of:
            o.received = "yes" if rng.random() < 0.6 else ""
            if rng.random() < 0.75:
                o.confirmed = (delivered or arrived) + int(HOUR + 2 * DAY * rng.random())
        return self._finish(rng, o)

    def _look_doorstep_confirm(self, rng: random.Random, slot: int, room: int) -> int:
        o = self._simple(rng, slot, "lookalike_doorstep_confirm", min_age=35)
        scans, delivered = self._journey(rng, o, o.number, ending="plain")
        if delivered is not None:
            o.confirmed = delivered - int(120 + 40 * 60 * rng.random())
            o.received = "yes"
        return self._finish(rng, o)

    def _look_address_variant(self, rng: random.Random, slot: int, room: int) -> int:
        o = self._simple(rng, slot, "lookalike_address_variant")
        choices = []
        if o.city.aliases:
            choices.append("alias")
        # a country prefix ("PL-00950") only before a postcode of digits: nobody writes "GB-SW1A 1AA"
        choices += ["prefix", "compact"] if o.postcode[:1].isdigit() else ["compact"]
        if o.country.code == "US":
            choices.append("zip4")
        kind = rng.choice(choices)
        if kind == "alias":
            o.written_city = rng.choice(o.city.aliases)
        elif kind == "prefix":
            sep = rng.choice(("-", " ", "-"))
            o.written_postcode = f"{o.country.code}{sep}{o.postcode}"
        elif kind == "zip4":
            o.written_postcode = f"{o.postcode}-{rng.randrange(10000):04d}"
        else:
            o.written_postcode = _respace(rng, o.postcode).lower()
            o.written_city = o.city.name.lower() if rng.random() < 0.5 else None
        scans, delivered = self._journey(rng, o, o.number)
        self._honest_outcome(rng, o, delivered)
        return self._finish(rng, o)

    def _look_express(self, rng: random.Random, slot: int, room: int) -> int:
        o = self._simple(rng, slot, "lookalike_express")
        o.carrier = "yunexpress" if rng.random() < 0.6 else "cainiao"
        o.number = self._number(rng, o, slot)
        o.shipped = o.ordered + int(2 * HOUR + DAY * rng.random())
        scans, delivered = self._journey(
            rng, o, o.number, factor=0.3 + 0.15 * rng.random(), show_all=True, ending="plain"
        )
        self._honest_outcome(rng, o, delivered)
        return self._finish(rng, o)

    def _look_seller_messages(self, rng: random.Random, slot: int, room: int) -> int:
        o = self._simple(rng, slot, "lookalike_seller_messages")
        scans, delivered = self._journey(rng, o, o.number)
        self._honest_outcome(rng, o, delivered)
        w = self.writer
        if rng.random() < 0.7:
            o.chat.append(
                (o.shipped + int(2 * HOUR + DAY * rng.random()), "seller", w.write(rng, "before_dispute"))
            )
        if delivered is not None:
            o.chat.append(
                (delivered + int(12 * HOUR + 3 * DAY * rng.random()), "seller", w.write(rng, "review"))
            )
        elif rng.random() < 0.5:
            o.chat.append((o.shipped + int(15 * DAY * rng.random()), "seller", w.write(rng, "delay")))
        return self._finish(rng, o)

    def _look_relabelled(self, rng: random.Random, slot: int, room: int) -> int:
        o = self._order(rng, slot, "lookalike_relabelled", self._seller_for(rng, "honest"), min_age=25)
        o.carrier = "chinapost"
        o.number = self._number(rng, o, slot)
        factor = self._factor(rng, o.country)
        scans = self.journeys.build(
            rng,
            o.carrier,
            self._start(rng, o),
            self._places(o),
            factor=factor,
            stop_after="CC_IM_SUCCESS",
            skip=frozenset({"GTMS_ACCEPT"}),
        )
        hub = place(o.country.hub_city, o.country.hub_postcode, o.country.code)
        scans.append(
            self.journeys.extra(
                rng, "relabelled", o.carrier, scans[-1][0] + int(DAY + DAY * rng.random()), hub
            )
        )
        self._emit_scans(o.number, o.carrier, scans)
        arrived = scans[-1][0] + int((3 + 6 * rng.random()) * DAY)
        if arrived <= self.as_of:
            o.received = "yes" if rng.random() < 0.6 else ""
            if rng.random() < 0.8:
                o.confirmed = arrived + int(HOUR + 2 * DAY * rng.random())
        return self._finish(rng, o)

    def _look_timezone(self, rng: random.Random, slot: int, room: int) -> int:
        o = self._simple(rng, slot, "lookalike_timezone")
        # The marketplace shows order times in Pacific time; written without an offset they read 7-8 h late.
        o.shipped = o.ordered + int(HOUR + 4 * HOUR * rng.random())
        start = o.ordered + int(HOUR + 5 * HOUR * rng.random())
        o.recorded_ordered = min(o.ordered + 8 * HOUR, self.as_of)
        o.shipped = max(o.shipped, o.recorded_ordered + 600)
        scans, delivered = self._journey(rng, o, o.number, start=start)
        self._honest_outcome(rng, o, delivered)
        return self._finish(rng, o)

    def _look_typo_number(self, rng: random.Random, slot: int, room: int) -> int:
        o = self._simple(rng, slot, "lookalike_typo_number")
        o.carrier = "chinapost"
        o.number = self._number(rng, o, slot)
        wrong = typo(o.number, rng)
        while validate(wrong).valid:
            wrong = typo(o.number, rng)
        o.written_number = wrong
        scans, delivered = self._journey(rng, o, o.number)
        self._honest_outcome(rng, o, delivered)
        o.chat.append(
            (
                o.shipped + int(DAY + 4 * DAY * rng.random()),
                "seller",
                self.writer.write(rng, "wrong_number", tracking=o.number),
            )
        )
        return self._finish(rng, o)

    def _look_returned(self, rng: random.Random, slot: int, room: int) -> int:
        """The address did not work: an exception at the delivery office, then back to the sender."""
        o = self._simple(rng, slot, "lookalike_returned", min_age=30)
        scans = self.journeys.build(
            rng,
            o.carrier,
            self._start(rng, o),
            self._places(o),
            factor=self._factor(rng, o.country),
            stop_after="GTMS_DO_ARRIVE",
        )
        dest = self._dest(o)
        failed = scans[-1][0] + int((6 + 60 * rng.random()) * HOUR)
        scans.append(self.journeys.extra(rng, "exception", o.carrier, failed, dest))
        scans.append(
            self.journeys.extra(rng, "returned", o.carrier, failed + int((3 + 12 * rng.random()) * DAY), dest)
        )
        self._emit_scans(o.number, o.carrier, scans)
        if failed < self.as_of:
            o.received = "no" if rng.random() < 0.6 else ""
            if rng.random() < 0.5:
                self._ask_where(rng, o, failed + int((1 + 4 * rng.random()) * DAY))
                o.chat.append(
                    (
                        failed + int((2 + 4 * rng.random()) * DAY),
                        "seller",
                        self.writer.write(rng, "reply", tracking=o.number),
                    )
                )
        return self._finish(rng, o)

    # ---- fraud ------------------------------------------------------------------------------

    def _fraud_tracking_reused(self, rng: random.Random, slot: int, room: int) -> int:
        lo, hi = self.cfg["sizes"]["reuse_cluster"]
        # no more than the world has buyers: a small world with large clusters drew distinct buyers forever
        k = min(lo + int((hi - lo + 1) * rng.random() ** 2.5), room, self.pop.n_buyers)
        if k < 3:
            return self._honest(rng, slot, room)
        seller = self._seller_for(rng, "tracking_reused")
        buyers: list[int] = []
        while len(buyers) < k:
            b = self.pop.pick_buyer(rng)
            if b not in buyers:
                buyers.append(b)
        first_ordered = self.as_of - int((30 + (self.days - 30) * rng.random()) * DAY)
        window = (5 + 25 * rng.random()) * DAY
        orders = [
            self._order(
                rng,
                slot + i,
                "tracking_reused",
                seller,
                buyer=b,
                ordered=min(self.as_of - DAY, first_ordered + int(window * rng.random())),
            )
            for i, b in enumerate(buyers)
        ]
        first = min(orders, key=lambda x: x.ordered)
        number = self._number(rng, first, slot)
        # The one real parcel behind the number: to one of these buyers, or to a stranger.
        dest = None if rng.random() < 0.3 else self.pop.random_address(rng)
        scans, delivered = self._journey(rng, first, number, dest=dest)
        for x in orders:
            x.number = number
            x.carrier = first.carrier
            x.shipped = max(x.shipped, x.ordered + HOUR)
            self._fooled(
                rng, x, delivered if delivered and delivered > x.ordered else None, confirm=0.25, say_no=0.45
            )
            if rng.random() < 0.2 * self._pressure_scale:
                self._pressure(rng, x, x.shipped + DAY, x.shipped + 12 * DAY)
            self._finish(rng, x)
        return k

    def _fraud_wrong_destination(self, rng: random.Random, slot: int, room: int) -> int:
        o = self._simple(rng, slot, "wrong_destination", min_age=25)
        r = rng.random()
        pop = self.pop
        dest = None
        if r < 0.4:  # another country (where buyers live: a profile may have them all in one)
            dest = _first(lambda: pop.random_address(rng), lambda d: d[0].code != o.country.code)
        elif r < 0.75:  # same country, another city
            others = [c for c in o.country.cities if c.name != o.city.name]
            if others:
                city = rng.choice(others)
                dest = (o.country, city, pop.postcode(rng, o.country, city))
        else:  # the subtle one: the buyer's city, another postcode
            pc = _first(lambda: pop.postcode(rng, o.country, o.city), lambda pc: pc != o.postcode)
            dest = None if pc is None else (o.country, o.city, pc)
        if dest is None:  # none of that kind to be had: any other country of the places file
            country = rng.choice([c for c in pop.countries if c.code != o.country.code])
            city = rng.choice(country.cities)
            dest = (country, city, pop.postcode(rng, country, city))
        scans, delivered = self._journey(rng, o, o.number, dest=dest)
        self._fooled(rng, o, delivered, confirm=0.2, say_no=0.5)
        if delivered is not None and rng.random() < 0.3:
            o.chat.append(
                (
                    delivered + int(DAY + 3 * DAY * rng.random()),
                    "buyer",
                    self.writer.write(rng, "not_received", broken=False),
                )
            )
        if delivered is not None and rng.random() < 0.25 * self._pressure_scale:
            self._pressure(rng, o, delivered + HOUR, delivered + 3 * DAY, ("delivered_confirm",))
        return self._finish(rng, o)

    def _fraud_accepted_before_order(self, rng: random.Random, slot: int, room: int) -> int:
        o = self._simple(rng, slot, "accepted_before_order", min_age=20)
        start = o.ordered - int((2 + 18 * rng.random()) * DAY)
        scans, delivered = self._journey(rng, o, o.number, start=start)
        self._fooled(rng, o, delivered, confirm=0.3, say_no=0.4)
        return self._finish(rng, o)

    def _fraud_impossible_transit(self, rng: random.Random, slot: int, room: int) -> int:
        o = self._simple(rng, slot, "impossible_transit", min_age=10)
        self._marketplace_carrier(rng, o, slot)
        skip = CUSTOMS_AND_LINEHAUL | _ORIGIN_STAGES
        scans, delivered = self._journey(
            rng, o, o.number, skip=skip, factor=0.25 + 0.08 * rng.random(), ending="plain"
        )
        self._fooled(rng, o, delivered, confirm=0.25, say_no=0.5)
        if delivered is not None and rng.random() < 0.3 * self._pressure_scale:
            self._pressure(rng, o, delivered + HOUR, delivered + 2 * DAY, ("delivered_confirm",))
        return self._finish(rng, o)

    def _fraud_delivered_not_received(self, rng: random.Random, slot: int, room: int) -> int:
        o = self._simple(rng, slot, "delivered_not_received", min_age=45)
        w = self.writer
        delivered = None
        if rng.random() < 0.35:
            # Stuck for weeks; "delivered" appears right after the buyer opens a dispute.
            scans = self.journeys.build(
                rng,
                o.carrier,
                self._start(rng, o),
                self._places(o),
                factor=self._factor(rng, o.country),
                stop_after="CC_IM_SUCCESS",
            )
            dispute = max(scans[-1][0] + 5 * DAY, o.ordered + int((o.promised - 1 - 3 * rng.random()) * DAY))
            signed = dispute + int(2 * HOUR + 28 * HOUR * rng.random())
            if signed <= self.as_of:
                dest = self._dest(o)
                scans.append(
                    (
                        signed - int(3 * HOUR),
                        "GTMS_DO_ARRIVE",
                        "in_transit",
                        "Arrived at the delivery office",
                        dest,
                    )
                )
                scans.append((signed, "GTMS_SIGNED", "delivered", "Delivered", dest))
                delivered = self._emit_scans(o.number, o.carrier, scans)
                o.disputed = dispute
                o.chat.append((dispute, "buyer", w.write(rng, "dispute_open", broken=False)))
                if rng.random() < 0.5 * self._pressure_scale:
                    self._pressure(
                        rng, o, signed + HOUR, signed + 2 * DAY, ("close_dispute", "delivered_confirm")
                    )
        if delivered is None:
            scans, delivered = self._journey(rng, o, o.number)
        if delivered is not None:
            o.received = "no"
            o.chat.append(
                (
                    delivered + int(DAY + 4 * DAY * rng.random()),
                    "buyer",
                    w.write(rng, "not_received", broken=False),
                )
            )
        return self._finish(rng, o)

    def _fraud_early_confirmation(self, rng: random.Random, slot: int, room: int) -> int:
        o = self._simple(rng, slot, "early_confirmation", min_age=20)
        stop = "LH_DEPART" if rng.random() < 0.3 else None
        scans, delivered = self._journey(rng, o, o.number, stop_after=stop)
        confirm = o.shipped + int((4 + 8 * rng.random()) * DAY)
        first_signed = next((s[0] for s in scans if s[2] == "delivered"), None)
        if first_signed is not None and confirm > first_signed - DAY:
            confirm = max(o.shipped + 2 * HOUR, first_signed - int((1 + 3 * rng.random()) * DAY))
        confirm = min(confirm, self.as_of - HOUR)
        self._pressure(rng, o, o.shipped + HOUR, confirm - HOUR)
        o.confirmed = confirm
        o.received = "no" if rng.random() < 0.4 else ""
        return self._finish(rng, o)

    def _fraud_invalid_tracking_number(self, rng: random.Random, slot: int, room: int) -> int:
        o = self._order(
            rng, slot, "invalid_tracking_number", self._seller_for(rng, "invalid_tracking_number")
        )
        real = self._real_carrier(rng, o.country.code) if self._real_share and rng.random() < self._real_share else None
        make = (lambda: self.numbers.invalid_real(real, slot, rng)) if real else (lambda: self.numbers.invalid(slot, rng))
        number, _kind = make()
        while validate(number).valid:
            number, _kind = make()
        o.number = number
        o.written_carrier = rng.choice((real, real, "")) if real else rng.choice(
            ("chinapost", "cainiao", "", "yunexpress", "China Post"))
        if rng.random() < 0.4:
            t = o.shipped + int((7 + 10 * rng.random()) * DAY)
            self._ask_where(rng, o, t)
            o.chat.append(
                (
                    t + int(3 * HOUR + DAY * rng.random()),
                    "seller",
                    self.writer.write(rng, "reply", tracking=number),
                )
            )
        if rng.random() < 0.15:
            o.confirmed = o.shipped + int((5 + 10 * rng.random()) * DAY)
            self._pressure(rng, o, o.shipped + HOUR, o.confirmed - HOUR)
        elif rng.random() < 0.4:
            o.received = "no"
        return self._finish(rng, o)

    def _fraud_never_moves(self, rng: random.Random, slot: int, room: int) -> int:
        o = self._simple(rng, slot, "never_moves", min_age=30)
        self._journey(rng, o, o.number, stop_after="GWMS_ACCEPT")
        if rng.random() < 0.4:
            t = o.shipped + int((10 + 10 * rng.random()) * DAY)
            self._ask_where(rng, o, t)
            o.chat.append((t + int(3 * HOUR + DAY * rng.random()), "seller", self.writer.write(rng, "delay")))
        if rng.random() < 0.35:
            o.received = "no"
        return self._finish(rng, o)

    def _fraud_fast_seller(self, rng: random.Random, slot: int, room: int) -> int:
        o = self._simple(rng, slot, "fast_seller", min_age=15)
        self._marketplace_carrier(rng, o, slot)
        if o.carrier == "yunexpress":  # fast sellers use standard services, not express ones
            o.carrier = "cainiao"
            o.number = self._number(rng, o, slot)
        # About half the normal transit: above any route minimum, but this seller is always that fast.
        factor = o.country.transit_factor * (0.5 + 0.15 * rng.random())
        scans, delivered = self._journey(rng, o, o.number, factor=factor)
        self._fooled(rng, o, delivered, confirm=0.2, say_no=0.35)
        return self._finish(rng, o)


def _respace(rng: random.Random, postcode: str) -> str:
    """The same postcode with its separator dropped, or a space where a hyphen was."""
    if " " in postcode or "-" in postcode:
        return (
            postcode.replace(" ", "").replace("-", "") if rng.random() < 0.7 else postcode.replace("-", " ")
        )
    if len(postcode) >= 6 and postcode.isdigit():
        return f"{postcode[:3]} {postcode[3:]}"
    return postcode


def _space_number(rng: random.Random, number: str) -> str:
    """How people paste numbers: in groups of four, or with a space before the country code."""
    if rng.random() < 0.5:
        return " ".join(number[i : i + 4] for i in range(0, len(number), 4))
    return f"{number[:2]} {number[2:-2]} {number[-2:]}"


def _first(draw: Callable[[], Any], good: Callable[[Any], bool], tries: int = 1000) -> Any:
    """The first of up to `tries` draws that is `good`, or None: a draw that can never be good (one country, one
    postcode) ends instead of looping forever."""
    for _ in range(tries):
        value = draw()
        if good(value):
            return value
    return None
