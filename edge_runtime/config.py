"""The one frontend configuration shared by training (librosa) and the edge runtime (numpy).

A `FrontendConfig` is saved with every trained model and every exported artifact, so inference
never guesses how features were made. Its `fingerprint()` keys feature caches and lets an
artifact check that it is being fed the features it was trained on.

Defaults suit speech at 16 kHz: 25 ms Hann windows (400 samples) every 10 ms (160 samples),
a 512-point FFT, 64 Slaney mel bands from 0 Hz to Nyquist, 0.97 pre-emphasis, power
spectrogram, dB (10*log10 with a 1e-10 power floor, no top_db clamp: a clamp relative to
the loudest frame would differ between a whole file and a streaming window of it).

Normalization defaults to "none". Trained models use one of the modes that carry
training-set statistics (`edge_runtime.normalization.with_dataset_stats`): "dataset"
(mean/std per feature), "gain" (the utterance's mean level removed first, so microphone
gain does not matter) or "stream" (online CMVN: running per-feature statistics of the
stream being analysed, starting from a prior of training-set statistics, by default the
within-speaker ones; see `edge_runtime.normalization.StreamStatistics`). Per-utterance
mean/std normalization ("utterance") drives the first conv block's global-average-pool
attention input to ~0, so that block's dynamic kernels stop adapting.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = [
    "FEATURE_TYPES",
    "LIMITS",
    "NORMALIZATIONS",
    "N_MFCC",
    "PITCH_CHANNELS",
    "PITCH_DEFINITION",
    "PITCH_FMAX_HZ",
    "PITCH_FMIN_HZ",
    "PITCH_SILENCE_DB",
    "PITCH_TROUGH_THRESHOLD",
    "PITCH_VOICED_PERIODICITY",
    "STATISTICS_NORMALIZATIONS",
    "STREAM_MEMORY_FRAMES",
    "STREAM_PRIOR_FRAMES",
    "FrontendConfig",
]

#: Number of cepstral coefficients in MFCC-39 (13 static + 13 delta + 13 delta-delta).
N_MFCC = 13
#: Values `pitch=True` appends to each frame's static features: log-F0 and periodicity
#: (`edge_runtime.pitch`).
PITCH_CHANNELS = 2
#: F0 range the pitch tracker searches (Hz): deep male voices to high-pitched screams.
PITCH_FMIN_HZ = 50.0
PITCH_FMAX_HZ = 600.0
#: librosa.yin's default: the first trough of its d' below this gives the period.
PITCH_TROUGH_THRESHOLD = 0.1
#: Frames whose periodicity (1 - min d') reaches this are voiced (min d' <= 0.3).
PITCH_VOICED_PERIODICITY = 0.7
#: Frames whose mean square over the window W that d' compares (the first frame - max lag
#: samples of the frame) is below this level, dB re full scale, are silent: periodicity 0,
#: unvoiced (d' of a silent window is 0 / 0, or of one click against it 0 at every lag).
PITCH_SILENCE_DB = -80.0
#: What defines the pitch channels besides the config's own fields; part of the
#: fingerprint of `pitch=True` configs, so a change misses the feature caches.
PITCH_DEFINITION = {
    "fmin_hz": PITCH_FMIN_HZ,
    "fmax_hz": PITCH_FMAX_HZ,
    "trough_threshold": PITCH_TROUGH_THRESHOLD,
    "voiced_periodicity": PITCH_VOICED_PERIODICITY,
    "silence_db": PITCH_SILENCE_DB,
}
#: Weight, in frames, of the prior in a fresh stream's statistics for the "stream" configs
#: that `with_dataset_stats` makes (1 s): a speaker's own statistics soon beat any prior
#: (the old 3 s pooled prior cost EmoDB 19 points WA after a 10 s enrollment), but a
#: single clip of an unknown voice needs some (lighter priors lost on it:
#: `bench/bench_enrollment.py --priors`, docs/benchmarks.md).
STREAM_PRIOR_FRAMES = 100
#: The prior weight of "stream" configs saved before `stream_prior_frames` existed (3 s, with
#: the pooled training statistics as the prior): the field's default, so they run as before.
LEGACY_STREAM_PRIOR_FRAMES = 300
#: Frames a stream's statistics remember (60 s): older audio fades out, so a device that
#: changes speaker or room adapts within a minute.
STREAM_MEMORY_FRAMES = 6000
#: Fields added after configs were first saved: `to_dict` leaves them out while they keep
#: their default, so every earlier config keeps its fingerprint (and its feature caches).
_LATER_FIELDS = {"pitch": False, "stream_prior_frames": LEGACY_STREAM_PRIOR_FRAMES}
FEATURE_TYPES = ("logmel", "logmel_deltas", "mfcc39")
NORMALIZATIONS = ("none", "utterance", "gain", "dataset", "stream")
#: Normalizations that use the training set's `mean` and `std`.
STATISTICS_NORMALIZATIONS = ("gain", "dataset", "stream")
WINDOWS = ("hann", "hamming")
PAD_MODES = ("constant", "edge", "reflect")
MEL_SCALES = ("slaney", "htk")
MEL_NORMS = ("slaney", None)
#: Accepted range of each numeric frontend setting, checked before anything is allocated
#: (a manifest is input too: an n_fft of 1e9 must be refused, not allocated). Rates up to
#: the WAV reader's 384 kHz (`edge_runtime.wav.WavLimits`), n_fft up to 16384 (1 s at
#: 16 kHz), n_mels up to 512, hop up to n_fft's limit, deltas over at most 99 frames,
#: spectrogram exponent up to 4.
LIMITS: dict[str, tuple[float, float]] = {
    "sample_rate": (1, 384_000),
    "n_fft": (1, 16_384),
    "win_length": (1, 16_384),
    "hop_length": (1, 16_384),
    "n_mels": (1, 512),
    "delta_width": (1, 99),
    "power": (0, 4),
}
#: Smallest standard deviation `dataset_statistics` reports, so normalization never divides
#: by zero on a feature that is constant over the data set (e.g. a band clamped by top_db).
MIN_STD = 1e-6


@dataclasses.dataclass(frozen=True)
class FrontendConfig:
    """How raw audio becomes model input features (all lengths in samples, rates in Hz).

    Pipeline: resample to `sample_rate` -> pre-emphasis -> centered framing -> window ->
    |STFT|**power -> mel filter bank -> 10*log10 (dB, floored at `top_db` below the max)
    -> optional MFCC-39 (DCT-II ortho, 13 coefficients + deltas + delta-deltas)
    -> optional normalization. With `pitch`, YIN log-F0 and periodicity
    (`edge_runtime.pitch`) join the static features (log-mel bands or MFCCs) before any
    deltas. Features are time-major: (frames, n_features).
    """

    sample_rate: int = 16000
    """Rate (Hz) features are computed at; other inputs are resampled to it."""
    preemphasis: float = 0.97
    """Pre-emphasis coefficient in [0, 1); 0 disables it."""
    n_fft: int = 512
    """FFT size (samples); the spectrum has n_fft // 2 + 1 bins."""
    win_length: int = 400
    """Window length (samples, <= n_fft); 400 = 25 ms at 16 kHz, zero-padded to n_fft."""
    hop_length: int = 160
    """Hop between frames (samples); 160 = 10 ms at 16 kHz."""
    window: str = "hann"
    """"hann" or "hamming", periodic (scipy get_window fftbins=True), as librosa uses."""
    center: bool = True
    """Pad n_fft // 2 samples on both sides so frame t is centered at t * hop_length."""
    pad_mode: str = "constant"
    """np.pad mode used when `center`: "constant" (zeros), "edge" or "reflect"."""
    n_mels: int = 64
    """Number of mel bands."""
    fmin: float = 0.0
    """Lowest mel band edge (Hz)."""
    fmax: float | None = None
    """Highest mel band edge (Hz); None means sample_rate / 2."""
    mel_scale: str = "slaney"
    """"slaney" (librosa default, linear below 1 kHz) or "htk"."""
    mel_norm: str | None = "slaney"
    """"slaney" (area normalization, librosa default) or None (peak 1)."""
    power: float = 2.0
    """Exponent of the magnitude spectrogram: 2 = power, 1 = magnitude."""
    amin: float = 1e-10
    """Floor applied to the mel spectrogram before the log (librosa power_to_db amin)."""
    ref: float = 1.0
    """Reference value: dB = 10*log10(max(amin, S)) - 10*log10(max(amin, ref))."""
    top_db: float | None = None
    """Clamp dB values to at least (max - top_db) of the analysed signal; None (default)
    disables the clamp. The clamp is relative to the loudest frame of whatever signal is
    analysed, so a whole file and a streaming window of it would get different floors:
    leave it off for models that also run on streams."""
    feature: str = "logmel"
    """"logmel" (n_mels dB values per frame), "logmel_deltas" (each band's dB value, delta and
    delta-delta side by side: 3 * n_mels per frame, `channels` 3) or "mfcc39" (13 MFCC,
    then their deltas, then their delta-deltas)."""
    pitch: bool = False
    """Append PITCH_CHANNELS pitch values per frame to the static features (after the mel
    bands or the 13 MFCCs, before deltas): log-F0 in semitones above PITCH_FMIN_HZ (0 when
    unvoiced) and YIN periodicity (0..1); see `edge_runtime.pitch`. Needs `center`."""
    delta_width: int = 9
    """Savitzky-Golay window (frames, odd >= 3) of the deltas, as librosa.feature.delta."""
    normalization: str = "none"
    """"none"; "utterance" (per-file mean/std per feature); "dataset" ((x - `mean`) / `std`);
    "gain" (the file's mean over all values subtracted, then as "dataset"); "stream" (running
    per-feature mean/std of the stream, with `mean`/`std` as the prior; see
    `edge_runtime.normalization.StreamStatistics`)."""
    mean: tuple[float, ...] | None = None
    """Per-feature training-set mean (n_features values) for "dataset", "gain" and "stream"
    (for "stream" made by `with_dataset_stats` with speakers: the mean of the training
    speakers' means)."""
    std: tuple[float, ...] | None = None
    """Per-feature training-set std (n_features values > 0) for the same modes (for "stream"
    made with speakers: the root of the training speakers' mean variance, without the spread
    between speakers)."""
    stream_prior_frames: int = LEGACY_STREAM_PRIOR_FRAMES
    """Weight, in frames (1..STREAM_MEMORY_FRAMES), of the prior `mean`/`std` in a fresh
    stream's statistics; "stream" only. The default (300) is what configs saved before this
    field used; `with_dataset_stats` gives new "stream" configs `STREAM_PRIOR_FRAMES`."""

    def __post_init__(self) -> None:
        for name in ("sample_rate", "n_fft", "win_length", "hop_length", "n_mels", "delta_width"):
            low, high = LIMITS[name]
            _set(self, name, _as_int(name, getattr(self, name), minimum=low, maximum=high))
        for name in ("preemphasis", "fmin", "power", "amin", "ref"):
            _set(self, name, _as_float(name, getattr(self, name)))
        for name in ("fmax", "top_db"):
            if getattr(self, name) is not None:
                _set(self, name, _as_float(name, getattr(self, name)))
        for name in ("center", "pitch"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")
        _check_choice("window", self.window, WINDOWS)
        _check_choice("pad_mode", self.pad_mode, PAD_MODES)
        _check_choice("mel_scale", self.mel_scale, MEL_SCALES)
        _check_choice("mel_norm", self.mel_norm, MEL_NORMS)
        _check_choice("feature", self.feature, FEATURE_TYPES)
        _check_choice("normalization", self.normalization, NORMALIZATIONS)

        if self.win_length > self.n_fft:
            raise ValueError(f"win_length ({self.win_length}) must be <= n_fft ({self.n_fft})")
        if not 0.0 <= self.preemphasis < 1.0:
            raise ValueError(f"preemphasis must be in [0, 1), got {self.preemphasis}")
        nyquist = self.sample_rate / 2
        if self.fmin < 0:
            raise ValueError(f"fmin must be >= 0 Hz, got {self.fmin}")
        if not self.fmin < self.mel_fmax <= nyquist:
            raise ValueError(
                f"need fmin < fmax <= sample_rate / 2 = {nyquist} Hz, "
                f"got fmin={self.fmin}, fmax={self.mel_fmax}"
            )
        for name in ("power", "amin", "ref"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.power > LIMITS["power"][1]:
            raise ValueError(f"power must be <= {LIMITS['power'][1]}, got {self.power}")
        if self.top_db is not None and self.top_db < 0:
            raise ValueError(f"top_db must be >= 0 or None, got {self.top_db}")
        if self.feature == "mfcc39" and self.n_mels < N_MFCC:
            raise ValueError(f"mfcc39 needs n_mels >= {N_MFCC}, got n_mels={self.n_mels}")
        if self.pitch and not self.center:
            raise ValueError("pitch=True needs center=True (pitch frames are centred ones)")
        if self.pitch and self.sample_rate <= 2 * PITCH_FMAX_HZ:
            raise ValueError(
                f"pitch=True needs sample_rate > {2 * PITCH_FMAX_HZ:g} Hz (the tracker "
                f"searches up to {PITCH_FMAX_HZ:g} Hz), got {self.sample_rate}"
            )
        if self.delta_width < 3 or self.delta_width % 2 == 0:
            raise ValueError(f"delta_width must be an odd integer >= 3, got {self.delta_width}")
        self._check_statistics()

    def _check_statistics(self) -> None:
        frames = _as_int(
            "stream_prior_frames",
            self.stream_prior_frames,
            minimum=1,
            maximum=STREAM_MEMORY_FRAMES,
        )
        _set(self, "stream_prior_frames", frames)
        if self.normalization != "stream" and frames != LEGACY_STREAM_PRIOR_FRAMES:
            raise ValueError(
                f'stream_prior_frames is only used with normalization "stream", got '
                f"{frames} with normalization={self.normalization!r}"
            )
        if self.normalization not in STATISTICS_NORMALIZATIONS:
            if self.mean is not None or self.std is not None:
                raise ValueError(
                    f"mean/std are only used with normalization in {STATISTICS_NORMALIZATIONS}, "
                    f"got normalization={self.normalization!r}"
                )
            return
        for name in ("mean", "std"):
            values = getattr(self, name)
            if values is None:
                raise ValueError(
                    f"normalization={self.normalization!r} needs {name} (see with_dataset_stats)"
                )
            if isinstance(values, str) or not isinstance(values, Sequence | np.ndarray):
                raise ValueError(f"{name} must be a sequence of numbers, got {values!r}")
            floats = tuple(_as_float(f"{name}[{i}]", v) for i, v in enumerate(values))
            if len(floats) != self.n_features:
                raise ValueError(
                    f"{name} has {len(floats)} values, expected n_features={self.n_features} "
                    f"(feature={self.feature!r})"
                )
            _set(self, name, floats)
        if min(self.std) <= 0:
            raise ValueError("std values must all be > 0")

    @property
    def n_features(self) -> int:
        """Features per frame: `n_static` for "logmel", 3 * `n_static` for "logmel_deltas"
        and "mfcc39" (39 without pitch)."""
        return self.n_static * (1 if self.feature == "logmel" else 3)

    @property
    def n_static(self) -> int:
        """Static features per frame, before deltas: n_mels (or 13 MFCCs for "mfcc39"),
        plus PITCH_CHANNELS with `pitch`."""
        base = N_MFCC if self.feature == "mfcc39" else self.n_mels
        return base + (PITCH_CHANNELS if self.pitch else 0)

    @property
    def channels(self) -> int:
        """Values per band that a model reads as input channels: 3 for "logmel_deltas"
        (static, delta, delta-delta), else 1. Features reshape to (frames, n_features //
        channels, channels)."""
        return 3 if self.feature == "logmel_deltas" else 1

    @property
    def mel_fmax(self) -> float:
        """`fmax` with None resolved to the Nyquist frequency (Hz)."""
        return self.sample_rate / 2 if self.fmax is None else self.fmax

    def unnormalized(self) -> FrontendConfig:
        """This config with normalization "none" (no statistics, no stream prior): what its
        features are cached and extracted with before normalising."""
        return dataclasses.replace(
            self,
            normalization="none",
            mean=None,
            std=None,
            stream_prior_frames=LEGACY_STREAM_PRIOR_FRAMES,
        )

    def n_frames(self, n_samples: int) -> int:
        """Frames produced for a signal of `n_samples` samples (at `sample_rate`)."""
        if self.center:
            return 1 + n_samples // self.hop_length
        return 1 + (n_samples - self.n_fft) // self.hop_length

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-compatible dict (tuples become lists). Fields added later (`pitch`) are
        left out at their default, so configs saved before them keep their fingerprint."""
        out = dataclasses.asdict(self)
        for name, default in _LATER_FIELDS.items():
            if out[name] == default:
                del out[name]
        for name in ("mean", "std"):
            if out[name] is not None:
                out[name] = list(out[name])
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FrontendConfig:
        """Inverse of `to_dict`; unknown keys raise ValueError, missing keys take defaults."""
        if not isinstance(data, Mapping):
            raise ValueError(f"frontend config must be a mapping, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(
                f"unknown frontend config key(s) {unknown}; known keys: {sorted(known)}"
            )
        return cls(**dict(data))

    def to_json(self, *, indent: int | None = 2) -> str:
        """JSON text of `to_dict()`, keys sorted."""
        return json.dumps(self.to_dict(), indent=indent, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> FrontendConfig:
        """Parse `to_json` output (ValueError on malformed JSON or unknown keys)."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"frontend config is not valid JSON: {err}") from None
        return cls.from_dict(data)

    def fingerprint(self) -> str:
        """sha256 hex digest of the canonical JSON (sorted keys, no whitespace) of `to_dict`,
        plus `PITCH_DEFINITION` when `pitch` is set."""
        data = self.to_dict()
        if self.pitch:
            data["pitch_definition"] = PITCH_DEFINITION
        canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), allow_nan=False)
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _set(config: FrontendConfig, name: str, value: object) -> None:
    # Frozen dataclass: normalise field types once, in __post_init__.
    object.__setattr__(config, name, value)


def _as_int(name: str, value: object, *, minimum: int, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value}")
    return int(value)


def _as_float(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise ValueError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return float(value)


def _check_choice(name: str, value: object, choices: tuple[object, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
