"""Every seller message's pressure probability, worked out in a child process while the rules run.

The classifier reads the message model's pressure of each seller message of the orders it scores, through the
store's cache (`message_pressure`: one row per message and message model, `scoring.message_scorer`), and works
out only what the cache lacks. A whole-store run over a fresh store lacks all of it: a million orders' seller
messages cost the scoring stage several seconds of TF-IDF on one core, while the rules stage before it leaves the
second core idle. So a whole-store run with many messages fills the cache in a child process from the moment the
scans are read, and the scoring stage finds it full.

The probabilities are the ones the scoring stage would work out: the same model scores each text on its own (a
text's TF-IDF row and its logistic score do not depend on the other texts of the batch), and the cache already
carries them from one run to the next. A child that fails or is refused leaves the cache as it was: the scoring
stage then works out what is missing itself, and says why the model cannot be used.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Iterable
from concurrent.futures import Future

from tracker.detection.children import Children
from tracker.plan import Plan, child_file

log = logging.getLogger(__name__)

MISSING_SQL = (
    "SELECT m.id, m.text FROM messages m LEFT JOIN message_pressure p ON p.message_id = m.id AND p.model = ? "
    "WHERE lower(m.sender) = 'seller' AND p.message_id IS NULL ORDER BY m.id"
)
# each seller message's cached probability by its text, as `fill` stored them ('' for a message without text)
CACHED_SQL = ("SELECT coalesce(m.text, ''), p.probability FROM message_pressure p JOIN messages m ON m.id = p.message_id "
              "WHERE p.model = ? AND lower(m.sender) = 'seller'")
INSERT_SQL = "INSERT OR REPLACE INTO message_pressure(message_id, model, probability) VALUES (?, ?, ?)"
# the cached probabilities of the seller messages of some orders, by text (as CACHED_SQL)
SCOPED_SQL = ("SELECT coalesce(m.text, ''), p.probability FROM json_each(?) j CROSS JOIN messages m ON m.order_id = "
              "j.value JOIN message_pressure p ON p.message_id = m.id WHERE p.model = ? AND lower(m.sender) = 'seller'")


class Filling:
    """The child's work, if any was started: `wait` returns how many messages it scored (0 when it failed)."""

    def __init__(self, children: Children | None, future: Future | None):
        self.children, self.future = children, future

    def wait(self) -> int:
        if self.future is None:
            return 0
        try:
            scored, seconds = self.future.result()
            if scored:
                log.info("pressure cache: the child scored %d seller messages in %.2f s", scored, seconds)
            return int(scored)
        except Exception as exc:  # noqa: BLE001 - the scoring stage works out what is missing, and says why
            log.debug("pressure cache: the child did not fill it (%s)", exc)
            return 0
        finally:
            if self.children is not None:
                self.children.release()
            self.future = self.children = None


    def pressure(self, conn: sqlite3.Connection) -> Callable[[list[str]], list[float]]:
        """The message model's pressure of each text, as `registry.message_pressure` gives it: read from the cache
        once the child has filled it (a text it lacks, or any text before then, worked out here). The rules'
        seller_pressure asks for the texts the child is scoring anyway."""
        def pressure(texts: list[str]) -> list[float]:
            from tracker.detection import registry

            future = self.future
            if future is None or not future.done() or future.exception() is not None:
                return registry.message_pressure(texts)
            key = registry.message_model_key()
            return _with_cache({text: p for text, p in conn.execute(CACHED_SQL, [key])}, texts)
        return pressure

    def abandon(self) -> None:
        """End the child now, its work under way dropped (a killed write leaves the cache as it was)."""
        if self.children is not None:
            self.children.terminate()
        self.future = self.children = None


def start(conn: sqlite3.Connection, plan: Plan) -> Filling:
    """Start filling the cache in a child process when it pays: child processes may read the store, and it holds
    at least `whole_pressure_cache_from` messages (a cheap bound: the largest message id)."""
    path = child_file(conn, plan)
    if path is None:
        return Filling(None, None)
    try:
        largest = int(conn.execute("SELECT max(id) FROM messages").fetchone()[0] or 0)
    except sqlite3.OperationalError:
        return Filling(None, None)
    if largest < plan.limits.whole_pressure_cache_from:
        return Filling(None, None)
    from tracker.detection import registry

    key = registry.message_model_key()
    children = Children(1, background=True)  # wanted by the scoring stage: the scans' readers go first
    try:
        future = children.submit(fill, path, key)
    except Exception as exc:  # noqa: BLE001 - no child process here: the scoring stage does it all
        log.debug("pressure cache: no child process (%s)", exc)
        children.close()
        return Filling(None, None)
    children.release()  # its only task: the child ends once it is done, its memory not held through the rules
    return Filling(children, future)


def fill(path: str, model_key: str) -> tuple[int, float]:
    """In the child: score the seller messages the cache lacks for this model (each distinct text once, as
    `detectors.features.score_messages` does) and store them in one short transaction. Returns how many, and the
    seconds it took."""
    import time

    from tracker.detection import registry

    started = time.perf_counter()
    conn = sqlite3.connect(path, timeout=60)
    try:
        conn.execute("PRAGMA busy_timeout=60000")
        rows = conn.execute(MISSING_SQL, [model_key]).fetchall()
        if not rows:
            return 0, time.perf_counter() - started
        texts = ["" if text is None else str(text) for _, text in rows]
        distinct = list(dict.fromkeys(texts))
        probability = dict(zip(distinct, registry.message_pressure(distinct), strict=True))
        with conn:
            conn.executemany(INSERT_SQL, ((message_id, model_key, probability[text])
                                          for (message_id, _), text in zip(rows, texts, strict=True)))
        return len(rows), time.perf_counter() - started
    finally:
        conn.close()


def scoped(conn: sqlite3.Connection, order_ids: Iterable[str]) -> Callable[[list[str]], list[float]]:
    """The message model's pressure of each text, as `registry.message_pressure` gives it, for a run over these
    orders: read from the cache of their seller messages (an earlier run scored most of them), only a text it
    lacks worked out. The rules of an incremental run then load neither the model nor scikit-learn (the scoring
    stage imports it meanwhile, in its thread: `preload`) for messages the cache holds."""
    def pressure(texts: list[str]) -> list[float]:
        from tracker.detection import registry, store

        if not texts:
            return []
        key = registry.message_model_key()
        return _with_cache(dict(conn.execute(SCOPED_SQL, [store.as_sorted_json(order_ids), key]).fetchall()), texts)
    return pressure


def _with_cache(known: dict[str, float], texts: list[str]) -> list[float]:
    """Each text's probability: from `known` (the cache's, by text), a text it lacks worked out by the model."""
    from tracker.detection import registry

    missing = [t for t in dict.fromkeys(str(t or "") for t in texts) if t not in known]
    if missing:
        known.update(zip(missing, registry.message_pressure(missing), strict=True))
    log.debug("pressure cache: %d of %d texts read from the cache", len(texts) - len(missing), len(texts))
    return [known[str(t or "")] for t in texts]
