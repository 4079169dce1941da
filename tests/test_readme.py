"""Docs that cannot drift: every verb of `tracker --help` is documented in the README."""

from pathlib import Path

import click

from tracker.cli import cli

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def _verbs(group: click.Group, prefix: str = "tracker") -> list[str]:
    out = []
    for name, command in group.commands.items():
        path = f"{prefix} {name}"
        if isinstance(command, click.Group):
            out.extend(_verbs(command, path))
        else:
            out.append(path)
    return out


def test_every_command_is_in_the_readme():
    missing = [v for v in _verbs(cli) if f"`{v}" not in README]
    assert not missing, f"commands missing from README.md: {missing}"


def test_readme_names_the_two_commands_first():
    first_screen = README[:2500]
    assert "make demo" in first_screen and "make test" in first_screen


def test_every_option_of_every_verb_is_in_the_readme():
    missing = []

    def walk(group: click.Group, path: str) -> None:
        for name, command in group.commands.items():
            if isinstance(command, click.Group):
                walk(command, f"{path} {name}")
                continue
            for param in command.params:
                if isinstance(param, click.Option):
                    for opt in param.opts:
                        if opt.startswith("--") and opt != "--help" and opt not in README:
                            missing.append(f"{path} {name} {opt}")

    walk(cli, "tracker")
    assert not missing, f"options missing from README.md: {missing}"


def test_command_reference_is_generated_from_help():
    from tracker.cli.reference import current_block, reference

    assert current_block(README) == reference(), "run: python -m tracker.cli.reference --write"
