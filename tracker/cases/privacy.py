"""Other buyers in a complaint packet appear only as keyed hashes (HMAC-SHA256).

The key is a random secret made once per database and kept in a file beside it (`<database>.pseudonym-key`,
mode 0600), never in a table: Datasette serves every table, and with the key and a list of buyer ids anyone
could hash the ids and match the pseudonyms. The same buyer gets the same pseudonym in every packet of that
database, so reports stay comparable. Migration 009 moves a key older versions kept in `meta` to the file.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import sqlite_utils

from tracker.errors import BadInput

# where versions before migration 009 kept the key (the `meta` table); read only to move it
SECRET_KEY = "export_pseudonym_secret"
KEY_SUFFIX = ".pseudonym-key"
# order extra columns that hold a person's address or contact details
_PERSONAL_KEYS = re.compile(r"address|street|addr|name|phone|email|zip|postcode|postal|house|apartment", re.I)
_MEMORY_KEYS: dict[int, bytes] = {}  # in-memory stores (tests) have no folder to keep a file in


def key_path(db_file: str | Path) -> Path:
    """The key file beside a database file: tracker.db -> tracker.db.pseudonym-key."""
    db_file = Path(db_file)
    return db_file.with_name(db_file.name + KEY_SUFFIX)


def database_file(conn: Any) -> Path | None:
    """The main database file of a connection, or None for an in-memory store."""
    for _seq, name, file in conn.execute("PRAGMA database_list").fetchall():
        if name == "main":
            return Path(file) if file else None
    return None


def read_key(path: Path) -> bytes | None:
    """The key in `path`, None when there is no file; a damaged file is bad input naming it."""
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"{path}: cannot read the pseudonym key ({getattr(exc, 'strerror', None) or exc})") from None
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) < 16:
        raise BadInput(f"{path}: not a pseudonym key (expected 64 hex digits); restore it from a backup")
    return key


def write_key(path: Path, key: bytes) -> bytes:
    """Store `key` in `path` (mode 0600) unless a key is already there; return the key the file holds.

    Written to a private temporary file, then linked into place: readers never see half a key, and when
    two processes race, the first link wins and both use its key.
    """
    temp = path.with_name(f".{path.name}.{secrets.token_hex(6)}")
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(key.hex() + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(temp, path)
        except FileExistsError:
            pass
    except OSError as exc:
        raise BadInput(f"{path}: cannot write the pseudonym key ({exc.strerror or exc})") from None
    finally:
        temp.unlink(missing_ok=True)
    stored = read_key(path)
    assert stored is not None
    return stored


def load_key(db_file: str | Path) -> bytes:
    """The pseudonym key of the database in `db_file`, made on first need."""
    path = key_path(db_file)
    return read_key(path) or write_key(path, secrets.token_bytes(32))


def pseudonym_secret(db: sqlite_utils.Database) -> bytes:
    """The store's pseudonym key (from the file beside it), created on first use."""
    file = database_file(db.conn)
    if file is None:
        return _MEMORY_KEYS.setdefault(id(db.conn), secrets.token_bytes(32))
    return load_key(file)


def move_key_out_of_meta(db: sqlite_utils.Database) -> None:
    """Migration 009: a key kept in `meta` goes to the key file, so packets made before stay verifiable.

    Runs inside the migration's transaction: the file is written first, the row deleted after, so an
    interrupted run leaves the key in both places (the same key) and the next run finishes the move.
    """
    row = db.conn.execute("SELECT value FROM meta WHERE key = ?", [SECRET_KEY]).fetchone()
    file = database_file(db.conn)
    if row is None or not row[0] or file is None:
        return
    old = bytes.fromhex(row[0])
    path = key_path(file)
    if write_key(path, old) != old:
        raise BadInput(
            f"{path}: holds another pseudonym key than the one in {file.name}; move the file aside "
            "(packets made with it stay verifiable only with it) and run the command again"
        )
    db.conn.execute("DELETE FROM meta WHERE key = ?", [SECRET_KEY])


def pseudonym(secret: bytes, kind: str, value: str) -> str:
    """'buyer-3f9a…': kind plus the first 16 hex digits of HMAC-SHA256(secret, kind:value)."""
    digest = hmac.new(secret, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()
    return f"{kind}-{digest[:16]}"


def personal_fields(extra: str | None) -> list[Any]:
    """The values of an order's unknown columns that hold an address or contact detail."""
    if not extra:
        return []
    try:
        fields = json.loads(extra)
    except ValueError:
        return []
    if not isinstance(fields, dict):
        return []
    return [item for key, item in fields.items() if _PERSONAL_KEYS.search(str(key)) and item not in (None, "")]


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
        self.add_person(order, keep_postcode=own.get("dest_postcode"))
        return pseudonym(self.secret, "order", str(order["order_id"]).strip())

    def add_person(self, order: dict[str, Any], keep_postcode: str | None = None) -> None:
        """Register who an order names: its buyer, its postcode (unless `keep_postcode`), address fields."""
        self.add("buyer", order["buyer_id"])
        if order.get("dest_postcode") and order["dest_postcode"] != keep_postcode:
            self.add("postcode", order["dest_postcode"])
        for item in personal_fields(order.get("extra")):
            self.add("address", item)

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
