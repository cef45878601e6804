"""Losses for training on several corpora whose label sets differ.

A model trained on several corpora outputs the union of their classes (common names,
`keras_dyconv.labels`). An utterance of a corpus that lacks a class (CASIA has no boredom)
says nothing about that class: plain cross-entropy over every output would teach "not
boredom" for every CASIA utterance. `MaskedCrossEntropy` renormalises the softmax over the
utterance's own corpus's classes instead,

    loss = -sum_{c in C} t_c * log(p_c / sum_{k in C} p_k),

so a class the corpus lacks is neither pushed up nor down by its utterances. The mask
travels with the targets: ``y_true`` is ``[t, m]`` concatenated on the last axis, shape
(batch, 2 * classes), `t` the target distribution and `m` the corpus's class mask (1 = the
corpus has the class; `keras_dyconv.labels.class_mask`). `with_mask` builds it. Written
with `keras.ops` only, so it runs on every Keras backend.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import ops

__all__ = ["MaskedCrossEntropy", "masked_accuracy", "with_mask"]

#: Keeps the logarithms finite for probabilities that underflow to 0.
EPSILON = 1e-7


def with_mask(targets: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Targets (n, C) and class masks (n, C) as the (n, 2C) ``y_true`` of the masked loss."""
    targets, masks = np.asarray(targets, np.float32), np.asarray(masks, np.float32)
    if targets.shape != masks.shape or targets.ndim != 2:
        raise ValueError(
            f"targets and masks must both have shape (n, classes), got {targets.shape} "
            f"and {masks.shape}"
        )
    return np.concatenate([targets, masks], axis=-1)


def _split(y_true: Any) -> tuple[Any, Any]:
    classes = ops.shape(y_true)[-1] // 2
    return y_true[..., :classes], y_true[..., classes:]


@keras.saving.register_keras_serializable(package="keras_dyconv")
class MaskedCrossEntropy(keras.losses.Loss):
    """Cross-entropy over each utterance's own corpus's classes (see the module docstring).

    Args:
        label_smoothing: as `keras.losses.CategoricalCrossentropy`'s, spread over the
            corpus's classes only.

    ``y_pred``: class probabilities (a softmax output), shape (batch, C); ``y_true``:
    (batch, 2C), targets then mask (`with_mask`). With an all-ones mask it equals the
    categorical cross-entropy.
    """

    def __init__(self, label_smoothing: float = 0.0, name: str = "masked_crossentropy", **kw):
        super().__init__(name=name, **kw)
        self.label_smoothing = float(label_smoothing)

    def call(self, y_true, y_pred):
        target, mask = _split(ops.cast(y_true, y_pred.dtype))
        if self.label_smoothing:
            n = ops.maximum(ops.sum(mask, axis=-1, keepdims=True), 1.0)
            target = target * (1.0 - self.label_smoothing) + self.label_smoothing * mask / n
        target = target * mask
        p = ops.clip(y_pred, EPSILON, 1.0)
        log_norm = ops.log(ops.sum(p * mask, axis=-1, keepdims=True))
        return -ops.sum(target * (ops.log(p) - log_norm), axis=-1)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "label_smoothing": self.label_smoothing}


@keras.saving.register_keras_serializable(package="keras_dyconv")
def masked_accuracy(y_true, y_pred):
    """Whether the arg-max of the target and of the prediction (over the corpus's own
    classes) agree, per sample: the categorical accuracy of the masked loss's ``y_true``."""
    y_pred = ops.convert_to_tensor(y_pred)
    target, mask = _split(ops.cast(y_true, y_pred.dtype))
    predicted = ops.argmax(ops.multiply(y_pred, mask), axis=-1)
    return ops.cast(ops.equal(ops.argmax(target, axis=-1), predicted), y_pred.dtype)
