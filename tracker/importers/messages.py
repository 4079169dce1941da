"""Buyer-seller chat messages: stored once per (order, sender, time, text); the order may come later."""

from __future__ import annotations

import hashlib
from typing import Any

from tracker.importers import fields
from tracker.importers.base import Kind, Writer, extra_json
from tracker.importers.sources import Problem

_INSERT = (
    "INSERT OR IGNORE INTO messages (order_id, sender, sent_at, text, extra, message_key) VALUES (?, ?, ?, ?, ?, ?)"
)


def message_key(order_id: str, sender: str, sent_at: str, text: str) -> str:
    """A stable identity for a message: the same words from the same side at the same time are one message."""
    return hashlib.sha256("\x1f".join((order_id, sender, sent_at, text)).encode("utf-8")).hexdigest()[:32]


class MessagesWriter(Writer):
    table = "messages"

    def write(self, batch: list[tuple[Any, ...]]) -> None:
        # count by id, not total_changes: that also counts what triggers on messages write
        last_id = self.conn.execute("SELECT coalesce(max(id), 0) FROM messages").fetchone()[0]
        self.conn.executemany(_INSERT, batch)
        added = self.conn.execute("SELECT count(*) FROM messages WHERE id > ?", [last_id]).fetchone()[0]
        self.inserted += added
        self.unchanged += len(batch) - added


class Messages(Kind):
    name = "messages"
    columns = ("order_id", "sender", "sent_at", "text")
    required = columns
    converters = {"sender": fields.sender_value, "sent_at": fields.time_value}
    repeated = ("sender",)
    free_text = ("text",)
    writer_class = MessagesWriter

    def finish(
        self, line: int, clean: list[Any], values: tuple[str, ...], extras: dict[str, Any] | None, problems: list[Problem]
    ) -> tuple[Any, ...] | None:
        if problems:
            return None
        order_id, sender, sent_at, text = clean
        return (order_id, sender, sent_at, text, extra_json(extras), message_key(order_id, sender, sent_at, text))
