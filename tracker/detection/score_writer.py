"""The write of `scores`: rows sorted by order id, many per INSERT, in one transaction.

`tracker.detection.scoring` writes through these helpers in its own process for an ordinary run. A full run over a
large store writes in a spawned child process instead (`ChildWrite`): the child sorts the order ids while
the scorer works out the features, and inserts the rows while the scorer works out the reasons of the
few orders that get them. In one process those two share the interpreter's lock and each runs at half
speed; the insert alone takes about half as long.

The child holds the whole write in one transaction and commits only when the scorer says so: if the
scorer fails or is killed, the child sees its end of the pipe close and rolls back, and if the child is
killed, nothing it wrote is committed and the scorer raises. After the commit, the child copies the
write-ahead log into the database file (the checkpoint, about a second after a full rewrite) while the
scorer goes on: committed rows are visible to every reader either way. This module imports only the standard
library and numpy, so the child starts in a fraction of a second.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Sequence
from itertools import chain
from queue import Queue
from typing import Any

import numpy as np

from tracker.sqlite_pragmas import sort_cache

# SQLite's page cache for the write (KiB): a million rows and their index fit, so pages are written once
WRITE_CACHE_KIB = 262_144
# rows per INSERT statement: SQLite runs one statement per this many rows instead of one per row (4 values each,
# plus the model id and time bound once: 402 parameters, within every SQLite's limit of 999)
ROWS_PER_INSERT = 100
SCORE_DIGITS = 7  # a score is stored rounded to this many decimals
META_SQL = "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value"

# the rows to write, column by column: order ids, scores, codes, reasons
ScoreColumns = tuple[list[Any], list[float], list[Any], list[Any]]


def insert_scores(conn: sqlite3.Connection, columns: ScoreColumns, model_id: str, scored_at: str) -> None:
    """Insert the rows, or update an order's row where it has one (columns as `rows_in_key_order` gives them), a
    chunk of rows per statement. An update in place, not INSERT OR REPLACE: a replaced row is deleted and made anew
    at the end of the table under a new rowid, so the primary key's index changed too, and an incremental run's
    write of 51k scores among a million changed 26.4k pages where the update changes 19.3k."""
    n = len(columns[0])
    head = "INSERT INTO scores(order_id, score, codes, reasons, model_id, scored_at) VALUES "
    tail = (" ON CONFLICT(order_id) DO UPDATE SET score = excluded.score, codes = excluded.codes, "
            "reasons = excluded.reasons, model_id = excluded.model_id, scored_at = excluded.scored_at")

    def values(rows: int) -> str:  # ?1 and ?2 are the model id and time, shared by every row
        return ",".join(f"(?{p},?{p + 1},?{p + 2},?{p + 3},?1,?2)" for p in range(3, 3 + 4 * rows, 4)) + tail

    whole = n - n % ROWS_PER_INSERT
    if whole:
        flat = chain.from_iterable(zip(*(c[:whole] for c in columns), strict=True))
        shared = (model_id, scored_at)
        conn.executemany(head + values(ROWS_PER_INSERT),
                         (shared + chunk for chunk in zip(*[flat] * (4 * ROWS_PER_INSERT), strict=True)))
    if n > whole:
        conn.execute(head + values(n - whole),
                     [model_id, scored_at, *chain.from_iterable(zip(*(c[whole:] for c in columns), strict=True))])


def drop_indexes(conn: sqlite3.Connection, table: str) -> list[str]:
    """Drop the table's own indexes (not the primary key's); return the SQL that makes them again."""
    found = conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? "
                         "AND sql IS NOT NULL", [table]).fetchall()
    for name, _ in found:
        conn.execute('DROP INDEX "{}"'.format(name.replace('"', '""')))
    return [sql for _, sql in found]


class KeyOrder:
    """The order that sorts a set of order ids as SQLite compares them, and the ids made anew in that order.

    Rows are written in key order because each is then appended to the table's B-tree (a random insert costs
    several times more and leaves pages part-empty). The ids are made anew in that order, and the many empty
    codes and reasons are one shared object: binding then reads memory in sequence, not a million scattered
    objects. Only speed depends on this order; the rows written are the same."""

    def __init__(self, ids: np.ndarray):
        ordered = sorted_ids(ids)
        self.order, self.sorted = ordered if ordered is not None else (None, None)
        # sorted, the ids made anew are the ones written: the given ones (a million objects) are not kept beside them
        self.ids = ids if self.order is None else None

    def columns(self, score: np.ndarray, codes: np.ndarray, reasons: np.ndarray | str,
                rows: np.ndarray | None = None) -> ScoreColumns:
        """The columns (aligned with the ids) of the rows `rows` (a boolean mask; default all) in key order:
        scores to 7 digits, codes with every '' and reasons with every '[]' one shared object (`reasons` may
        be one text for all)."""
        if self.order is None:  # in order already, or not all text: as given
            pick = np.arange(len(self.ids)) if rows is None else np.flatnonzero(rows)
            ids = self.ids[pick].tolist()
        else:
            pick = self.order if rows is None else self.order[rows[self.order]]
            ids = self.sorted if rows is None else \
                np.asarray(self.sorted, dtype=object)[rows[self.order]].tolist()
        score = np.round(np.asarray(score, dtype=float)[pick], SCORE_DIGITS).tolist()
        text = [reasons] * len(pick) if isinstance(reasons, str) else shared_empty(reasons, "[]", pick)
        return ids, score, shared_empty(codes, "", pick), text


def rows_in_key_order(ids: np.ndarray, score: np.ndarray, codes: np.ndarray, reasons: np.ndarray | str
                      ) -> ScoreColumns:
    """All these rows' columns, sorted by order id when the ids are all text (see `KeyOrder`)."""
    return KeyOrder(np.asarray(ids, dtype=object)).columns(score, codes, reasons)


def sorted_ids(ids: np.ndarray) -> tuple[np.ndarray, list[str]] | None:
    """(the permutation that sorts the order ids, the sorted ids as new objects), or None when they are in
    order already or are not all text."""
    if len(ids) < 2 or not all(type(v) is str for v in ids.tolist()):
        return None
    if bool((ids[1:] > ids[:-1]).all()):
        return None
    try:
        keys = ids.astype("S")  # ASCII (all of them, in practice): bytes sort as SQLite's BINARY collation
        order = bytes_order(keys)
    except UnicodeEncodeError:
        keys = ids.astype("U")  # code points sort as their UTF-8 bytes do
        order = np.argsort(keys, kind="stable")
    # numpy text drops trailing NUL characters: made anew only when no id ends in one (none does, in practice)
    if np.array_equal(np.char.str_len(keys), np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))):
        return order, keys[order].astype("U").tolist()
    return order, ids[order].tolist()


def bytes_order(keys: np.ndarray) -> np.ndarray:
    """The stable argsort of NUL-padded byte strings, as integer sorts of their 8-byte big-endian words
    (about twice as fast as numpy's string sort): by the first word, then, among the rows that share it,
    by all their words."""
    width = keys.dtype.itemsize
    if width % 8:
        keys = keys.astype(f"S{width + 8 - width % 8}")
    words = keys.view(">u8").reshape(len(keys), -1)
    order = np.argsort(words[:, 0], kind="stable")
    if words.shape[1] > 1:
        first = words[order, 0]
        tied = np.flatnonzero(first[1:] == first[:-1])
        if len(tied):
            at = np.union1d(tied, tied + 1)  # the places of runs of equal first words
            rows = order[at]
            order[at] = rows[np.lexsort(words[rows].T[::-1])]
    return order


def shared_empty(column: Any, empty: str, pick: np.ndarray) -> list[Any]:
    """The text of `column` at the rows `pick`, in that order, as a list of Python objects with every `empty`
    value one shared object: most rows have no codes and no reasons, and pandas text would otherwise make
    a million separate copies of '[]'."""
    values = np.asarray(column, dtype=object)[pick]
    out = np.empty(len(values), dtype=object)
    out.fill(empty)  # the same object in every row (np.full would convert it anew for each row)
    rest = np.flatnonzero(values != empty)
    out[rest] = values[rest]
    return out.tolist()


# ------------------------------------------------------------------------------------ the child process


class ScoreWriteError(RuntimeError):
    """The child process writing the scores failed (its error) or ended; nothing of this write is committed."""


class ChildWrite:
    """One full write of `scores` in a spawned child process, driven step by step from the scorer.

    `begin` (the order ids, as soon as they are known) -> `rows` (their scores and codes, for the rows written
    now) -> `later` (the remaining rows, with their reasons) -> `commit` (the meta to set). Each step is sent
    without waiting; `commit` waits for the child's answers and raises `ScoreWriteError` for the first failure.
    `close` ends the child; without a commit, its transaction is rolled back.
    """

    def __init__(self, path: str):
        import multiprocessing

        context = multiprocessing.get_context("spawn")
        self._pipe, theirs = context.Pipe()
        # not a daemon: a program ending right after its scoring waits for the checkpoint rather than cutting it
        self._process = context.Process(target=serve, args=(theirs, path), name="tracker-score-writer")
        self._process.start()
        theirs.close()
        self._sent = 0
        self._broken = False
        self._committed = False

    def begin(self, ids: np.ndarray, untracked: Iterable[str]) -> None:
        """The full run's order ids (text); the child sorts them, takes the write lock, empties `scores` and drops
        its index, and deletes the scores of `untracked`."""
        self._send("begin", _packed(np.asarray(ids, dtype=object)), sorted(untracked))

    def rows(self, score: np.ndarray, codes: np.ndarray, now: np.ndarray, model_id: str, scored_at: str) -> None:
        """The scores and codes of every id given to `begin`; the rows where `now` is true go in now, with no
        reasons, and the score index is rebuilt after them."""
        self._send("rows", np.asarray(score, dtype=float), np.asarray(codes, dtype=object),
                   np.asarray(now, dtype=bool), model_id, scored_at)

    def later(self, ids: Sequence[str], score: np.ndarray, codes: np.ndarray, reasons: Sequence[str]) -> None:
        """More rows, with their reasons, in the same transaction."""
        self._send("later", np.asarray(ids, dtype=object), np.asarray(score, dtype=float),
                   np.asarray(codes, dtype=object), np.asarray(reasons, dtype=object))

    def commit(self, meta: dict[str, str]) -> None:
        """Set the meta, commit, and wait for the child: raises `ScoreWriteError` if any step failed."""
        self._send("commit", dict(meta))
        for _ in range(self._sent):
            try:
                answer = self._pipe.recv()
            except (EOFError, OSError) as exc:
                raise ScoreWriteError("the process writing the scores ended before it committed "
                                      "(killed?); the previous scores are kept") from exc
            if answer[0] != "ok":
                raise ScoreWriteError(f"writing the scores failed: {answer[1]}; the previous scores are kept")
        self._committed = True

    def close(self) -> None:
        """End the child: before a commit, it rolls back and this waits for it; after one, it checkpoints the log
        on its own while this process goes on (it is reaped by the next process start or at exit)."""
        self._pipe.close()
        if self._committed:
            return
        self._process.join(timeout=60)
        if self._process.is_alive():  # pragma: no cover - a child stuck in SQLite: its transaction dies with it
            self._process.kill()
            self._process.join()

    def _send(self, *message: Any) -> None:
        if not self._broken:
            try:
                self._pipe.send(message)
            except (OSError, ValueError):  # the child has stopped: its answers say why
                self._broken = True
        self._sent += 1


_SEPARATOR = "\x00"


def _packed(ids: np.ndarray) -> str | np.ndarray:
    """The ids as one text (a copy of a few megabytes to send, where pickling a million objects takes half a
    second), or as they are when one is not text or holds the separator."""
    values = ids.tolist()
    if all(type(v) is str for v in values):
        joined = _SEPARATOR.join(values)
        if joined.count(_SEPARATOR) == max(len(values) - 1, 0) and (len(values) != 1 or values[0]):
            return joined
    return ids


def _unpacked(ids: str | np.ndarray) -> np.ndarray:
    if not isinstance(ids, str):
        return ids
    values = np.empty(0 if not ids else ids.count(_SEPARATOR) + 1, dtype=object)
    if len(values):
        values[:] = ids.split(_SEPARATOR)
    return values


def serve(pipe: Any, path: str) -> None:
    """The child's side of `ChildWrite`: one write transaction on `path`, committed only when asked to."""
    inbox: Queue = Queue()

    def receive() -> None:  # in a thread, so a large message never waits for the step before it
        try:
            while True:
                inbox.put(pipe.recv())
        except (EOFError, OSError):
            inbox.put(None)  # the scorer closed its end: without a commit, nothing of this write stays

    threading.Thread(target=receive, daemon=True).start()
    conn = sqlite3.connect(path, timeout=30, isolation_level=None)
    try:
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=30000")
        conn.execute(f"PRAGMA cache_size = -{WRITE_CACHE_KIB}")
        # the commit does not copy the log into the database file (a checkpoint): that happens after the scorer
        # has its answer, below, while it goes on (a few hundred megabytes after a full rewrite)
        conn.execute("PRAGMA wal_autocheckpoint = 0")
        state: dict[str, Any] = {}
        while (message := inbox.get()) is not None:
            try:
                done = _step(conn, state, *message)
                del message  # not held while the next one is awaited (the begin's ids: tens of MB at a million)
                pipe.send(("ok",))
            except Exception as exc:  # noqa: BLE001 - every failure goes back to the scorer, which raises it
                pipe.send(("error", f"{type(exc).__name__}: {exc}"))
                return
            if done:
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)")  # as far as readers allow; later commits do the rest
                return
    finally:
        if conn.in_transaction:
            conn.rollback()
        conn.close()


def _step(conn: sqlite3.Connection, state: dict[str, Any], kind: str, *args: Any) -> bool:
    """One step of the child's write; True once committed."""
    if kind == "begin":
        ids, untracked = args
        state["order"] = KeyOrder(_unpacked(ids))  # before the lock: the sort needs no database
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("DELETE FROM scores")  # a full run is the whole truth
        # built once from the finished table (one sort) instead of updated at a million random places; dropped
        # inside the transaction, so a failed or killed run keeps it
        state["indexes"] = drop_indexes(conn, "scores")
        conn.executemany("DELETE FROM scores WHERE order_id = ?", ((o,) for o in untracked))
    elif kind == "rows":
        score, codes, now, state["model_id"], state["scored_at"] = args
        insert_scores(conn, state["order"].columns(score, codes, "[]", now), state["model_id"], state["scored_at"])
        with sort_cache(conn):
            for sql in state.pop("indexes"):
                conn.execute(sql)
    elif kind == "later":
        ids, score, codes, reasons = args
        insert_scores(conn, rows_in_key_order(ids, score, codes, reasons), state["model_id"], state["scored_at"])
    elif kind == "commit":
        (meta,) = args
        conn.executemany(META_SQL, meta.items())
        conn.execute("COMMIT")
        return True
    else:
        raise ValueError(f"unknown step {kind!r}")
    return False
