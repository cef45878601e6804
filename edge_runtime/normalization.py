"""Feature normalisation in numpy alone: the modes of `FrontendConfig.normalization`.

`dataset_statistics` / `within_speaker_statistics` compute training-set statistics and
`with_dataset_stats` stores them in a config; `normalize` applies a config's mode to
(frames, n_features) features; `StreamStatistics` holds the running per-feature
statistics of one stream for the "stream" mode (online CMVN).
Training (keras_dyconv) calls the same functions, so both sides normalise alike.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterable

import numpy as np

from .config import (
    LEGACY_STREAM_PRIOR_FRAMES,
    MIN_STD,
    STATISTICS_NORMALIZATIONS,
    STREAM_MEMORY_FRAMES,
    STREAM_PRIOR_FRAMES,
    FrontendConfig,
)

__all__ = [
    "StreamStatistics",
    "dataset_statistics",
    "normalize",
    "remove_gain",
    "with_dataset_stats",
    "within_speaker_statistics",
]

_MISSING = object()


class StreamStatistics:
    """Online per-feature mean and variance of one stream of features (online CMVN).

    Starts from the training-set statistics of `config` (its prior, weighted as
    `prior_frames` frames, by default `config.stream_prior_frames`), accumulates every
    frame passed to `update`, and forgets old frames once more than `memory_frames` have
    been seen (the old accumulators are scaled down to make room for the new frames: an
    exponential memory of about `memory_frames`). `normalize` applies the current
    estimate.

    Use one instance per stream, device or speaker: `EmotionRecognizer` keeps one across
    calls and `StreamRecognizer` feeds it every new hop.

    >>> from edge_runtime.config import FrontendConfig
    >>> config = FrontendConfig(n_mels=2, normalization="stream", mean=(0, 0), std=(1, 1))
    >>> stats = StreamStatistics(config, prior_frames=1)
    >>> stats.update(np.array([[4.0, 2.0]], np.float32))
    >>> stats.mean.tolist()
    [2.0, 1.0]
    """

    def __init__(
        self,
        config: FrontendConfig,
        prior_frames: int | None = None,
        memory_frames: int = STREAM_MEMORY_FRAMES,
    ) -> None:
        if config.mean is None or config.std is None:
            raise ValueError(
                "StreamStatistics needs a config with training-set mean/std "
                f"(normalization {config.normalization!r} has none)"
            )
        if prior_frames is None:
            prior_frames = config.stream_prior_frames
        if prior_frames < 1 or memory_frames < prior_frames:
            raise ValueError(
                f"need 1 <= prior_frames <= memory_frames, got {prior_frames}, {memory_frames}"
            )
        self.prior_mean = np.asarray(config.mean, dtype=np.float64)
        self.prior_var = np.square(np.asarray(config.std, dtype=np.float64))
        self.prior_frames, self.memory_frames = prior_frames, memory_frames
        self.reset()

    def reset(self) -> None:
        """Forget the stream: back to the training-set prior."""
        self.count = float(self.prior_frames)
        self.total = self.prior_mean * self.count
        self.total_sq = (self.prior_var + np.square(self.prior_mean)) * self.count

    def update(self, features: np.ndarray) -> None:
        """Add (frames, n_features) features of the stream to the statistics."""
        x = np.asarray(features, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != len(self.prior_mean):
            raise ValueError(
                f"features have shape {x.shape}, expected (frames, {len(self.prior_mean)})"
            )
        n = len(x)
        if self.count + n > self.memory_frames:
            # Old frames keep the weight of what is left of the memory after these ones.
            self._scale(max(self.memory_frames - n, 0) / self.count)
        self.count += n
        self.total += x.sum(axis=0)
        self.total_sq += np.square(x).sum(axis=0)
        if self.count > self.memory_frames:  # a single update longer than the memory
            self._scale(self.memory_frames / self.count)

    def _scale(self, factor: float) -> None:
        self.count *= factor
        self.total = self.total * factor
        self.total_sq = self.total_sq * factor

    @property
    def mean(self) -> np.ndarray:
        """Current per-feature mean estimate (n_features,) float64."""
        return self.total / self.count

    @property
    def std(self) -> np.ndarray:
        """Current per-feature std estimate (n_features,) float64, floored at MIN_STD."""
        var = self.total_sq / self.count - np.square(self.mean)
        return np.maximum(np.sqrt(np.maximum(var, 0.0)), MIN_STD)

    def normalize(self, features: np.ndarray) -> np.ndarray:
        """(x - mean) / std with the current estimate, in place (float32 features)."""
        features -= self.mean.astype(np.float32)
        features /= self.std.astype(np.float32)
        return features


def normalize(
    features: np.ndarray, config: FrontendConfig, stream: StreamStatistics | None = None
) -> np.ndarray:
    """Apply `config.normalization` to (frames, n_features) features, in place (float32).

    "utterance": per-feature mean/std over this utterance's frames (std floored at
    MIN_STD); "dataset": (x - config.mean) / config.std; "gain": the utterance's mean over
    all values subtracted, then as "dataset"; "stream": `stream` is updated with these
    features and then applied (without `stream`, a fresh one: the training-set prior plus
    this utterance); "none": unchanged.
    """
    mode = config.normalization
    if mode == "utterance":
        x = features.astype(np.float64)
        features[:] = (x - x.mean(axis=0)) / np.maximum(x.std(axis=0), MIN_STD)
    elif mode in ("dataset", "gain"):
        if mode == "gain":
            features[:] = remove_gain(features)
        features -= np.asarray(config.mean, dtype=np.float32)
        features /= np.asarray(config.std, dtype=np.float32)
    elif mode == "stream":
        stream = stream if stream is not None else StreamStatistics(config)
        stream.update(features)
        stream.normalize(features)
    return features


def _moments(
    features: Iterable[np.ndarray], groups: Iterable[str] | None, n_features: int | None
) -> dict[str | None, tuple[int, np.ndarray, np.ndarray]]:
    """Per group (None without `groups`): frames, and the per-feature mean and variance
    (float64) of its frames, accumulated in one pass in float64 (`dataset_statistics`)."""
    width, shift = n_features, None
    sums: dict[str | None, list] = {}
    keys = itertools.repeat(None) if groups is None else iter(groups)
    for i, array in enumerate(features):
        key = next(keys, _MISSING)
        if key is _MISSING:
            raise ValueError(f"feature array {i} has no speaker (fewer speakers than arrays)")
        x = np.asarray(array, dtype=np.float64)
        if x.ndim != 2 or (width is not None and x.shape[1] != width):
            raise ValueError(
                f"feature array {i} has shape {x.shape}, expected (frames, {width or 'F'})"
            )
        if not np.isfinite(x).all():
            raise ValueError(f"feature array {i} contains NaN or inf")
        if shift is None:
            # Shift by the first frame to keep the sum of squares well conditioned.
            width = x.shape[1]
            shift = x[0] if len(x) else np.zeros(width)
        centred = x - shift
        acc = sums.setdefault(key, [0, np.zeros(width), np.zeros(width)])
        acc[0] += len(x)
        acc[1] += centred.sum(axis=0)
        acc[2] += np.square(centred).sum(axis=0)
    if groups is not None and next(keys, _MISSING) is not _MISSING:
        raise ValueError("more speakers than feature arrays")
    out = {}
    for key, (count, total, total_sq) in sums.items():
        if count:
            mean_c = total / count
            out[key] = (count, mean_c + shift, np.maximum(total_sq / count - mean_c**2, 0.0))
    if not out:
        raise ValueError("normalization statistics need at least one non-empty feature array")
    return out


def dataset_statistics(
    features: Iterable[np.ndarray], n_features: int | None = None
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-feature mean and std over all frames of all arrays (each (frames, n_features)).

    Accumulates in float64 over frames, so long utterances weigh more than short ones. The
    std is floored at `MIN_STD`.
    """
    ((_, mean, var),) = _moments(features, None, n_features).values()
    std = np.maximum(np.sqrt(var), MIN_STD)
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)


def within_speaker_statistics(
    features: Iterable[np.ndarray], speakers: Iterable[str], n_features: int | None = None
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-feature mean of the speakers' means and root of their mean variance.

    `features` (each (frames, n_features)) and `speakers` (one per array) go in parallel;
    each speaker's mean and variance are over all their frames (as `dataset_statistics`),
    then every speaker weighs the same. Unlike the pooled std of `dataset_statistics`, the
    std holds no spread between the speakers' means: it is what a speaker's own
    statistics typically are, the prior of a stream that adapts to one speaker. The std
    is floored at `MIN_STD`.
    """
    stats = list(_moments(features, speakers, n_features).values())
    mean = np.mean([m for _, m, _ in stats], axis=0)
    std = np.maximum(np.sqrt(np.mean([v for _, _, v in stats], axis=0)), MIN_STD)
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)


def remove_gain(features: np.ndarray) -> np.ndarray:
    """`features` minus their mean over all frames and features (float64, a new array): the
    utterance's overall level, which a microphone's gain shifts, is taken out."""
    x = np.asarray(features, dtype=np.float64)
    return x - x.mean() if x.size else x


def with_dataset_stats(
    config: FrontendConfig,
    features: Iterable[np.ndarray],
    normalization: str = "dataset",
    speakers: Iterable[str] | None = None,
) -> FrontendConfig:
    """A copy of `config` with `normalization` and mean/std computed from `features`.

    `features` must be un-normalized arrays of shape (frames, config.n_features), i.e.
    computed with a config whose normalization is "none". For "gain" the statistics are
    those of the gain-removed features (`remove_gain`), what the model will see. For
    "stream" they are the prior of a fresh stream, weighted as `STREAM_PRIOR_FRAMES`: with
    `speakers` (one per array) the within-speaker statistics (`within_speaker_statistics`,
    a typical speaker's own), else the pooled ones (`dataset_statistics`).
    """
    if normalization not in STATISTICS_NORMALIZATIONS:
        raise ValueError(
            f"with_dataset_stats needs one of {STATISTICS_NORMALIZATIONS}, got {normalization!r}"
        )
    frames = LEGACY_STREAM_PRIOR_FRAMES
    if normalization == "stream":
        frames = STREAM_PRIOR_FRAMES
    elif speakers is not None:
        raise ValueError(
            f'speakers are only used with normalization "stream", not {normalization!r}'
        )
    if normalization == "gain":
        features = (remove_gain(x) for x in features)
    if speakers is not None:
        mean, std = within_speaker_statistics(features, speakers, config.n_features)
    else:
        mean, std = dataset_statistics(features, config.n_features)
    return dataclasses.replace(
        config, normalization=normalization, mean=mean, std=std, stream_prior_frames=frames
    )
