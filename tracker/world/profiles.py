"""World profiles: the default world's settings, or settings drawn at random so no two worlds are alike.

A profile is a set of changes merged over data/world/rates.toml. `sample(seed)` draws one from the
knobs of data/world/profiles.toml, each within its training range; `sample(seed, "outside")` moves
some knobs beyond it, for held-out evaluation of a model trained on the other kind. The same
(seed, region) always gives the same profile. A profile is saved beside its world (profile.json) and
read back with `read`, so a world can be made again.
"""

from __future__ import annotations

import json
import math
import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from tracker.config import load
from tracker.errors import BadInput
from tracker.world.places import places
from tracker.world.settings import derived

Region = Literal["train", "outside"]
KINDS = ("value", "log", "scale", "mix")
# Settings a profile may change besides the tables of rates.toml: buyers' countries, sellers' spelling.
EXTRA_SECTIONS = ("countries", "style")


@dataclass(frozen=True)
class Knob:
    name: str
    path: str
    kind: str
    train: tuple[float, float]
    outside: tuple[float, float]
    integer: bool = False
    floor: float = 0.0
    shared: bool = False  # "table.*": one draw for every key (a level) instead of one each (a mix)


@dataclass(frozen=True)
class Profile:
    """`name`: default, random, outside, or the file it was read from; `settings` merge over rates.toml."""

    name: str = "default"
    seed: int | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    outside: tuple[str, ...] = ()  # knobs drawn outside their training range

    def to_json(self) -> str:
        body = {"profile": self.name, "seed": self.seed, "outside": list(self.outside), "settings": self.settings}
        return json.dumps(body, indent=2, sort_keys=False) + "\n"

    def write(self, path: str | os.PathLike[str]) -> Path:
        out = Path(path)
        out.write_text(self.to_json(), encoding="utf-8")
        return out


DEFAULT = Profile()


def knobs() -> tuple[tuple[Knob, ...], float]:
    """The knobs of data/world/profiles.toml and the sampler's outside share."""
    return derived("world/profiles", _build_knobs)


def _pair(raw: Any, where: str) -> tuple[float, float]:
    if not (isinstance(raw, list) and len(raw) == 2 and all(isinstance(x, int | float) for x in raw)):
        raise BadInput(f"data/world/profiles.toml: {where}: expected [low, high]")
    lo, hi = float(raw[0]), float(raw[1])
    if lo > hi:
        raise BadInput(f"data/world/profiles.toml: {where}: low {lo} is above high {hi}")
    return lo, hi


def _build_knobs(raw: dict[str, Any]) -> tuple[tuple[Knob, ...], float]:
    out = []
    for name, k in raw.get("knob", {}).items():
        kind = k.get("kind")
        if kind not in KINDS:
            raise BadInput(f"data/world/profiles.toml: knob {name}: kind {kind!r} is not one of {', '.join(KINDS)}")
        train = _pair(k.get("train"), f"knob {name} train")
        outside = _pair(k.get("outside"), f"knob {name} outside")
        if not (outside[0] <= train[0] and train[1] <= outside[1]):
            raise BadInput(f"data/world/profiles.toml: knob {name}: outside {outside} must contain train {train}")
        if kind != "value" and outside[0] <= 0:
            raise BadInput(f"data/world/profiles.toml: knob {name}: a {kind} range must be above 0")
        out.append(
            Knob(
                name=name,
                path=str(k["path"]),
                kind=kind,
                train=train,
                outside=outside,
                integer=bool(k.get("integer", False)),
                floor=float(k.get("floor", 0.0)),
                shared=bool(k.get("shared", False)),
            )
        )
    share = float(raw.get("sampler", {}).get("outside_share", 0.5))
    return tuple(out), share


def _uniform(rng: random.Random, lo: float, hi: float, log: bool) -> float:
    if log:
        return math.exp(math.log(lo) + (math.log(hi) - math.log(lo)) * rng.random())
    return lo + (hi - lo) * rng.random()


def _draw(rng: random.Random, knob: Knob, region: Region) -> float:
    """One number from the knob's training range, or from the rest of its outside range."""
    log = knob.kind != "value"
    lo, hi = knob.train
    if region == "outside":
        olo, ohi = knob.outside
        pieces = [(a, b) for a, b in ((olo, lo), (hi, ohi)) if b > a]
        if pieces:
            sizes = [math.log(b / a) if log else b - a for a, b in pieces]
            r = rng.random() * sum(sizes)
            lo, hi = pieces[0] if r < sizes[0] or len(pieces) == 1 else pieces[1]
    value = _uniform(rng, lo, hi, log)
    return float(round(value)) if knob.integer else value


def _defaults(section: str, rates: dict[str, Any]) -> dict[str, Any]:
    if section == "countries":  # buyers' countries: their weights live with the places
        return {c.code: c.weight for c in places().countries}
    if section == "style":  # its one setting defaults from data/world/messages.toml
        return {}
    if not isinstance(rates.get(section), dict):
        raise BadInput(f"data/world/profiles.toml: {section!r} is not a table of data/world/rates.toml")
    return rates[section]


def _clean(x: float, integer: bool) -> float | int:
    return int(x) if integer else round(x, 6)


def _set(settings: dict[str, Any], rates: dict[str, Any], knob: Knob, rng: random.Random, region: Region) -> None:
    """Draw the knob's settings into `settings` (path: section[.key|.*[.list index]])."""
    section, *rest = knob.path.split(".")
    base = _defaults(section, rates)
    target = settings.setdefault(section, {})
    if knob.kind == "mix":  # the whole table, or one list of weights in it
        shares = base[rest[0]] if rest else base
        keys = list(range(len(shares))) if isinstance(shares, list) else list(shares)
        concentration = _draw(rng, knob, region)
        weights = [max(float(shares[k]), knob.floor) for k in keys]
        total = sum(weights) or 1.0
        drawn = [rng.gammavariate(concentration * w / total, 1.0) if w > 0 else 0.0 for w in weights]
        norm = sum(drawn) or 1.0
        mixed = [round(v / norm, 6) for v in drawn]
        if rest:
            target[rest[0]] = mixed if isinstance(shares, list) else dict(zip(keys, mixed, strict=True))
        else:
            target.update(dict(zip(keys, mixed, strict=True)))
        return
    if not rest:
        raise BadInput(f"data/world/profiles.toml: knob {knob.name}: path {knob.path!r} names no key")
    key, index = rest[0], int(rest[1]) if len(rest) > 1 else None
    level = _draw(rng, knob, region) if knob.shared else None
    for k in list(base) if key == "*" else [key]:
        if k not in base and (section != "style" or knob.kind == "scale"):
            raise BadInput(f"data/world/profiles.toml: knob {knob.name}: {section}.{k} is not in rates.toml")
        x = _draw(rng, knob, region) if level is None else level
        if index is not None:  # one element of a list setting: the list is replaced whole
            values = list(target.get(k, base[k]))
            values[index] = _clean(x, knob.integer)
            target[k] = values
        elif knob.kind == "scale":  # scales compose: a level, then a mix
            target[k] = _clean(float(target.get(k, base[k])) * x, knob.integer)
        else:
            target[k] = _clean(x, knob.integer)


def sample(seed: int, region: Region = "train") -> Profile:
    """A random profile: every knob within its training range, or ("outside") some of them beyond it."""
    if region not in ("train", "outside"):
        raise ValueError(f"region must be 'train' or 'outside', not {region!r}")
    all_knobs, outside_share = knobs()
    rng = random.Random(f"profile/{region}/{seed}")
    chosen: set[str] = set()
    if region == "outside" and all_knobs:
        chosen = {k.name for k in all_knobs if rng.random() < outside_share}
        if not chosen:
            chosen = {rng.choice(all_knobs).name}
    rates = load("world/rates")
    settings: dict[str, Any] = {}
    for knob in all_knobs:
        _set(settings, rates, knob, rng, "outside" if knob.name in chosen else "train")
    name = "random" if region == "train" else "outside"
    return Profile(name, seed, settings, tuple(k.name for k in all_knobs if k.name in chosen))


def read(path: str | os.PathLike[str]) -> Profile:
    """A profile saved by `Profile.write` (profile.json beside a generated world)."""
    where = str(path)
    try:
        body = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise BadInput(f"--profile: cannot read {where}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise BadInput(f"--profile: {where}: not JSON: {exc}") from None
    settings = body.get("settings") if isinstance(body, dict) else None
    if not isinstance(settings, dict):
        raise BadInput(f"--profile: {where}: no 'settings' object")
    rates = load("world/rates")
    for section, value in settings.items():
        if not isinstance(value, dict) or (section not in rates and section not in EXTRA_SECTIONS):
            raise BadInput(f"--profile: {where}: settings.{section} is not a table of data/world/rates.toml")
    seed = body.get("seed")
    return Profile(where, seed if isinstance(seed, int) else None, settings, tuple(body.get("outside") or ()))


def resolve(name: str, seed: int) -> Profile:
    """What `--profile NAME` means: default, random (training ranges), outside (held-out), or a file."""
    if name == "default":
        return DEFAULT
    if name == "random":
        return sample(seed, "train")
    if name == "outside":
        return sample(seed, "outside")
    if Path(name).suffix == ".json" or Path(name).exists():
        return read(name)
    raise BadInput(f"--profile: {name!r} is not default, random, outside or a profile.json file")
