"""Which scores must be worked out again: exactly those whose model input moved to the other side of a split.

A gradient-boosted model sends a row left or right at each split by comparing one feature with the split's
threshold (a bin edge: it only ever sees binned values). Two rows whose every feature lies on the same side of
every threshold the model tests get the same trees' outputs, so the same score, bit for bit. So:

- an order is rescored when one of its own inputs changed (the rules examined it, its buyer's or number's
  other orders changed), or
- when its seller's statistics or its buyer's history moved one of its seller or buyer features across a
  threshold (`seller_crossings`; `tracker.detection.scoring`), or
- when time alone carries one of its age features across a threshold (`due_times`: the Julian day from which
  that can happen, kept per order in its seller's book).

`decision_edges` is the one place that reads the fitted model's private parts (or its lean export's arrays); where it does not know the
model's shape, every feature counts as having no known edges, and any change of value rescores the order.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from detectors import seller_aggregates as sa

# feature name -> the thresholds the model tests it against (None: unknown); a feature it never tests is absent
Edges = dict[str, np.ndarray | None]
TIME_STEP = 1.0 / 1440  # a minute: how far ahead the age features are probed for their slope
MARGIN = 1e-6  # days a due time is moved earlier, so rounding never lets a crossing slip past
DUE_ROWS = 200_000  # frame rows whose features `due_times` works out again at a time


def decision_edges(model: Any, features: list[str]) -> Edges:
    """Per feature of the scoring pipeline (`features`, in the model's column order), the sorted thresholds its
    trees test it against (`detectors.classifier.score_edges`: the split edges of every boosted part of the blend;
    None where a part reads it linearly, the rules prior, so that any change counts). A feature nothing reads is
    left out: it cannot change a score. Any other shape of model: no edges known, and every change counts."""
    from detectors.lean_model import LeanModel

    unknown: Edges = {name: None for name in features}
    try:
        if isinstance(model, LeanModel):
            edges = model.classifier.score_edges(list(model.features.names))
        else:
            from detectors.classifier import score_edges

            edges = score_edges(model)
    except (AttributeError, KeyError, IndexError, TypeError, ValueError, ImportError):
        return unknown
    if list(edges) != list(features):
        return unknown
    return {name: values for name, values in edges.items() if values is None or len(values)}


def sides(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Per value, which side of every threshold it lies on, as one integer: how many thresholds are below it
    (a split sends a value left when it is at most the threshold), -1 for NaN (missing values have their own way)."""
    values = np.asarray(values, dtype=float)
    return np.where(np.isnan(values), -1, np.searchsorted(edges, values, side="left"))


def moved(old: np.ndarray, new: np.ndarray, edges: np.ndarray | None) -> np.ndarray:
    """Per pair, whether the model could tell the two values apart."""
    old, new = np.asarray(old, dtype=float), np.asarray(new, dtype=float)
    if edges is None:
        return ~((old == new) | (np.isnan(old) & np.isnan(new)))
    return sides(old, edges) != sides(new, edges)


def phrase_moved(old: dict[str, np.ndarray], new: dict[str, np.ndarray], names: list[str],
                 rows: np.ndarray | None = None) -> np.ndarray:
    """Per row (`rows`: a mask of the rows to compare, the others False), whether a reason quoting these features
    would read differently: the phrase of each reason group they belong to (`detectors.reasons.describe_many`,
    over those of them the model reads, `names`, as the scores quote them) before and after."""
    from detectors import reasons
    from detectors.feature_basics import FEATURE_GROUPS

    n = len(next(iter(new.values()))) if new else 0
    out = np.zeros(n, dtype=bool)
    at = np.arange(n) if rows is None else np.flatnonzero(rows)
    if not len(at):
        return out
    read = [name for name in names if name in new]
    for group in sorted({FEATURE_GROUPS[name] for name in read}):
        columns = [name for name in read if FEATURE_GROUPS[name] == group]
        then = reasons.describe_many(group, pd.DataFrame({c: np.asarray(old[c], dtype=float)[at] for c in columns}))
        now = reasons.describe_many(group, pd.DataFrame({c: np.asarray(new[c], dtype=float)[at] for c in columns}))
        out[at] |= np.fromiter((a != b for a, b in zip(then, now, strict=True)), dtype=bool, count=len(at))
    return out


def seller_crossings(before: sa.SellerStats, after: sa.SellerStats, sellers: np.ndarray, bits: np.ndarray,
                     edges: Edges) -> np.ndarray:
    """Per order (its seller's code in both statistics, and its signals), whether a seller feature the model reads
    moved across one of the model's thresholds between `before` and `after`."""
    crossed = np.zeros(len(sellers), dtype=bool)
    for name, new in after.features(sellers, bits).items():
        if name in edges:
            crossed |= moved(before.features(sellers, bits)[name], new, edges[name])
    return crossed


def due_times(transform: Any, frame: pd.DataFrame, rows: np.ndarray, features: pd.DataFrame, as_of_jd: float,
              edges: Edges) -> tuple[np.ndarray, set[str]]:
    """Per scored row (`rows` of `frame`, whose features at `as_of_jd` are `features`), the Julian day from which
    time alone may carry a feature across a threshold (inf: never).

    The features are worked out again a minute later: a feature that changed is an age (it grows by a day a day
    until it stops at a cap, or shrinks so); its next threshold in the direction it moves gives the day. A feature
    that moves any other way, or without known thresholds, is due at once: `as_of_jd` itself (a score is due when
    its due time is *before* the run's time, so any later run rescores it). Also the features that time moves (a
    stored reason that shows one is out of date as soon as time passes).

    Each row's features are its own, so the frame is worked out again `DUE_ROWS` rows at a time: a million rows'
    features a minute later, beside the ones in hand, would cost hundreds of MB at once."""
    due = np.full(len(rows), np.inf)
    timed: set[str] = set()
    if not len(rows):
        return due, timed
    rows = np.asarray(rows, dtype=np.int64)
    for start in range(0, len(frame), DUE_ROWS):
        stop = min(start + DUE_ROWS, len(frame))
        mine = np.flatnonzero((rows >= start) & (rows < stop))
        if not len(mine):
            continue
        part = frame.iloc[start:stop].copy(deep=False)  # its own columns: the whole frame is not copied or changed
        part["as_of_jd"] = as_of_jd + TIME_STEP
        later = transform.transform_frame(part, rows[mine] - start)
        due[mine] = _due_of(features.iloc[mine], later, as_of_jd, edges, timed)
    return np.maximum(due, as_of_jd), timed


def _due_of(features: pd.DataFrame, later: pd.DataFrame, as_of_jd: float, edges: Edges, timed: set[str]) -> np.ndarray:
    """`due_times` of rows whose features are `features` now and `later` a minute later; adds the features that
    changed to `timed`."""
    due = np.full(len(features), np.inf)
    for name in features.columns:
        now, then = features[name].to_numpy(dtype=float), later[name].to_numpy(dtype=float)
        changed = ~((now == then) | (np.isnan(now) & np.isnan(then)))
        if not changed.any():
            continue
        timed.add(name)
        if name not in edges:  # the model never tests it: only a reason's text can show it
            continue
        thresholds = edges[name]
        slope = (then - now) / TIME_STEP
        rising = changed & (np.abs(slope - 1) < 1e-3)
        falling = changed & (np.abs(slope + 1) < 1e-3)
        due[changed & ~rising & ~falling] = as_of_jd  # not an age: rescored next time
        if thresholds is None:
            due[changed] = as_of_jd
            continue
        position = np.searchsorted(thresholds, np.nan_to_num(now), side="left")
        # rising: the next threshold at or above the value (a value moves right once it passes it)
        up = rising & (position < len(thresholds))
        at = np.minimum(position, len(thresholds) - 1)
        due[up] = np.minimum(due[up], as_of_jd + (thresholds[at[up]] - now[up]) - MARGIN)
        # falling: the threshold just below (a value moves left once it reaches it)
        down = falling & (position > 0)
        below = np.maximum(position - 1, 0)
        due[down] = np.minimum(due[down], as_of_jd + (now[down] - thresholds[below[down]]) - MARGIN)
    return due


def binning(model: Any) -> Any:
    """The model's input kept as bytes per row and its score of such rows, bit for bit its score of the rows
    (`detectors.classifier.BinnedInput`); None where the model cannot. A stored row of bytes whose seller columns
    are binned again scores as the whole row would."""
    from detectors.lean_model import LeanModel

    if isinstance(model, LeanModel):
        return model.binned()
    from detectors.classifier import binned_input

    return binned_input(model.named_steps["classifier"])


def shown_features(reasons: list[str], names: list[str], groups: dict[str, str]) -> np.ndarray:
    """Per stored reasons (JSON), one bit per feature of `names` whose group (`groups`: feature -> group) a reason
    shows: its text quotes that feature's value, so a change of the value makes the stored reasons out of date.
    Reasons that cannot be read show every feature."""
    import json

    bit_of: dict[str, int] = {}
    for j, name in enumerate(names):
        bit_of[groups.get(name, name)] = bit_of.get(groups.get(name, name), 0) | _bit(j)
    every = (1 << 64) - 1
    out = np.zeros(len(reasons), dtype=np.uint64)
    for i, text in enumerate(reasons):
        if text == "[]":
            continue
        try:
            mask = 0
            for reason in json.loads(text or "[]"):
                mask |= bit_of.get(str(reason["feature"]), every)
        except (ValueError, TypeError, KeyError):
            mask = every
        out[i] = mask
    return out


def feature_bits(names: list[str], chosen: set[str]) -> int:
    """The bits of these features among `names` (as `shown_features` numbers them)."""
    bits = 0
    for j, name in enumerate(names):
        if name in chosen:
            bits |= _bit(j)
    return bits


def _bit(j: int) -> int:
    """Feature j's bit in a 64-bit mask (features past the 63rd share the last bit: a change of any counts)."""
    return 1 << min(j, 63)


def bin_with(model: Any, threads: int) -> None:
    """Make the model's binning use `threads` threads (`detectors.classifier.bin_threads`): it keeps the count of
    the machine it was fitted on, beyond the reach of the thread limits the scorer sets, and a busy machine makes
    two spinning threads bin a few thousand rows in half a second instead of two milliseconds."""
    from detectors.lean_model import LeanModel

    if isinstance(model, LeanModel):
        from tracker.detection.threads import at_once

        model.classifier.use_runs(threads, at_once)  # numpy's binning and walk, a run of rows per thread
        return
    from detectors.classifier import bin_threads

    bin_threads(model.named_steps["classifier"], threads)
