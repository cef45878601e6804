"""Training callbacks: temperature annealing of dynamic convolutions, and model selection.

* `TemperatureAnnealing`: the attention temperature schedule of Chen et al.
* `ValidationSelection`: scores the validation utterances every epoch as the test is
  scored, keeps the best epochs' weights and stops early.
* `EpochSnapshots`: keeps the weights of given epochs (the refit of `Recipe.refit`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import keras
import numpy as np

from edge_runtime.config import FrontendConfig
from edge_runtime.windows import WindowPolicy
from keras_dyconv.checkpoints import EPOCH_LOGS, EPOCH_WEIGHTS, read_epoch_logs
from keras_dyconv.feeding import predict_utterances
from keras_dyconv.layers import BaseDynamicConv
from keras_dyconv.metrics import unweighted_accuracy
from keras_dyconv.normalization import FeatureSource, stream_order

#: Seed of the per-speaker order in which a stream model's validation utterances are heard.
VALIDATION_ORDER_SEED = 0


def dynamic_conv_layers(layer: keras.layers.Layer) -> Iterator[BaseDynamicConv]:
    """Yield every dynamic-convolution layer inside `layer` (nested models and wrappers too)."""
    if isinstance(layer, BaseDynamicConv):
        yield layer
    children = list(getattr(layer, "layers", None) or [])
    wrapped = getattr(layer, "layer", None)  # Bidirectional, TimeDistributed, ...
    if isinstance(wrapped, keras.layers.Layer):
        children.append(wrapped)
    for child in children:
        yield from dynamic_conv_layers(child)


def annealed_temperature(epoch: int, start: float, end: float, epochs: int) -> float:
    """Temperature at (0-based) `epoch`: linear from `start` to `end` over `epochs`, then `end`."""
    if epochs <= 0:
        return float(end)
    fraction = min(max(epoch, 0) / epochs, 1.0)
    return float(start + (end - start) * fraction)


class TemperatureAnnealing(keras.callbacks.Callback):
    """Anneal the attention softmax temperature of dynamic convolutions, as in Chen et al.

    The DyConv paper starts at a high temperature (30) so that all K kernels are trained
    (near-uniform attention) and lowers it linearly to 1 over the first 10 epochs. The
    temperature is set at the start of every epoch; it is a non-trainable weight of each
    layer, so the change reaches the compiled train step on TensorFlow, JAX and PyTorch, and
    the final value is saved with the model.

    Args:
        start: temperature at epoch 0.
        end: temperature from epoch `epochs` on.
        epochs: number of epochs of the linear ramp.
        layers: the layers to control; default: every dynamic convolution in the model.
    """

    def __init__(
        self,
        start: float = 30.0,
        end: float = 1.0,
        epochs: int = 10,
        layers: Iterable[BaseDynamicConv] | None = None,
    ):
        super().__init__()
        if start <= 0 or end <= 0:
            raise ValueError(f"temperatures must be positive, got start={start}, end={end}")
        self.start, self.end, self.epochs = float(start), float(end), int(epochs)
        self._layers = list(layers) if layers is not None else None
        self.history: list[float] = []

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        value = annealed_temperature(epoch, self.start, self.end, self.epochs)
        layers = self._layers if self._layers is not None else dynamic_conv_layers(self.model)
        for layer in layers:
            layer.temperature.assign(value)
        self.history.append(value)


class ValidationSelection(keras.callbacks.Callback):
    """Score the validation utterances every epoch (UA of utterance-level predictions),
    keep the best weights, stop after `patience` epochs without improvement.

    With `average` > 1 the weights of the `average` best epochs are kept and
    `restore_best` puts their mean back (checkpoint averaging: less dependent on one
    lucky epoch of a small validation set). The validation set is carved out of the
    training data (e.g. held-out training speakers); the test fold is never seen here.

    With `checkpoint_dir` (the folder where the fit saves its `EPOCH_WEIGHTS` and its
    `EPOCH_LOGS`, which hold the "val_ua" this callback adds to the logs), a fit resumed
    after an interruption still chooses among all its epochs: the scores of earlier epochs
    come back from the logs, their kept weights from their checkpoints.
    """

    def __init__(
        self,
        sources: Sequence[FeatureSource],
        labels: Sequence[int],
        config: FrontendConfig,
        policy: WindowPolicy,
        patience: int | None,
        min_epochs: int,
        speakers: Sequence[str] | None = None,
        average: int = 1,
        checkpoint_dir: str | os.PathLike | None = None,
    ):
        super().__init__()
        self.checkpoint_dir = None if checkpoint_dir is None else Path(checkpoint_dir)
        self.config, self.policy = config, policy
        # A stream model is scored online as it is tested (`keras_dyconv.scoring`): each
        # speaker's utterances in a random order, not the emotion-blocked corpus order; the
        # same order every epoch, so that epochs compare.
        stream = speakers is not None and config.normalization == "stream"
        order = (
            stream_order(speakers, np.random.default_rng(VALIDATION_ORDER_SEED))
            if stream
            else np.arange(len(sources))
        )
        self.sources = [sources[k] for k in order]
        self.speakers = None if speakers is None else [speakers[k] for k in order]
        self.labels = np.asarray(labels)[order]
        self.patience, self.min_epochs, self.average = patience, min_epochs, average
        # (UA, epoch, weights) of the best epochs, best first; ties keep the earlier epoch.
        self.kept: list[tuple[float, int, list[np.ndarray]]] = []
        self.history: list[float] = []

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        if epoch and not self.history and self.checkpoint_dir is not None:
            self._resume(epoch)

    def _resume(self, epoch: int) -> None:
        """Take back the scores and kept weights of the `epoch` epochs run before a resume."""
        path = self.checkpoint_dir / EPOCH_LOGS
        if not path.exists():
            return
        scores = read_epoch_logs(path).get("val_ua", [])[:epoch]
        # Best first, ties to the earlier epoch: the order `on_epoch_end` keeps.
        best = sorted(range(len(scores)), key=lambda e: (-scores[e], e))[: self.average]
        current, kept = self.model.get_weights(), []
        for e in best:
            weights = self.checkpoint_dir / EPOCH_WEIGHTS.format(epoch=e + 1)
            if not weights.exists():
                raise FileNotFoundError(
                    f"cannot resume: {weights}, the weights of validation epoch {e + 1} (one "
                    f"of the best so far), is missing; delete {self.checkpoint_dir} to start over"
                )
            self.model.load_weights(weights)
            kept.append((scores[e], e, self.model.get_weights()))
        self.model.set_weights(current)
        self.kept, self.history = kept, scores

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        utt = predict_utterances(
            self.model, self.sources, self.config, self.policy, 64, self.speakers
        )
        ua = unweighted_accuracy(self.labels, utt.argmax(axis=1))
        self.history.append(ua)
        if logs is not None:
            logs["val_ua"] = ua
        if len(self.kept) < self.average or ua > self.kept[-1][0]:
            self.kept = sorted(
                [*self.kept, (ua, epoch, self.model.get_weights())], key=lambda k: -k[0]
            )[: self.average]
        if self.best_epoch != epoch and (
            self.patience is not None
            and epoch + 1 >= self.min_epochs
            and epoch - self.best_epoch >= self.patience
        ):
            self.model.stop_training = True

    @property
    def best_ua(self) -> float:
        """Best validation UA so far (-1 before the first epoch)."""
        return self.kept[0][0] if self.kept else -1.0

    @property
    def best_epoch(self) -> int:
        """Epoch of the best validation UA so far (-1 before the first epoch)."""
        return self.kept[0][1] if self.kept else -1

    @property
    def kept_epochs(self) -> list[int]:
        """Epochs whose weights `restore_best` uses (best first)."""
        return [epoch for _, epoch, _ in self.kept]

    def restore_best(self) -> None:
        """Put the weights of the best validation epoch (or the mean of the `average` best)
        back into the model."""
        if not self.kept:
            return
        self.model.set_weights(mean_weights([weights for _, _, weights in self.kept]))


class EpochSnapshots(keras.callbacks.Callback):
    """Keep the weights after the given epochs (0-based); `restore_mean` puts their mean
    back (the refit of `Recipe.refit` averages the epochs the validation chose)."""

    def __init__(self, epochs: Sequence[int]):
        super().__init__()
        self.epochs = set(int(e) for e in epochs)
        self.snapshots: list[list[np.ndarray]] = []

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if epoch in self.epochs:
            self.snapshots.append(self.model.get_weights())

    def restore_mean(self) -> None:
        """Set the model's weights to the mean of the snapshots taken (if any)."""
        if self.snapshots:
            self.model.set_weights(mean_weights(self.snapshots))


def mean_weights(snapshots: Sequence[Sequence[np.ndarray]]) -> list[np.ndarray]:
    """Element-wise mean of several `get_weights()` lists (checkpoint averaging)."""
    return [
        np.mean(np.stack(ws), axis=0).astype(ws[0].dtype) for ws in zip(*snapshots, strict=True)
    ]
