"""Per-frame pitch channels in numpy alone: YIN F0 and periodicity, framed like the log-mels.

`pitch_channels(samples, config)` gives, for every log-mel frame of `config` (same hop, same
centring, same frame count), two values:

- log-F0: 12 * log2(F0 / PITCH_FMIN_HZ), semitones above the lowest pitch searched, for
  voiced frames; exactly 0 for unvoiced ones (no interpolation across unvoiced gaps, so a
  frame's value depends on its own samples only and a streaming window agrees with the
  whole file wherever their frames agree). Voiced F0 lie in 0..~21.6 semitones (50..600
  Hz), so 0 reads as "the bottom of the range"; the periodicity channel tells them apart.
- periodicity: 1 - min over the searched lags of the cumulative mean normalised difference
  d'(tau) of YIN as published (de Cheveigne & Kawahara 2002, eq. 6 and 8: squared
  differences over a fixed window of W = frame - max lag samples), clipped to [0, 1]: 1 for
  a periodic frame at any pitch, near 0 for noise; 0 for frames quieter than `PITCH_SILENCE_DB`.

A frame is voiced when its periodicity is at least `PITCH_VOICED_PERIODICITY`.

F0 is librosa.yin's (librosa 0.11, `trough_threshold` 0.1), step for step: frames of
`yin_frame_length(sample_rate)` samples centred at t * hop_length (padded with the config's
`pad_mode`), lags floor(sr / PITCH_FMAX_HZ) .. ceil(sr / PITCH_FMIN_HZ), the first trough of
librosa's d' below the threshold (else its global minimum), refined by parabolic
interpolation. librosa 0.11's d' is not the published one: it sums the squared differences
over the whole frame without taking out the energy that shifts past its end, which adds
about tau / frame to d'(tau) (a clean 55 Hz tone scores 0.74, a 450 Hz one 0.96). That
does not move its troughs much, so F0 keeps librosa's definition; periodicity, a level, uses
the published d', which is 0 at the period of any periodic frame.

The training side (keras_dyconv.features.librosa_pitch) computes F0 with librosa.yin and
periodicity by direct summation of the published d'; tests/test_pitch.py holds them equal.
"""

from __future__ import annotations

import math

import numpy as np

from .config import (
    PITCH_FMAX_HZ,
    PITCH_FMIN_HZ,
    PITCH_SILENCE_DB,
    PITCH_TROUGH_THRESHOLD,
    PITCH_VOICED_PERIODICITY,
    FrontendConfig,
)

__all__ = [
    "cumulative_mean_normalized",
    "pitch_channels",
    "voicing_channels",
    "yin",
    "yin_frame_length",
    "yin_lag_range",
]

#: Frames analysed per block: about 1.5 MB of temporaries at 16 kHz, which stay in cache
#: (blocks of 1024 frames cost 50 % more CPU time), for a clip of any length.
_BLOCK_FRAMES = 64
_TINY = np.finfo(np.float64).tiny


def yin_frame_length(sample_rate: int) -> int:
    """YIN frame (samples): the smallest even length holding two periods of PITCH_FMIN_HZ
    plus one sample (librosa.yin's condition for an accurate lowest pitch), 642 at 16 kHz."""
    return 2 * math.ceil(sample_rate / PITCH_FMIN_HZ) + 2


def yin_lag_range(sample_rate: int, frame_length: int) -> tuple[int, int]:
    """(min, max) lag in samples YIN searches: floor(sr / PITCH_FMAX_HZ) ..
    min(ceil(sr / PITCH_FMIN_HZ), frame_length - 1), as librosa.yin."""
    min_period = math.floor(sample_rate / PITCH_FMAX_HZ)
    max_period = min(math.ceil(sample_rate / PITCH_FMIN_HZ), frame_length - 1)
    return min_period, max_period


def cumulative_mean_normalized(diff: np.ndarray) -> np.ndarray:
    """d'(tau) = d(tau) / mean(d(1..tau)) along the last axis of d(1..max lag) (YIN eq. 8),
    float64, same shape (a tiny constant keeps 0 / 0 at 0, as librosa)."""
    mean = np.cumsum(diff, axis=-1) / np.arange(1, diff.shape[-1] + 1)
    return diff / (mean + _TINY)


def _period(d: np.ndarray, min_period: int) -> np.ndarray:
    """Fractional period (samples) per row of d' (n, lags from min_period): first trough
    below the threshold, else the global minimum, plus the parabolic shift at that lag."""
    trough = np.zeros(d.shape, dtype=bool)
    trough[:, 1:-1] = (d[:, 1:-1] < d[:, :-2]) & (d[:, 1:-1] <= d[:, 2:])
    trough[:, 0] = d[:, 0] < d[:, 1]
    trough[:, -1] = d[:, -1] < d[:, -2]
    below = trough & (d < PITCH_TROUGH_THRESHOLD)
    index = np.where(below.any(axis=1), below.argmax(axis=1), d.argmin(axis=1))
    rows = np.arange(len(d))
    left = d[rows, np.maximum(index - 1, 0)]
    right = d[rows, np.minimum(index + 1, d.shape[1] - 1)]
    a = left + right - 2.0 * d[rows, index]
    b = (right - left) / 2.0
    inner = (index > 0) & (index < d.shape[1] - 1)
    shift = np.divide(-b, a, out=np.zeros_like(b), where=inner & (np.abs(b) < np.abs(a)))
    return min_period + index + shift


def _yin_block(
    frames: np.ndarray, sample_rate: int, min_period: int, max_period: int
) -> tuple[np.ndarray, np.ndarray]:
    """(F0 Hz, min published d', mean square of the first W samples) of (n, frame_length)
    float64 frames."""
    length = frames.shape[1]
    window = length - max_period  # W of the published difference function
    # Circular correlations are exact up to lag n_fft - length: a power of two >= length +
    # max_period (1024 at 16 kHz) covers the lags used.
    n_fft = 1 << (length + max_period - 1).bit_length()
    spectrum = np.fft.rfft(frames, n=n_fft, axis=1)
    lags = slice(1, max_period + 1)
    # |X|^2 kept complex (imaginary part exactly 0): numpy's irfft of a real-typed array is
    # ~25x slower than of a complex one.
    acf = np.fft.irfft(spectrum * spectrum.conj(), n=n_fft, axis=1)
    energy = np.cumsum(np.square(frames), axis=1)
    cumulative = np.concatenate([np.zeros((len(frames), 1)), energy], axis=1)  # sum y[:k]
    # librosa's d(k) = 2 (acf(0) - acf(k)) - sum_{m<k} y(m)^2, k = 1..max_period, with its
    # quirk: the energy term of d(1) is 0, not y(0)^2 (kept: every d' agrees with training).
    head = cumulative[:, lags].copy()
    head[:, 0] = 0.0
    librosa_d = cumulative_mean_normalized(2.0 * (acf[:, :1] - acf[:, lags]) - head)
    f0 = sample_rate / _period(librosa_d[:, min_period - 1 :], min_period)
    # Published d(k) = sum_{j<W} (y(j) - y(j+k))^2 = E(0..W) + E(k..k+W) - 2 r(k), where r
    # is the correlation of the first W samples with the frame.
    cross = np.fft.irfft(
        np.conj(np.fft.rfft(frames[:, :window], n=n_fft, axis=1)) * spectrum, n=n_fft, axis=1
    )[:, lags]
    shifted = cumulative[:, window + 1 : window + max_period + 1] - cumulative[:, lags]
    published = cumulative_mean_normalized(cumulative[:, window : window + 1] + shifted - 2 * cross)
    power = cumulative[:, window] / window
    return f0, published[:, min_period - 1 :].min(axis=1), power


def yin(
    samples: np.ndarray, sample_rate: int, hop_length: int, pad_mode: str = "constant"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """YIN over frames centred at t * hop_length of a 1-D float signal.

    Returns (F0 Hz, min d', mean square of the window W that d' compares), each
    (1 + len(samples) // hop_length,) float64.
    F0 equals librosa.yin(samples, fmin=PITCH_FMIN_HZ, fmax=PITCH_FMAX_HZ, sr=sample_rate,
    frame_length=yin_frame_length(sample_rate), hop_length=hop_length, center=True,
    pad_mode=pad_mode) up to float rounding; min d' is the published YIN's (see the module).
    """
    frame_length = yin_frame_length(sample_rate)
    min_period, max_period = yin_lag_range(sample_rate, frame_length)
    x = np.pad(np.asarray(samples, dtype=np.float64), frame_length // 2, mode=pad_mode)
    n_frames = 1 + (len(x) - frame_length) // hop_length
    frames = np.lib.stride_tricks.as_strided(
        x,
        shape=(n_frames, frame_length),
        strides=(hop_length * x.strides[0], x.strides[0]),
        writeable=False,
    )
    f0, d_min, power = (np.empty(n_frames) for _ in range(3))
    for first in range(0, n_frames, _BLOCK_FRAMES):
        rows = slice(first, min(n_frames, first + _BLOCK_FRAMES))
        f0[rows], d_min[rows], power[rows] = _yin_block(
            frames[rows], sample_rate, min_period, max_period
        )
    return f0, d_min, power


def pitch_channels(samples: np.ndarray, config: FrontendConfig) -> np.ndarray:
    """(frames, 2) float32 (`config.PITCH_CHANNELS`): log-F0 (semitones above PITCH_FMIN_HZ,
    0 when unvoiced) and periodicity (0..1) of a 1-D float signal at config.sample_rate, one
    row per log-mel frame (config.center must be True)."""
    f0, d_min, power = yin(samples, config.sample_rate, config.hop_length, config.pad_mode)
    return voicing_channels(f0, d_min, power)


def voicing_channels(f0: np.ndarray, d_min: np.ndarray, power: np.ndarray) -> np.ndarray:
    """The two pitch channels from per-frame F0 (Hz), min d' and mean square: shared by the
    numpy tracker and the librosa reference, so both apply the same voicing rule."""
    silent = np.asarray(power) < 10.0 ** (PITCH_SILENCE_DB / 10.0)
    periodicity = np.where(silent, 0.0, np.clip(1.0 - np.asarray(d_min), 0.0, 1.0))
    voiced = periodicity >= PITCH_VOICED_PERIODICITY
    with np.errstate(divide="ignore", invalid="ignore"):
        semitones = 12.0 * np.log2(np.asarray(f0) / PITCH_FMIN_HZ)
    log_f0 = np.where(voiced, semitones, 0.0)
    return np.stack([log_f0, periodicity], axis=1).astype(np.float32)
