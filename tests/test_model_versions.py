"""A model made with another scikit-learn than the installed one is never scored with.

The shipped models' metadata is copied into a `$TRACKER_MODEL_DIR` with its recorded scikit-learn version
edited, as a library upgrade leaves it; `tracker detect` runs as a user runs it (a subprocess on a store
imported from a generated world) and must say so in one line, exit 1 and write no score. The command it
names makes the model again into the same folder.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import sklearn
from model_fixtures import AS_OF
from worlds import imported_store

from tracker import config
from tracker.db import open_db
from tracker.detection import persistence, registry
from tracker.timeutil import to_db
from tracker.world import write_world

ROOT = Path(__file__).resolve().parent.parent
TRACKER = str(Path(sys.executable).with_name("tracker"))
OLD = "1.0.2"  # a scikit-learn this install is not


def model_dir(tmp_path: Path, name: str, version: str = OLD) -> Path:
    """A copy of the shipped model `name` whose metadata records scikit-learn `version`."""
    folder = tmp_path / "models"
    folder.mkdir(exist_ok=True)
    source = config.data_path("models", name)
    shutil.copy(source, folder / source.name)
    meta = json.loads(source.with_suffix(".json").read_text())
    meta["library_versions"]["scikit-learn"] = version
    (folder / source.with_suffix(".json").name).write_text(json.dumps(meta, indent=2))
    return folder


@pytest.fixture(scope="module")
def world_files(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("world")
    write_world(folder, 300, seed=5, as_of=AS_OF)
    return folder


def fresh_store(tmp_path: Path, world: Path) -> Path:
    return imported_store(tmp_path / "tracker.db", world)


def detect(db_path: Path, models: Path | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRACKER_")}
    if models is not None:
        env["TRACKER_MODEL_DIR"] = str(models)
    return subprocess.run([TRACKER, "--db", str(db_path), "detect", "--as-of", to_db(AS_OF)],
                          env=env, capture_output=True, text=True, timeout=300)


def count(db_path: Path, table: str) -> int:
    db = open_db(db_path)
    try:
        return db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    finally:
        db.close()


@pytest.mark.parametrize(("name", "command"), [
    ("classifier.skops", "python -m tracker.detection.world_training"),
    ("message_model.skops", "python -m tracker.detection.message_training"),
])
def test_detect_refuses_a_model_recorded_with_another_scikit_learn_in_one_line(tmp_path, world_files, name,
                                                                               command):
    store = fresh_store(tmp_path, world_files)
    result = detect(store, model_dir(tmp_path, name))
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("tracker: failed: ")
    assert f"{name} was made with scikit-learn {OLD}, this is {sklearn.__version__}" in lines[0]
    assert "cannot be vouched for" in lines[0] and f"'{command}" in lines[0]
    assert "Traceback" not in result.stderr + result.stdout
    assert count(store, "scores") == 0  # never scored with it


def test_the_same_copy_with_this_version_recorded_scores(tmp_path, world_files):
    store = fresh_store(tmp_path, world_files)
    models = model_dir(tmp_path, "classifier.skops", sklearn.__version__)
    model_dir(tmp_path, "message_model.skops", sklearn.__version__)
    result = detect(store, models)
    assert result.returncode == 0, result.stderr
    assert count(store, "scores") > 0


def test_a_model_folder_is_read_file_by_file_and_written_whole(tmp_path, monkeypatch):
    monkeypatch.delenv("TRACKER_MODEL_DIR", raising=False)
    assert config.model_path("classifier.skops") == config.data_path("models", "classifier.skops")
    monkeypatch.setenv("TRACKER_MODEL_DIR", str(tmp_path))
    # nothing of its own there yet: read the shipped one, write there
    assert config.model_path("classifier.skops") == config.data_path("models", "classifier.skops")
    assert config.model_path("classifier.skops", for_writing=True) == tmp_path / "classifier.skops"
    model_dir(tmp_path.parent, "classifier.skops")
    shutil.copytree(tmp_path.parent / "models", tmp_path, dirs_exist_ok=True)
    assert config.model_path("classifier.skops") == tmp_path / "classifier.skops"
    assert config.model_path("message_model.skops") == config.data_path("models", "message_model.skops")


def test_the_named_command_makes_a_refused_message_model_again(tmp_path, monkeypatch):
    from tracker.detection import world_training

    folder = model_dir(tmp_path, "message_model.skops")
    monkeypatch.setenv("TRACKER_MODEL_DIR", str(folder))
    monkeypatch.setattr(registry, "MESSAGE_MODEL_PATH", folder / "message_model.skops")
    registry.forget_message_model()
    try:
        assert world_training.ensure_message_model() is True
        meta = persistence.read_metadata(folder / "message_model.skops")
        assert meta["library_versions"]["scikit-learn"] == sklearn.__version__
        assert registry.MESSAGE_MODEL_PATH == folder / "message_model.skops"
        assert registry.message_pressure(["please confirm receipt now or lose the coupon"])[0] > 0.5
        # made with its lean export beside it, which scores from now on
        assert meta["lean"]["file"] == "message_model.lean.npz" and (folder / meta["lean"]["file"]).exists()
        assert registry.lean_message_model() is not None
        assert world_training.ensure_message_model() is False  # vouched for now: left alone
    finally:
        registry.forget_message_model()


@pytest.mark.parametrize("name", ["classifier.json", "message_model.json"])
def test_the_lock_installs_the_libraries_the_shipped_models_were_made_with(name):
    """A fresh `make install` reproduces the pins; the shipped models must be the pins' own, or every fresh
    install refuses them (`make lock --upgrade` needs the models made again)."""
    from packaging.utils import canonicalize_name

    pins = {}
    for line in (ROOT / "requirements" / "constraints.txt").read_text().splitlines():
        if "==" in line and not line.lstrip().startswith("#"):
            package, version = line.split("==", 1)
            pins[canonicalize_name(package.strip())] = version.strip()
    recorded = json.loads(config.data_path("models", name).read_text())["library_versions"]
    for package in ("scikit-learn", "numpy", "scipy", "skops"):
        assert pins[package] == recorded[package], (package, pins[package], recorded[package])


def test_make_install_and_ci_install_from_the_lock():
    dry = subprocess.run(["make", "-n", "-B", "-C", str(ROOT), "install"], capture_output=True, text=True,
                         check=True).stdout
    installs = [line for line in dry.splitlines() if "pip install" in line]
    assert installs and all("-c requirements/constraints.txt" in line for line in installs), installs
    assert "make test" in (ROOT / ".ci" / "run").read_text()  # and `make test` installs through `make install`
