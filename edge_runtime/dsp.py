"""Signal-processing steps of the frontend in numpy alone, each matching librosa 0.11.

Used by `edge_runtime.features.Frontend`, which precomputes what it can once; each function
re-implements the librosa function training uses (keras_dyconv.features), step for step:

- pre-emphasis = librosa.effects.preemphasis(y, coef, zi=None). With zi=None librosa sets
  the lfilter *state* to the extrapolated previous sample 2*y[0] - y[1] instead of
  -coef times it, so the first output is 3*y[0] - y[1], not y[0] - coef*(2*y[0] - y[1]).
  We reproduce that quirk so training and edge features agree on frame 0.
- window = scipy get_window(..., fftbins=True) (periodic), zero-padded to n_fft centered.
- mel filter bank = librosa.filters.mel (slaney or htk scale, slaney norm or none).
- dB = librosa.power_to_db(S, ref, amin, top_db): top_db is relative to the utterance max.
- MFCC = scipy DCT-II (norm="ortho") of the dB mel spectrogram, first 13 coefficients.
- deltas = librosa.feature.delta(width, order 1 and 2, mode="interp").
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

__all__ = [
    "band_deltas",
    "dct_matrix",
    "delta",
    "delta_width_for",
    "hz_to_mel",
    "mel_filterbank",
    "mel_to_hz",
    "power_to_db",
    "preemphasis",
    "window",
]

_MIN_LOG_HZ = 1000.0  # Slaney scale: linear below 1 kHz, logarithmic above
_F_SP = 200.0 / 3  # Slaney scale: Hz per mel in the linear part
_LOGSTEP = math.log(6.4) / 27.0


def hz_to_mel(frequencies: np.ndarray | float, *, htk: bool = False) -> np.ndarray:
    """Hz -> mel (float64), as librosa.hz_to_mel."""
    f = np.asarray(frequencies, dtype=np.float64)
    if htk:
        return 2595.0 * np.log10(1.0 + f / 700.0)
    min_log_mel = _MIN_LOG_HZ / _F_SP
    with np.errstate(divide="ignore"):  # log of 0 Hz is discarded by the where
        log_part = min_log_mel + np.log(f / _MIN_LOG_HZ) / _LOGSTEP
    return np.where(f >= _MIN_LOG_HZ, log_part, f / _F_SP)


def mel_to_hz(mels: np.ndarray | float, *, htk: bool = False) -> np.ndarray:
    """mel -> Hz (float64), as librosa.mel_to_hz."""
    m = np.asarray(mels, dtype=np.float64)
    if htk:
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    min_log_mel = _MIN_LOG_HZ / _F_SP
    return np.where(m >= min_log_mel, _MIN_LOG_HZ * np.exp(_LOGSTEP * (m - min_log_mel)), _F_SP * m)


def mel_filterbank(
    sample_rate: int,
    n_fft: int,
    n_mels: int,
    fmin: float,
    fmax: float,
    *,
    htk: bool = False,
    norm: str | None = "slaney",
) -> np.ndarray:
    """Triangular mel filters, float32 (n_mels, 1 + n_fft // 2), as librosa.filters.mel."""
    fft_freqs = np.fft.rfftfreq(n=n_fft, d=1.0 / sample_rate)
    mel_edges = np.linspace(hz_to_mel(fmin, htk=htk), hz_to_mel(fmax, htk=htk), n_mels + 2)
    mel_f = mel_to_hz(mel_edges, htk=htk)
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fft_freqs)
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    # librosa stores the triangles in float32 before scaling them: round at the same point.
    weights = np.maximum(0.0, np.minimum(lower, upper)).astype(np.float32)
    if norm == "slaney":
        enorm = 2.0 / (mel_f[2 : n_mels + 2] - mel_f[:n_mels])
        weights = (weights * enorm[:, None]).astype(np.float32)
    return weights


def window(name: str, length: int) -> np.ndarray:
    """Periodic "hann" or "hamming" window (float64), as scipy get_window(fftbins=True)."""
    if length <= 1:
        return np.ones(length)
    alpha = {"hann": 0.5, "hamming": 0.54}[name]
    # scipy's general_cosine on length + 1 points, last one dropped: same rounding.
    fac = np.linspace(-np.pi, np.pi, length + 1)
    w = np.zeros(length + 1)
    w += alpha * np.cos(0 * fac)
    w += (1.0 - alpha) * np.cos(fac)
    return w[:-1]


def preemphasis(samples: np.ndarray, coef: float, out: np.ndarray | None = None) -> np.ndarray:
    """y[n] = x[n] - coef * x[n-1] in float32, first sample as librosa's zi=None (3x0 - x1).

    Needs at least 2 samples; writes into `out` (float32, same length) when given.
    """
    x = np.asarray(samples, dtype=np.float32)
    out = np.empty_like(x) if out is None else out
    first = x[0] + (np.float32(2.0) * x[0] - x[1])
    np.multiply(x[:-1], np.float32(-coef), out=out[1:])
    out[1:] += x[1:]  # float32 rounding identical to lfilter's x[n] + (-coef * x[n-1])
    out[0] = first
    return out


def power_to_db(
    spec: np.ndarray, *, amin: float = 1e-10, ref: float = 1.0, top_db: float | None = 80.0
) -> np.ndarray:
    """10*log10(max(amin, S) / max(amin, ref)), floored at max - top_db; in place on `spec`."""
    np.maximum(spec, amin, out=spec)
    np.log10(spec, out=spec)
    spec *= 10.0
    if ref != 1.0:
        spec -= 10.0 * np.log10(max(amin, ref))
    if top_db is not None:
        np.maximum(spec, spec.max() - top_db, out=spec)
    return spec


def dct_matrix(n_in: int, n_out: int) -> np.ndarray:
    """Orthonormal DCT-II basis (n_in, n_out), float64: x @ D = dct(x, norm="ortho")[:n_out]."""
    n = np.arange(n_in)[:, None]
    k = np.arange(n_out)[None, :]
    basis = np.cos(np.pi * k * (2 * n + 1) / (2 * n_in)) * math.sqrt(2.0 / n_in)
    basis[:, 0] /= math.sqrt(2.0)
    return basis


def delta_width_for(n_frames: int, width: int) -> int:
    """Delta window actually used for `n_frames` frames: `width`, shrunk to an odd size
    <= n_frames for short clips (librosa's "interp" mode cannot fit a wider window), or 0
    when fewer than 3 frames exist (deltas are then zero)."""
    usable = min(width, n_frames if n_frames % 2 else n_frames - 1)
    return usable if usable >= 3 else 0


def delta(features: np.ndarray, width: int, order: int | tuple[int, ...]) -> np.ndarray:
    """Savitzky-Golay derivative(s) along axis 0 (time), float32.

    For an int `order`, same shape as `features` and equal to
    librosa.feature.delta(features.T, width=width, order=order, mode="interp").T; for a
    tuple, the derivatives of each order side by side: (frames, n_features * len(order)).
    The polynomial degree equals the derivative order, so the derivative of the fit is
    constant per window and "interp" mode's edge fits reduce to repeating the first and
    last full-window values. Requires 3 <= width <= frames, width odd.
    """
    orders = (order,) if isinstance(order, int) else tuple(order)
    x = np.asarray(features, dtype=np.float64)
    half = width // 2
    windows = np.lib.stride_tricks.sliding_window_view(x, width, axis=0)  # (valid, F, width)
    valid = windows @ _savgol_coeffs(width, orders)  # (valid, F, orders)
    n = len(x)
    out = np.empty((n, len(orders), x.shape[1]), dtype=np.float32)
    out[half : n - half] = valid.transpose(0, 2, 1)
    out[:half] = out[half]
    out[n - half :] = out[n - half - 1]
    return out.reshape(n, -1)  # orders side by side, as librosa stacks them


def band_deltas(features: np.ndarray, delta_width: int) -> np.ndarray:
    """(frames, F) -> (frames, 3 F) float32: each feature, its delta and its delta-delta side
    by side (band-major), so a reshape to (frames, F, 3) gives them as channels. Deltas as
    `delta` (zero for clips under 3 frames, see `delta_width_for`)."""
    x = np.asarray(features, dtype=np.float32)
    n, width = len(x), delta_width_for(len(x), delta_width)
    d = delta(x, width, (1, 2)) if width else np.zeros((n, 2 * x.shape[1]), np.float32)
    return np.stack([x, d[:, : x.shape[1]], d[:, x.shape[1] :]], axis=2).reshape(n, -1)


@lru_cache(maxsize=32)
def _savgol_coeffs(width: int, orders: tuple[int, ...]) -> np.ndarray:
    # Least-squares polynomial of degree `order` over positions -half..half; the order-th
    # derivative at 0 is order! times its leading coefficient. Returns (width, len(orders)).
    z = np.arange(width, dtype=np.float64) - width // 2
    columns = []
    for order in orders:
        vander = z[:, None] ** np.arange(order + 1)[None, :]
        columns.append(math.factorial(order) * np.linalg.pinv(vander)[order])
    coeffs = np.stack(columns, axis=1)
    coeffs.flags.writeable = False  # shared by every caller through the cache
    return coeffs
