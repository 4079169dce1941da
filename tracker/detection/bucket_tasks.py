"""What a Dask cluster's workers run, one bucket of the mirror each: the pure detectors, as in one process.

- `facts_and_candidates`: the bucket's shipment facts from its events (`detectors.facts`), and the orders whose
  invalid number a seller message may correct (`detectors.corrections`), for the client to decide them all;
- `lookups`: the facts and order counts of the numbers those messages name;
- `rules`: every rule over the bucket's orders (`detectors.rules`), corrections applied; the findings go to the
  run's `flags` under the bucket of the order's own number, with the deadlines and each seller message's
  pressure for the features;
- `book`: per order, what its seller's aggregates and its buyer's history are made of (`detectors.features`),
  which the cluster sums with group-bys;
- `scores`: the feature frame with those whole-store totals, the classifier (broadcast once) and the reasons.

A number's orders and scans share a bucket, so its facts, how many orders and buyers carry it, and its reuse
cluster are whole within the bucket. An order whose number a message corrects is judged in the bucket of the
corrected number (`Corrections`), with that number's other orders, as the one-process run judges it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from detectors import corrections, facts, features, view
from detectors.rules import RuleContext, all_rules
from tracker.detection import buckets
from tracker.detection.buckets import Run

FLAG_COLUMNS = ("order_id", "code", "severity", "explanation", "evidence", "rule_version")


def _schema(*fields: tuple[str, str]) -> Any:
    import pyarrow as pa

    kinds = {"string": pa.string(), "int64": pa.int64(), "float64": pa.float64(), "int32": pa.int32()}
    return pa.schema([(name, kinds[kind]) for name, kind in fields])


FLAGS_SCHEMA = _schema(*((c, "string") for c in FLAG_COLUMNS))
DEADLINES_SCHEMA = _schema(("order_id", "string"), ("due_jd", "float64"))
PRESSURE_SCHEMA = _schema(("id", "int64"), ("probability", "float64"))
SCORES_SCHEMA = _schema(("order_id", "string"), ("score", "float64"), ("codes", "string"), ("reasons", "string"))
SELLER_TOTALS = (*features.SELLER_SUMS, "median_transit", "median_relative")
CONTEXT_COLUMNS = ("order_id", "seller_id", "buyer_id", *SELLER_TOTALS, *features.BUYER_SUMS)


# ----------------------------------------------------------------------------------- the messages' route

def mirrored_seller_messages(bucket: int, run: Run) -> pd.DataFrame:
    """The seller messages of one bucket of the mirror (bucketed by order id), each with that bucket ('home': where
    a message whose order is unknown is judged)."""
    table = run.mirrored("messages", bucket, ["id", "order_id", "sender", "sent_at", "text"])
    frame = table.to_pandas(types_mapper=None)
    seller = frame["sender"].astype(object).fillna("").str.lower().to_numpy(dtype=object) == "seller"
    frame = frame.loc[seller, ["id", "order_id", "sent_at", "text"]].astype(
        {"id": np.int64, "order_id": object, "sent_at": object, "text": object})
    frame["home"] = np.int32(bucket)
    return frame.reset_index(drop=True)


def order_keys(bucket: int, run: Run) -> pd.DataFrame:
    """The order ids of one bucket, with the bucket."""
    table = run.mirrored("orders", bucket, ["order_id"])
    return pd.DataFrame({"order_id": pd.Series(buckets.objects(table.column("order_id")), dtype=object),
                         "bucket": np.full(table.num_rows, bucket, dtype=np.int32)})


def write_by_bucket(frame: pd.DataFrame, name: str, run: Run, partition_info: dict | None = None) -> pd.DataFrame:
    """Write a partition's rows under the run's `name`, one file per bucket they belong to; returns a count."""
    import pyarrow as pa

    part = f"p{(partition_info or {}).get('number', 0)}"
    for bucket, rows in frame.groupby("bucket", sort=True):
        run.write(name, int(bucket), pa.Table.from_pandas(rows.drop(columns="bucket"), preserve_index=False), part=part)
    return pd.DataFrame({"rows": [len(frame)]})


# ------------------------------------------------------------------------------ facts and corrections

@dataclass
class Candidates:
    """Of one bucket: the seller messages of its orders with an invalid number that name a valid one (newest
    first), and those orders' rows (order and shipment columns, and the bucket)."""

    messages: pd.DataFrame
    rows: pd.DataFrame
    examined: int = 0


def facts_and_candidates(bucket: int, run: Run) -> Candidates:
    """The bucket's facts, written to the run; the orders a chat message may correct: those with an invalid number
    and a seller message naming a valid one (the messages looked at first: far fewer than the orders)."""
    found = buckets.shipment_facts(buckets.events(run, bucket), run.kinds)
    run.write("facts", bucket, buckets.facts_table(found))
    frame = buckets.order_frame(run, bucket)
    messages = buckets.seller_messages(run, bucket)
    texts = messages["text"].to_numpy(dtype=object)
    distinct = pd.unique(texts)
    naming = dict(zip(distinct, (bool(corrections.numbers_in(t if isinstance(t, str) else "")) for t in distinct),
                      strict=True))
    messages = messages[np.fromiter((naming[t] for t in texts), dtype=bool, count=len(texts))]
    asked = frame[frame["order_id"].isin(set(messages["order_id"]))]
    invalid = corrections.invalid_orders(asked[["order_id", "tracking_number"]].copy())
    messages = messages[messages["order_id"].isin(list(invalid))]
    rows = asked[asked["order_id"].isin(list(invalid))].assign(bucket=np.int32(bucket))
    return Candidates(messages.reset_index(drop=True), rows.reset_index(drop=True), len(frame))


def lookups(bucket: int, numbers: frozenset[str], run: Run) -> pd.DataFrame:
    """The facts of these numbers (this bucket's) as the bucket holds them, with how many of its orders carry each
    (`n_orders`: a number's orders are in its bucket)."""
    found = buckets.facts_of_table(run.read("facts", bucket, buckets.FACTS_SCHEMA))
    keep = np.flatnonzero(pd.Index(found["tracking_number"], dtype=object).isin(list(numbers)))
    frame = pd.DataFrame({name: values[keep] for name, values in found.items()})
    carried = buckets.objects(run.mirrored("orders", bucket, ["tracking_number"]).column("tracking_number"))
    counts = pd.Series(carried[pd.Index(carried, dtype=object).isin(list(numbers))], dtype=object).value_counts()
    frame["n_orders"] = frame["tracking_number"].map(counts).fillna(0).astype(np.int64)
    return frame


@dataclass
class Corrections:
    """Every bucket's candidates decided at once: the messages (newest first), the named numbers with scans and
    their facts and order counts, and the orders judged in another bucket than their own number's."""

    messages: pd.DataFrame = field(default_factory=pd.DataFrame)
    known: frozenset[str] = frozenset()
    replacement: pd.DataFrame = field(default_factory=pd.DataFrame)
    moved: pd.DataFrame = field(default_factory=pd.DataFrame)  # the rows, with 'bucket' (own) and 'to' (judged in)

    def messages_of(self, order_ids: list[str]) -> pd.DataFrame:
        if self.messages.empty:
            return pd.DataFrame({"id": [], "order_id": [], "text": []})
        return self.messages[self.messages["order_id"].isin(order_ids)][["id", "order_id", "text"]]

    def facts_of(self, numbers: set[str]) -> pd.DataFrame:
        found = self.replacement[self.replacement["tracking_number"].isin(list(numbers))]
        missing = sorted(set(numbers) - set(found["tracking_number"]))
        if missing:
            found = pd.concat([found, pd.DataFrame({"tracking_number": missing, "n_orders": 0})], ignore_index=True)
        return found.reset_index(drop=True)


def decide(candidates: list[Candidates], found: list[pd.DataFrame], buckets_count: int) -> Corrections:
    """The corrections of the whole store, as `detectors.corrections` chooses them: per order, its newest seller
    message naming a valid number that has scans."""
    from tracker.mirror.layout import buckets_of

    messages = pd.concat([c.messages for c in candidates], ignore_index=True) if candidates else pd.DataFrame()
    if messages.empty:
        return Corrections()
    messages = messages.sort_values(["sent_at", "id"], ascending=False, kind="stable").reset_index(drop=True)
    replacement = pd.concat(found, ignore_index=True) if found else pd.DataFrame({"tracking_number": []})
    known = frozenset(replacement["tracking_number"])
    chosen = corrections.chosen_numbers(messages[["id", "order_id", "text"]], lambda numbers: numbers & known)
    rows = pd.concat([c.rows for c in candidates], ignore_index=True)
    rows = rows[rows["order_id"].isin(list(chosen))].copy()
    rows["to"] = buckets_of([chosen[o][0] for o in rows["order_id"]], buckets_count)
    return Corrections(messages, known, replacement, rows[rows["to"] != rows["bucket"]].reset_index(drop=True))


def named_numbers(candidates: list[Candidates]) -> frozenset[str]:
    return frozenset(n for c in candidates for text in c.messages["text"]
                     for n in corrections.numbers_in(text if isinstance(text, str) else ""))


# ------------------------------------------------------------------------------------------------ rules

@dataclass
class RulesDone:
    examined: int
    findings: int


def rule_frame(run: Run, bucket: int, fixes: Corrections) -> tuple[pd.DataFrame, dict[str, int]]:
    """The rules' frame of this bucket (as `tracker.detection.readers.rule_frame` reads the store): orders, shipment,
    facts, orders per number, corrections applied; with the orders judged here whose own number is elsewhere
    (order id -> their bucket)."""
    known = buckets.facts_of_table(run.read("facts", bucket, buckets.FACTS_SCHEMA))
    frame = buckets.order_frame(run, bucket)
    buckets.join_facts(frame, known)
    frame["n_orders_on_number"] = view.orders_on_number(frame["tracking_number"])
    elsewhere: dict[str, int] = {}
    if not fixes.moved.empty:
        leaving = fixes.moved.loc[fixes.moved["bucket"] == bucket, "order_id"]
        frame = frame[~frame["order_id"].isin(list(leaving))]
        arriving = fixes.moved[fixes.moved["to"] == bucket]
        if len(arriving):
            elsewhere = dict(zip(arriving["order_id"], arriving["bucket"].astype(int), strict=True))
            rows = arriving.drop(columns=["bucket", "to"]).reset_index(drop=True)
            buckets.join_facts(rows, known)  # their own number's facts are elsewhere: none here (the correction's)
            rows["n_orders_on_number"] = np.zeros(len(rows), dtype=np.int64)
            frame = pd.concat([frame, rows[frame.columns]], ignore_index=True)
        frame = frame.reset_index(drop=True)
    corrections.apply_corrections(frame, fixes.messages_of, lambda numbers: numbers & fixes.known, fixes.facts_of,
                                  facts.FACT_COLUMNS)
    return frame, elsewhere


def rules(bucket: int, run: Run, fixes: Corrections, message_model: Any) -> RulesDone:
    """Every rule over the bucket; findings, deadlines and the seller messages' pressure written to the run."""
    import pyarrow as pa

    from detectors import message_scoring
    from tracker.detection import flagging

    registered = all_rules()
    if tuple((r.code, r.version) for r in registered) != run.rules:
        raise RuntimeError(f"this worker runs other rules ({[(r.code, r.version) for r in registered]}) than the "
                           f"client ({list(run.rules)}): install the same tracker and plugins on every worker")
    events = buckets.events(run, bucket)
    frame, elsewhere = rule_frame(run, bucket, fixes)
    messages = buckets.seller_messages(run, bucket)

    def pressure(texts: list[str]) -> list[float]:
        if isinstance(message_model, message_scoring.LeanMessageModel):
            return message_model.pressure(texts)
        from detectors import message_model as pressure_model  # scikit-learn's pipeline: its module

        return pressure_model.pressure_of(message_model, texts)

    ctx = RuleContext(
        run.as_of, run.settings, orders=frame, events=buckets.event_records(events),
        seller_messages=pd.DataFrame({"id": messages["id"], "order_id": messages["order_id"],
                                      "sent_jd": buckets.message_jd(messages), "text": messages["text"]}),
        disputes=run.disputes, pressure=pressure)
    found = flagging._collect(registered, ctx)
    due = flagging._deadlines(registered, ctx)
    rows = pd.DataFrame({
        "order_id": [f.order_id for f in found], "code": [f.code for f in found],
        "severity": [f.severity for f in found], "explanation": [f.explanation for f in found],
        "evidence": [flagging._evidence_json(f.evidence) for f in found],
        "rule_version": [f.rule_version for f in found]}, columns=list(FLAG_COLUMNS))
    own = rows["order_id"].map(elsewhere).fillna(bucket).astype(int) if len(rows) else pd.Series([], dtype=int)
    for home in sorted(set(own.tolist()) | {bucket}):  # each order's flags under its own number's bucket
        pick = rows[(own == home).to_numpy()]
        run.write("flags", home, pa.Table.from_pandas(pick, schema=FLAGS_SCHEMA, preserve_index=False),
                  part=f"from-{bucket}")
    run.write("deadlines", bucket, pa.table({"order_id": pa.array(list(due.index), pa.string()),
                                             "due_jd": pa.array(due.to_numpy(dtype=float), pa.float64())}))
    probability = features.score_messages(messages[["id", "order_id", "text"]], pressure) if len(messages) else \
        np.zeros(0)
    run.write("pressure", bucket, pa.table({"id": pa.array(messages["id"].to_numpy(dtype=np.int64)),
                                            "probability": pa.array(np.asarray(probability, dtype=float))}))
    return RulesDone(len(frame), len(rows))


# --------------------------------------------------------------------------------------------- features

def feature_base(run: Run, bucket: int) -> tuple[pd.DataFrame, features.Side, np.ndarray | None]:
    """The classifier's frame of this bucket before its context: orders (their own numbers) and facts, and the
    side: active flags and seller messages with their pressure."""
    frame = buckets.order_frame(run, bucket, shipments=False)
    buckets.join_facts(frame, buckets.facts_of_table(run.read("facts", bucket, buckets.FACTS_SCHEMA)))
    flags = run.read("flags", bucket, FLAGS_SCHEMA).select(["order_id", "code", "severity"]).to_pandas()
    flags = flags.astype(object).drop_duplicates(["order_id", "code"]).reset_index(drop=True)
    messages = buckets.seller_messages(run, bucket)[["id", "order_id", "text"]]
    scored = run.read("pressure", bucket, PRESSURE_SCHEMA).to_pandas()
    pressure = messages["id"].map(pd.Series(scored["probability"].to_numpy(), index=scored["id"].to_numpy())
                                  ).to_numpy(dtype=float) if len(messages) else None
    frame["target"] = True
    return frame, features.Side(flags, messages), pressure


def transits(bucket: int, run: Run) -> pd.DataFrame:
    """Per delivered order of the bucket: its destination country (normalised) and its transit in days, what the
    store's typical transit per destination is the median of (`features.typical_transit`)."""
    frame, _, _ = feature_base(run, bucket)
    transit = (frame["delivered_jd"] - frame["first_event_jd"]).to_numpy(dtype=np.float64)
    done = ~np.isnan(transit)
    country = features.normalised_countries(frame["dest_country"])
    return pd.DataFrame({"country": country[done], "transit": transit[done]})


def typical_transit(found: list[pd.DataFrame], kept: dict[str, float] | None = None) -> dict[str, float]:
    """The whole store's typical transit per destination, from every bucket's `transits`, settled against the one
    the store's scores were made with (`kept`, see `features.settled_typical`)."""
    every = pd.concat(found, ignore_index=True) if found else pd.DataFrame({"country": [], "transit": []})
    return features.settled_typical(features.typical_transit(every["country"].to_numpy(dtype=object),
                                                             every["transit"].to_numpy(dtype=np.float64)), kept)


def book(bucket: int, run: Run, typical: dict[str, float]) -> pd.DataFrame:
    """Per order of the bucket: its seller's and its buyer's parts of their totals (`features.seller_book`,
    `features.buyer_book`); `typical`: the store's typical transit per destination."""
    frame, side, pressure = feature_base(run, bucket)
    if frame.empty:
        return book_meta()
    features.add_side(frame, side, pressure)
    features.add_number_and_buyer_context(frame)  # the numbers' counts: whole within the bucket
    features.add_typical_transit(frame, typical)
    seller, buyer = features.seller_book(frame), features.buyer_book(frame)
    out = pd.concat([seller, buyer], axis=1)
    out.insert(0, "order_id", frame["order_id"].to_numpy(dtype=object))
    out.insert(0, "bucket", np.int32(bucket))
    return out.reset_index(drop=True)


def book_meta() -> pd.DataFrame:
    columns: dict[str, Any] = {"bucket": pd.Series(dtype=np.int32), "order_id": pd.Series(dtype=object),
                               "seller_id": pd.Series(dtype=object), "transit": pd.Series(dtype=float),
                               "relative": pd.Series(dtype=float)}
    columns |= {name: pd.Series(dtype=float) for name in features.SELLER_SUMS}
    columns["buyer_id"] = pd.Series(dtype=object)
    columns |= {name: pd.Series(dtype=float) for name in features.BUYER_SUMS}
    return pd.DataFrame(columns)


def _one_thread(model: Any) -> None:
    """The boosters' binners as many threads as the worker allows (one), not as many as its training machine had:
    its fixed count of OpenMP threads, two workers to two cores, spin-waits a hundredfold slower. Binning is per
    value: the same bins either way."""
    from detectors.classifier import bin_threads

    bin_threads(model.named_steps["classifier"], None)


def scores(bucket: int, run: Run, model: Any, typical: dict[str, float]) -> int:
    """The bucket's scores and reasons, written to the run; returns how many."""
    import pyarrow as pa

    from detectors.classifier import fraud_probability
    from detectors.reasons import explain
    from tracker.detection import threads

    frame, side, pressure = feature_base(run, bucket)
    if frame.empty:
        return 0
    _one_thread(model)
    context = run.read("context", bucket).to_pandas()
    features.add_side(frame, side, pressure)
    features.add_number_and_buyer_context(frame)  # the numbers' counts (whole here); the buyers' come next
    numbers = frame.groupby("tracking_number", sort=False)[["n_orders_on_number", "buyers_on_number"]].first()
    sellers = context.drop_duplicates("seller_id").set_index("seller_id")[list(SELLER_TOTALS)]
    buyers = context.drop_duplicates("buyer_id").set_index("buyer_id")[list(features.BUYER_SUMS)]
    features.feature_frame(frame, side, pressure, run.as_of, None, (numbers, buyers), sellers, typical)
    tracked = features.has_text(frame["tracking_number"])
    every = bool(tracked.all())
    values = model.named_steps["features"].transform_frame(frame, None if every else np.flatnonzero(tracked))
    kept = frame if every else frame[tracked]
    classifier = model.named_steps["classifier"]
    matrix = values.to_numpy(dtype=np.float64)
    settings = run.scoring
    with threads.limit(1):
        score = fraud_probability(classifier, matrix)
        min_score = float(settings.get("reasons_min_score", 0.1))
        rows = np.flatnonzero(score >= min_score)
        reasons = np.full(len(score), "[]", dtype=object)
        if len(rows):
            reasons[rows] = explain(classifier, values.iloc[rows], matrix[rows], score[rows], min_score=min_score,
                                    max_reasons=int(settings.get("max_reasons", 3)),
                                    min_contribution=float(settings.get("min_contribution", 0.1)))
    run.write("scores", bucket, pa.table({
        "order_id": pa.array(kept["order_id"].to_numpy(dtype=object), pa.string()),
        "score": pa.array(score, pa.float64()),
        "codes": pa.array(kept["codes"].to_numpy(dtype=object), pa.string()),
        "reasons": pa.array(reasons, pa.string())}, schema=SCORES_SCHEMA))
    return len(score)
