"""The phrase baseline's patterns match lower-cased ASCII text case-sensitively (`detectors.pressure.Folded`): the
same spans as the case-blind pattern on the original text, for any text, and the rule's verdicts unchanged."""

from __future__ import annotations

import random
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from detectors import pressure
from detectors.pressure import Folded
from detectors.rules.seller_pressure import DEFAULT_TOPICS, score_messages
from tracker.world.messages import MessageWriter

WORDS = ["Confirm", "RECEIPT", "please", "Pls", "close", "Dispute", "before", "opening", "a", "Pay", "PayPal",
         "whats app", "WeChat", "@shop.COM", "my e-mail", "order", "click", "Button", "no need", "contact us",
         "first", "case", "refund", "directly", ".", "!", "  ", "\u212a", "\u017f", "caf\u00e9", "\u0130", "\u00df"]
ALL = [*pressure.PATTERNS.values(), pressure._HONEST, pressure._TOPIC,
       Folded.of("|".join(re.escape(t) for t in DEFAULT_TOPICS))]


def _spans(pattern: re.Pattern[str], text: str) -> list[tuple[int, int]]:
    return [m.span() for m in pattern.finditer(text)]


def test_every_shipped_pattern_takes_the_lower_case_path():
    assert all(f.lower is not None for f in ALL)
    # an upper case literal cannot: its pattern stays case-blind on every text
    assert Folded.of(r"PayPal\b").lower is None
    assert Folded.of(r"\bpay\W+pal").lower is not None


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(WORDS) | st.text(max_size=6), max_size=12).map(" ".join))
def test_same_spans_as_the_case_blind_pattern(text):
    for folded in ALL:
        assert list(folded.spans(text)) == _spans(folded.pattern, text)
        assert (folded.search(text) is None) == (folded.pattern.search(text) is None)


def _reference_kinds(text: str) -> list[str]:
    """pressure_kinds as it was written with re.I patterns only."""
    kinds = []
    if not pressure._TOPIC.pattern.search(text):
        return kinds
    for kind, folded in pressure.PATTERNS.items():
        for m in folded.pattern.finditer(text):
            window = text[max(0, m.start() - 40): m.end() + 40]
            if kind == "close the dispute" and pressure._HONEST.pattern.search(window):
                continue
            kinds.append(kind)
            break
    return kinds


def test_kinds_and_rule_scores_unchanged_on_generated_and_odd_messages():
    writer, rng = MessageWriter(), random.Random(7)
    texts = [writer.write(rng, kind, tracking="LP00729888729802") for kind in writer.templates for _ in range(30)]
    texts += [t.upper() for t in texts] + [t.title() for t in texts]
    texts += ["PLEASE CONFIRM RECEIPT \u212a", "Contact me on WHATSAPP caf\u00e9", "\u0130 please confirm it now"]
    assert any(_reference_kinds(t) for t in texts) and any(not _reference_kinds(t) for t in texts)
    for text in texts:
        assert pressure.pressure_kinds(text) == _reference_kinds(text), text
    topic = re.compile("|".join(re.escape(t) for t in DEFAULT_TOPICS), re.I)
    scores, method = score_messages(texts, method="phrases")
    assert method == "phrases"
    assert scores == [float(bool(topic.search(t)) and bool(_reference_kinds(t))) for t in texts]


_TOPIC_WORDS = ("confirm", "comfirm", "confrim", "finish", "click", "dispute", "dispit", "disput", "refund", "claim",
                "case", "complain", "close", "cancel", "withdraw", "remove", "stop", "pay", "wire", "western", "whats",
                "chat", "telegram", "transfer", "@", "mail", "card", "bank")


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(WORDS) | st.text(max_size=6), max_size=12).map(" ".join),
       st.lists(st.text(alphabet="ab.*(|)\\ -@", max_size=4), max_size=6))
def test_a_trie_of_words_finds_the_texts_their_alternation_finds(text, words):
    """`pressure.any_of` (the topic filters' pattern) matches a text exactly when the plain alternation does."""
    for listed in (DEFAULT_TOPICS, _TOPIC_WORDS, words, [*words, ""], ()):
        for flags in (0, re.I):
            trie = re.compile(pressure.any_of(listed), flags)
            plain = re.compile("|".join(re.escape(w) for w in listed), flags)
            assert (trie.search(text) is None) == (plain.search(text) is None)
            assert (trie.search(text.lower()) is None) == (plain.search(text.lower()) is None)
    assert pressure._TOPIC.pattern.pattern == pressure.any_of(_TOPIC_WORDS)
