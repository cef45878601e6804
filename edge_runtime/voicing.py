"""Frame measures of the speech gate (numpy + stdlib only): what `edge_runtime.speech` judges.

Decimation of fast rates, framing, and per frame: RMS level, the periodicity and pitch of
the whitened autocorrelation, and the count of harmonics standing out of the spectrum (how
each is computed: the module docstring of `edge_runtime.speech`, step 2), and the clip's
summaries of them: the octave-folded pitch range (`pitch_range_st`) and the 2-8 Hz energy
modulation (`syllable_modulation`). The thresholds
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
# Multiply-adds per matrix product: OpenBLAS (numpy's wheels) runs a product up to 4 x 65536
# of them on the calling thread; a bigger one wakes its thread pool, whose threads then spin
# waiting for more work: 6-11x the product's own CPU time on a busy 2-core machine.
_ONE_THREAD_PRODUCT = 4 * 65536
# Frames analysed together by `_spectral`, about: their float64 temporaries (0.5 MB per
# frames-sized array at 16 kHz) stay in a core's L2 cache. All 300 of a block at once spill
# to the shared L3 cache, where a busy machine made the gate 1.2-1.7x slower.
_SPECTRAL_FRAMES = 64


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

    The spectrum is taken at n_fft bins (the next power of two of the frame length: the
    frame's own DFT, not interpolated by zero padding) but only its first `top + 1` bins are
    kept: above the band every bin is 0. The whitened autocorrelation is wanted at lag 0 and
    the pitch lags only, and the whitened spectrum is 0 outside the pitch band, so it is a
    (pitch bins, 1 + lags) cosine product instead of an inverse FFT of n_fft (the same sums,
    in another order). It is circular over n_fft samples: a pitch lag also picks up the lag
    n_fft minus it, 3/4 of a frame or more, where the two Hann-windowed ends overlap little.
    The product is taken `rows` frames at a time (see `_ONE_THREAD_PRODUCT`), within calls
    of `chunk` frames (see `_SPECTRAL_FRAMES`).
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
    rows: int  # frames per product with `basis`
    chunk: int  # frames per `_spectral` call: about `_SPECTRAL_FRAMES`, a multiple of `rows`


@lru_cache(maxsize=8)
def _plan(length: int, rate: int, config: SpeechGateConfig) -> _Plan:
    """The `_Plan` of frames of `length` samples at `rate` Hz."""
    n_fft = 1 << (length - 1).bit_length()
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
    rows = max(1, _ONE_THREAD_PRODUCT // basis.size)
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
        rows,
        rows * max(1, round(_SPECTRAL_FRAMES / rows)),
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
    periodic, pitch in range); they are 0 in the other frames. The analysed frames go
    through the spectral measures `_SPECTRAL_FRAMES` or so at a time (each frame's measures
    are its own: how many go together changes no value).
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
    chunk = _plan(frames.shape[1], rate, config).chunk
    spectral = [
        _spectral(frames[part], rms_db[part], rate, config)
        for part in (rows[i : i + chunk] for i in range(0, len(rows), chunk))
    ]
    if spectral:
        measures = zip(*spectral, strict=True)
        periodicity[need], f0[need], harmonics[need] = map(np.concatenate, measures)
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
    np.square(white, out=white)
    acf = np.empty((len(white), plan.basis.shape[1]))
    for i in range(0, len(white), plan.rows):
        np.matmul(white[i : i + plan.rows], plan.basis, out=acf[i : i + plan.rows])
    # Lag 0 is a sum of squares: 0 only where the pitch band is empty (then nacf is 0).
    energy = acf[:, :1]
    nacf = np.divide(acf[:, 1:], energy, out=np.zeros_like(acf[:, 1:]), where=energy > 0)
    # The shortest lag within 10 % of the best: a period, not a multiple of it.
    rows = np.arange(len(nacf))
    first = np.argmax(nacf >= 0.9 * nacf.max(axis=1, keepdims=True), axis=1)
    # Climb to the local maximum right of that first lag: the first lag from it on whose
    # right neighbour is not higher (or the last lag).
    stop = np.ones(nacf.shape, bool)
    np.less_equal(nacf[:, 1:], nacf[:, :-1], out=stop[:, :-1])
    stop &= np.arange(nacf.shape[1]) >= first[:, None]
    best = np.argmax(stop, axis=1)
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
        harmonics[decides] = _count_harmonics(mag[decides], rate / plan.n_fft, f0[decides], config)
    return periodicity, f0, harmonics


def _count_harmonics(
    mag: np.ndarray, step: float, f0: np.ndarray, config: SpeechGateConfig
) -> np.ndarray:
    """Harmonics h*f0 whose peak stands `harmonic_db` above the spectrum midway between.

    `mag`: (n, bins) magnitude spectrum up to the band's top, bins `step` Hz apart; `f0`:
    (n,) pitch, Hz. Each frame's harmonics whose midpoint to the next one lies in the band
    are looked at, those of all frames in one flat list.
    """
    top = (mag.shape[1] - 1) * step
    # Harmonics h = 1, 2, ... of each frame while h * f0 + 0.5 * f0 <= top: h <= top / f0.
    count = (top // f0).astype(np.int64)
    frame = np.repeat(np.arange(len(f0)), count)
    h = np.arange(len(frame)) - np.repeat(np.cumsum(count) - count, count) + 1
    pitch = f0[frame]
    centres = pitch * h  # Hz
    inside = centres + 0.5 * pitch <= top
    frame, pitch, centres = frame[inside], pitch[inside], centres[inside]
    # Power at 5 bins around each centre (offset 0) and midway to each neighbour (-+0.5),
    # (3, 5, harmonics), looked up at once. Past the band the spectrum is 0: the power is
    # padded with 0 as far as a lookup can reach (0.12 f0 past the last midpoint).
    offsets = np.array([0.0, -0.5, 0.5])[:, None] + np.linspace(-0.12, 0.12, 5)
    hz = centres + offsets[:, :, None] * pitch
    np.divide(hz, step, out=hz)
    span = np.rint(hz, out=hz).astype(np.intp)
    width = mag.shape[1] + int(0.12 * f0.max() / step) + 2
    power = np.zeros((len(f0), width))
    np.square(mag, out=power[:, : mag.shape[1]])
    span += frame * width
    around = power.ravel()[span]
    peak = around[0].max(axis=0)
    valley = 0.5 * (around[1].mean(axis=0) + around[2].mean(axis=0))
    loudest = power.max(axis=1)[frame]
    ratio = 10 ** (config.harmonic_db / 10)
    present = (peak >= ratio * valley) & (peak >= 1e-5 * loudest) & (peak > 0)
    return np.bincount(frame[present], minlength=len(f0))


def runs_at_least(mask: np.ndarray, min_len: int) -> np.ndarray:
    """`mask` with runs of consecutive True shorter than `min_len` set to False."""
    if min_len <= 1 or not mask.any():
        return mask.copy()
    # Starts and ends (one past) of the runs, alternating; +1 at a kept run's start, -1 at
    # its end, summed up: 1 inside the kept runs.
    padded = np.concatenate([[False], mask, [False]])
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    starts, ends = edges[::2], edges[1::2]
    keep = ends - starts >= min_len
    step = np.zeros(len(mask) + 1, np.int8)
    step[starts[keep]] = 1
    step[ends[keep]] = -1
    return np.cumsum(step[:-1], dtype=np.int8).astype(bool)


def finite_mono(samples: np.ndarray) -> np.ndarray:
    """float32 (n,) view or copy of `samples`, non-finite values as 0."""
    x = np.asarray(samples, dtype=np.float32).reshape(-1)
    return x if np.isfinite(x).all() else np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)


def pitch_range_st(f0_hz: np.ndarray) -> float:
    """Octave-folded 10-90 % range of a pitch track, semitones (0 for fewer than 2 values).

    Each pitch is taken in semitones from the median and folded into [-6, 6) so that
    octave errors of the pitch tracker do not count as intonation.
    """
    if len(f0_hz) < 2:
        return 0.0
    ordered = np.sort(f0_hz)
    middle = len(ordered) // 2
    median = ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2
    st = 12 * np.log2(f0_hz / median)
    st = st - 12 * np.round(st / 12)
    lo, hi = percentiles(st, 10, 90)
    return float(hi - lo)


def percentiles(values: np.ndarray, *q: float) -> np.ndarray:
    """np.percentile(values, q) (linear interpolation) of (n,) non-NaN values, n >= 1.

    The same arithmetic as numpy's, to the bit, without its 30 us of overhead per call
    (the gate takes three per clip).
    """
    ordered = np.sort(values)
    virtual = (len(ordered) - 1) * (np.array(q) / 100)
    below = np.floor(virtual)
    gamma = virtual - below
    i = below.astype(np.intp)
    a, b = ordered[i], ordered[np.minimum(i + 1, len(ordered) - 1)]
    diff = b - a
    return np.where(gamma >= 0.5, b - diff * (1 - gamma), a + diff * gamma)


def syllable_modulation(rms_db: np.ndarray, hop_s: float) -> float:
    """Energy modulation at 2-8 Hz: std of the band-passed RMS envelope over its mean.

    The envelope is the linear frame RMS (from `rms_db`, frames every `hop_s` seconds);
    0 for a steady signal, about 0.3-1 for speech. Clips shorter than 0.25 s give 0.
    """
    env = 10 ** (rms_db / 20)
    env[np.isnan(env)] = 0.0
    if len(env) * hop_s < 0.25 or env.mean() <= 0:
        return 0.0
    n = 1 << int(np.ceil(np.log2(2 * len(env))))
    hann, outside = _modulation_plan(len(env), hop_s)
    spec = np.fft.rfft((env - env.mean()) * hann, n)
    spec[outside] = 0.0
    band = np.fft.irfft(spec, n)[: len(env)]
    # Undo the Hann window's loss of power (mean of w**2 = 3/8).
    return float(np.sqrt(np.mean(band**2) / 0.375) / env.mean())


@lru_cache(maxsize=8)
def _modulation_plan(frames: int, hop_s: float) -> tuple[np.ndarray, np.ndarray]:
    """`syllable_modulation`'s Hann window of `frames` and its spectrum's bins outside 2-8 Hz."""
    n = 1 << int(np.ceil(np.log2(2 * frames)))
    freqs = np.fft.rfftfreq(n, hop_s)
    hann, outside = window("hann", frames), (freqs < 2.0) | (freqs > 8.0)
    hann.flags.writeable = outside.flags.writeable = False  # cached: shared by every call
    return hann, outside
