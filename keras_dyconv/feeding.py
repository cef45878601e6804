"""Feeding features to a model: random training windows, and evaluation windows per utterance.

* `WindowSequence`: a `keras.utils.PyDataset` of random fixed-length windows of each
  training utterance, perturbed and normalised with the training data's statistics.
  Features can be in-memory arrays or `.npy` files (memory-mapped), so corpora larger than
  memory train.
* `class_weights` and `corpus_weights`: the per-class and per-utterance loss weights of
  class weighting and of training on several corpora.
* `utterance_windows` and `predict_utterances`: the evaluation and edge policy, windows
  every hop + tail, class probabilities averaged per utterance (`edge_runtime.windows`),
  one utterance at a time (bounded memory, whatever the number of utterances).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import keras
import numpy as np

from edge_runtime.config import FrontendConfig
from edge_runtime.normalization import normalize
from edge_runtime.windows import WindowPolicy, aggregate, random_window, split_windows
from keras_dyconv.augment import Augmentation, augment_window, mel_band_centres
from keras_dyconv.distribute import predict
from keras_dyconv.losses import with_mask
from keras_dyconv.normalization import FeatureSource, iter_normalized, load_features
from keras_dyconv.recipes import DISTILL_WEIGHT


class WindowSequence(keras.utils.PyDataset):
    """Random fixed-length training windows, one per utterance per epoch.

    Args:
        sources: per-utterance raw features (arrays or `.npy` paths), computed with the
            frontend config *without* normalisation; `config` normalises them.
        labels: class index per utterance.
        num_classes: number of classes (one-hot targets, needed for mixup/smoothing).
        config: frontend config whose normalisation (e.g. dataset statistics) is applied.
        frames: window length in frames.
        batch_size: windows per batch.
        seed: seed of the window positions, shuffling and augmentation.
        spec_augment: (time masks, max width, freq masks, max width); masked cells are set
            to 0, the normalised mean.
        mixup_alpha: mixup Beta parameter (0 disables).
        class_weights: per-class loss weights (class weighting), or None.
        augmentation: log-mel perturbations applied to each raw window before normalisation.
        statistics: per utterance, one or more (mean, std) to normalise with instead of
            `config`, one drawn at random for each window (normalization "stream": the
            speaker's own statistics, or `online_statistics` draws).
        teachers: models whose mean class probabilities for each window are mixed into its
            target (weight `DISTILL_WEIGHT`): knowledge distillation.
        sample_weights: per-utterance loss weights (multiplied with `class_weights`), e.g.
            `corpus_weights`; None: none.
        masks: per utterance, the classes its corpus has, bool (n, num_classes): the
            targets become ``[t, mask]`` (`keras_dyconv.losses.with_mask`, for
            `MaskedCrossEntropy`); a mixup of two utterances keeps the union of their masks.
    """

    def __init__(
        self,
        sources: Sequence[FeatureSource],
        labels: Sequence[int],
        num_classes: int,
        config: FrontendConfig,
        frames: int,
        batch_size: int,
        seed: int = 0,
        spec_augment: tuple[int, int, int, int] = (0, 0, 0, 0),
        mixup_alpha: float = 0.0,
        class_weights: np.ndarray | None = None,
        augmentation: Augmentation | None = None,
        statistics: Sequence[Sequence[tuple[np.ndarray, np.ndarray]]] | None = None,
        teachers: Sequence[keras.Model] = (),
        sample_weights: np.ndarray | None = None,
        masks: np.ndarray | None = None,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        if len(sources) != len(labels):
            raise ValueError(f"{len(sources)} feature sources but {len(labels)} labels")
        if not len(sources):
            raise ValueError("no training utterances")
        self.augmentation = augmentation or Augmentation()
        if self.augmentation.active and (config.feature != "logmel" or config.pitch):
            raise ValueError(
                "augmentation works on log-mel features, not "
                f"feature={config.feature!r} with pitch={config.pitch}"
            )
        if statistics is None and config.normalization == "stream":
            raise ValueError('normalization "stream" trains with per-speaker `statistics`')
        if statistics is not None and len(statistics) != len(sources):
            raise ValueError(f"{len(sources)} feature sources but {len(statistics)} statistics")
        for name, per_utterance in (("sample weights", sample_weights), ("masks", masks)):
            if per_utterance is not None and len(per_utterance) != len(sources):
                raise ValueError(f"{len(sources)} feature sources but {len(per_utterance)} {name}")
        if masks is not None and np.shape(masks)[1:] != (num_classes,):
            raise ValueError(f"masks must have shape (n, {num_classes}), got {np.shape(masks)}")
        self.sample_weights = None if sample_weights is None else np.asarray(sample_weights)
        self.masks = None if masks is None else np.asarray(masks, dtype=np.float32)
        self.statistics = statistics
        self.teachers = list(teachers)
        self.centres = mel_band_centres(config)
        self.sources = list(sources)
        self.labels = np.asarray(labels, dtype=np.int64)
        self.num_classes = num_classes
        self.config = config
        self.frames = frames
        self.batch_size = batch_size
        self.spec_augment = spec_augment
        self.mixup_alpha = mixup_alpha
        self.class_weights = class_weights
        self.rng = np.random.default_rng(seed)
        self.order = self.rng.permutation(len(self.sources))

    def __len__(self) -> int:
        return math.ceil(len(self.sources) / self.batch_size)

    def on_epoch_end(self) -> None:
        self.order = self.rng.permutation(len(self.sources))

    def __getitem__(self, index: int):
        batch = self.order[index * self.batch_size : (index + 1) * self.batch_size]
        rng = np.random.default_rng(self.rng.integers(1 << 62) + index)
        x = np.stack([self._window(i, rng) for i in batch]).astype(np.float32)
        y = np.eye(self.num_classes, dtype=np.float32)[self.labels[batch]]
        masks = None if self.masks is None else self.masks[batch]
        x = self._spec_augment(x, rng)
        if self.teachers:
            soft = np.mean(
                [keras.ops.convert_to_numpy(t(x, training=False)) for t in self.teachers], axis=0
            )
            y = ((1 - DISTILL_WEIGHT) * y + DISTILL_WEIGHT * soft).astype(np.float32)
        if self.mixup_alpha > 0 and len(batch) > 1:
            lam = rng.beta(self.mixup_alpha, self.mixup_alpha, size=(len(batch), 1))
            perm = rng.permutation(len(batch))
            x = (lam[:, :, None] * x + (1 - lam[:, :, None]) * x[perm]).astype(np.float32)
            y = (lam * y + (1 - lam) * y[perm]).astype(np.float32)
            masks = None if masks is None else np.maximum(masks, masks[perm])
        if masks is not None:
            y = with_mask(y, masks)
        weights = np.ones(len(batch), dtype=np.float32)
        if self.class_weights is not None:
            weights = weights * self.class_weights[self.labels[batch]]
        if self.sample_weights is not None:
            weights = weights * self.sample_weights[batch]
        if self.class_weights is None and self.sample_weights is None:
            return x, y
        return x, y, weights.astype(np.float32)

    def _window(self, i: int, rng: np.random.Generator) -> np.ndarray:
        """A random, possibly perturbed, normalised window of utterance `i`."""
        raw = load_features(self.sources[i])
        if self.augmentation.active:
            window = augment_window(
                raw,
                self.frames,
                self.augmentation,
                self.centres,
                rng,
                random_window,
                hop_s=self.config.hop_length / self.config.sample_rate,
            )
        else:
            window = np.array(random_window(raw, self.frames, rng), dtype=np.float32)
        if self.statistics is None:
            return normalize(window, self.config)
        choices = self.statistics[i]
        # A single choice draws nothing, so whole-speaker runs keep their random stream.
        mean, std = choices[int(rng.integers(len(choices)))] if len(choices) > 1 else choices[0]
        return (window - mean) / std

    def _spec_augment(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        time_masks, time_width, freq_masks, freq_width = self.spec_augment
        for sample in x:
            for _ in range(time_masks):
                w = int(rng.integers(0, time_width + 1))
                t0 = int(rng.integers(0, max(1, sample.shape[0] - w)))
                sample[t0 : t0 + w] = 0.0
            for _ in range(freq_masks):
                w = int(rng.integers(0, freq_width + 1))
                f0 = int(rng.integers(0, max(1, sample.shape[1] - w)))
                sample[:, f0 : f0 + w] = 0.0
        return x


def class_weights(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Per-class loss weights, inverse to each class's frequency in `labels` (0 if absent)."""
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    return np.where(counts > 0, len(labels) / (num_classes * np.maximum(counts, 1)), 0)


def corpus_weights(
    corpora: Sequence[str], labels: Sequence[int], target: str | None, extra_weight: float
) -> np.ndarray:
    """Per-utterance loss weights that balance corpora and, within each, classes.

    Every corpus gets a share of the total weight: `target` 1 and the other corpora
    `extra_weight` together, in equal parts (no target: every corpus 1); within a corpus its
    share is split equally over its classes, and within a class over its utterances. The
    weights are scaled to mean 1, so the loss keeps the scale of an unweighted one.

    Args:
        corpora: corpus name per utterance.
        labels: class index per utterance.
        target: the corpus the protocol tests on, or None.
        extra_weight: the other corpora's total weight relative to the target's.
    """
    corpora, labels = np.asarray(corpora), np.asarray(labels)
    names = list(dict.fromkeys(corpora.tolist()))
    extra = [c for c in names if c != target]
    share = {c: 1.0 if c == target or target is None else extra_weight / len(extra) for c in names}
    weights = np.zeros(len(labels), dtype=np.float64)
    for c in names:
        in_corpus = corpora == c
        classes, counts = np.unique(labels[in_corpus], return_counts=True)
        for k, n in zip(classes, counts, strict=True):
            weights[in_corpus & (labels == k)] = share[c] / (len(classes) * n)
    total = weights.sum()
    return weights * (len(weights) / total) if total > 0 else np.ones_like(weights)


# ----------------------------------------------------------------------------- prediction
#: Evaluation windows predicted per `model.predict` call, in batches (bounds the memory of
#: scoring an arbitrarily large set of utterances: 16 x 64 windows of 3 s of 64 log-mels
#: are 79 MB).
PREDICT_BATCHES = 16


def utterance_windows(
    sources: Sequence[FeatureSource],
    config: FrontendConfig,
    policy: WindowPolicy,
    speakers: Sequence[str] | None = None,
    adapt: str = "online",
    counted: Sequence[bool] | np.ndarray | None = None,
) -> Iterator[np.ndarray]:
    """Each utterance's evaluation windows, (n_windows, frames, F) float32, one utterance at
    a time, in order (normalised by `iter_normalized`)."""
    for feats in iter_normalized(sources, config, speakers, adapt, counted):
        yield split_windows(feats, policy).astype(np.float32)


def predict_utterances(
    model: keras.Model,
    sources: Sequence[FeatureSource],
    config: FrontendConfig,
    policy: WindowPolicy,
    batch_size: int = 64,
    speakers: Sequence[str] | None = None,
    adapt: str = "online",
    counted: Sequence[bool] | np.ndarray | None = None,
) -> np.ndarray:
    """Utterance-level class probabilities (n_utterances, C): mean over each one's windows.

    `speakers` (and `adapt`, `counted`) are needed for normalization "stream": each
    speaker's utterances form one stream, in the order given (see `iter_normalized`). The
    windows are predicted `PREDICT_BATCHES` batches at a time, as they are cut, so memory
    does not grow with the number of utterances; the batches are those of one
    `model.predict` over all the windows, so are the results.
    """
    chunk = PREDICT_BATCHES * batch_size
    pending: list[np.ndarray] = []
    counts, probs = [], []
    for windows in utterance_windows(sources, config, policy, speakers, adapt, counted):
        pending.append(windows)
        counts.append(len(windows))
        if sum(map(len, pending)) >= chunk:
            ready = np.concatenate(pending)
            whole = len(ready) - len(ready) % batch_size  # full batches only
            probs.append(predict(model, ready[:whole], batch_size=batch_size))
            pending = [ready[whole:]]
    if pending and sum(map(len, pending)):
        probs.append(predict(model, np.concatenate(pending), batch_size=batch_size))
    per_window = np.concatenate(probs)
    bounds = np.cumsum(counts)[:-1]
    return np.stack([aggregate(p) for p in np.split(per_window, bounds)])
