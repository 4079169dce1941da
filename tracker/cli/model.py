"""`tracker scores`, `tracker train`, `tracker evaluate`."""

from __future__ import annotations

import json

import click

from tracker.cli.app import cli, open_store
from tracker.cli.output import emit_rows, format_option
from tracker.errors import BadInput

_labels_option = click.option(
    "--labels", type=click.Path(dir_okay=False),
    help="CSV of order_id,fraud (1/0, yes/no; optional pattern column). Default: closed cases' outcomes.")
_as_of_option = click.option(
    "--as-of", "as_of", metavar="T",
    help="Compute the features as of this time (ISO 8601). Default: the time the scores were last made.")
_seed_option = click.option("--seed", type=int, default=None, help="Random seed (default: data/model.toml).")


def _labels(db, labels: str | None):  # noqa: ANN001, ANN202
    from tracker.detection import training

    if labels:
        return training.read_labels_file(labels, db), labels
    return training.labels_from_cases(db), "closed cases"


def _as_of(db, as_of: str | None):  # noqa: ANN001, ANN202
    from tracker.detection import training
    from tracker.timeutil import parse_time

    if not as_of:
        return training.default_as_of(db)
    try:
        return parse_time(as_of)
    except ValueError as exc:
        raise BadInput(f"--as-of: {as_of!r} is not an ISO 8601 date or datetime ({exc})") from None


@cli.command()
@format_option
@click.pass_context
def scores(ctx: click.Context, fmt: str) -> None:
    """One row per order with a tracking number: order_id, score (0-1), codes."""
    db = open_store(ctx, create=False)
    rows = db.execute(
        "SELECT s.order_id, s.score, s.codes FROM scores s JOIN orders o ON o.order_id = s.order_id "
        "WHERE coalesce(o.tracking_number, '') != '' ORDER BY s.score DESC, s.order_id")
    emit_rows(({"order_id": o, "score": s, "codes": c} for o, s, c in rows), ["order_id", "score", "codes"], fmt)


@cli.command()
@_labels_option
@_as_of_option
@_seed_option
@click.pass_context
def train(ctx: click.Context, labels: str | None, as_of: str | None, seed: int | None) -> None:
    """Fit the classifier on labelled orders (without --labels: closed cases' outcomes).

    Upheld cases count as fraud; dismissed cases and rejected outcomes as not. The new model is stored
    next to the database, becomes the active one, and the next `tracker detect` rescores every order. It
    joins the shipped model and the rules prior with a weight that grows with the local evidence (the
    smaller of its labelled frauds and honest orders, over [blend] takeover_labels in data/model.toml); from
    there on it scores alone.
    """
    from tracker.detection import training

    db = open_store(ctx)
    label_frame, source = _labels(db, labels)
    model_id, meta = training.train_from_labels(db, label_frame, source, _as_of(db, as_of), seed=seed)
    click.echo(f"trained {model_id} on {meta['n_labels']} labelled orders ({meta['n_fraud']} fraud) from {source}")
    held_out = (meta.get("metrics") or {}).get("model")
    if held_out:
        baseline = meta["metrics"]["flag_count"]
        click.echo(f"held-out (newest half): PR-AUC {held_out['pr_auc']:.3f} vs {baseline['pr_auc']:.3f} ranking by flag "
                   f"count; precision at {held_out['k']}: {held_out['precision_at_k']:.3f}")
    weight = float((meta.get("blend") or {}).get("local", 1.0))
    click.echo(f"scores with: the local model {weight:.0%}" + (
        ", the shipped model and the rules prior the rest" if weight < 1 else " (enough local labels to score alone)"))
    click.echo("active now: the next 'tracker detect' rescores every order")


@cli.command()
@_labels_option
@_as_of_option
@_seed_option
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="Output format.")
@click.pass_context
def evaluate(ctx: click.Context, labels: str | None, as_of: str | None, seed: int | None, fmt: str) -> None:
    """Print the classifier's quality on held-out labels.

    The labelled orders are split by ordered_at: a model trained on the older part scores the newer part.
    Prints PR-AUC, precision at k (k = reviewer capacity, data/model.toml), recall in the top R (R = the
    number of frauds; per fraud pattern when the labels file has a pattern column) for the local model, for
    the blend `tracker train` would make of it, for the shipped model untrained, and for ranking by flag
    count; then the shipped model's average precision on generated worlds it never saw, beside the flag
    count's (from its metadata).
    """
    from tracker.detection import training

    db = open_store(ctx, create=False)
    label_frame, source = _labels(db, labels)
    training.check_enough(label_frame, source)
    evaluation = training.evaluate(training.order_frame(db, _as_of(db, as_of)), label_frame, seed=seed)
    if fmt == "json":
        click.echo(json.dumps(evaluation.as_dict(), indent=2))
    else:
        click.echo("\n".join(training.format_evaluation(evaluation)))
