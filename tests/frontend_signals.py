"""Generated test signals for the frontend tests (tests/test_frontend*.py)."""

from __future__ import annotations

import numpy as np
import scipy.signal


def make_signal(kind: str, sr: int, seconds: float = 0.6) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    rng = np.random.default_rng(sr)
    if kind == "tone":
        y = 0.5 * np.sin(2 * np.pi * 440 * t) + 0.1 * np.sin(2 * np.pi * 3000 * t)
    elif kind == "chirp":
        y = 0.8 * scipy.signal.chirp(t, f0=50, t1=seconds, f1=0.45 * sr)
    elif kind == "noise":
        y = 0.3 * rng.standard_normal(len(t))
    elif kind == "silence":
        y = np.zeros(len(t))
    elif kind == "clipped":
        y = np.clip(3.0 * np.sin(2 * np.pi * 220 * t), -1.0, 1.0)
    elif kind == "speechlike":  # harmonics with a vibrato and an amplitude envelope
        f0 = 140 + 20 * np.sin(2 * np.pi * 5 * t)
        phase = 2 * np.pi * np.cumsum(f0) / sr
        y = sum(np.sin(k * phase) / k for k in range(1, 30)) * np.hanning(len(t)) * 0.3
    else:
        raise ValueError(kind)
    return y.astype(np.float32)
