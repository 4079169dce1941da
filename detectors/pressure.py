"""A transparent phrase baseline for seller pressure, used when the message model is not available.

Three kinds of pressure (DOMAIN.md section 2): asking the buyer to confirm receipt, to close or cancel a
dispute, or to take payment or a refund off the platform. Patterns tolerate the usual misspellings
("comfirm", "dispite", "pls"). Honest messages that mention the same words are not pressure: "contact us
before opening a dispute", review requests after delivery, shipping and delay notices.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import NamedTuple


class Folded(NamedTuple):
    """A case-blind pattern, and where it can be, the same pattern case-sensitive for text already lower-cased.

    Python's `re.I` folds case at every character it tries, several times slower than lower-casing the text
    once. On ASCII text the two are the same: ASCII lower-casing keeps every position, and a pattern whose
    literal letters are all lower case then matches the same spans. `lower` is None for a pattern with an upper
    case literal (after its escapes are taken out), and non-ASCII text always goes through `pattern`."""

    pattern: re.Pattern[str]
    lower: re.Pattern[str] | None

    @classmethod
    def of(cls, source: str) -> Folded:
        pattern = re.compile(source, re.I)
        plain = re.sub(r"\\.", "", source)  # an escape (a word boundary, a class, an escaped dot) is no literal
        return cls(pattern, None if plain != plain.lower() else re.compile(source))

    def search(self, text: str) -> re.Match[str] | None:
        if self.lower is not None and text.isascii():
            return self.lower.search(text.lower())
        return self.pattern.search(text)

    def spans(self, text: str) -> Iterator[tuple[int, int]]:
        """(start, end) of each match, as `pattern.finditer(text)` finds them."""
        if self.lower is not None and text.isascii():
            return (m.span() for m in self.lower.finditer(text.lower()))
        return (m.span() for m in self.pattern.finditer(text))


def any_of(words: Iterable[str]) -> str:
    """A pattern matching any of these literal words, written as a trie ('c(?:ard|ase)' for 'card|case'): it
    matches the same texts as the plain alternation, and Python's `re` tries one branch per letter instead of
    every word at every position of the text (three times faster on chat messages)."""
    distinct = sorted(set(words))
    return _trie(distinct) if distinct else ""  # no word: the empty pattern, as the empty alternation is


def _trie(words: list[str]) -> str:
    if "" in words:
        rest = _trie([w for w in words if w]) if len(words) > 1 else ""
        return f"(?:{rest})?" if rest else ""
    groups: dict[str, list[str]] = {}
    for word in words:
        groups.setdefault(word[0], []).append(word[1:])
    branches = [re.escape(first) + _trie(tails) for first, tails in groups.items()]
    return branches[0] if len(branches) == 1 else f"(?:{'|'.join(branches)})"


_CONFIRM = r"(?:confirm|comfirm|confrim)\w*"
_DISPUTE = r"(?:dispute|dispite|disput|refund request|claim|case|complaint)"
PATTERNS: dict[str, Folded] = {
    "confirm receipt": Folded.of(
        rf"\b{_CONFIRM}\b[^.!?]{{0,25}}\b(?:receipt|receiv\w*|reciev\w*|reciv\w*|recieve\w*|order|oder|ordre|"
        rf"delivery|goods|item|it|button|now|today|first|soon|please|pls|plz)\b"
        rf"|\bclick\w*\b[^.!?]{{0,15}}\b{_CONFIRM}"
        rf"|\bfinish (?:the |your )?(?:order|oder|ordre|transaction)\b"
        rf"|\bmust {_CONFIRM}|\border must {_CONFIRM}|(?:please|pls|plz|kindly) {_CONFIRM}",
    ),
    "close the dispute": Folded.of(
        rf"\b(?:close|cancel|finish|withdraw|remove|stop)\w*\b[^.!?]{{0,15}}\b{_DISPUTE}"
    ),
    "off-platform payment": Folded.of(
        r"\bpay ?pal\b|paypa1|western union|whats ?app|we ?chat|telegram|\bwire\b|bank transfer|"
        r"transfer (?:the )?money|(?:refund|pay)\w* (?:you |u )?(?:back )?(?:directly|outside|by|via|to your card)|"
        r"@\w+\.(?:com|cn)|\bmy e-?mail\b|your (?:paypal|card|bank)",
    ),
}
# honest phrasings that share words with pressure
_HONEST = Folded.of(
    rf"\bbefore (?:you )?(?:open\w*|start\w*|make|making) (?:a |the )?{_DISPUTE}|\bno need (?:to open )?(?:a )?{_DISPUTE}"
    rf"|do ?n[o']?t open (?:a |the )?{_DISPUTE}|contact (?:us |me )?(?:first|before)"
)


_TOPIC = Folded.of(any_of(("confirm", "comfirm", "confrim", "finish", "click", "dispute", "dispit", "disput", "refund",
                           "claim", "case", "complain", "close", "cancel", "withdraw", "remove", "stop", "pay", "wire",
                           "western", "whats", "chat", "telegram", "transfer", "@", "mail", "card", "bank")))


def pressure_kinds(text: str) -> list[str]:
    """The kinds of pressure a seller's message applies (empty for an honest message)."""
    text = str(text or "")
    kinds: list[str] = []
    if not _TOPIC.search(text):
        return kinds
    for kind, pattern in PATTERNS.items():
        for start, end in pattern.spans(text):
            window = text[max(0, start - 40): end + 40]
            if kind == "close the dispute" and _HONEST.search(window):
                continue
            kinds.append(kind)
            break
    return kinds


def is_honest(text: str) -> bool:
    """The message uses a known honest phrasing ("contact us before opening a dispute", "no need dispute")."""
    return bool(_HONEST.search(str(text or "")))


def predict_pressure(texts: list[str]) -> list[float]:
    """Same shape as the model's: 1.0 for a message that matches a pressure phrase, else 0.0."""
    return [1.0 if pressure_kinds(t) else 0.0 for t in texts]
