"""The shipped model's held-out figures, where a user reads them: `tracker evaluate` prints its average precision
on generated worlds it never saw beside the flag count's, and docs/detection.md shows the same table, both from
the metadata `python -m tracker.detection.world_training` wrote beside the model."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from tracker.cli import cli
from tracker.detection import registry, training, world_training
from tracker.timeutil import parse_time, to_db

AS_OF = parse_time("2026-11-01T00:00:00Z")
DOCS = Path(__file__).resolve().parent.parent / "docs" / "detection.md"


def test_evaluate_prints_the_held_out_worlds_beside_the_flag_count(tmp_path):
    db, labels = training.world_store(tmp_path, 500, 43, AS_OF)
    db.close()
    labels[["order_id", "fraud"]].to_csv(tmp_path / "labels.csv", index=False)
    result = CliRunner().invoke(cli, ["--db", str(tmp_path / "world.db"), "evaluate", "--labels",
                                      str(tmp_path / "labels.csv"), "--as-of", to_db(AS_OF)])
    assert result.exit_code == 0, result.output
    means = registry.load_default().metadata["held_out"]["mean"]
    assert {"train", "outside"} <= set(means)
    lines = result.output.splitlines()
    start = lines.index("shipped model on generated worlds it never saw (AP model / flag count):")
    for region, words in (("train", "settings within its training ranges"), ("outside", "settings outside them")):
        m = means[region]
        assert f"  {m['worlds']} worlds, {words}: {m['ap_model']:.3f} / {m['ap_flag_count']:.3f}" in lines[start:]
        # what the issue asks of it, on worlds it never saw
        assert m["ap_model"] >= 0.9 and m["ap_model"] >= m["ap_flag_count"] + 0.03


def test_the_docs_show_the_shipped_models_own_held_out_table():
    meta = registry.load_default().metadata
    text = DOCS.read_text(encoding="utf-8")
    block = text[text.index(world_training.DOCS_START):text.index(world_training.DOCS_END)]
    assert world_training.held_out_markdown(meta) in block, \
        "docs/detection.md is stale: run python -m tracker.detection.world_training --write"
