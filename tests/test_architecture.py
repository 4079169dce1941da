"""The house's shape, read from the source: `detectors/` is pure, and no module imports itself in a circle.

Every import statement counts, at module level or inside a function, since either runs sooner or later. The
graph is built from the syntax trees alone: no module is imported to build it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("tracker", "detectors")
# what a pure detector never touches: the store, processes, threads, temporary files, files of its own, the tracker
FORBIDDEN = {"sqlite3", "adbc_driver_manager", "adbc_driver_sqlite", "subprocess", "multiprocessing", "concurrent",
             "tempfile", "threading", "_thread", "os", "io", "pathlib", "shutil", "joblib", "pickle", "socket",
             "tracker"}
# the one module through which detectors read shipped, read-only reference data (data/): it may name paths
READER = "detectors.reference_data"
READER_MAY = {"os", "pathlib"}
WRITES = {"write_text", "write_bytes", "unlink", "mkdir", "rename", "replace", "rmdir", "touch", "chmod", "remove"}


def _modules() -> dict[str, Path]:
    """Every module of the project's packages: dotted name -> file."""
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def _imports(name: str, path: Path, modules: dict[str, Path] | None = None) -> list[tuple[str, int]]:
    """What this module imports, (dotted name, line). `import a.b` names a.b; `from a import b` names the module
    a.b when there is one (among `modules`), else a (b is a name a defines)."""
    modules = modules or {}
    is_package = path.name == "__init__.py"
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            out += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package this module is in
                anchor = name.split(".") if is_package else name.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                module = f"{base}.{alias.name}"
                out.append((module if module in modules else base, node.lineno))
    return out


def _graph() -> dict[str, set[str]]:
    """Module -> the modules of the project it imports (its parent packages, which Python runs first whatever
    it imports, are not counted unless it imports a name of theirs)."""
    modules = _modules()
    return {name: {t for t, _ in _imports(name, path, modules) if t in modules and t != name}
            for name, path in modules.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle, as the modules along it, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return None


def test_the_project_has_no_import_circle():
    graph = _graph()
    assert len(graph) > 50 and graph["tracker.detection.pipeline"], "the graph was read"
    cycle = _cycle(graph)
    assert cycle is None, "import circle: " + " -> ".join(cycle or [])


def test_a_circle_would_be_found():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize("name", sorted(n for n in _modules() if n.split(".")[0] == "detectors"))
def test_detectors_are_pure(name):
    """Frames in; findings, features and probabilities out: no store, no process, no thread, no temporary or
    other file, nothing of the tracker."""
    path = _modules()[name]
    forbidden = FORBIDDEN - READER_MAY if name == READER else FORBIDDEN
    bad = [f"line {line}: import {target}" for target, line in _imports(name, path)
           if target.split(".")[0] in forbidden]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    bad += [f"line {node.lineno}: open()" for node in ast.walk(tree)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "open"]
    if name == READER:  # it reads: no call of a writing method, no open() in any mode but "r"/"rb"
        bad += [f"line {node.lineno}: .{node.func.attr}()" for node in ast.walk(tree)
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr in WRITES]
        bad += [f"line {node.lineno}: open mode {arg.value!r}" for node in ast.walk(tree)
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "open"
                for arg in node.args[:1] if isinstance(arg, ast.Constant) and arg.value not in ("r", "rb")]
    assert not bad, f"{path.relative_to(ROOT)}: " + "; ".join(bad)


def test_the_purity_check_sees_function_level_imports(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("def f():\n    import sqlite3\n    from concurrent.futures import ThreadPoolExecutor\n")
    assert [t for t, _ in _imports("detectors.m", module)] == ["sqlite3", "concurrent.futures"]
