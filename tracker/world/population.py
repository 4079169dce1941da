"""Who is in the world: buyers (each with one address) and sellers (honest, fraudulent, fast).

Built once per (seed, n_orders) from its own random stream, so every chunk of orders can draw from the
same people while chunks stay independent of each other.
"""

from __future__ import annotations

import bisect
import itertools
import random
from dataclasses import dataclass, field
from typing import Any

from tracker.config import load
from tracker.world.journeys import Place, place
from tracker.world.places import City, Country, make_postcode, places


@dataclass
class Seller:
    seller_id: str
    kind: str  # honest / fraud / fast
    origin: Place
    export: Place
    patterns: tuple[str, ...] = ()


@dataclass
class _Pool:
    members: list[Seller] = field(default_factory=list)
    cum: list[float] = field(default_factory=list)

    def add(self, seller: Seller, weight: float) -> None:
        self.members.append(seller)
        self.cum.append((self.cum[-1] if self.cum else 0.0) + weight)

    def pick(self, rng: random.Random) -> Seller:
        return self.members[bisect.bisect_right(self.cum, rng.random() * self.cum[-1])]


def _weighted(rng: random.Random, items: list, weights: list[float]):  # noqa: ANN202
    return rng.choices(items, weights=weights)[0]


class Population:
    def __init__(
        self, seed: int, n_orders: int, fraud_patterns: tuple[str, ...], cfg: dict[str, Any] | None = None
    ):
        """`cfg`: the world's rates (data/world/rates.toml, as a profile changed them)."""
        rng = random.Random(f"population/{seed}/{n_orders}")
        cfg = load("world/rates") if cfg is None else cfg
        world_places = places()
        self.countries: tuple[Country, ...] = world_places.countries
        self._letters = world_places.letters
        # A profile may reweigh where buyers live; otherwise the places file's weights.
        country_weights = cfg.get("countries") or {}
        # Buyers: parallel lists keep a million-order world's 400k buyers small.
        n_buyers = max(20, int(n_orders / cfg["sellers"]["orders_per_buyer"]))
        self.n_buyers = n_buyers
        c_weights = list(
            itertools.accumulate(float(country_weights.get(c.code, c.weight)) for c in self.countries)
        )
        city_cum = [list(itertools.accumulate(city.weight for city in c.cities)) for c in self.countries]
        self.buyer_country: list[int] = []
        self.buyer_city: list[City] = []
        self.buyer_postcode: list[str] = []
        for _ in range(n_buyers):
            ci = bisect.bisect_right(c_weights, rng.random() * c_weights[-1])
            country = self.countries[ci]
            cum = city_cum[ci]
            city = country.cities[bisect.bisect_right(cum, rng.random() * cum[-1])]
            self.buyer_country.append(ci)
            self.buyer_city.append(city)
            self.buyer_postcode.append(self.postcode(rng, country, city))
        self._country_cum = c_weights
        self._city_cum = city_cum

        # Sellers: a few hundred per 100k orders, popularity heavy-tailed.
        s_cfg = cfg["sellers"]
        alpha = float(s_cfg["popularity_alpha"])
        n_sellers = max(int(s_cfg["min_sellers"]), n_orders // int(s_cfg["orders_per_seller"]))
        n_fast = max(1, round(n_sellers * s_cfg["fast_share"]))
        n_fraud = max(len(fraud_patterns) // 2, round(n_sellers * s_cfg["fraud_share"]))
        # at least one honest seller: a small world with large fast and fraud shares had none to give its honest
        # orders to
        n_sellers = max(n_sellers, n_fast + n_fraud + 1)
        ids = rng.sample(range(1_000_000, 9_999_999), n_sellers)
        origins = world_places.origins
        o_weights = [o.weight for o in origins]
        self.honest = _Pool()
        self.fraud = _Pool()
        self.fast = _Pool()
        self.by_pattern: dict[str, _Pool] = {p: _Pool() for p in fraud_patterns}
        self.sellers: list[Seller] = []
        for i, sid in enumerate(ids):
            origin = _weighted(rng, list(origins), o_weights)
            hub_city, hub_pc = rng.choice(world_places.export_hubs)
            seller = Seller(
                seller_id=f"store{sid}",
                kind="fast" if i < n_fast else "fraud" if i < n_fast + n_fraud else "honest",
                origin=place(origin.name, make_postcode(rng, world_places.origin_format, origin), "CN"),
                export=place(hub_city, hub_pc, "CN"),
            )
            popularity = rng.paretovariate(alpha)
            if seller.kind == "fast":
                self.fast.add(seller, popularity)
            elif seller.kind == "fraud":
                # Each fraudulent seller has one to three schemes; every scheme has someone running it.
                k = i - n_fast
                own = {fraud_patterns[k % len(fraud_patterns)]}
                own.update(rng.sample(fraud_patterns, rng.randint(0, 2)))
                seller.patterns = tuple(sorted(own))
                self.fraud.add(seller, popularity)
                for p in seller.patterns:
                    self.by_pattern[p].add(seller, popularity)
            else:
                self.honest.add(seller, popularity)
            self.sellers.append(seller)
        for p, pool in self.by_pattern.items():
            if not pool.members:  # fewer fraud sellers than schemes: borrow one
                seller = (
                    self.fraud.members[fraud_patterns.index(p) % len(self.fraud.members)]
                    if self.fraud.members
                    else self.fast.members[0]
                )
                pool.add(seller, 1.0)

    def postcode(self, rng: random.Random, country: Country, city: City) -> str:
        letters = self._letters.get(country.code)
        return (
            make_postcode(rng, country.postcode_format, city, letters)
            if letters
            else make_postcode(rng, country.postcode_format, city)
        )

    def pick_buyer(self, rng: random.Random) -> int:
        # Heavy-tailed: a few buyers order often, most order once or twice.
        return int(self.n_buyers * rng.random() ** 1.4)

    def buyer_id(self, b: int) -> str:
        return f"buyer{b:07d}"

    def random_address(self, rng: random.Random) -> tuple[Country, City, str]:
        ci = bisect.bisect_right(self._country_cum, rng.random() * self._country_cum[-1])
        country = self.countries[ci]
        cum = self._city_cum[ci]
        city = country.cities[bisect.bisect_right(cum, rng.random() * cum[-1])]
        return country, city, self.postcode(rng, country, city)
