"""Helpers for the corpus loader tests (tests/test_corpora*.py): short tone WAV files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf


def _wav(path: Path, seconds: float = 0.05, sr: int = 16000, freq: float = 220.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(round(seconds * sr)) / sr
    sf.write(path, 0.3 * np.sin(2 * np.pi * freq * t), sr, subtype="PCM_16")
    return path
