"""Log-mel and MFCC-39 features (and pitch channels) in numpy alone, matching librosa
(keras_dyconv.features).

`Frontend(config)` precomputes the window, mel filter bank, DCT matrix and delta filters
once; `frontend(samples)` then turns a 1-D signal into a time-major float32 array
(frames, n_features) with no Python loop over frames. STFT framing is centred (np.pad,
n_fft // 2 each side, `pad_mode`) as librosa's.

The steps live by concern: `edge_runtime.dsp` (pre-emphasis, window, mel filter bank, dB,
DCT, deltas, each matching its librosa function), `edge_runtime.pitch` (YIN pitch
channels) and `edge_runtime.normalization` (the normalisation modes, online CMVN): import
their names from there.
"""

from __future__ import annotations

import itertools
import math
import threading
from functools import cached_property

import numpy as np

from .config import N_MFCC, FrontendConfig
from .dsp import (
    band_deltas,
    dct_matrix,
    delta,
    delta_width_for,
    mel_filterbank,
    power_to_db,
    preemphasis,
    window,
)
from .normalization import StreamStatistics, normalize
from .pitch import pitch_channels
from .resample import resample
from .wav import DEFAULT_LIMITS, Source, read_wav

__all__ = ["Frontend", "check_sample_rate"]

#: Scratch arrays up to this size (about 60 s of audio at the defaults) are kept per thread
#: and reused; larger inputs get temporary arrays.
_MAX_SCRATCH_BYTES = 32 << 20


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
        c = self.config
        static = self.log_mel(x)
        if c.feature == "mfcc39":
            static = (static.astype(np.float64) @ self._dct).astype(np.float32)
        if c.pitch:
            static = np.concatenate([static, pitch_channels(x, c)], axis=1)
        if c.feature == "mfcc39":
            return self.with_deltas(static)
        if c.feature == "logmel_deltas":
            return band_deltas(static, c.delta_width)
        return static

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

    def with_deltas(self, static: np.ndarray) -> np.ndarray:
        """(frames, F) static features -> (frames, 3 F) float32: the features, then all their
        deltas, then all their delta-deltas (the "mfcc39" layout)."""
        width = delta_width_for(len(static), self.config.delta_width)
        if width:
            deltas = delta(static, width, (1, 2))
        else:
            deltas = np.zeros((len(static), 2 * static.shape[1]), dtype=np.float32)
        return np.concatenate([static, deltas], axis=1)

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
