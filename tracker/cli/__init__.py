"""The `tracker` command line: a thin layer. Each verb parses its arguments and calls one function.

The group and its global options live in `tracker.cli.app`; the verbs in one module per area, loaded here,
each registering on `cli`.
"""

from tracker.cli import (  # noqa: F401 - loaded for their registration on `cli`
    cases,
    demo,
    detection,
    imports,
    mirror,
    model,
    polling,
    serve,
    world,
)
from tracker.cli.app import cli, main, open_store

__all__ = ["cli", "main", "open_store"]
