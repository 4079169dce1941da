"""Lean start-up: the commands a person types often load no frame or model library until one is needed.

Each command runs as a user runs it (a fresh `python -m tracker` process) with `-X importtime`, whose report
names every module the process imported; the heavy libraries must not be among them. No timing: what is
imported is what costs.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("pandas", "sklearn", "scipy", "pyarrow", "joblib")


def _imported(args: list[str]) -> set[str]:
    """The top-level packages a `tracker` process imported while running `args`."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "tracker", *args], capture_output=True,
                          text=True, cwd=ROOT, check=False)
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    names = set()
    for line in proc.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    assert names, "no -X importtime report"
    return names


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = str(tmp_path_factory.mktemp("startup") / "tracker.db")
    subprocess.run([sys.executable, "-m", "tracker", "--db", path, "init"], cwd=ROOT, check=True,
                   capture_output=True)
    return path


@pytest.mark.parametrize("args", [
    ["--help"],
    ["validate", "RR123456785CN", "LP00123456789012"],
    ["cases"],
    ["cases", "--format", "json"],
])
def test_everyday_commands_load_no_frame_or_model_library(args: list[str], store: str) -> None:
    loaded = _imported(["--db", store, *args])
    assert "tracker" in loaded and "click" in loaded  # the report is real: the CLI itself is in it
    assert not loaded & set(HEAVY), f"tracker {' '.join(args)} imported {sorted(loaded & set(HEAVY))}"


def test_numpy_stays_out_of_validate_and_help(store: str) -> None:
    for args in (["--help"], ["validate", "RR123456785CN"]):
        assert "numpy" not in _imported(["--db", store, *args]), args


def test_validate_reads_carrier_files_without_their_adapters(store: str, tmp_path) -> None:
    """A carrier file's number_pattern still counts (the file is read), but no page parser is imported."""
    folder = tmp_path / "carriers"
    folder.mkdir()
    (folder / "acme.toml").write_text('name = "acme"\nadapter = "html"\nurl = "https://acme.test/{number}"\n'
                                      "number_pattern = '^ACME\\d{8}$'\nrate_per_second = 1\n")
    env = {**os.environ, "TRACKER_CARRIERS_DIR": str(folder)}
    proc = subprocess.run([sys.executable, "-m", "tracker", "--db", store, "validate", "ACME12345678"], cwd=ROOT,
                          capture_output=True, text=True, env=env, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "yes" in proc.stdout and "acme" in proc.stdout
    loaded = _imported(["--db", store, "validate", "ACME12345678"])
    assert not loaded & {"bs4", "lxml", "requests", "jmespath", "urllib3"}, sorted(loaded)


def test_the_rules_read_carrier_patterns_without_the_adapters(tmp_path) -> None:
    """Every detect run folds the carrier files' number patterns into the rules' settings: the same patterns the
    loaded carriers give, read without importing a page parser; a pattern that is no regular expression is one
    clear line naming its file."""
    folder = tmp_path / "carriers"
    folder.mkdir()
    (folder / "acme.toml").write_text('name = "acme"\nadapter = "html"\nurl = "https://acme.test/{number}"\n'
                                      "number_pattern = '^ACME\\d{8}$'\nrate_per_second = 1\n")
    read = ("import sys; from tracker.detection import flagging; "
            "patterns = flagging.load_settings()['invalid_tracking_number']['carrier_patterns']; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'bs4', 'lxml', 'requests', 'jmespath'})); "
            "print('tracker.carriers' in sys.modules, patterns.get('acme'))")
    compare = "; from tracker.carriers import number_patterns; print(patterns == number_patterns())"
    proc = subprocess.run([sys.executable, "-c", read + compare], capture_output=True, text=True, cwd=ROOT,
                          check=True)
    assert proc.stdout.split() == ["[]", "False", "None", "True"]  # the shipped carriers: the loaders agree
    env = {**os.environ, "TRACKER_CARRIERS_DIR": str(folder)}
    proc = subprocess.run([sys.executable, "-c", read], capture_output=True, text=True, cwd=ROOT, env=env,
                          check=True)
    assert proc.stdout.split() == ["[]", "False", "^ACME\\d{8}$"]
    (folder / "broken.toml").write_text('name = "broken"\nadapter = "html"\nurl = "https://b.test/{number}"\n'
                                        "number_pattern = '^(B'\nrate_per_second = 1\n")
    proc = subprocess.run([sys.executable, "-c", "from tracker.detection import flagging; flagging.load_settings()"],
                          capture_output=True, text=True, cwd=ROOT, env=env, check=False)
    assert proc.returncode != 0
    assert "broken.toml: 'number_pattern' is not a regular expression" in proc.stderr


def test_sqlite_utils_still_works_and_pandas_still_loads_when_asked() -> None:
    """sqlite-utils is loaded with pandas hidden (tracker/__init__.py); pandas itself still imports afterwards,
    and sqlite-utils still works on a store."""
    code = ("import sys, tracker, sqlite_utils; assert 'pandas' not in sys.modules; "
            "db = sqlite_utils.Database(memory=True); db.execute('CREATE TABLE t (a)'); "
            "db.execute('INSERT INTO t VALUES (1)'); assert db.execute('SELECT a FROM t').fetchone()[0] == 1; "
            "import sqlite_utils.utils, pandas; print(pandas.DataFrame({'a': [1]}).shape)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "(1, 1)"


def test_the_rules_and_their_readers_import_no_scikit_learn() -> None:
    """An incremental run imports scikit-learn in a thread while its rules work (`tracker.detection.preload`): the
    rules' modules must not need it, and the models still name the transformer where they always did."""
    code = ("import sys; import tracker.detection.flagging, tracker.detection.readers, tracker.cases.sync; "
            "from detectors.rules import all_rules; all_rules(); "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'sklearn', 'scipy'})); "
            "from detectors.features import OrderFeatures; print(OrderFeatures.__name__)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert proc.stdout.split() == ["[]", "OrderFeatures"]


def test_an_incremental_detect_waits_for_the_libraries_imported_beside_its_rules() -> None:
    from tracker.detection import preload

    preload.start()  # in this process they are in already, or being imported: either way wait() returns
    preload.wait()
    assert "detectors.classifier" in sys.modules
