"""The two kinds of failure the CLI distinguishes: bad input (exit 2) and a failed run (exit 1)."""

from __future__ import annotations


class BadInput(Exception):
    """The user's input is wrong. Each problem is one line: what, where, why."""

    def __init__(self, problems: str | list[str]):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


class RunFailure(Exception):
    """The run itself failed (network down, disk full, lock lost): exit 1."""
