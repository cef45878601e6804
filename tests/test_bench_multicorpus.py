"""bench/bench_multicorpus.py renders a saved multi-corpus run against its references."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import bench_multicorpus

LABELS = ["anger", "calm", "neutral", "sadness"]  # the common space; EmoDB lacks calm


def _metrics(true, pred, labels):
    cm = np.zeros((len(labels), len(labels)), int)
    for t, p in zip(true, pred, strict=True):
        cm[t, p] += 1
    recall = np.diag(cm) / cm.sum(1)
    return {"wa": np.trace(cm) / cm.sum(), "ua": recall.mean(), "confusion": cm.tolist()}


def _fold(name, true, scores):
    """A multi-corpus fold record: EmoDB utterances of classes `true` (own names) and the
    model's probabilities over `LABELS`."""
    return {
        "fold": name,
        "seed": 0,
        "seconds": 60.0,
        "best_epoch": 3,
        "predictions": [
            {"corpus": "emodb", "original_label": t, "probabilities": p}
            for t, p in zip(true, scores, strict=True)
        ],
    }


@pytest.fixture
def saved(tmp_path, monkeypatch):
    # Fold a: "calm" wins the common arg-max of the 2nd utterance, "neutral" its own one.
    a = _fold(
        "loso-03",
        ["anger", "neutral", "sadness"],
        [[0.7, 0.1, 0.1, 0.1], [0.1, 0.6, 0.2, 0.1], [0.1, 0.1, 0.1, 0.7]],
    )
    b = _fold(
        "loso-08", ["anger", "neutral", "sadness"], [[0.4, 0, 0.5, 0.1], [0, 0, 1, 0], [0, 0, 0, 1]]
    )
    run = {
        "target_corpus": "emodb",
        "labels": LABELS,
        "seeds": [0],
        "recipe": {"name": "default", "pretrain_extra": True},
        "corpora": {"emodb": {"role": "target"}, "ravdess": {"role": "extra training"}},
        "folds": [a, b],
        "pooled": {"wa": 4 / 6, "ua": 0.5},
        "timings": {"total_s": 600.0},
        "pretraining": {
            "seeds": {
                "0": {
                    "seconds": 480.0,
                    "n_train": 100,
                    "n_val": 20,
                    "train_speakers": ["ravdess/01", "ravdess/02"],
                    "val_speakers": ["ravdess/03"],
                    "best_epoch": 7,
                    "epochs_run": 20,
                }
            }
        },
    }
    runs = tmp_path / "multicorpus"
    runs.mkdir()
    (runs / "emodb-loso-pretrain.json").write_text(json.dumps(run))
    own = ["anger", "neutral", "sadness"]
    ref = {
        "folds": [
            {"fold": "loso-03", "seed": 0, "metrics": _metrics([0, 1, 2], [0, 0, 2], own)},
            {"fold": "loso-08", "seed": 0, "metrics": _metrics([0, 1, 2], [0, 1, 2], own)},
        ]
    }
    (tmp_path / "emodb-loso-default.json").write_text(json.dumps(ref))
    monkeypatch.setattr(bench_multicorpus, "NEURAL", tmp_path)
    monkeypatch.setattr(bench_multicorpus, "SVM", tmp_path / "none")  # no SVM saved
    return runs


def test_scored_in_the_target_labels_against_the_single_corpus_run(saved):
    folds = bench_multicorpus.own_scores(
        json.loads((saved / "emodb-loso-pretrain.json").read_text())
    )
    # Own labels: fold a all right (calm is not EmoDB's), fold b 2 of 3 right.
    assert [f["metrics"]["wa"] for f in folds] == pytest.approx([1.0, 2 / 3])
    body = bench_multicorpus.render(saved)
    assert "| loso-03 | 100.0 / 100.0 | 66.7 / 66.7 | - | 60 | 3 |" in body
    assert body.count("**83.3 / 83.3**") == 2  # both pooled
    # Paired: fold a +33.3, fold b -33.3 -> mean 0.
    assert "single-corpus default: WA +0.0" in body
    assert "pretraining seed 0: 8.0 min on 100 utterances of 2 speakers" in body
    assert "in one process: 10.0 min" in body  # 8 min + 2 folds of 60 s
    assert "common label space (arg-max over all 4 classes): WA 66.7" in body
    assert bench_multicorpus.render(saved.parent / "nothing") == "No multi-corpus run saved yet."
