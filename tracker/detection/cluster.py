"""`tracker detect --engine dask`: the same detectors over the Parquet mirror, on a Dask cluster.

The store is first mirrored, incrementally (`tracker.mirror.export`), to DEST (`--parquet`; default a folder
beside the store); then, bucket by bucket on the cluster's workers (`tracker.detection.bucket_tasks`):

1. each seller message goes to the bucket of its order's number (a Dask merge of messages and orders);
2. the facts of every number from its scans, and the orders a chat message may correct (the client decides
   the corrections of the whole store at once, from the facts of the numbers the messages name);
3. every rule, corrections applied; findings, deadlines and each message's pressure written as Parquet;
4. the store's typical transit per destination, from every bucket's delivered orders (the client takes the
   medians); per order, its seller's and buyer's parts; Dask group-bys sum them per seller (and take each
   seller's median transit, absolute and relative to the destination's typical one) and per buyer, and merges
   hand each order its totals back, under its bucket;
5. the features with those totals, the classifier (broadcast to every worker once) and the reasons.

The client then merges flags and scores into the store in one transaction (`cluster_merge`) and opens cases as
a one-process run does. Every order is examined: the cluster's pass is the whole store's. Without a scheduler
address, a LocalCluster of worker processes on this machine runs it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import sqlite_utils

from tracker.detection import bucket_tasks
from tracker.detection.buckets import Run
from tracker.detection.pipeline import DetectSummary
from tracker.errors import BadInput, RunFailure

log = logging.getLogger(__name__)


def detect(db: sqlite_utils.Database, as_of: datetime, *, scheduler: str | None = None,
           parquet: str | None = None, workers: int | None = None, progress: bool | None = None) -> DetectSummary:
    """`tracker detect --engine dask`: see the module docstring. `workers`: of a LocalCluster (default: this
    machine's cores); `progress`: Dask's progress bar on stderr (default: when stderr is a terminal)."""
    from detectors.rules import all_rules
    from tracker import config
    from tracker.cases import sync
    from tracker.detection import cluster_merge, flagging, readers, registry, scoring, store
    from tracker.mirror.export import default_destination, export
    from tracker.mirror.layout import Destination

    _require_dask()
    started = time.perf_counter()
    summary = DetectSummary()
    conn = db.conn
    settings = flagging.load_settings()
    rules = all_rules()
    fingerprint = flagging._fingerprint(settings, rules)
    marks = flagging._marks(conn)  # before the export: what changes meanwhile is new to the next run
    dest = parquet or default_destination(db)
    if not Destination(dest).shared:
        raise BadInput(f"--parquet {dest}: a cluster's workers cannot read a process's own memory; give a folder "
                       "or a URL they all reach")
    exported = export(db, dest)
    manifest = Destination(dest).read_manifest()
    loaded = registry.load_active_model(db)
    run = Run(dest, manifest, as_of, settings, dict(config.load("model").get("scoring", {})),
              tuple((r.code, r.version) for r in rules), store.disputes(conn, None))
    seconds = {"export": time.perf_counter() - started}
    show = sys.stderr.isatty() if progress is None else progress
    with _client(scheduler, workers) as client:
        stage = _Stages(client, show, seconds)
        run.clear()
        shared = client.scatter(run, broadcast=True)
        stage.frame("route", _routed_messages(run))
        candidates = stage.tasks("facts", client.map(bucket_tasks.facts_and_candidates, range(run.buckets),
                                                      run=shared, pure=False))
        summary.examined = sum(c.examined for c in candidates)
        fixes = _corrections(client, stage, run, shared, candidates)
        # the message model's lean export where this install vouches for it (the workers' tasks then need no
        # scikit-learn for it), else the model itself
        model = client.scatter(registry.lean_message_model() or registry.message_model(), broadcast=True)
        done = stage.tasks("rules", client.map(bucket_tasks.rules, range(run.buckets), run=shared,
                                               fixes=client.scatter(fixes, broadcast=True), message_model=model,
                                               pure=False))
        if loaded is not None:
            typical = bucket_tasks.typical_transit(stage.tasks("typical", client.map(
                bucket_tasks.transits, range(run.buckets), run=shared, pure=False)),
                readers.kept_typical_transit(conn))
            stage.frame("totals", _totals(run, typical))
            classifier = client.scatter(loaded.model, broadcast=True)
            stage.tasks("scores", client.map(bucket_tasks.scores, range(run.buckets), run=shared, model=classifier,
                                             typical=typical, pure=False))
    t0 = time.perf_counter()
    score_meta = None
    if loaded is not None:
        score_meta = {scoring.META_SCORED_BY + loaded.model_id: json.dumps(loaded.scored_by(), sort_keys=True),
                      readers.TYPICAL_TRANSIT_META: json.dumps(typical, sort_keys=True)}
    merged = cluster_merge.merge(db, run, as_of, marks, fingerprint, loaded.model_id if loaded else None, score_meta)
    summary.flags_raised, summary.flags_resolved, summary.scored = merged.raised, merged.resolved, merged.scored
    seconds["merge"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    order_ids = {r[0] for r in conn.execute("SELECT order_id FROM orders")}
    summary.cases_opened, summary.cases_updated = sync.sync_cases(db, order_ids, as_of)
    seconds["cases"] = time.perf_counter() - t0
    summary.seconds = {k: round(v, 2) for k, v in seconds.items()}
    log.info("dask engine: %s; %d buckets; %d findings; %s", exported.line(), run.buckets,
             sum(d.findings for d in done), summary.seconds)
    return summary


def _require_dask() -> None:
    try:
        import dask  # noqa: F401
        import distributed  # noqa: F401
    except ImportError:
        raise BadInput("--engine dask needs Dask: pip install 'tracker[dask]'") from None


@contextlib.contextmanager
def _client(scheduler: str | None, workers: int | None) -> Iterator[Any]:
    """A client of the cluster at `scheduler`, else of a LocalCluster of worker processes (one thread each)."""
    import dask
    from distributed import Client, LocalCluster

    from tracker.plan import cores

    for name in ("distributed", "distributed.shuffle._scheduler_plugin"):
        logging.getLogger(name).setLevel(logging.ERROR)
    # text stays plain Python objects, as the detectors read it (not Arrow strings)
    with dask.config.set({"dataframe.convert-string": False}):
        if scheduler:
            try:
                client = Client(scheduler, timeout="30s")
            except OSError as exc:
                raise RunFailure(f"--scheduler {scheduler}: no Dask scheduler answers there ({exc})") from None
            with client:
                yield client
            return
        cluster = LocalCluster(n_workers=workers or cores(), threads_per_worker=1, processes=True,
                               dashboard_address=":0", silence_logs=logging.ERROR)
        with cluster, Client(cluster) as client:
            yield client


class _Stages:
    """Runs the stages, timing each; Dask's progress bar on stderr when asked for."""

    def __init__(self, client: Any, show: bool, seconds: dict[str, float]):
        self.client, self.show, self.seconds = client, show, seconds

    def _wait(self, name: str, futures: Any) -> None:
        if self.show:
            from distributed import progress

            print(f"tracker: {name}", file=sys.stderr)
            with contextlib.redirect_stdout(sys.stderr):
                progress(futures)
                print(file=sys.stderr)

    def tasks(self, name: str, futures: list[Any]) -> list[Any]:
        started = time.perf_counter()
        self._wait(name, futures)
        out = self.client.gather(futures)
        self.seconds[name] = time.perf_counter() - started
        return out

    def frame(self, name: str, collection: Any) -> Any:
        started = time.perf_counter()
        future = self.client.compute(collection)
        self._wait(name, future)
        out = future.result()
        self.seconds[name] = time.perf_counter() - started
        return out


def _routed_messages(run: Run) -> Any:
    """Seller messages joined to their order's bucket (a message whose order is unknown stays in its own
    bucket), shuffled by that bucket and written to the run's `messages`."""
    import dask.dataframe as dd
    import numpy as np
    import pandas as pd

    meta = pd.DataFrame({"id": pd.Series(dtype=np.int64), "order_id": pd.Series(dtype=object),
                         "sent_at": pd.Series(dtype=object), "text": pd.Series(dtype=object),
                         "home": pd.Series(dtype=np.int32)})
    messages = dd.from_map(bucket_tasks.mirrored_seller_messages, range(run.buckets), run=run, meta=meta,
                           enforce_metadata=False)
    keys = dd.from_map(bucket_tasks.order_keys, range(run.buckets), run=run, enforce_metadata=False,
                       meta=pd.DataFrame({"order_id": pd.Series(dtype=object), "bucket": pd.Series(dtype=np.int32)}))
    routed = messages.merge(keys, on="order_id", how="left")
    routed["bucket"] = routed["bucket"].fillna(routed["home"]).astype(np.int32)
    routed = routed.drop(columns="home").shuffle("bucket", npartitions=run.buckets)
    return routed.map_partitions(bucket_tasks.write_by_bucket, "messages", run,
                                 meta=pd.DataFrame({"rows": pd.Series(dtype=np.int64)}))


def _corrections(client: Any, stage: _Stages, run: Run, shared: Any,
                 candidates: list[bucket_tasks.Candidates]) -> bucket_tasks.Corrections:
    """The corrections of the whole store: the facts and order counts of the numbers the messages name, read
    where those numbers' buckets are."""
    from tracker.mirror.layout import buckets_of

    numbers = sorted(bucket_tasks.named_numbers(candidates))
    if not numbers:
        return bucket_tasks.Corrections()
    # each bucket's task is handed its own numbers: one set of every number, a keyword argument of every task,
    # became a task of its own keyed by the argument's name once it passed 100 kB (distributed's `Client.map`),
    # and at a million orders the scheduler failed on it (AssertionError: <TaskState 'numbers' processing>)
    wanted: dict[int, list[str]] = {}
    for number, bucket in zip(numbers, buckets_of(numbers, run.buckets).tolist(), strict=True):
        wanted.setdefault(int(bucket), []).append(number)
    where = sorted(wanted)
    found = stage.tasks("corrections", client.map(bucket_tasks.lookups, where, [frozenset(wanted[b]) for b in where],
                                                  run=shared, pure=False))
    return bucket_tasks.decide(candidates, found, run.buckets)


def _totals(run: Run, typical: dict[str, float]) -> Any:
    """Each order's seller totals (sums and median transit, by Dask group-bys over every bucket) and buyer totals,
    merged back onto the order and written to the run's `context` under its bucket."""
    import dask.dataframe as dd
    import numpy as np
    import pandas as pd

    from detectors import features

    book = dd.from_map(bucket_tasks.book, range(run.buckets), run=run, typical=typical,
                       meta=bucket_tasks.book_meta(), enforce_metadata=False)
    sums = book.groupby("seller_id")[list(features.SELLER_SUMS)].sum()
    sellers = sums
    for column, name in (("transit", "median_transit"), ("relative", "median_relative")):
        # one Series' median at a time: a two-column grouped median merged after it trips Dask's optimizer
        median = book.groupby("seller_id")[column].median().to_frame(name)
        sellers = sellers.merge(median, left_index=True, right_index=True, how="left")
    buyers = book.groupby("buyer_id")[list(features.BUYER_SUMS)].sum()
    per_order = book[["bucket", "order_id", "seller_id", "buyer_id"]] \
        .merge(sellers, left_on="seller_id", right_index=True, how="left") \
        .merge(buyers, left_on="buyer_id", right_index=True, how="left")
    per_order = per_order[["bucket", *bucket_tasks.CONTEXT_COLUMNS]].shuffle("bucket", npartitions=run.buckets)
    return per_order.map_partitions(bucket_tasks.write_by_bucket, "context", run,
                                    meta=pd.DataFrame({"rows": pd.Series(dtype=np.int64)}))
