"""Chat messages in the broken English marketplace sellers use: templates × slots × typos.

The texts are data (data/world/messages.toml); this module only fills them in, so adding a
paraphrase never needs code.
"""

from __future__ import annotations

import random
import re

from tracker.world.settings import derived

PRESSURE_KINDS = ("confirm", "close_dispute", "off_platform", "delivered_confirm")
_SLOT = re.compile(r"\{(\w+)\}")


Texts = dict[str, tuple[str, ...]]


def _data() -> tuple[Texts, Texts, float, Texts]:
    """(slots, templates, typo rate, misspellings) from data/world/messages.toml."""
    return derived("world/messages", _build)


def _build(raw: dict) -> tuple[Texts, Texts, float, Texts]:
    slots = {k: tuple(v) for k, v in raw["slots"].items()}
    templates = {k: tuple(v) for k, v in raw["templates"].items()}
    typos = raw.get("typos", {})
    return (
        slots,
        templates,
        float(typos.get("rate", 0.3)),
        {k: tuple(v) for k, v in typos.get("words", {}).items()},
    )


class MessageWriter:
    def __init__(self, typo_rate: float | None = None) -> None:
        """`typo_rate` replaces the messages file's [typos] rate (a random world's sellers spell otherwise)."""
        self.slots, self.templates, self.typo_rate, self.typo_words = _data()
        if typo_rate is not None:
            self.typo_rate = float(typo_rate)
        # Only the words that have misspellings are visited.
        words = "|".join(sorted(map(re.escape, self.typo_words), key=len, reverse=True)) or "(?!)"
        self._typo_re = re.compile(rf"\b(?:{words})\b", re.IGNORECASE)

    def write(
        self, rng: random.Random, kind: str, *, tracking: str = "", broken: bool = True, **values: str
    ) -> str:
        """One message of `kind` (a key of [templates]); sellers' messages get typos when `broken`.

        `values` fill slots from the facts of the order (e.g. days_n="12") instead of the lists.
        """
        template = rng.choice(self.templates[kind])

        def fill(m: re.Match[str]) -> str:
            name = m.group(1)
            if name in values:
                return values[name]
            if name == "tracking":
                return tracking
            if name == "digits4":
                return f"{rng.randrange(10000):04d}"
            if name == "handle":
                return "".join(
                    rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(5, 9))
                ) + str(rng.randrange(100))
            options = self.slots.get(name)
            return _SLOT.sub(fill, rng.choice(options)) if options else m.group(0)

        text = _SLOT.sub(fill, template)
        if broken:
            text = self._break(rng, text)
        return text

    def _break(self, rng: random.Random, text: str) -> str:
        rate = self.typo_rate

        def swap(m: re.Match[str]) -> str:
            word = m.group(0)
            options = self.typo_words.get(word.lower())
            if options and rng.random() < rate:
                return rng.choice(options)
            return word

        text = self._typo_re.sub(swap, text)
        r = rng.random()
        if r < 0.15:
            text = text.lower()
        elif r < 0.22:
            text = text.replace(", ", ",")
        r = rng.random()
        if r < 0.12:
            text = text.rstrip(".!") + "!!"
        elif r < 0.18:
            text = text.rstrip(".") + " ^_^"
        elif r < 0.24:
            text = text.rstrip(".!") + "~"
        if text and text[0].islower() and rng.random() < 0.5:
            text = text[0].upper() + text[1:]
        return text
