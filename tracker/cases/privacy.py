"""Other buyers in a complaint packet appear only as keyed hashes (HMAC-SHA256).

The key is a random secret made once per database and kept in `meta`, so nobody holding a list of buyer
ids can hash them and match: the pseudonyms cannot be reversed from outside the database. The same
buyer gets the same pseudonym in every packet of that database, so reports stay comparable.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Iterable
from typing import Any

import sqlite_utils

SECRET_KEY = "export_pseudonym_secret"
# order extra columns that hold a person's address or contact details
_PERSONAL_KEYS = re.compile(r"address|street|addr|name|phone|email|zip|postcode|postal|house|apartment", re.I)


def pseudonym_secret(db: sqlite_utils.Database) -> bytes:
    """The database's secret, created on first use (race-safe: the first writer wins)."""
    with db.conn:
        db.conn.execute("INSERT OR IGNORE INTO meta(key, value) VALUES (?, ?)", [SECRET_KEY, secrets.token_hex(32)])
    row = db.conn.execute("SELECT value FROM meta WHERE key = ?", [SECRET_KEY]).fetchone()
    return bytes.fromhex(row[0])


def pseudonym(secret: bytes, kind: str, value: str) -> str:
    """'buyer-3f9a…': kind plus the first 16 hex digits of HMAC-SHA256(secret, kind:value)."""
    digest = hmac.new(secret, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()
    return f"{kind}-{digest[:16]}"


def strings_in(value: Any) -> Iterable[str]:
    """Every string (keys included) inside a JSON-like value."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from strings_in(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from strings_in(item)


class Scrubber:
    """Replaces other buyers' order ids, buyer ids, postcodes and address fields with pseudonyms."""

    def __init__(self, secret: bytes):
        self.secret = secret
        self.replacements: dict[str, str] = {}
        self.order_ids: set[str] = set()  # evidence may hold numeric order ids as JSON numbers
        self._pattern: re.Pattern[str] | None = None

    def add(self, kind: str, value: Any) -> None:
        text = str(value).strip() if value is not None else ""
        if len(text) >= 2 and text not in self.replacements:  # one character would mangle every number
            self.replacements[text] = pseudonym(self.secret, kind, text)
            self._pattern = None
        if kind == "order" and text:
            self.order_ids.add(text)

    def add_other_order(self, order: dict[str, Any], own: dict[str, Any]) -> str:
        """Register another buyer's order; return its pseudonym."""
        self.add("order", order["order_id"])
        self.add("buyer", order["buyer_id"])
        if order.get("dest_postcode") and order["dest_postcode"] != own.get("dest_postcode"):
            self.add("postcode", order["dest_postcode"])
        extra = order.get("extra")
        if extra:
            try:
                fields = json.loads(extra)
            except ValueError:
                fields = {}
            if isinstance(fields, dict):
                for key, item in fields.items():
                    if _PERSONAL_KEYS.search(str(key)) and item not in (None, ""):
                        self.add("address", item)
        return pseudonym(self.secret, "order", str(order["order_id"]).strip())

    def _regex(self) -> re.Pattern[str] | None:
        if self._pattern is None and self.replacements:
            alternatives = sorted(self.replacements, key=len, reverse=True)
            self._pattern = re.compile(
                r"(?<![A-Za-z0-9])(" + "|".join(re.escape(a) for a in alternatives) + r")(?![A-Za-z0-9])")
        return self._pattern

    def text(self, value: str) -> str:
        pattern = self._regex()
        if pattern is None or not value:
            return value
        return pattern.sub(lambda m: self.replacements[m.group(1)], value)

    def value(self, value: Any) -> Any:
        """A JSON-like value with every string (and key) scrubbed."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.text(str(k)): self.value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(v) for v in value]
        if isinstance(value, int) and not isinstance(value, bool) and str(value) in self.order_ids:
            return pseudonym(self.secret, "order", str(value))
        return value
