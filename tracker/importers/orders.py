"""Orders: upsert by order_id; an unchanged row is not rewritten and keeps its seq."""

from __future__ import annotations

import json
from typing import Any

import sqlite_utils

from tracker.db import next_seq
from tracker.importers import fields
from tracker.importers.base import CarrierGuess, Kind, Writer, extra_json, register_shipments_of_orders
from tracker.importers.sources import Problem
from tracker.search_index import BulkQueue

# The stored columns an import decides (everything but seq and imported_at), in record order.
STORED = (
    "order_id", "buyer_id", "seller_id", "ordered_at", "dest_country", "dest_city", "dest_postcode",
    "tracking_number", "tracking_number_raw", "carrier", "shipped_at", "promised_days",
    "buyer_confirmed_at", "buyer_received", "amount", "currency", "item_title", "extra",
)
_SELECT = f"SELECT {', '.join(STORED)} FROM orders WHERE order_id IN (SELECT value FROM json_each(?))"
_AMOUNT = STORED.index("amount")
_NUMBER_AT, _CARRIER_AT = STORED.index("tracking_number"), STORED.index("carrier")
# A re-import's quick look: each stored row (in the batch's order) as one JSON array of every column but the
# amount (JSON text is one value, not 17 Python objects), and the amount apart (compared as the float it is).
_ALIKE = (
    f"SELECT json_array({', '.join(f'o.{c}' for c in STORED if c != 'amount')}), o.amount "
    "FROM json_each(?) j JOIN main.orders o ON o.order_id = j.value ORDER BY j.key"
)
_COLUMNS = f"{', '.join(STORED)}, seq, imported_at"
# New orders go through a temp staging table: one INSERT ... SELECT a batch instead of one statement a
# row, since every statement on a table with triggers pays for its own statement journal.
# The stage holds the records as they are (no copy of each to add its seq and stamp): a record's seq is the
# batch's first plus its place in the stage (rowids count up from the first row of an emptied table).
_STAGE_CREATE = f"CREATE TEMP TABLE IF NOT EXISTS import_orders_stage AS SELECT {', '.join(STORED)} FROM orders WHERE 0"
_STAGE = f"INSERT INTO temp.import_orders_stage ({', '.join(STORED)}) VALUES ({', '.join('?' * len(STORED))})"
_SEQ = ":seq + rowid - (SELECT min(rowid) FROM temp.import_orders_stage)"
# OR FAIL: a failure leaves the rows before it, and the import rolls back its whole transaction anyway; so SQLite
# keeps no statement journal (a copy of every stored page the statement changes) for a statement that cannot fail
_INSERT = (f"INSERT OR FAIL INTO main.orders ({_COLUMNS}) SELECT {', '.join(STORED)}, {_SEQ}, :stamp"
           " FROM temp.import_orders_stage ORDER BY rowid")
# The numbers this import writes, each with the seq and carrier ('' for none) of an order carrying it: appended a
# batch at a time (the new orders' in the background with the batch's move), no key to keep in order; `close`
# makes the new shipments of them in one pass sorted by number and seq (the first order carrying a number wins).
_NUMBERS_CREATE = ("CREATE TEMP TABLE IF NOT EXISTS import_orders_numbers (tracking_number TEXT NOT NULL,"
                   " seq INTEGER NOT NULL, carrier TEXT NOT NULL)")
_NUMBERS_OF_STAGE = ("INSERT INTO temp.import_orders_numbers (tracking_number, seq, carrier)"
                     f" SELECT tracking_number, {_SEQ}, coalesce(carrier, '') FROM temp.import_orders_stage"
                     " WHERE tracking_number <> '' ORDER BY rowid")
_NUMBER = "INSERT INTO temp.import_orders_numbers (tracking_number, seq, carrier) VALUES (?, ?, ?)"
_UPDATE = (
    f"UPDATE orders SET {', '.join(f'{c} = ?' for c in STORED[1:])}, seq = ?, imported_at = ? WHERE order_id = ?"
)


class OrdersWriter(Writer):
    table = "orders"
    appended_indexes = ("idx_orders_seq",)  # a new or changed order takes the next seq

    def __init__(self, db: sqlite_utils.Database, stamp: str) -> None:
        super().__init__(db, stamp)
        for sql in (_STAGE_CREATE, "DELETE FROM temp.import_orders_stage", _NUMBERS_CREATE,
                    "DELETE FROM temp.import_orders_numbers"):
            self.conn.execute(sql)
        self.search_queue = BulkQueue(self.conn, "orders")  # new orders queued a batch at a time

    def close(self) -> None:
        super().close()
        self.search_queue.restore()
        self.conn.execute("DROP TABLE IF EXISTS temp.import_orders_stage")
        if self.inserted or self.updated:
            register_shipments_of_orders(self.conn, "temp.import_orders_numbers", self.stamp)
        self.conn.execute("DROP TABLE IF EXISTS temp.import_orders_numbers")

    def write(self, batch: list[tuple[Any, ...]]) -> None:
        self.settle()
        conn = self.conn
        if self.was_empty:  # the table held nothing before this import: every record is new
            new, changed = batch, []
        else:
            ids = json.dumps([r[0] for r in batch])
            if self._all_stored_alike(batch, ids):
                self.unchanged += len(batch)
                return
            stored = {row[0]: row for row in conn.execute(_SELECT, [ids])}
            new, changed = [], []
            for record in batch:
                old = stored.get(record[0])
                if old is None:
                    new.append(record)
                elif old != record:
                    changed.append(record)
        self.unchanged += len(batch) - len(new) - len(changed)
        if new or changed:
            seq = next_seq(self.db, len(new) + len(changed))
            stamp = self.stamp
            if changed:
                first = seq + len(new)
                conn.executemany(_UPDATE, [(*r[1:], first + i, stamp, r[0]) for i, r in enumerate(changed)])
                conn.executemany(_NUMBER, [(r[_NUMBER_AT], first + i, r[_CARRIER_AT] or "")
                                           for i, r in enumerate(changed) if r[_NUMBER_AT]])
            if new:
                conn.executemany(_STAGE, new)
                # staged to the orders (and its numbers noted) while the next batch is read and checked
                last = conn.execute("SELECT coalesce(max(rowid), 0) FROM main.orders").fetchone()[0]
                at = {"seq": seq, "stamp": stamp}
                queue = self.search_queue.queue_after(last)
                self.in_background((_INSERT, at), *([queue] if queue else []), (_NUMBERS_OF_STAGE, {"seq": seq}),
                                   ("DELETE FROM temp.import_orders_stage", ()))
            self.inserted += len(new)
            self.updated += len(changed)

    def _all_stored_alike(self, batch: list[tuple[Any, ...]], ids: str) -> bool:
        """Whether every record of the batch is stored exactly so (a re-import of unchanged orders), told by one
        text compare. Equal JSON texts mean equal values (strings, whole numbers and nulls each encode one way);
        any difference, an escape SQLite writes otherwise included, sends the batch to the per-record compare."""
        rows = self.conn.execute(_ALIKE, [ids]).fetchall()
        if len(rows) != len(batch) or [row[1] for row in rows] != [r[_AMOUNT] for r in batch]:
            return False
        mine = json.dumps([r[:_AMOUNT] + r[_AMOUNT + 1:] for r in batch], ensure_ascii=False, separators=(",", ":"))
        return mine == "[" + ",".join(row[0] for row in rows) + "]"


class Orders(Kind):
    name = "orders"
    columns = (
        "order_id", "buyer_id", "seller_id", "ordered_at", "dest_country", "dest_city", "dest_postcode",
        "tracking_number", "carrier", "shipped_at", "promised_days", "buyer_confirmed_at", "buyer_received",
        "amount", "currency", "item_title",
    )
    required = ("order_id", "buyer_id", "seller_id", "ordered_at", "dest_country")
    converters = {
        "ordered_at": fields.time_value,
        "dest_country": fields.country_value,
        "tracking_number": fields.tracking_number_value,
        "carrier": fields.carrier_value,
        "shipped_at": fields.time_value,
        "promised_days": fields.days_value,
        "buyer_confirmed_at": fields.time_value,
        "buyer_received": fields.yes_no_value,
        "amount": fields.amount_value,
        "currency": str.upper,
    }
    repeated = ("dest_country", "carrier", "promised_days", "buyer_received", "currency")
    free_text = ("item_title",)
    writer_class = OrdersWriter
    read_in_parts = True

    def __init__(self) -> None:
        super().__init__()
        self.first_line: dict[str, int] = {}  # order_id -> line: the one per-file set a stream must keep
        self.guess_carrier = CarrierGuess()

    def finish(
        self, line: int, clean: list[Any], values: tuple[str, ...], extras: dict[str, Any] | None, problems: list[Problem]
    ) -> tuple[Any, ...] | None:
        order_id = clean[0]
        if order_id is not None:
            first = self.first_line.setdefault(order_id, line)
            if first != line:
                problems.append(("order_id", f"{fields.shown(order_id)} is already on line {first} of this file"))
        if problems:
            return None
        (order_id, buyer, seller, ordered_at, country, city, postcode, number, carrier, shipped_at, days,
         confirmed_at, received, amount, currency, title) = clean
        raw = values[7].strip() if number else None
        if number and not carrier:
            carrier = self.guess_carrier(number)
        return (order_id, buyer, seller, ordered_at, country, city, postcode, number, raw, carrier, shipped_at,
                days, confirmed_at, received, amount, currency, title, extra_json(extras))
