"""Frame measures of the speech gate (numpy + stdlib only): what `edge_runtime.speech` judges.

Decimation of fast rates, framing, and per frame: RMS level, the periodicity and pitch of
the whitened autocorrelation, and the count of harmonics standing out of the spectrum (how
each is computed: the module docstring of `edge_runtime.speech`, step 2). The thresholds
come from a `SpeechGateConfig`; the decisions made on these measures are in
`edge_runtime.speech`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from edge_runtime.features import window

if TYPE_CHECKING:
    from edge_runtime.speech import SpeechGateConfig

ANALYSIS_RATE = 16000  # Hz; faster rates are decimated by an integer factor down towards it


def decimate(x: np.ndarray, rate: int) -> tuple[np.ndarray, int]:
    """Low-pass and keep every q-th sample, q = rate // 16000 (q < 2: unchanged); new rate.

    The gate looks at harmonics below 4 kHz only, so 48 kHz audio is analysed at 16 kHz and
    44.1 kHz at 14.7 kHz: 3x cheaper, as the 16 kHz corpora the gate was measured on.
    """
    q = rate // ANALYSIS_RATE
    if q < 2:
        return x, rate
    taps = 16 * q + 1  # windowed sinc, cutoff 0.9 x the new Nyquist frequency
    k = np.arange(taps) - taps // 2
    h = np.sinc(0.9 * k / q) * np.hanning(taps + 2)[1:-1]
    h = (h / h.sum()).astype(np.float32)
    rows = np.lib.stride_tricks.sliding_window_view(np.pad(x, taps // 2), taps)[::q]
    out = np.empty(len(rows), np.float32)
    block = 4096  # output samples per product: a (block, taps) temporary copy
    for i in range(0, len(rows), block):
        out[i : i + block] = rows[i : i + block] @ h
    return out, rate // q


def frame_view(x: np.ndarray, length: int, hop: int) -> np.ndarray:
    """(n_frames, length) view of consecutive frames; a clip shorter than a frame is one."""
    if len(x) < length:
        x = np.pad(x, (0, length - len(x)))
    n = 1 + (len(x) - length) // hop
    return np.lib.stride_tricks.sliding_window_view(x, length)[::hop][:n]


def _smooth(mag: np.ndarray, half: int) -> np.ndarray:
    """Moving average over +-half bins along the last axis (edges averaged over fewer bins)."""
    c = np.cumsum(np.pad(mag, ((0, 0), (1, 0))), axis=1)
    n = mag.shape[1]
    hi = np.minimum(np.arange(n) + half + 1, n)
    lo = np.maximum(np.arange(n) - half, 0)
    return (c[:, hi] - c[:, lo]) / (hi - lo)


def measure_block(
    frames: np.ndarray, rate: int, config: SpeechGateConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """rms_db, periodicity, f0_hz, harmonics of (n, length) frames at `rate` Hz."""
    length = frames.shape[1]
    x = frames.astype(np.float64)
    x = x - x.mean(axis=1, keepdims=True)
    rms = np.sqrt(np.mean(x**2, axis=1))
    with np.errstate(divide="ignore"):
        rms_db = 20 * np.log10(rms)
    # A first difference flattens low-frequency-heavy noise (brown, rumble) before whitening.
    emphasized = x[:, 1:] - 0.97 * x[:, :-1]
    win = window("hann", length - 1)
    n_fft = 1 << int(np.ceil(np.log2(2 * length)))
    mag = np.abs(np.fft.rfft(emphasized * win, n_fft, axis=1))
    freqs = np.arange(mag.shape[1]) * rate / n_fft
    band = (freqs >= 0.8 * config.f0_min_hz) & (freqs <= min(config.band_hz, 0.45 * rate))
    mag[:, ~band] = 0.0
    # Whitening: each bin over the local spectral level, so only harmonic peaks remain.
    env = _smooth(mag, max(1, round(config.smooth_hz * n_fft / rate)))
    tiny = 1e-3 * env.max(axis=1, keepdims=True) + 1e-12
    white = np.where(band & (freqs <= config.pitch_band_hz), mag / (env + tiny), 0.0)
    acf = np.fft.irfft(white**2, n_fft, axis=1)
    lo = max(1, int(np.floor(rate / config.f0_max_hz)))
    hi = min(length // 2, int(np.ceil(rate / config.f0_min_hz)))
    with np.errstate(invalid="ignore", divide="ignore"):
        nacf = acf[:, lo : hi + 1] / acf[:, :1]
    nacf = np.nan_to_num(nacf, nan=0.0, posinf=0.0, neginf=0.0)
    # The shortest lag within 10 % of the best: a period, not a multiple of it.
    rows = np.arange(len(nacf))
    best = np.argmax(nacf >= 0.9 * nacf.max(axis=1, keepdims=True), axis=1)
    while True:  # climb to the local maximum right of that first lag
        step = np.minimum(best + 1, nacf.shape[1] - 1)
        up = nacf[rows, step] > nacf[rows, best]
        if not up.any():
            break
        best = np.where(up, step, best)
    periodicity = np.clip(nacf[rows, best], 0.0, 1.0)
    # Parabolic refinement of the lag for a sub-sample pitch.
    left = nacf[rows, np.maximum(best - 1, 0)]
    right = nacf[rows, np.minimum(best + 1, nacf.shape[1] - 1)]
    centre = nacf[rows, best]
    denom = left - 2 * centre + right
    with np.errstate(invalid="ignore", divide="ignore"):
        shift = np.where(np.abs(denom) > 1e-12, 0.5 * (left - right) / denom, 0.0)
    lag = lo + best + np.clip(shift, -0.5, 0.5)
    f0 = rate / lag
    harmonics = _count_harmonics(mag**2, freqs, f0, band, config)
    return rms_db, periodicity, f0, harmonics


def _count_harmonics(
    power: np.ndarray,
    freqs: np.ndarray,
    f0: np.ndarray,
    band: np.ndarray,
    config: SpeechGateConfig,
) -> np.ndarray:
    """Harmonics h*f0 whose peak stands `harmonic_db` above the spectrum midway between."""
    top = freqs[band].max()
    step = freqs[1]
    n_harm = int(top // config.f0_min_hz)
    h = np.arange(1, n_harm + 1)
    centres = f0[:, None] * h[None, :]  # (n, H) Hz
    inside = centres + 0.5 * f0[:, None] <= top
    rows = np.arange(len(f0))[:, None]

    def level(offset: float, width: float, reduce) -> np.ndarray:
        # Max or mean of the power over a few bins around centres + offset * f0.
        spans = [
            np.clip(np.rint((centres + (offset + d) * f0[:, None]) / step), 0, len(freqs) - 1)
            for d in np.linspace(-width, width, 5)
        ]
        return reduce(np.stack([power[rows, s.astype(int)] for s in spans]), axis=0)

    peak = level(0.0, 0.12, np.max)
    valley = 0.5 * (level(-0.5, 0.12, np.mean) + level(0.5, 0.12, np.mean))
    loudest = power.max(axis=1, keepdims=True)
    ratio = 10 ** (config.harmonic_db / 10)
    present = inside & (peak >= ratio * valley) & (peak >= 1e-5 * loudest) & (peak > 0)
    return present.sum(axis=1)


def runs_at_least(mask: np.ndarray, min_len: int) -> np.ndarray:
    """`mask` with runs of consecutive True shorter than `min_len` set to False."""
    if min_len <= 1 or not mask.any():
        return mask.copy()
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    out = np.zeros_like(mask)
    for s, e in zip(starts, ends, strict=True):
        if e - s >= min_len:
            out[s:e] = True
    return out


def finite_mono(samples: np.ndarray) -> np.ndarray:
    """float32 (n,) view or copy of `samples`, non-finite values as 0."""
    x = np.asarray(samples, dtype=np.float32).reshape(-1)
    return x if np.isfinite(x).all() else np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
