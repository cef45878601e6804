"""Feature normalisation in numpy alone: the modes of `FrontendConfig.normalization`.

`normalize` applies a config's mode to (frames, n_features) features; `StreamStatistics`
holds the running per-feature statistics of one stream for the "stream" mode (online CMVN).
Training (keras_dyconv) calls the same functions, so both sides normalise alike.
"""

from __future__ import annotations

import numpy as np

from .config import MIN_STD, STREAM_MEMORY_FRAMES, FrontendConfig, remove_gain

__all__ = ["StreamStatistics", "normalize"]


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
