"""`tracker generate`: write a generated world (orders, events, messages, labels) as CSV files."""

from __future__ import annotations

import time
from pathlib import Path

import click
from click.core import ParameterSource

from tracker.cli.app import cli
from tracker.errors import BadInput


@cli.command()
@click.option("--orders", "n_orders", required=True, type=click.IntRange(min=1), help="How many orders.")
@click.option(
    "--seed",
    default=7,
    show_default=True,
    type=int,
    help="World seed: the same seed gives the same files (a profile.json brings its own unless given).",
)
@click.option(
    "--as-of",
    "as_of",
    default=None,
    metavar="T",
    help="The world's 'now' (ISO 8601); default 2026-11-01T00:00:00Z.",
)
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(file_okay=False),
    help="Folder for the CSV files (created).",
)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(min=1, max=64),
    help="Processes to share the work (the files are the same whatever the number).",
)
@click.option(
    "--profile",
    default="default",
    show_default=True,
    metavar="NAME|FILE",
    help="The world's settings: default (data/world/rates.toml as it is); random (drawn from --seed within "
    "the training ranges of data/world/profiles.toml); outside (some settings beyond those ranges, for "
    "held-out evaluation); or a profile.json written by an earlier run.",
)
def generate(n_orders: int, seed: int, as_of: str | None, out: str, workers: int, profile: str) -> None:
    """Generate a marketplace world with seeded fraud and its ground truth.

    Writes orders.csv, events.csv, messages.csv and labels.csv into OUT, ready for
    `tracker import` (labels.csv for `tracker train --labels`). A world made with another profile
    than the default also gets profile.json: the settings it was made with.
    """
    from tracker.timeutil import parse_time
    from tracker.world import profiles, write_world

    when = None
    if as_of:
        try:
            when = parse_time(as_of)
        except ValueError:
            raise BadInput(f"--as-of: {as_of!r} is not an ISO 8601 date or datetime") from None
    folder = Path(out)
    if folder.exists() and not folder.is_dir():
        raise BadInput(f"--out: {out} exists and is not a folder")
    chosen = profiles.resolve(profile, seed)
    explicit = click.get_current_context().get_parameter_source("seed") != ParameterSource.DEFAULT
    if chosen.seed is not None and not explicit:  # a saved profile remakes its own world
        seed = chosen.seed
    started = time.perf_counter()
    counts = write_world(folder, n_orders, seed=seed, as_of=when, workers=workers, profile=chosen)
    took = time.perf_counter() - started
    summary = ", ".join(f"{n} {kind}" for kind, n in counts.items())
    about = f"seed {seed}"
    if chosen is not profiles.DEFAULT:
        chosen.write(folder / "profile.json")
        about += f", profile {chosen.name}"
        if chosen.outside:
            about += f" ({len(chosen.outside)} knobs outside the training ranges)"
    click.echo(f"{folder}: {summary} ({about}, {took:.1f} s)")
