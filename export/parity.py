"""Parity of an exported artifact with its Keras model, measured through the edge engines.

The exported model runs in the same `edge_runtime.engines` code a device runs (LiteRT or
onnxruntime, one thread, batch-1 invokes). On held-out windows the report gives:

* agreement: fraction of windows whose top-1 class matches the Keras model's;
* max_abs_diff: the largest |p_export - p_keras| over all windows and classes;
* accuracy (when the held-out audio is labelled) of both models per window, and per
  utterance (mean of the window probabilities, `edge_runtime.windows.aggregate`: what the
  runtime decides);
* the file size and the median single-thread latency of one window.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import keras
import numpy as np

from export.calibration import WindowSet

__all__ = ["ParityReport", "keras_probabilities", "median_latency_ms", "parity_report"]


@dataclass(frozen=True)
class ParityReport:
    """Exported model vs Keras model on held-out windows (fractions in [0, 1])."""

    heldout: str
    windows: int
    utterances: int
    agreement: float
    max_abs_diff: float
    mean_abs_diff: float
    keras_accuracy: float | None
    export_accuracy: float | None
    keras_utterance_accuracy: float | None
    export_utterance_accuracy: float | None
    size_bytes: int
    latency_ms: float
    min_agreement: float
    engine: str

    @property
    def passed(self) -> bool:
        return self.agreement >= self.min_agreement

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}


def keras_probabilities(
    model: keras.Model, windows: np.ndarray, batch_size: int = 32
) -> np.ndarray:
    """Class probabilities (n, C) float32 of the Keras model in inference mode."""
    out = [
        keras.ops.convert_to_numpy(model(windows[i : i + batch_size], training=False))
        for i in range(0, len(windows), batch_size)
    ]
    return np.concatenate(out).astype(np.float32)


def median_latency_ms(
    predict: Callable[[np.ndarray], np.ndarray], window: np.ndarray, runs: int = 50
) -> float:
    """Median wall time (ms) of `predict` on one window (1, frames, F), after 3 warm-up runs."""
    for _ in range(3):
        predict(window)
    times = []
    for _ in range(max(1, runs)):
        start = time.perf_counter()
        predict(window)
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1e3)


def _utterance_accuracy(probs: np.ndarray, data: WindowSet) -> float:
    n = len(data.items)
    sums = np.zeros((n, probs.shape[1]))
    np.add.at(sums, data.utterance, probs)
    return float(np.mean(sums.argmax(axis=1) == data.labels))


def parity_report(
    reference: np.ndarray,
    exported: np.ndarray,
    data: WindowSet,
    *,
    size_bytes: int,
    latency_ms: float,
    min_agreement: float,
    engine: str,
) -> ParityReport:
    """Compare exported probabilities with the Keras `reference` ones, both (n, C)."""
    if reference.shape != exported.shape or len(reference) != len(data):
        raise ValueError(
            f"probability shapes differ: keras {reference.shape}, export {exported.shape}, "
            f"{len(data)} windows"
        )
    diff = np.abs(exported.astype(np.float64) - reference)
    top_ref, top_exp = reference.argmax(axis=1), exported.argmax(axis=1)
    accuracies: dict[str, float | None] = dict.fromkeys(
        (
            "keras_accuracy",
            "export_accuracy",
            "keras_utterance_accuracy",
            "export_utterance_accuracy",
        )
    )
    if data.labels is not None:
        truth = data.labels[data.utterance]
        accuracies = {
            "keras_accuracy": float(np.mean(top_ref == truth)),
            "export_accuracy": float(np.mean(top_exp == truth)),
            "keras_utterance_accuracy": _utterance_accuracy(reference, data),
            "export_utterance_accuracy": _utterance_accuracy(exported, data),
        }
    return ParityReport(
        heldout=data.origin,
        windows=len(data),
        utterances=len(np.unique(data.utterance)),
        agreement=float(np.mean(top_ref == top_exp)),
        max_abs_diff=float(diff.max()),
        mean_abs_diff=float(diff.mean()),
        size_bytes=int(size_bytes),
        latency_ms=float(latency_ms),
        min_agreement=float(min_agreement),
        engine=engine,
        **accuracies,
    )
