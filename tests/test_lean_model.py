"""The lean export of a model (`detectors.lean_model`) scores exactly as the scikit-learn pipeline does: the same
decision, probability and contributions, bit for bit, on the shipped model and on one trained here, over values on
every bin edge, just beside them, NaN and infinities in every feature; the shipped export is the shipped model's;
an incremental `tracker detect` scores with it without importing scikit-learn, SciPy or skops, and gives a full
rescore's scores; and where the export is missing, stale or unreadable, the model itself scores."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from worlds import imported_world

from detectors import classifier as C  # noqa: N812
from detectors import lean_model
from detectors.features import FEATURES
from tracker.detection import persistence, registry

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("sklearn", "scipy", "skops")


def _awkward_rows(model, n: int = 6000, seed: int = 0, infinite: bool = False) -> np.ndarray:  # noqa: ANN001
    """Rows over every feature: each bin edge, the values just below and above it, NaN, 0 and far values (and +-inf
    with `infinite`: the binned walk takes them, scikit-learn's float input refuses them); the flag columns 0, 1 or
    NaN and the flag count their sum."""
    rng = np.random.default_rng(seed)
    names = list(model.named_steps["features"].get_feature_names_out())
    lean = C.lean_export(model)
    edges = next(p.edges for kind, _, p in lean.classifier.parts if kind == "boost")
    X = np.empty((n, len(names)))  # noqa: N806
    for j, e in enumerate(edges):
        candidates = np.concatenate([e, np.nextafter(e, -np.inf), np.nextafter(e, np.inf),
                                     [np.nan, np.nan, 0.0, -1e9, 1e9], [np.inf, -np.inf] if infinite else []])
        X[:, j] = rng.choice(candidates, n)
    flags = [j for j, name in enumerate(names) if name.startswith("flag_")]
    X[:, flags] = rng.choice([0.0, 1.0, 1.0, np.nan], (n, len(flags)))
    if "n_flags" in names:
        X[:, names.index("n_flags")] = np.where(rng.random(n) < 0.05, np.nan, np.nansum(X[:, flags], axis=1))
    return X


def _assert_same_scores(model, lean: lean_model.LeanModel, X: np.ndarray) -> None:  # noqa: ANN001, N803
    classifier = model.named_steps["classifier"]
    mine = lean.named_steps["classifier"]
    names = [str(n) for n in model.named_steps["features"].get_feature_names_out()]
    assert lean.features.names == names
    Xf = np.asfortranarray(X)  # noqa: N806 - as the scorer hands it over
    np.testing.assert_array_equal(mine.decision_function(Xf), classifier.decision_function(Xf))
    np.testing.assert_array_equal(mine.predict_proba(Xf), classifier.predict_proba(Xf))
    np.testing.assert_array_equal(mine.predict_proba(Xf)[:, 1], C.fraud_probability(classifier, X))
    got, base = mine.contributions(Xf)
    want, want_base = classifier.contributions(Xf)
    np.testing.assert_array_equal(got, want)
    assert base == want_base
    # from the rows' bytes, as the books keep them (infinities too)
    walk, rows = C.binned_input(classifier), lean.binned()
    rng = np.random.default_rng(5)
    X = X.copy()  # noqa: N806
    X[rng.random(X.shape) < 0.02] = np.inf
    X[rng.random(X.shape) < 0.02] = -np.inf
    X[:, [j for j, name in enumerate(names) if name.startswith("flag_") or name == "n_flags"]] = \
        np.nan_to_num(Xf[:, [j for j, name in enumerate(names) if name.startswith("flag_") or name == "n_flags"]])
    Xf = np.asfortranarray(X)  # noqa: N806
    binned = walk.bins(Xf)
    np.testing.assert_array_equal(rows.bins(Xf), binned)
    np.testing.assert_array_equal(rows.decision(binned), walk.decision(binned))
    np.testing.assert_array_equal(rows.fraud_probability(binned), walk.fraud_probability(binned))
    got, base = rows.contributions(binned[:1500])
    want, want_base = walk.contributions(binned[:1500])
    np.testing.assert_array_equal(got, want)
    assert base == want_base
    # a column binned again in place, as the quick rescoring does
    mine_bytes, theirs = binned[:500].copy(), binned[:500].copy()
    other = X[500:1000]
    assert rows.rebin(mine_bytes, other, [0, len(names) - 1]) == walk.rebin(theirs, other, [0, len(names) - 1])
    np.testing.assert_array_equal(mine_bytes, theirs)
    # what the scorer reads besides the scores
    edges, theirs_edges = mine.score_edges(names), C.score_edges(model)
    assert list(edges) == list(theirs_edges)
    for name, values in edges.items():
        assert (values is None) == (theirs_edges[name] is None)
        if values is not None:
            np.testing.assert_array_equal(values, theirs_edges[name])
    if isinstance(classifier, C.BlendedClassifier):
        assert mine.base_value() == classifier.base_value() and mine.shares() == classifier.shares()


def test_every_bin_of_every_feature_is_reached() -> None:
    model = registry.load_default().model
    X = _awkward_rows(model, infinite=True)  # noqa: N806
    lean = C.lean_export(model)
    booster = next(p for kind, _, p in lean.classifier.parts if kind == "boost")
    binned = booster.bins(X)
    for j, e in enumerate(booster.edges):
        assert set(np.unique(binned[:, j]).tolist()) == set(range(len(e) + 1)) | {booster.missing_bin}


def test_the_level_by_level_walk_for_large_trees_finds_the_same_leaves() -> None:
    """Trees of more than 64 leaves are walked level by level instead of by leaf bits: the same sums."""
    model = registry.load_default().model
    lean = C.lean_export(model)
    booster = next(p for kind, _, p in lean.classifier.parts if kind == "boost")
    binned = booster.bins(_awkward_rows(model, infinite=True))
    by_bits = booster.raw(binned)
    booster.word = None
    np.testing.assert_array_equal(booster.raw(binned), by_bits)


def test_the_shipped_models_lean_export_scores_bit_for_bit_as_the_model() -> None:
    loaded = registry.load_default()
    lean = persistence.load_lean(persistence.lean_path(registry.DEFAULT_MODEL_PATH), loaded.metadata["sha256"])
    assert lean is not None
    _assert_same_scores(loaded.model, lean, _awkward_rows(loaded.model))


def test_large_sets_of_rows_are_binned_and_walked_on_threads_with_the_same_results(monkeypatch) -> None:  # noqa: ANN001
    """A full run's million rows are shared among threads (`Booster._spread`, `threads.at_once`): the bytes, scores
    and a rebin are the single thread's and scikit-learn's, and the runs were whole blocks, run at once."""
    from tracker.detection import threads

    model = registry.load_default().model
    lean = C.lean_export(model)
    X = np.vstack([_awkward_rows(model, 6000, seed=s) for s in range(4)])  # noqa: N806
    single = lean.binned()
    bytes_one = single.bins(X)
    scores_one = single.fraud_probability(bytes_one)
    submitted = []

    def at_once(work, runs):  # noqa: ANN001, ANN202
        submitted.extend(runs)
        threads.at_once(work, runs)

    monkeypatch.setattr(lean_model, "THREADED_FROM", 5000)
    lean.classifier.use_runs(3, at_once)
    threaded = lean.binned()
    got = threaded.bins(X)
    assert len(submitted) == 3 and submitted[0][0] == 0 and submitted[-1][1] == len(X)  # three runs of whole blocks
    assert all(a == b for (_, a), (b, _) in zip(submitted, submitted[1:], strict=False))  # end to end
    assert all(a % lean_model.BLOCK == 0 for a, _ in submitted)
    np.testing.assert_array_equal(got, bytes_one)
    np.testing.assert_array_equal(threaded.fraud_probability(got), scores_one)
    stock = C.binned_input(model.named_steps["classifier"])  # scikit-learn's binning and walk of the same bytes
    np.testing.assert_array_equal(stock.bins(X), bytes_one)
    np.testing.assert_array_equal(stock.fraud_probability(bytes_one), scores_one)
    again = got.copy()
    columns = [0, 3, 5]
    assert threaded.rebin(again, X[::-1].copy(), columns)
    np.testing.assert_array_equal(again[:, columns], single.bins(X[::-1].copy())[:, columns])


def test_the_shipped_lean_export_is_the_shipped_models() -> None:
    """data/models/classifier.lean.npz holds exactly what exporting data/models/classifier.skops gives, and its
    metadata names both files' digests (`python -m tracker.detection.lean_files` makes it again)."""
    meta = persistence.read_metadata(registry.DEFAULT_MODEL_PATH)
    path = persistence.lean_path(registry.DEFAULT_MODEL_PATH)
    assert meta["lean"] == {"file": path.name, "sha256": persistence.sha256_file(path), "format": lean_model.FORMAT}
    fresh = C.lean_export(registry.load_default().model, {"model_sha256": meta["sha256"], "model_file": "classifier.skops"})
    with np.load(path, allow_pickle=False) as shipped:
        stored = {name: shipped[name] for name in shipped.files}
    want = fresh.arrays()
    assert sorted(stored) == sorted(want)
    for name, values in want.items():
        assert stored[name].dtype == values.dtype, name
        np.testing.assert_array_equal(stored[name], values, err_msg=name)


def _trained(seed: int = 3, blend: bool = True):  # noqa: ANN202
    from sklearn.pipeline import Pipeline

    from detectors.order_features import OrderFeatures

    rng = np.random.default_rng(seed)
    names = list(FEATURES)
    n = 3000
    X = rng.normal(size=(n, len(names))) * rng.choice([1.0, 10.0, 100.0], len(names))  # noqa: N806
    X[rng.random(X.shape) < 0.15] = np.nan
    flags = [j for j, name in enumerate(names) if name.startswith("flag_")]
    X[:, flags] = rng.integers(0, 2, (n, len(flags)))
    X[:, names.index("n_flags")] = X[:, flags].sum(axis=1)
    y = ((np.nan_to_num(X[:, 0]) + np.nan_to_num(X[:, 12]) / 10 + rng.normal(size=n)) > 0.8).astype(int)
    boost = C.FraudClassifier(max_iter=25, monotonic_cst=C.monotonic_cst(names), random_state=seed).fit(X, y)
    if not blend:
        return Pipeline([("features", OrderFeatures(features=tuple(names)).fit(None)), ("classifier", boost)]), X
    prior = C.RulesPrior(columns=C.prior_columns(names)).fit(X, y)
    return C.blend(names, [("local", boost), ("shipped", boost), ("prior", prior)], [0.6, 0.0, 0.4]), X


@pytest.mark.parametrize("blend", [True, False])
def test_a_trained_models_export_is_written_with_it_and_scores_bit_for_bit_as_it(tmp_path, blend) -> None:  # noqa: ANN001
    model, X = _trained(blend=blend)  # noqa: N806
    meta = persistence.save_model(model, tmp_path / "m.skops", {"kind": "test"})
    path = tmp_path / "m.lean.npz"
    assert meta["lean"]["sha256"] == persistence.sha256_file(path)
    assert json.loads((tmp_path / "m.json").read_text())["lean"] == meta["lean"]
    lean = persistence.load_lean(path, meta["sha256"])
    assert lean is not None
    _assert_same_scores(model, lean, np.vstack([X, _awkward_rows(model, 3000, seed=1)]))


def test_a_model_the_export_cannot_hold_has_none_and_no_stale_file(tmp_path) -> None:  # noqa: ANN001
    model, X = _trained()  # noqa: N806
    persistence.save_model(model, tmp_path / "m.skops", {"kind": "test"})
    assert (tmp_path / "m.lean.npz").exists()
    meta = persistence.save_model(C.FraudClassifier(max_iter=3).fit(X, (np.nan_to_num(X[:, 0]) > 0).astype(int)),
                                  tmp_path / "m.skops", {"kind": "test"})
    assert "lean" not in meta and not (tmp_path / "m.lean.npz").exists()


# ------------------------------------------------------------------------------------------ refusals, fallback


@pytest.fixture
def model_dir(tmp_path, monkeypatch):  # noqa: ANN001, ANN201
    """The shipped classifier copied into $TRACKER_MODEL_DIR, the registry reading it from there."""
    folder = tmp_path / "models"
    folder.mkdir()
    for name in ("classifier.skops", "classifier.json", "classifier.lean.npz"):
        shutil.copy(registry.DEFAULT_MODEL_PATH.with_name(name), folder / name)
    monkeypatch.setenv("TRACKER_MODEL_DIR", str(folder))
    monkeypatch.setattr(registry, "DEFAULT_MODEL_PATH", folder / "classifier.skops")
    registry._lean_models.clear()
    yield folder
    registry._lean_models.clear()


def _meta(folder: Path, **changes) -> None:  # noqa: ANN003
    path = folder / "classifier.json"
    meta = json.loads(path.read_text())
    for key, value in changes.items():
        if value is None:
            meta.pop(key, None)
        else:
            meta[key] = value
    path.write_text(json.dumps(meta))


def test_a_second_load_in_a_run_skips_the_hashes_but_not_a_changed_file(model_dir, tmp_path, monkeypatch):  # noqa: ANN001
    """A run asks for the lean export twice: the second time, its files unchanged since their hashes were checked,
    it is not hashed again; a file changed meanwhile is hashed again, and refused."""
    from tracker.db import open_db

    db = open_db(tmp_path / "s.db")
    hashed: list[str] = []
    sha256_file = persistence.sha256_file
    monkeypatch.setattr(persistence, "sha256_file", lambda path: hashed.append(Path(path).name) or sha256_file(path))
    first = registry.load_lean_model(db)
    assert first is not None and sorted(hashed) == ["classifier.lean.npz", "classifier.skops"]
    hashed.clear()
    again = registry.load_lean_model(db)
    assert again is not None and again.model is first.model and hashed == []
    lean_file = model_dir / "classifier.lean.npz"
    lean_file.write_bytes(lean_file.read_bytes() + b"\0")  # its size tells it changed, whatever the clock's grain
    assert registry.load_lean_model(db) is None
    assert "classifier.lean.npz" in hashed
    db.close()


def test_the_lean_export_is_used_only_where_it_matches_the_model(model_dir, tmp_path) -> None:  # noqa: ANN001
    from tracker.db import open_db

    db = open_db(tmp_path / "s.db")
    loaded = registry.load_lean_model(db)
    assert loaded is not None and loaded.lean
    full = registry.load_active_model(db)
    assert (loaded.model_id, loaded.scored_by()) == (full.model_id, full.scored_by())
    meta = json.loads((model_dir / "classifier.json").read_text())
    lean_file = model_dir / "classifier.lean.npz"

    def refused() -> bool:
        registry._lean_models.clear()
        return registry.load_lean_model(db) is None

    # missing
    lean_file.rename(tmp_path / "kept.npz")
    assert refused()
    shutil.copy(tmp_path / "kept.npz", lean_file)
    assert not refused()
    # made from another model file: its recorded digest is not the model's
    other = persistence.load_lean(lean_file, meta["sha256"])
    other.source["model_sha256"] = "0" * 64
    _meta(model_dir, lean={**meta["lean"], "sha256": persistence.save_lean(other, lean_file)})
    assert refused()
    # changed after it was recorded
    shutil.copy(tmp_path / "kept.npz", lean_file)
    _meta(model_dir, lean={**meta["lean"], "sha256": "f" * 64})
    assert refused()
    # of another format, or not recorded at all
    _meta(model_dir, lean={**meta["lean"], "format": lean_model.FORMAT + 1})
    assert refused()
    _meta(model_dir, lean=None)
    assert refused()
    # the model made with another scikit-learn: the model is refused, so is its export
    _meta(model_dir, lean=meta["lean"], library_versions={**meta["library_versions"], "scikit-learn": "0.1"})
    assert refused()
    _meta(model_dir, library_versions=meta["library_versions"])
    assert not refused()
    # not an npz at all
    lean_file.write_bytes(b"not a zip")
    _meta(model_dir, lean={**meta["lean"], "sha256": persistence.sha256_file(lean_file)})
    assert refused()
    db.close()


def test_a_model_trained_into_a_store_scores_its_incremental_runs_lean(tmp_path) -> None:  # noqa: ANN001
    from tracker.db import open_db

    model, X = _trained(seed=9)  # noqa: N806
    db = open_db(tmp_path / "s.db")
    registry.save_to_store(db, model, {"id": "local-test", "features": list(FEATURES), "created_at": "2026-12-07"})
    loaded = registry.load_lean_model(db)
    assert loaded is not None and loaded.lean and loaded.model_id == "local-test"
    full = registry.load_active_model(db)
    assert full.model_id == "local-test" and not full.lean and loaded.scored_by() == full.scored_by()
    _assert_same_scores(full.model, loaded.model, X)
    db.close()


def test_a_stores_model_saved_before_lean_exports_gets_one_when_next_loaded(tmp_path) -> None:  # noqa: ANN001
    from tracker.db import open_db

    model, X = _trained(seed=4)  # noqa: N806
    db = open_db(tmp_path / "s.db")
    registry.save_to_store(db, model, {"id": "older", "features": list(FEATURES), "created_at": "2026-12-07"})
    # as an older tracker saved it: no lean file, nothing recorded of one
    (tmp_path / "models" / "older.lean.npz").unlink()
    meta = json.loads(db.execute("SELECT metadata FROM models WHERE id = 'older'").fetchone()[0])
    meta.pop("lean")
    db.execute("UPDATE models SET metadata = ? WHERE id = 'older'", [json.dumps(meta)])
    db.conn.commit()
    assert registry.load_lean_model(db) is None
    full = registry.load_active_model(db)  # a full run's load writes it
    assert (tmp_path / "models" / "older.lean.npz").exists()
    loaded = registry.load_lean_model(db)
    assert loaded is not None and loaded.model_id == "older"
    _assert_same_scores(full.model, loaded.model, X)
    db.close()


def test_an_unreadable_export_is_none_not_an_error(tmp_path) -> None:  # noqa: ANN001
    path = tmp_path / "x.lean.npz"
    model, _ = _trained()
    lean = C.lean_export(model, {"model_sha256": "a" * 64})
    arrays = lean.arrays()
    arrays["p0_left"] = arrays["p0_left"][:-3]  # node arrays of different lengths
    np.savez(path, **arrays)
    assert persistence.load_lean(path, "a" * 64) is None
    arrays = lean.arrays()
    arrays["p0_feature_idx"] = arrays["p0_feature_idx"] + 1000  # splits on features the model does not have
    np.savez(path, **arrays)
    assert persistence.load_lean(path, "a" * 64) is None
    np.savez(path, **lean.arrays())
    assert persistence.load_lean(path, "a" * 64) is not None and persistence.load_lean(path, "b" * 64) is None


# ------------------------------------------------------------------------------------ an incremental detect


@pytest.fixture(scope="module")
def changed_store(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    """A world scored in full, then a 1% change imported (not yet detected)."""
    sys.path.insert(0, str(ROOT))
    from bench.changes import write_changes
    from tracker.db import open_db
    from tracker.detection.pipeline import detect
    from tracker.importers import import_file
    from tracker.world import world

    folder = tmp_path_factory.mktemp("lean")
    path = imported_world(folder, 3000, 17)
    as_of = world._as_of(None)
    db = open_db(path)
    detect(db, as_of, full=True)
    db.close()
    write_changes(path, folder / "changes", as_of, share=0.01, seed=3)
    db = open_db(path)
    for kind in ("events", "orders"):  # no chat: scipy stays out (the next tests bring messages)
        import_file(db, kind, folder / "changes" / f"{kind}.csv")
    db.close()
    return folder, path, as_of


def _detect(path: Path, as_of, *args: str, env: dict[str, str] | None = None) -> set[str]:  # noqa: ANN001
    """`tracker detect` in a process of its own; the top-level packages it imported (`-X importtime`)."""
    out = subprocess.run([sys.executable, "-X", "importtime", "-m", "tracker", "--db", str(path), "detect",
                          "--as-of", as_of.isoformat(), *args], cwd=path.parent, capture_output=True, text=True,
                         env={**os.environ, **(env or {})}, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    return {line.rsplit("|", 1)[1].strip().split(".")[0] for line in out.stderr.splitlines()
            if line.startswith("import time:") and "|" in line}


def _scores(path: Path) -> dict[str, tuple]:
    conn = sqlite3.connect(path)
    try:
        return {r[0]: r[1:] for r in conn.execute("SELECT order_id, score, codes, reasons, model_id FROM scores")}
    finally:
        conn.close()


def test_an_incremental_detect_imports_no_scikit_learn_and_scores_as_a_full_rescore(changed_store) -> None:  # noqa: ANN001
    folder, base, as_of = changed_store
    path, twin = folder / "incremental.db", folder / "full.db"
    shutil.copyfile(base, path)
    shutil.copyfile(base, twin)
    imported = _detect(path, as_of)
    assert "numpy" in imported and "tracker" in imported  # the listing is read right
    assert not imported & set(HEAVY), sorted(imported & set(HEAVY))
    assert not _detect(twin, as_of, "--full") & {"sklearn", "skops"}  # a full run scores with it too
    got, want = _scores(path), _scores(twin)
    assert got and got == want
    # an hour later, nothing new: the orders whose time came are rescored, still without those libraries
    later = as_of + timedelta(hours=1)
    assert not _detect(path, later) & set(HEAVY)
    _detect(twin, later, "--full")
    assert _scores(path) == _scores(twin)


def test_without_its_export_the_model_itself_scores_the_incremental_run(changed_store, tmp_path) -> None:  # noqa: ANN001
    folder, base, as_of = changed_store
    models = tmp_path / "models"
    models.mkdir()
    for name in ("classifier.skops", "classifier.json"):  # no lean file beside them
        shutil.copy(registry.DEFAULT_MODEL_PATH.with_name(name), models / name)
    path, twin = tmp_path / "fallback.db", tmp_path / "full.db"
    shutil.copyfile(base, path)
    shutil.copyfile(base, twin)
    assert "sklearn" in _detect(path, as_of, env={"TRACKER_MODEL_DIR": str(models)})
    _detect(twin, as_of, "--full")
    assert _scores(path) == _scores(twin)


def test_the_classifiers_libraries_are_preloaded_only_where_the_run_may_need_them(changed_store, tmp_path,
                                                                                   monkeypatch) -> None:  # noqa: ANN001
    """An incremental run whose model scores lean starts no thread importing scikit-learn, a new message or not, while
    the message model has its lean export too; where the message model has none, a new message starts it."""
    from tracker.db import open_db
    from tracker.detection import preload
    from tracker.detection.pipeline import detect
    from tracker.importers import import_file

    folder, base, as_of = changed_store
    started: list[bool] = []
    monkeypatch.setattr(preload, "start", lambda: started.append(True))
    lean_messages = registry.lean_message_model
    for name, message, lean in (("quiet", False, True), ("chatty", True, True), ("chatty, no lean", True, False)):
        monkeypatch.setattr(registry, "lean_message_model", lean_messages if lean else lambda: None)
        path = tmp_path / f"{name}.db"
        shutil.copyfile(base, path)
        db = open_db(path)
        if message:
            order = db.execute("SELECT order_id FROM orders LIMIT 1").fetchone()[0]
            (tmp_path / "messages.csv").write_text(
                f"order_id,sender,sent_at,text\n{order},seller,{as_of.isoformat()},please confirm receipt now\n")
            import_file(db, "messages", tmp_path / "messages.csv")
        started.clear()
        detect(db, as_of)
        db.close()
        assert started == ([] if lean else [True]), name


def test_a_run_with_new_seller_messages_imports_no_scikit_learn_and_scores_them_as_the_model(changed_store,
                                                                                           tmp_path) -> None:  # noqa: ANN001
    """New seller messages are scored by the message model's lean export: the incremental run imports neither
    scikit-learn nor skops, stores the model's own probabilities, and flags and scores as a full rescore does."""
    from tracker.db import open_db
    from tracker.importers import import_file

    folder, base, as_of = changed_store
    path, twin = tmp_path / "chatty.db", tmp_path / "full.db"
    shutil.copyfile(base, path)
    texts = ["Please confirm receipt now, or the coupon expires tonight!!", "pls close the dispute, i refund by paypa1",
             "Your parcel left our warehouse today", "dear friend 5 star feedback pls, confirm receive goods"]
    db = open_db(path)
    orders = [r[0] for r in db.execute("SELECT order_id FROM orders ORDER BY order_id LIMIT ?", [len(texts)])]
    (tmp_path / "messages.csv").write_text("order_id,sender,sent_at,text\n" + "".join(
        f'{order},seller,{(as_of - timedelta(hours=1)).isoformat()},"{text}"\n'
        for order, text in zip(orders, texts, strict=True)))
    import_file(db, "messages", tmp_path / "messages.csv")
    db.close()
    shutil.copyfile(path, twin)
    imported = _detect(path, as_of)
    assert "numpy" in imported and not imported & {"sklearn", "skops"}, sorted(imported & set(HEAVY))
    conn = sqlite3.connect(path)
    try:
        cached = dict(conn.execute("SELECT m.text, p.probability FROM message_pressure p JOIN messages m "
                                   "ON m.id = p.message_id WHERE m.text IN (SELECT value FROM json_each(?))",
                                   [json.dumps(texts)]))
    finally:
        conn.close()
    model = registry.message_model()
    assert cached == dict(zip(texts, (float(p) for p in model.predict_proba(texts)[:, 1]), strict=True))
    assert max(cached.values()) > 0.5 > min(cached.values())  # the texts are told apart
    _detect(twin, as_of, "--full")
    assert _scores(path) == _scores(twin)

    def pressure_flags(store: Path) -> list[tuple]:
        conn = sqlite3.connect(store)
        try:
            return conn.execute("SELECT order_id, explanation FROM flags WHERE code = 'seller_pressure' "
                                "ORDER BY order_id").fetchall()
        finally:
            conn.close()

    assert pressure_flags(path) == pressure_flags(twin)
    assert {order for order, _ in pressure_flags(path)} & set(orders)  # the new messages raised some
