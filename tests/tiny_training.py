"""The tiny recipe, window policy and learnable synthetic features that the training tests
share (tests/test_training*.py, and the pretraining, multi-corpus and pooled tests)."""

from __future__ import annotations

import numpy as np

from edge_runtime.windows import WindowPolicy
from keras_dyconv.recipes import Recipe

TINY = Recipe(
    name="tiny",
    epochs=3,
    batch_size=8,
    learning_rate=3e-3,
    temperature=(10.0, 1.0, 2),
    patience=None,
    min_epochs=0,
    model={"conv_filters": (4,), "lstm_units": 8, "attention_units": 8},
)
POLICY = WindowPolicy(frames=100, hop_frames=50)


def synthetic_features(n: int, seed: int = 0) -> tuple[list[np.ndarray], np.ndarray]:
    """Class 1 has more energy in the upper mel bands: learnable in a few steps."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    feats = []
    for label in labels:
        f = rng.normal(size=(int(rng.integers(60, 160)), 16)).astype(np.float32)
        f[:, 8:] += 2.0 * label
        feats.append(f)
    return feats, labels
