"""Frame measures of the speech gate (numpy + stdlib only): what `edge_runtime.speech` judges.

Decimation of fast rates, framing, and per frame: RMS level, the periodicity and pitch of
the whitened autocorrelation, and the count of harmonics standing out of the spectrum (how
each is computed: the module docstring of `edge_runtime.speech`, step 2). The thresholds
come from a `SpeechGateConfig`; the decisions made on these measures are in
`edge_runtime.speech`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from edge_runtime.dsp import window

if TYPE_CHECKING:
    from edge_runtime.speech import SpeechGateConfig

ANALYSIS_RATE = 16000  # Hz; faster rates are decimated by an integer factor down towards it
_LEVEL_FRAMES = 300  # frames per block of `frame_levels`


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


@dataclass(frozen=True)
class _Plan:
    """What `measure_block` reuses for every block of one frame length, rate and config.

    The spectrum is taken at n_fft bins (the next power of two of 2 x the frame length) but
    only its first `top + 1` bins are kept: above the band every bin is 0. The whitened
    autocorrelation is wanted at lag 0 and the pitch lags only, and the whitened spectrum is
    0 outside the pitch band, so it is a (pitch bins, 1 + lags) cosine product instead of
    an inverse FFT of n_fft (the same sums, in another order).
    """

    n_fft: int
    win: np.ndarray  # (length - 1,) Hann window of the pre-emphasized frame
    band_lo: int  # first bin of the band
    top: int  # last bin of the band
    half: int  # half-width of the spectral smoothing, bins
    divisor: np.ndarray  # (top + 1 + half,) bins averaged by the smoothing at each bin
    pitch: slice  # bins of the pitch band
    basis: np.ndarray  # (pitch bins, 1 + lags) cosines: white**2 @ basis = acf at 0, lo..hi
    lo: int  # shortest pitch lag, samples


@lru_cache(maxsize=8)
def _plan(length: int, rate: int, config: SpeechGateConfig) -> _Plan:
    """The `_Plan` of frames of `length` samples at `rate` Hz."""
    n_fft = 1 << int(np.ceil(np.log2(2 * length)))
    bins = n_fft // 2 + 1
    freqs = np.arange(bins) * rate / n_fft
    inside = np.flatnonzero(
        (freqs >= 0.8 * config.f0_min_hz) & (freqs <= min(config.band_hz, 0.45 * rate))
    )
    band_lo, top = int(inside[0]), int(inside[-1])
    half = max(1, round(config.smooth_hz * n_fft / rate))
    # The smoothing of `_smooth_band` sees bins 0..bins-1: its divisor clips at both ends.
    b = np.arange(min(top + 1 + half, bins))
    divisor = np.minimum(b + half + 1, bins) - np.maximum(b - half, 0)
    in_pitch = inside[freqs[inside] <= config.pitch_band_hz]
    lo = max(1, int(np.floor(rate / config.f0_max_hz)))
    hi = min(length // 2, int(np.ceil(rate / config.f0_min_hz)))
    lags = np.concatenate([[0], np.arange(n_fft)[lo : hi + 1]])
    j = np.arange(int(in_pitch[0]), int(in_pitch[-1]) + 1)
    weight = np.where((j == 0) | (j == n_fft // 2), 1.0, 2.0) / n_fft  # the irfft's sum
    basis = weight[:, None] * np.cos(2 * np.pi * (np.outer(j, lags) % n_fft) / n_fft)
    win = window("hann", length - 1)
    for shared in (win, divisor, basis):  # cached: every later call reads the same arrays
        shared.flags.writeable = False
    return _Plan(
        n_fft,
        win,
        band_lo,
        top,
        half,
        divisor,
        slice(int(j[0]), int(j[-1]) + 1),
        basis,
        lo,
    )


def _smooth_band(mag: np.ndarray, plan: _Plan) -> np.ndarray:
    """Moving average over +-half bins of the spectrum whose first `top + 1` bins are `mag`.

    Bins past those are 0, so the average is 0 beyond `top + half`; it is returned for the
    bins up to there, (n, len(plan.divisor)). Edges are averaged over fewer bins.
    """
    n, m = mag.shape
    half = plan.half
    # c[:, half + i] = sum of mag[:, :i], for i in 0 .. m + 2 * half + 1 (constant past m).
    c = np.zeros((n, m + 3 * half + 1))
    np.cumsum(mag, axis=1, out=c[:, half + 1 : half + 1 + m])
    c[:, half + 1 + m :] = c[:, half + m : half + m + 1]
    e = len(plan.divisor)
    env = c[:, 2 * half + 1 : 2 * half + 1 + e] - c[:, :e]
    env /= plan.divisor
    return env


def frame_levels(x: np.ndarray, length: int, hop: int) -> np.ndarray:
    """RMS level (dBFS, -inf for a constant frame) of the `frame_view(x, length, hop)` frames.

    The mean-removed energy of each frame from the sums of x and x**2 over hop-long pieces
    (the frames overlap length / hop times; each sample is squared once): a frame adds up
    its whole pieces, then its last length % hop samples, always in that order, so a frame's
    level depends on its own samples only (a stream and a clip agree to the bit) and is -inf
    exactly for digital silence. In blocks of `_LEVEL_FRAMES` frames. float64 (n_frames,).
    """
    if len(x) < length:
        x = np.pad(x, (0, length - len(x)))
    n = 1 + (len(x) - length) // hop
    whole, rest = divmod(length, hop)
    out = np.empty(n)
    for i in range(0, n, _LEVEL_FRAMES):
        m = min(_LEVEL_FRAMES, n - i)
        seg = x[i * hop : (i + m - 1) * hop + length].astype(np.float64)
        pieces = seg[: (m - 1 + whole) * hop].reshape(-1, hop)
        tails = sliding_window_view(seg[whole * hop :], rest)[::hop] if rest else None
        sums = []
        for power in (1, 2):
            per_piece = (pieces if power == 1 else np.square(pieces)).sum(axis=1)
            total = sliding_window_view(per_piece, whole).sum(axis=1)
            if rest:
                total += (tails if power == 1 else np.square(tails)).sum(axis=1)
            sums.append(total)
        energy = np.maximum(sums[1] - np.square(sums[0]) / length, 0.0) / length
        with np.errstate(divide="ignore"):
            out[i : i + m] = 10 * np.log10(energy)
    return out


def measure_block(
    frames: np.ndarray,
    rms_db: np.ndarray,
    wanted: np.ndarray,
    rate: int,
    config: SpeechGateConfig,
    phase: int = 0,
    previous: tuple[float, float, int] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """periodicity, f0_hz, harmonics of (n, length) frames at `rate` Hz.

    `rms_db`: (n,) their levels (`frame_levels`); `wanted`: (n,) bool, the frames whose
    voicing can matter (the gate passes the loud ones: no other frame can be voiced).

    Periodicity, pitch and harmonics (the spectral measures, where the cost is) are measured
    on every `config.pitch_every`-th frame of the stream, the frames whose index (`phase` +
    row) is a multiple of it, and each frame between holds the values of the last measured
    frame before it. A measured frame is analysed only when it or a frame holding its values
    is wanted; the others get periodicity 0, pitch 0 Hz and 0 harmonics (not voiced). Rows
    before the first measured row hold `previous`: (periodicity, f0_hz, harmonics) of the
    frame just before `frames`, needed when `phase` is not a multiple of `pitch_every`.

    Harmonics are counted only where they can decide (loud above the absolute floor,
    periodic, pitch in range); they are 0 in the other frames.
    """
    every = config.pitch_every
    first = (-phase) % every
    if first and previous is None:
        raise ValueError(f"frames from phase {phase} need the measures of the frame before")
    held = (np.arange(len(frames)) - first) // every  # -1: rows before the first measured one
    measured = np.arange(first, len(frames), every)
    # A measured row is analysed when a row holding its values (itself included) is wanted.
    need = np.bincount(held[first:], weights=wanted[first:], minlength=len(measured)) > 0
    periodicity, f0 = np.zeros(len(measured)), np.zeros(len(measured))
    harmonics = np.zeros(len(measured), np.int64)
    rows = measured[need]
    periodicity[need], f0[need], harmonics[need] = _spectral(
        frames[rows], rms_db[rows], rate, config
    )
    if first:
        held += 1
        periodicity = np.concatenate([[previous[0]], periodicity])
        f0 = np.concatenate([[previous[1]], f0])
        harmonics = np.concatenate([np.array([previous[2]], np.int64), harmonics])
    return periodicity[held], f0[held], harmonics[held]


def _spectral(
    x: np.ndarray, rms_db: np.ndarray, rate: int, config: SpeechGateConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """periodicity, f0_hz, harmonics of (n, length) frames (any float dtype)."""
    length = x.shape[1]
    if not len(x):
        return np.zeros(0), np.zeros(0), np.zeros(0, np.int64)
    x = x.astype(np.float64)
    x -= x.mean(axis=1, keepdims=True)
    plan = _plan(length, rate, config)
    # A first difference flattens low-frequency-heavy noise (brown, rumble) before whitening.
    emphasized = np.multiply(x[:, :-1], 0.97)
    np.subtract(x[:, 1:], emphasized, out=emphasized)
    emphasized *= plan.win
    mag = np.abs(np.fft.rfft(emphasized, plan.n_fft, axis=1)[:, : plan.top + 1])
    mag[:, : plan.band_lo] = 0.0
    # Whitening: each bin over the local spectral level, so only harmonic peaks remain.
    env = _smooth_band(mag, plan)
    tiny = 1e-3 * env.max(axis=1, keepdims=True) + 1e-12
    white = mag[:, plan.pitch] / (env[:, plan.pitch] + tiny)
    acf = (white**2) @ plan.basis
    # Lag 0 is a sum of squares: 0 only where the pitch band is empty (then nacf is 0).
    energy = acf[:, :1]
    nacf = np.divide(acf[:, 1:], energy, out=np.zeros_like(acf[:, 1:]), where=energy > 0)
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
    lag = plan.lo + best + np.clip(shift, -0.5, 0.5)
    f0 = rate / lag
    decides = (
        (rms_db >= config.floor_db)
        & (periodicity >= config.min_periodicity)
        & (f0 >= config.f0_min_hz)
        & (f0 <= config.f0_max_hz)
    )
    harmonics = np.zeros(len(f0), np.int64)
    if decides.any():
        # The power spectrum with one 0 bin past the band: lookups beyond it read 0.
        power = np.zeros((int(decides.sum()), plan.top + 2))
        np.square(mag[decides], out=power[:, :-1])
        harmonics[decides] = _count_harmonics(power, rate / plan.n_fft, f0[decides], config)
    return periodicity, f0, harmonics


def _count_harmonics(
    power: np.ndarray, step: float, f0: np.ndarray, config: SpeechGateConfig
) -> np.ndarray:
    """Harmonics h*f0 whose peak stands `harmonic_db` above the spectrum midway between.

    `power`: (n, bins) power spectrum, bins `step` Hz apart, the last bin the first past
    the band (0); `f0`: (n,) pitch, Hz.
    """
    top = (power.shape[1] - 2) * step
    n_harm = int(top // f0.min())  # more would all lie past the band
    h = np.arange(1, n_harm + 1)
    centres = f0[:, None] * h[None, :]  # (n, H) Hz
    inside = centres + 0.5 * f0[:, None] <= top
    rows = np.arange(len(f0))[None, :, None]
    spread = np.linspace(-0.12, 0.12, 5)[:, None, None]

    def level(offset: float, reduce) -> np.ndarray:
        # Max or mean of the power over 5 bins around centres + offset * f0.
        hz = centres[None] + (offset + spread) * f0[None, :, None]
        span = np.clip(np.rint(hz / step), 0, power.shape[1] - 1).astype(int)
        return reduce(power[rows, span], axis=0)

    peak = level(0.0, np.max)
    valley = 0.5 * (level(-0.5, np.mean) + level(0.5, np.mean))
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
