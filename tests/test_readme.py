"""Docs that cannot drift: every verb and option of `tracker --help` is documented, the README stays a front
page, and the generated blocks match what their generators print."""

from pathlib import Path

import click

from tracker.cli import cli

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
DOCS = {p.name: p.read_text() for p in sorted((ROOT / "docs").glob("*.md"))}
ALL_DOCS = README + "\n".join(DOCS.values())


def _verbs(group: click.Group, prefix: str = "tracker") -> list[str]:
    out = []
    for name, command in group.commands.items():
        path = f"{prefix} {name}"
        if isinstance(command, click.Group):
            out.extend(_verbs(command, path))
        else:
            out.append(path)
    return out


def test_every_command_is_documented():
    missing = [v for v in _verbs(cli) if f"`{v}" not in ALL_DOCS]
    assert not missing, f"commands missing from README.md and docs/: {missing}"


def test_readme_is_a_front_page():
    assert len(README.splitlines()) <= 300
    first_screen = README[:2500]
    assert "make demo" in first_screen and "make test" in first_screen


def test_readme_links_every_docs_page_and_every_link_resolves():
    for name in DOCS:
        assert f"docs/{name}" in README, f"README.md does not link docs/{name}"
    import re

    for page, text in [("README.md", README), *((f"docs/{n}", t) for n, t in DOCS.items())]:
        base = ROOT if page == "README.md" else ROOT / "docs"
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", text):
            assert (base / target).exists(), f"{page} links {target}, which does not exist"


def test_every_option_of_every_verb_is_documented():
    missing = []

    def walk(group: click.Group, path: str) -> None:
        for name, command in group.commands.items():
            if isinstance(command, click.Group):
                walk(command, f"{path} {name}")
                continue
            for param in command.params:
                if isinstance(param, click.Option):
                    for opt in param.opts:
                        if opt.startswith("--") and opt != "--help" and opt not in ALL_DOCS:
                            missing.append(f"{path} {name} {opt}")

    walk(cli, "tracker")
    assert not missing, f"options missing from README.md and docs/: {missing}"


def test_command_reference_is_generated_from_help():
    from tracker.cli.reference import current_block, reference

    assert current_block(DOCS["cli-reference.md"]) == reference(), "run: python -m tracker.cli.reference --write"


def test_benchmark_table_is_rendered_from_results():
    import json

    from bench.summary import END, START, table

    results = json.loads((ROOT / "bench" / "results.json").read_text())
    page = DOCS["performance.md"]
    assert page[page.index(START) + len(START):page.index(END)].strip() == table(results).strip()
