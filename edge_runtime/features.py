"""Log-mel and MFCC-39 features in numpy alone, matching librosa (keras_dyconv.features).

`Frontend(config)` precomputes the window, mel filter bank, DCT matrix and delta filters
once; `frontend(samples)` then turns a 1-D signal into a time-major float32 array
(frames, n_features) with no Python loop over frames.

Each piece re-implements the librosa 0.11 function training uses, step for step:

- pre-emphasis = librosa.effects.preemphasis(y, coef, zi=None). With zi=None librosa sets
  the lfilter *state* to the extrapolated previous sample 2*y[0] - y[1] instead of
  -coef times it, so the first output is 3*y[0] - y[1], not y[0] - coef*(2*y[0] - y[1]).
  We reproduce that quirk so training and edge features agree on frame 0.
- window = scipy get_window(..., fftbins=True) (periodic), zero-padded to n_fft centered.
- STFT framing with center padding (np.pad, n_fft // 2 each side, `pad_mode`).
- mel filter bank = librosa.filters.mel (slaney or htk scale, slaney norm or none).
- dB = librosa.power_to_db(S, ref, amin, top_db): top_db is relative to the utterance max.
- MFCC = scipy DCT-II (norm="ortho") of the dB mel spectrogram, first 13 coefficients.
- deltas = librosa.feature.delta(width, order 1 and 2, mode="interp").
"""

from __future__ import annotations

import itertools
import math
import threading
from functools import cached_property, lru_cache

import numpy as np

from .config import MIN_STD, N_MFCC, FrontendConfig, remove_gain
from .resample import resample
from .wav import DEFAULT_LIMITS, Source, read_wav

__all__ = [
    "Frontend",
    "StreamStatistics",
    "band_deltas",
    "check_sample_rate",
    "dct_matrix",
    "delta",
    "delta_width_for",
    "hz_to_mel",
    "mel_filterbank",
    "mel_to_hz",
    "normalize",
    "power_to_db",
    "preemphasis",
    "window",
]

_MIN_LOG_HZ = 1000.0  # Slaney scale: linear below 1 kHz, logarithmic above
_F_SP = 200.0 / 3  # Slaney scale: Hz per mel in the linear part
_LOGSTEP = math.log(6.4) / 27.0
#: Scratch arrays up to this size (about 60 s of audio at the defaults) are kept per thread
#: and reused; larger inputs get temporary arrays.
_MAX_SCRATCH_BYTES = 32 << 20


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


#: Weight, in frames, of the training-set statistics in a fresh `StreamStatistics` (3 s):
#: the first utterance of a stream is normalised mostly by its own statistics, but not only.
STREAM_PRIOR_FRAMES = 300
#: Frames a stream's statistics remember (60 s): older audio fades out, so a device that
#: changes speaker or room adapts within a minute.
STREAM_MEMORY_FRAMES = 6000


class StreamStatistics:
    """Online per-feature mean and variance of one stream of features (online CMVN).

    Starts from the training-set statistics of `config` (weighted as `prior_frames`
    frames), accumulates every frame passed to `update`, and forgets old frames once more
    than `memory_frames` have been seen (the old accumulators are scaled down to make room
    for the new frames: an exponential memory of about `memory_frames`). `normalize`
    applies the current estimate.

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
        prior_frames: int = STREAM_PRIOR_FRAMES,
        memory_frames: int = STREAM_MEMORY_FRAMES,
    ) -> None:
        if config.mean is None or config.std is None:
            raise ValueError(
                "StreamStatistics needs a config with training-set mean/std "
                f"(normalization {config.normalization!r} has none)"
            )
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


def _banded_blocks(
    mel: np.ndarray, n_blocks: int = 4
) -> list[tuple[int, int, int, int, np.ndarray]]:
    """Split a (n_mels, n_bins) filter bank into `n_blocks` groups of adjacent bands, each
    with the contiguous bin range its filters touch: (first band, end band, first bin,
    end bin, weights (bins, bands) float32). The triangles are narrow, so the blocks hold
    about a quarter of the dense matrix and the projection costs about half as much."""
    blocks = []
    edges = np.linspace(0, len(mel), min(n_blocks, len(mel)) + 1).astype(int)
    for first, last in itertools.pairwise(edges):
        bins = np.flatnonzero(mel[first:last].any(axis=0))
        if len(bins):  # all-empty filters (librosa warns about them) contribute zeros
            lo, hi = int(bins[0]), int(bins[-1]) + 1
            weights = np.ascontiguousarray(mel[first:last, lo:hi].T)
            blocks.append((int(first), int(last), lo, hi, weights))
    return blocks


def check_sample_rate(sample_rate: int) -> None:
    """Raise ValueError unless `sample_rate` (Hz) is within the WAV reader's default limits
    (`edge_runtime.wav.DEFAULT_LIMITS`, 4,000..384,000 Hz)."""
    low, high = DEFAULT_LIMITS.min_rate, DEFAULT_LIMITS.max_rate
    if isinstance(sample_rate, bool) or not low <= sample_rate <= high:
        raise ValueError(f"sample rate {sample_rate!r} Hz not in {low}..{high} Hz")


class Frontend:
    """Features per `FrontendConfig`, with the window, mel matrix and DCT cached.

    Intermediate arrays (padded signal, frames, spectrum) are kept per thread and reused
    across calls: allocating them afresh costs more in page faults than the arithmetic.
    Calls from several threads are safe; the returned arrays are always new.

    >>> frontend = Frontend(FrontendConfig())
    >>> frontend(np.zeros(16000, np.float32)).shape
    (101, 64)
    """

    def __init__(self, config: FrontendConfig | None = None) -> None:
        self.config = config if config is not None else FrontendConfig()
        c = self.config
        # Only the win_length non-zero samples of the n_fft frame are windowed and moved to
        # the start of the FFT buffer: a circular shift changes the phase, not the power.
        self._offset = (c.n_fft - c.win_length) // 2
        self._window = window(c.window, c.win_length)
        self._scratch = threading.local()
        self._mel_blocks = _banded_blocks(
            mel_filterbank(
                c.sample_rate,
                c.n_fft,
                c.n_mels,
                c.fmin,
                c.mel_fmax,
                htk=c.mel_scale == "htk",
                norm=c.mel_norm,
            )
        )
        covered = sum(last - first for first, last, *_ in self._mel_blocks) == c.n_mels
        self._mel_alloc = np.empty if covered else np.zeros  # empty filters give zeros

    @cached_property
    def _dct(self) -> np.ndarray:
        return dct_matrix(self.config.n_mels, N_MFCC)

    def __call__(
        self,
        samples: np.ndarray,
        sample_rate: int | None = None,
        stream: StreamStatistics | None = None,
    ) -> np.ndarray:
        """Features (frames, n_features) float32 of a 1-D signal, normalised per the config.

        `samples` is at `sample_rate` Hz (default: config.sample_rate); other rates are
        resampled with edge_runtime.resample first. `stream` carries the running statistics
        of normalization "stream" across calls (see `normalize`).
        """
        return normalize(self.unnormalized(samples, sample_rate), self.config, stream)

    def unnormalized(self, samples: np.ndarray, sample_rate: int | None = None) -> np.ndarray:
        """Features (frames, n_features) float32 before normalization."""
        x = self._check(samples)
        if sample_rate is not None and sample_rate != self.config.sample_rate:
            check_sample_rate(sample_rate)  # before resampling: 1 Hz would make 16,000 of each
            x = resample(x, sample_rate, self.config.sample_rate)
            x = self._check(x)
        spec = self.log_mel(x)
        if self.config.feature == "mfcc39":
            spec = self.mfcc39(spec)
        elif self.config.feature == "logmel_deltas":
            spec = band_deltas(spec, self.config.delta_width)
        return spec

    def wav_features(self, source: Source) -> np.ndarray:
        """Features of a WAV file (path, bytes or file object), resampled as needed."""
        samples, rate = read_wav(source)
        return self(samples, rate)

    def n_frames(self, n_samples: int) -> int:
        """Frames produced for `n_samples` samples at config.sample_rate."""
        return self.config.n_frames(n_samples)

    def log_mel(self, samples: np.ndarray) -> np.ndarray:
        """dB mel spectrogram (frames, n_mels) float32 of a checked float32 signal."""
        c = self.config
        x = self._emphasized_and_padded(samples)
        n_frames = 1 + (len(x) - c.n_fft) // c.hop_length
        n_bins = c.n_fft // 2 + 1
        start = self._offset
        # Overlapping frames as a strided view (no copy); as_strided is the cheapest way.
        frames = np.lib.stride_tricks.as_strided(
            x[start:],
            shape=(n_frames, c.win_length),
            strides=(c.hop_length * x.strides[0], x.strides[0]),
            writeable=False,
        )
        mel = self._mel_alloc((n_frames, c.n_mels), dtype=np.float32)
        # Blocks of frames whose FFT buffer fits the scratch size (8192 frames, 82 s at the
        # defaults): a clip of any length costs the same scratch memory.
        block = max(1, _MAX_SCRATCH_BYTES // (c.n_fft * 8))
        for first_frame in range(0, n_frames, block):
            rows = slice(first_frame, min(n_frames, first_frame + block))
            self._mel_power(frames[rows], mel[rows], n_bins)
        return power_to_db(mel, amin=c.amin, ref=c.ref, top_db=c.top_db)

    def _mel_power(self, frames: np.ndarray, mel: np.ndarray, n_bins: int) -> None:
        """Mel power spectrum of (n, win_length) frames into `mel` (n, n_mels)."""
        c, n = self.config, len(frames)
        # Window in float64 into a zero-padded buffer whose tail columns stay 0, as librosa:
        # float32 products lose ~100x accuracy in quiet bands, and numpy's float64 FFT is
        # several times faster here than its float32 one. Padding the buffer ourselves
        # beats rfft(n=...) copying every row.
        buf = self._buffer("frames", (n, c.n_fft), np.float64, zero=True)
        np.multiply(frames, self._window, out=buf[:, : c.win_length])
        spec = np.fft.rfft(buf, axis=-1, out=self._buffer("spec", (n, n_bins), np.complex128))
        power = self._buffer("power", (n, n_bins), np.float32)
        if c.power == 2.0:
            parts = spec.view(np.float64)  # interleaved (real, imag)
            np.square(parts, out=parts)
            np.add(parts[:, 0::2], parts[:, 1::2], out=power, casting="same_kind")
        else:
            np.power(np.abs(spec), c.power, out=power, casting="same_kind")
        for first, last, lo, hi, weights in self._mel_blocks:
            np.matmul(power[:, lo:hi], weights, out=mel[:, first:last])

    def mfcc39(self, log_mel: np.ndarray) -> np.ndarray:
        """13 MFCCs + deltas + delta-deltas (frames, 39) float32 from a dB mel spectrogram."""
        mfcc = (log_mel.astype(np.float64) @ self._dct).astype(np.float32)
        width = delta_width_for(len(mfcc), self.config.delta_width)
        if width:
            deltas = delta(mfcc, width, (1, 2))
        else:
            deltas = np.zeros((len(mfcc), 2 * N_MFCC), dtype=np.float32)
        return np.concatenate([mfcc, deltas], axis=1)

    def _emphasized_and_padded(self, x: np.ndarray) -> np.ndarray:
        c = self.config
        if not c.center or c.pad_mode != "constant":
            x = preemphasis(x, c.preemphasis) if c.preemphasis else x
            return np.pad(x, c.n_fft // 2, mode=c.pad_mode) if c.center else x
        half = c.n_fft // 2
        padded = self._buffer("signal", (len(x) + 2 * half,), np.float32)
        padded[:half] = padded[half + len(x) :] = 0.0
        if c.preemphasis:
            preemphasis(x, c.preemphasis, out=padded[half : half + len(x)])
        else:
            padded[half : half + len(x)] = x
        return padded

    def _buffer(
        self, name: str, shape: tuple[int, ...], dtype: type, *, zero: bool = False
    ) -> np.ndarray:
        """Per-thread scratch array of `shape`; contents undefined, except that with `zero`
        elements no caller ever writes are 0."""
        if math.prod(shape) * np.dtype(dtype).itemsize > _MAX_SCRATCH_BYTES:
            return np.zeros(shape, dtype) if zero else np.empty(shape, dtype)
        cached = getattr(self._scratch, name, None)
        if cached is None or cached.shape[0] < shape[0] or cached.shape[1:] != shape[1:]:
            cached = np.zeros(shape, dtype) if zero else np.empty(shape, dtype)
            setattr(self._scratch, name, cached)
        return cached[: shape[0]]

    def _check(self, samples: np.ndarray) -> np.ndarray:
        x = np.asarray(samples)
        if x.ndim != 1:
            raise ValueError(f"expected a 1-D signal (mono samples), got shape {x.shape}")
        if x.dtype.kind != "f":
            raise ValueError(
                f"expected floating-point samples in [-1, 1], got dtype {x.dtype} "
                "(scale integer PCM first, e.g. int16 / 32768)"
            )
        x = x.astype(np.float32, copy=False)
        c = self.config
        minimum = max(2 if c.preemphasis else 1, 0 if c.center else c.n_fft)
        if len(x) < minimum:
            raise ValueError(
                f"signal has {len(x)} samples, need at least {minimum} "
                f"(preemphasis={c.preemphasis}, center={c.center}, n_fft={c.n_fft})"
            )
        if not np.isfinite(x).all():
            raise ValueError("signal contains NaN or infinite samples")
        return x
