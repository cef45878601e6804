"""Fixed-length windows: how training, export and the edge runtime cut utterances.

The model sees windows of `frames` feature frames (3 s at a 10 ms hop by default). One
policy everywhere:

* training: a random window per utterance per epoch (`random_window`);
* evaluation and file inference: windows every `hop_frames`, plus one aligned to the end so
  that the tail is covered, and the utterance decision is the mean of the windows' class
  probabilities (`split_windows`, `aggregate`);
* an utterance shorter than one window is tiled (repeated) to the window length. Repeating
  keeps the features' statistics, where zero or silence padding would add frames that no
  normalisation maps to "speech".
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

#: Longest window or hop accepted (frames): 10 minutes at a 10 ms hop. A window policy read
#: from a manifest is input: it is range-checked before any window is allocated.
MAX_FRAMES = 60_000


@dataclass(frozen=True)
class WindowPolicy:
    """Window length and hop, in feature frames.

    Attributes:
        frames: frames per model input window (300 = 3 s at a 10 ms hop).
        hop_frames: hop between evaluation/inference windows (100 = 1 s).
    """

    frames: int = 300
    hop_frames: int = 100

    def __post_init__(self) -> None:
        for name in ("frames", "hop_frames"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer):
                raise ValueError(f"window {name} must be an integer, got {value!r}")
            if not 1 <= value <= MAX_FRAMES:
                raise ValueError(f"window {name} must be in 1..{MAX_FRAMES}, got {value}")
            object.__setattr__(self, name, int(value))

    def to_dict(self) -> dict[str, Any]:
        """`{"frames": ..., "hop_frames": ...}`."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WindowPolicy:
        """Parse `to_dict` output; unknown keys raise ValueError."""
        if not isinstance(data, dict):
            raise ValueError(f"window policy must be an object, got {type(data).__name__}")
        unknown = set(data) - {"frames", "hop_frames"}
        if unknown:
            raise ValueError(f"unknown window policy keys: {sorted(unknown)}")
        return cls(**data)


def tile_to_length(features: np.ndarray, frames: int) -> np.ndarray:
    """Repeat `features` (time, n_features) along time until it has at least `frames` rows."""
    if len(features) == 0:
        raise ValueError("cannot window an utterance with zero feature frames")
    if len(features) >= frames:
        return features
    reps = -(-frames // len(features))
    return np.concatenate([features] * reps, axis=0)[:frames]


def window_starts(n_frames: int, policy: WindowPolicy) -> list[int]:
    """Start frames of the evaluation windows of an utterance of `n_frames` frames."""
    if n_frames <= policy.frames:
        return [0]
    starts = list(range(0, n_frames - policy.frames + 1, policy.hop_frames))
    if starts[-1] + policy.frames < n_frames:
        starts.append(n_frames - policy.frames)  # cover the tail
    return starts


def split_windows(features: np.ndarray, policy: WindowPolicy) -> np.ndarray:
    """Cut (time, n_features) into (n_windows, policy.frames, n_features) evaluation windows."""
    features = tile_to_length(np.asarray(features), policy.frames)
    starts = window_starts(len(features), policy)
    return np.stack([features[s : s + policy.frames] for s in starts])


def random_window(features: np.ndarray, frames: int, rng: np.random.Generator) -> np.ndarray:
    """A training crop of `frames` frames at a uniformly random start (tiled if too short)."""
    features = tile_to_length(np.asarray(features), frames)
    start = int(rng.integers(0, len(features) - frames + 1))
    return features[start : start + frames]


def aggregate(window_probabilities: np.ndarray) -> np.ndarray:
    """Utterance-level class probabilities: the mean over windows, (n_windows, C) -> (C,)."""
    return np.asarray(window_probabilities, dtype=np.float64).mean(axis=0)
