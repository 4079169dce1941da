"""The lock file (requirements/constraints.txt, `make lock`) and the installed versions agree.

A package whose installed version differs from its pin, or a dependency of pyproject.toml that the
lock does not cover, makes the drift visible here instead of as a model that loads differently.
"""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements" / "constraints.txt"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;#]+)\s*$")


def _pins() -> dict[str, str]:
    pins = {}
    for line in LOCK.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        m = PIN.match(line)
        assert m, f"{LOCK.name}: not a plain name==version pin: {line!r}"
        pins[canonicalize_name(m.group(1))] = m.group(2)
    return pins


def _declared() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras = project["optional-dependencies"]
    return [Requirement(r) for r in (*project["dependencies"], *extras["dev"], *extras["dask"])]


def test_every_locked_package_is_installed_at_its_pin():
    pins = _pins()
    assert len(pins) > 20
    wrong = []
    for name, version in sorted(pins.items()):
        try:
            installed = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            installed = "missing"
        if installed != version:
            wrong.append(f"{name}: locked {version}, installed {installed}")
    assert not wrong, "installed versions drifted from the lock (run `make install`): " + "; ".join(wrong)


def test_the_lock_covers_every_declared_dependency_within_its_range():
    pins = _pins()
    problems = []
    for req in _declared():
        name = canonicalize_name(req.name)
        if name not in pins:
            problems.append(f"{req.name} is not in the lock")
        elif not req.specifier.contains(pins[name], prereleases=True):
            problems.append(f"{req.name} is locked at {pins[name]}, outside {req.specifier}")
    assert not problems, "pyproject.toml and the lock disagree (run `make lock`): " + "; ".join(problems)


@pytest.mark.parametrize(("name", "allowed"), [("datasette", "==0.65.5"), ("sqlite-utils", ">=4,<5")])
def test_the_pins_the_project_relies_on(name, allowed):
    from packaging.specifiers import SpecifierSet

    assert SpecifierSet(allowed).contains(_pins()[name])
