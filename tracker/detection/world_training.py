"""The shipped default model, made for stores it has never seen: `python -m tracker.detection.world_training`.

Most users have no labels on day one, so the default model must rank fraud in a store unlike the generator's
default world. It is built from many generated worlds (data/model.toml [default_model]):

1. **Training worlds**: worlds whose settings are drawn at random within the training ranges of
   data/world/profiles.toml (`tracker generate --profile random`), several seeds, plus the default world. Each
   is imported through the real importers and flagged by the rules; its feature frame is computed within the
   world (seller and buyer aggregates, the typical transit).
2. **Candidates**: feature sets and boosting settings (data/model.toml [[default_model.candidate]]), each a
   `FraudClassifier` fitted on every training world together, and one rules prior (`RulesPrior`).
3. **Selection** on worlds made with *other* settings and seeds: random ones and ones with some settings
   beyond the training ranges (`--profile outside`). Each candidate, blended with the prior at each weight of
   `shipped_weights`, is scored by its mean average precision over those worlds. The first pair in the order
   listed (candidates from the most transferable features, weights from the most prior) within
   `selection_margin` of the best one ships: a simpler, safer model unless another is clearly better.
4. **Report** on a third set of worlds used for neither (other seeds again): the figures `tracker evaluate`
   shows beside the flag count (`held_out` in the model's metadata).

The worlds are cached in a work folder (`--work DIR`): a second run with the same recipe reuses them. Seeds of
the three sets must not meet each other nor `python -m bench.generalisation`'s (9001 and up); `check_seeds`
refuses a recipe where they do.
"""

from __future__ import annotations

import json
import pickle
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score

from detectors.classifier import FraudClassifier, RulesPrior, grids, monotonic_cst, prior_columns
from detectors.features import FEATURES, OrderFeatures
from tracker import config
from tracker.detection import persistence, registry, training
from tracker.errors import BadInput, RunFailure
from tracker.timeutil import now, to_db

Progress = Callable[[str, int, int], None]  # (stage, done, total)
BENCH_FIRST_SEED = 9001  # bench.generalisation's worlds start here: never trained or selected on
UNTRACKED = -1e9  # an order without a tracking number is never scored: it ranks last


@dataclass(frozen=True)
class WorldSpec:
    """One generated world: `region` default (data/world/rates.toml as it is), train (random settings within the
    training ranges) or outside (some settings beyond them)."""

    region: str
    seed: int
    orders: int

    @property
    def name(self) -> str:
        return f"{self.region}-{self.seed}-{self.orders}"

    def profile(self) -> Any:
        from tracker.world import profiles

        return profiles.DEFAULT if self.region == "default" else profiles.sample(self.seed, self.region)


@dataclass
class World:
    spec: WorldSpec
    frame: pd.DataFrame
    labels: pd.DataFrame  # order_id, fraud, pattern; in the frame's row order
    matrix: np.ndarray = field(default=None)  # every feature of FEATURES  # type: ignore[assignment]

    def columns(self, names: Iterable[str]) -> np.ndarray:
        return self.matrix[:, [FEATURES.index(n) for n in names]]

    @property
    def tracked(self) -> np.ndarray:
        numbers = self.frame["tracking_number"].astype(object)
        return (numbers.notna() & (numbers.astype(str) != "")).to_numpy()

    @property
    def flag_count(self) -> np.ndarray:
        """Active flags of every severity per order: the ranking the model must beat."""
        codes = self.frame["codes"].astype(object).fillna("").astype(str)
        return np.where(codes == "", 0, codes.str.count(",") + 1).astype(float)


@dataclass(frozen=True)
class Candidate:
    name: str
    features: tuple[str, ...]
    params: dict[str, Any]


@dataclass(frozen=True)
class Recipe:
    as_of: datetime
    train: tuple[WorldSpec, ...]
    select: tuple[WorldSpec, ...]
    report: tuple[WorldSpec, ...]
    candidates: tuple[Candidate, ...]
    shipped_weights: tuple[float, ...]
    prior_c: float
    seed: int
    margin: float = 0.0


def recipe(settings: dict[str, Any]) -> Recipe:
    """The build's recipe from data/model.toml [default_model] (and [classifier] for the boosting's defaults)."""
    from tracker.timeutil import parse_time

    spec = settings.get("default_model", {})
    base = dict(settings.get("classifier", {}))

    def worlds(table: str, regions: tuple[str, ...]) -> tuple[WorldSpec, ...]:
        t = spec.get(table, {})
        first, count, orders = int(t.get("first_seed", 1)), int(t.get("worlds", 0)), int(t.get("orders", 3000))
        out = [WorldSpec(region, first + i, orders) for region in regions for i in range(count)]
        out += [WorldSpec("default", int(s), orders) for s in t.get("default_seeds", [])]
        return tuple(out)

    candidates = []
    for c in spec.get("candidate", []):
        features = tuple(c.get("features") or FEATURES)
        drop = set(c.get("drop", ()))
        unknown = (set(features) | drop) - set(FEATURES)
        if unknown:
            raise BadInput(f"data/model.toml: candidate {c.get('name')}: unknown features {sorted(unknown)}")
        params = {**base, **{k: v for k, v in c.items() if k not in ("name", "features", "drop")}}
        candidates.append(Candidate(str(c.get("name", f"candidate {len(candidates) + 1}")),
                                    tuple(f for f in features if f not in drop), params))
    if not candidates:
        candidates.append(Candidate("all features", FEATURES, base))
    out = Recipe(parse_time(str(spec.get("as_of", "2026-11-01T00:00:00Z"))),
                 worlds("train", ("train",)), worlds("select", ("train", "outside")),
                 worlds("report", ("train", "outside")), tuple(candidates),
                 tuple(float(w) for w in spec.get("shipped_weights", [1.0])),
                 float(spec.get("prior_c", 1.0)), int(spec.get("seed", 0)), float(spec.get("selection_margin", 0.0)))
    check_seeds(out)
    return out


def check_seeds(r: Recipe) -> None:
    """Training, selection and report worlds never share a (region, seed), and none is the bench's."""
    sets = {"train": r.train, "select": r.select, "report": r.report}
    seen: dict[tuple[str, int], str] = {}
    for name, specs in sets.items():
        for s in specs:
            key = (s.region, s.seed)
            if key in seen and seen[key] != name:
                raise BadInput(f"data/model.toml: world {s.region} seed {s.seed} is in both {seen[key]} and {name}")
            seen[key] = name
            if s.seed >= BENCH_FIRST_SEED and s.region != "default":
                raise BadInput(f"data/model.toml: {name} world seed {s.seed} is one python -m bench.generalisation "
                               f"measures on (seeds from {BENCH_FIRST_SEED})")
    held_out = {s.seed for s in (*r.select, *r.report) if s.region == "train"}
    if held_out & {s.seed for s in r.train}:
        raise BadInput("data/model.toml: a selection or report world has a training world's seed")


# ------------------------------------------------------------------------------------------------ worlds

def build_world(spec: WorldSpec, work: str, as_of: datetime) -> str:
    """Generate, import and flag one world, compute its feature frame; pickle (frame, labels) in its folder.
    Runs in a child process; a folder holding this recipe's frame already is reused."""
    folder = Path(work) / spec.name
    cached = folder / "frame.pkl"
    recipe_text = json.dumps({"spec": spec.name, "as_of": as_of.isoformat(), "features": list(FEATURES)})
    if cached.exists() and (folder / "frame.recipe").exists() and (folder / "frame.recipe").read_text() == recipe_text:
        return str(cached)
    db, labels = training.world_store(folder, spec.orders, spec.seed, as_of, profile=spec.profile())
    frame = training.order_frame(db, as_of)
    db.close()
    labels = frame[["order_id"]].merge(labels, on="order_id", how="left")
    labels["fraud"] = labels["fraud"].fillna(0).astype(int)
    with open(cached, "wb") as fh:
        pickle.dump((frame, labels), fh, protocol=pickle.HIGHEST_PROTOCOL)
    (folder / "frame.recipe").write_text(recipe_text)
    return str(cached)


def load_worlds(specs: Iterable[WorldSpec], work: Path, as_of: datetime, *, jobs: int = 2,
                progress: Progress | None = None) -> list[World]:
    """Every world's frame, labels and feature matrix, built `jobs` at a time (each in a fresh process)."""
    import multiprocessing

    specs = list(specs)
    paths: dict[WorldSpec, str] = {}
    with ProcessPoolExecutor(max(1, jobs), mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(build_world, s, str(work), as_of): s for s in specs}
        from concurrent.futures import as_completed

        for done, future in enumerate(as_completed(futures), 1):
            paths[futures[future]] = future.result()
            if progress:
                progress("worlds", done, len(specs))
    features = OrderFeatures().fit()
    out = []
    for s in specs:
        with open(paths[s], "rb") as fh:
            frame, labels = pickle.load(fh)  # noqa: S301 - our own cache, written by build_world above
        out.append(World(s, frame, labels, features.transform(frame)))
    return out


# ------------------------------------------------------------------------------------------------ fitting

def stack(worlds: list[World], names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """The tracked orders of every world, one matrix (columns `names`) and their labels."""
    xs = [w.columns(names)[w.tracked] for w in worlds]
    ys = [w.labels["fraud"].to_numpy(dtype=int)[w.tracked] for w in worlds]
    return np.vstack(xs), np.concatenate(ys)


def fit_candidate(candidate: Candidate, train: list[World], seed: int) -> FraudClassifier:
    X, y = stack(train, candidate.features)  # noqa: N806
    params = {**candidate.params, "random_state": seed, "monotonic_cst": monotonic_cst(candidate.features),
              "grids": grids(candidate.features)}
    return FraudClassifier(**{k: v for k, v in params.items() if k in FraudClassifier().get_params()}).fit(X, y)


def fit_prior(features: tuple[str, ...], train: list[World], c: float) -> RulesPrior:
    X, y = stack(train, features)  # noqa: N806
    return RulesPrior(columns=prior_columns(features), C=c).fit(X, y)


def average_precision(y: np.ndarray, score: np.ndarray) -> float:
    return float(average_precision_score(y, score)) if 0 < y.sum() < len(y) else float("nan")


def world_scores(world: World, features: tuple[str, ...], parts: list[Any]) -> list[np.ndarray]:
    """Each part's log-odds per order of the world (untracked orders last)."""
    X = world.columns(features)  # noqa: N806
    tracked = world.tracked
    out = []
    for part in parts:
        s = np.full(len(X), UNTRACKED)
        if tracked.any():
            s[tracked] = part.decision_function(X[tracked])
        out.append(s)
    return out


def blend_ap(world: World, model_log_odds: np.ndarray, prior_log_odds: np.ndarray, weight: float) -> float:
    y = world.labels["fraud"].to_numpy(dtype=int)
    return average_precision(y, weight * model_log_odds + (1 - weight) * prior_log_odds)


# ------------------------------------------------------------------------------------------------ the build

def build(settings: dict[str, Any], work: str | Path | None = None, *, jobs: int = 2,
          progress: Progress | None = None) -> tuple[Any, dict[str, Any]]:
    """Build, select and report the shipped model (see the module); return (pipeline, metadata)."""
    from detectors.classifier import blend

    r = recipe(settings)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="tracker-default-model-") as tmp:
        folder = Path(work) if work else Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        train = load_worlds(r.train, folder, r.as_of, jobs=jobs, progress=_stage(progress, "training worlds"))
        select = load_worlds(r.select, folder, r.as_of, jobs=jobs, progress=_stage(progress, "selection worlds"))
        report = load_worlds(r.report, folder, r.as_of, jobs=jobs, progress=_stage(progress, "report worlds"))
    trials = []
    fitted: list[tuple[Candidate, FraudClassifier, RulesPrior, float, float]] = []
    for done, candidate in enumerate(r.candidates, 1):
        model = fit_candidate(candidate, train, r.seed)
        prior = fit_prior(candidate.features, train, r.prior_c)
        scored = [world_scores(w, candidate.features, [model, prior]) for w in select]
        for weight in r.shipped_weights:
            aps = [blend_ap(w, m, p, weight) for w, (m, p) in zip(select, scored, strict=True)]
            mean = float(np.nanmean(aps))
            trials.append({"candidate": candidate.name, "weight": weight, "mean_ap": round(mean, 4),
                           "ap": {w.spec.name: round(a, 4) for w, a in zip(select, aps, strict=True)}})
            fitted.append((candidate, model, prior, weight, mean))
        if progress:
            progress("candidates", done, len(r.candidates))
    # the first pair (most transferable features, most prior) within the margin of the best one
    best_mean = max(f[4] for f in fitted)
    chosen, model, prior, weight, _mean = next(f for f in fitted if f[4] >= best_mean - r.margin)
    pipeline = blend(chosen.features, [("shipped", model), ("prior", prior)], [weight, 1.0 - weight])
    held_out = report_table(report, pipeline, chosen.features)
    selection = report_table(select, pipeline, chosen.features)
    meta = {
        "kind": "classifier",
        "features": list(chosen.features),
        "candidate": chosen.name,
        "params": model.get_params(),
        "calibrated": bool(model.calibrated_),
        "blend": {"shipped": weight, "prior": round(1.0 - weight, 6)},
        "training_data": (f"{len(train)} generated worlds ({', '.join(_regions(r.train))}; "
                          f"{sum(len(w.frame) for w in train):,} orders, "
                          f"{int(sum(w.labels['fraud'].sum() for w in train)):,} fraud), as of {r.as_of:%Y-%m-%d}"),
        "n_labels": int(sum(len(w.frame) for w in train)),
        "n_fraud": int(sum(w.labels["fraud"].sum() for w in train)),
        "worlds": {"train": [s.name for s in r.train], "select": [s.name for s in r.select],
                   "report": [s.name for s in r.report]},
        "selection": {"trials": trials, "margin": r.margin, "best_mean_ap": round(best_mean, 4),
                      "chosen": {"candidate": chosen.name, "weight": weight}, "table": selection},
        "held_out": held_out,
        "build_seconds": round(time.perf_counter() - started, 1),
    }
    return pipeline, meta


def report_table(worlds: list[World], pipeline: Any, features: tuple[str, ...]) -> dict[str, Any]:
    """AP of the shipped model and of the flag count per world, and their means per region."""
    classifier = pipeline.named_steps["classifier"]
    rows = []
    for w in worlds:
        (score,) = world_scores(w, features, [classifier])
        y = w.labels["fraud"].to_numpy(dtype=int)
        rows.append({"world": w.spec.name, "region": w.spec.region, "orders": len(y), "fraud": int(y.sum()),
                     "ap_model": round(average_precision(y, score), 4),
                     "ap_flag_count": round(average_precision(y, w.flag_count), 4)})
    means = {}
    for region in ("train", "outside", "default"):
        mine = [x for x in rows if x["region"] == region]
        if mine:
            means[region] = {"worlds": len(mine),
                             "ap_model": round(float(np.nanmean([x["ap_model"] for x in mine])), 4),
                             "ap_flag_count": round(float(np.nanmean([x["ap_flag_count"] for x in mine])), 4)}
    return {"worlds": rows, "mean": means}


def _regions(specs: tuple[WorldSpec, ...]) -> list[str]:
    counts: dict[str, int] = {}
    for s in specs:
        counts[s.region] = counts.get(s.region, 0) + 1
    names = {"train": "random settings", "default": "the default settings", "outside": "outside settings"}
    return [f"{n} with {names[k]}" for k, n in counts.items()]


def _stage(progress: Progress | None, name: str) -> Progress | None:
    if progress is None:
        return None
    return lambda _stage_name, done, total: progress(name, done, total)


def train_default(work: str | Path | None = None, *, jobs: int = 2,
                  progress: Progress | None = None) -> dict[str, Any]:
    """Build the shipped default model from generated worlds (`tracker.detection.world_training`) and write
    data/models/classifier.skops (or $TRACKER_MODEL_DIR's) with its metadata; return the metadata."""
    model, meta = build(training.settings(), work, jobs=jobs, progress=progress)
    meta["created_at"] = to_db(now())
    meta["id"] = None  # set from the file's digest below: the id changes whenever the model does
    path = config.model_path("classifier.skops", for_writing=True)  # data/models/ or $TRACKER_MODEL_DIR
    written = persistence.save_model(model, path, meta)
    written["id"] = f"default-{written['sha256'][:12]}"
    persistence.metadata_path(path).write_text(json.dumps(written, indent=2, sort_keys=True, default=str) + "\n")
    registry.DEFAULT_MODEL_PATH = path
    return written


def ensure_message_model() -> bool:
    """Make the shipped message model again when this install cannot vouch for it (another scikit-learn): the
    worlds' rules read it, so a library upgrade needs both made again. Return whether it was."""
    try:
        registry.message_model()
        return False
    except registry.VersionRefused:
        pass  # made with another scikit-learn: made again below (a changed or missing file is not ours to replace)
    from tracker.detection import message_training

    meta = message_training.train_and_save()
    registry.MESSAGE_MODEL_PATH = config.model_path("message_model.skops")
    registry.forget_message_model()
    print(f"message model made again with scikit-learn {meta['library_versions']['scikit-learn']}",
          file=sys.stderr)
    return True


def _print_progress(stage: str, done: int, total: int) -> None:
    """A one-line progress bar on stderr, rewritten in place."""
    width = 30
    filled = int(width * done / max(total, 1))
    sys.stderr.write(f"\r{stage:<18} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
    if done >= total:
        sys.stderr.write("\n")
    sys.stderr.flush()


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """`python -m tracker.detection.world_training [--work DIR] [--jobs N]`: make the shipped model again."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m tracker.detection.world_training",
                                     description="Make the shipped default model from generated worlds "
                                                 "(data/model.toml [default_model]).")
    parser.add_argument("--work", default=None, help="keep (and reuse) the generated worlds in this folder")
    parser.add_argument("--jobs", type=int, default=2, help="worlds built at once")
    parser.add_argument("--write", action="store_true",
                        help="also render the held-out table into docs/detection.md")
    args = parser.parse_args(argv)
    # through the package: the child processes building worlds import it, not __main__
    from tracker.detection import world_training

    try:
        world_training.ensure_message_model()
        result = world_training.train_default(args.work, jobs=args.jobs, progress=_print_progress)
    except (BadInput, RunFailure) as exc:
        print(f"world_training: {exc}", file=sys.stderr)
        raise SystemExit(2 if isinstance(exc, BadInput) else 1) from None
    summary = {k: result[k] for k in ("id", "candidate", "blend", "training_data", "sha256", "build_seconds")}
    summary["held_out"] = result["held_out"]["mean"]
    print(json.dumps(summary, indent=2, default=str))
    if args.write:
        write_docs(result)
    return result


DOCS_START = "<!-- held-out:start (generated by: python -m tracker.detection.world_training --write) -->"
DOCS_END = "<!-- held-out:end -->"


def held_out_markdown(meta: dict[str, Any]) -> str:
    """The shipped model's report worlds as a markdown table: AP of the model and of the flag count."""
    names = {"train": "random", "outside": "outside", "default": "default"}
    lines = ["| world | orders (fraud) | AP model | AP flag count |", "|---|---:|---:|---:|"]
    for w in meta["held_out"]["worlds"]:
        region, seed = w["region"], w["world"].split("-")[1]
        lines.append(f"| {names.get(region, region)}, seed {seed} | {w['orders']:,} ({w['fraud']}) | "
                     f"{w['ap_model']:.3f} | {w['ap_flag_count']:.3f} |")
    for region in ("train", "outside", "default"):
        mean = meta["held_out"]["mean"].get(region)
        if mean:
            label = {"train": "in training ranges", "outside": "outside them", "default": "default"}[region]
            lines.append(f"| **mean, {label}** | {mean['worlds']} worlds | {mean['ap_model']:.3f} | "
                         f"{mean['ap_flag_count']:.3f} |")
    return "\n".join(lines)


def write_docs(meta: dict[str, Any], page: Path | None = None) -> None:
    page = page or Path(__file__).resolve().parents[2] / "docs" / "detection.md"
    # the shipped part first, however the metadata's file orders its keys
    blend = ", ".join(f"{name} {weight:.0%}" for name, weight in
                      sorted(meta["blend"].items(), key=lambda part: part[0] != "shipped"))
    from tracker.doc_blocks import write_block

    write_block(page, DOCS_START, DOCS_END,
                f"`python -m tracker.detection.world_training`: the shipped model ({meta['candidate']}; {blend}) on "
                f"its report worlds, which neither trained nor chose it:\n\n{held_out_markdown(meta)}")


if __name__ == "__main__":
    main()
