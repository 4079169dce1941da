"""Training the shipped message model (`python -m tracker.detection.message_training`).

Reads the labelled seller messages the project ships (`data/messages/labelled.csv`), cross-validates the model
of `detectors.message_model` with whole paraphrase families held out, fits it on every message and writes it
with its metadata to `data/models/message_model.skops` (or `$TRACKER_MODEL_DIR`) (skops, see `tracker.detection.persistence`).
"""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from detectors import message_model
from tracker import config
from tracker.detection import persistence, registry

LABELLED_PATH = config.data_path("messages", "labelled.csv")


def load_labelled(path: str | Path = LABELLED_PATH) -> tuple[list[str], np.ndarray, list[str]]:
    """The labelled messages: texts, labels (0/1) and paraphrase families (the grouping for CV)."""
    with open(path, newline="", encoding="utf-8") as fh:
        return message_model.labelled(csv.DictReader(fh))


def train_and_save(path: str | Path | None = None, labelled: str | Path = LABELLED_PATH, *,
                   seed: int = 0) -> dict[str, Any]:
    """Cross-validate, fit on every message, write the model and its metadata (data/models/, or
    $TRACKER_MODEL_DIR when set); return the metadata."""
    path = path or config.model_path("message_model.skops", for_writing=True)
    texts, labels, families = load_labelled(labelled)
    metrics = message_model.cross_validate(texts, labels, families, seed=seed)
    model = message_model.build_pipeline(seed=seed).fit(texts, labels)
    meta = {
        "kind": "message_model",
        "created_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "training_data": f"{Path(labelled).name}: {len(texts)} seller messages, {int(labels.sum())} pressure, "
                         f"{len(set(families))} paraphrase families",
        "cv": "GroupKFold by paraphrase family (held-out phrasings)",
        "metrics": metrics,
        "threshold": message_model.DEFAULT_THRESHOLD,
        "seed": seed,
    }
    meta = persistence.save_model(model, path, meta)
    registry.forget_message_model()
    return meta


if __name__ == "__main__":
    import json

    print(json.dumps(train_and_save(), indent=2))
