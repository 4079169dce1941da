"""A cluster run's flags and scores, read back from its Parquet, merged into the store in one transaction.

The flags go through the same writer as a one-process run (`flagging._write`: idempotent, a flag that no longer
holds resolved, one that holds again reactivated), every order examined; the rules' deadlines and the change
marks follow, so the next `tracker detect` in one process starts from here. The scores replace the table as a
full one-process rescore does (`score_writer`), with the model they were made with.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import sqlite_utils

from detectors import view
from detectors.rules import Finding
from tracker.db import set_meta
from tracker.detection import bucket_tasks, flagging, score_writer, seller_books
from tracker.detection.buckets import Run
from tracker.detection.scoring import META_AS_OF, META_MODEL
from tracker.sqlite_pragmas import sort_cache
from tracker.timeutil import to_db


@dataclass
class Merged:
    raised: int
    resolved: int
    scored: int


def findings(run: Run) -> list[Finding]:
    """The run's findings, as the rules returned them (evidence read back from its JSON)."""
    table = run.read("flags", schema=bucket_tasks.FLAGS_SCHEMA)
    columns = [table.column(name).to_pylist() for name in bucket_tasks.FLAG_COLUMNS]
    return [Finding(order_id, code, severity, explanation, json.loads(evidence), version)
            for order_id, code, severity, explanation, evidence, version in zip(*columns, strict=True)]


def merge(db: sqlite_utils.Database, run: Run, as_of: datetime, marks: dict[str, int], fingerprint: str,
          model_id: str | None, score_meta: dict[str, str] | None = None) -> Merged:
    """Flags, deadlines, change marks and (with `model_id`) scores into the store, in one transaction, with
    `score_meta` (who scored, the typical transit used). The seller books a one-process run keeps no longer match
    the scores: their mark goes, so the next `tracker detect` in one process rescores every order once."""
    as_of_text = to_db(as_of)
    found = findings(run)
    deadlines = run.read("deadlines", schema=bucket_tasks.DEADLINES_SCHEMA)
    due = deadlines.to_pandas().groupby("order_id")["due_jd"].min() if deadlines.num_rows else None
    scores = run.read("scores", schema=bucket_tasks.SCORES_SCHEMA) if model_id is not None else None
    # sorted by order id before the write lock is taken (see score_writer.KeyOrder)
    rows = None if scores is None or not scores.num_rows else score_writer.rows_in_key_order(
        np.asarray(scores.column("order_id").to_pylist(), dtype=object), scores.column("score").to_numpy(),
        np.asarray(scores.column("codes").to_pylist(), dtype=object),
        np.asarray(scores.column("reasons").to_pylist(), dtype=object))
    conn = db.conn
    with conn:
        if not conn.in_transaction:
            conn.execute("BEGIN")
        raised, resolved = flagging._write(conn, found, None, as_of_text)
        conn.execute("DELETE FROM rule_deadlines")
        if due is not None:
            conn.executemany("INSERT OR REPLACE INTO rule_deadlines (order_id, due_at) VALUES (?, ?)",
                             [(order_id, view.jd_to_text(jd)) for order_id, jd in due.items()])
        for key, value in marks.items():
            set_meta(db, flagging.META_PREFIX + key, str(value))
        set_meta(db, flagging.META_PREFIX + "as_of", as_of_text)
        set_meta(db, flagging.META_PREFIX + "fingerprint", fingerprint)
        scored = 0
        if model_id is not None:
            conn.execute("DELETE FROM scores")  # a full run is the whole truth
            indexes = score_writer.drop_indexes(conn, "scores")
            if rows is not None:
                score_writer.insert_scores(conn, rows, model_id, as_of_text)
                scored = len(rows[0])
            with sort_cache(conn):
                for sql in indexes:
                    conn.execute(sql)
            set_meta(db, META_MODEL, model_id)
            set_meta(db, META_AS_OF, as_of_text)
            for key, value in (score_meta or {}).items():
                set_meta(db, key, value)
        conn.execute("DELETE FROM meta WHERE key = ?", [seller_books.META_RUN])
    return Merged(raised, resolved, scored)
