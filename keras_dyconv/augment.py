"""Speaker- and channel-robust augmentation of log-mel training windows (numpy).

The training features are cached log-mel spectrograms in dB, so the audio-level
perturbations are applied where they act on a spectrogram, before normalisation:

* vocal-tract-length perturbation (VTLP): the frequency axis is scaled by a factor alpha
  (formants move by alpha), evaluated exactly at each mel band's centre frequency;
* speed perturbation: time *and* frequency scaled by the same factor s, which is what
  resampling the waveform by s does (a 1.1x faster clip is 10% shorter and 10% higher);
* additive noise at a signal-to-noise ratio in dB, added in the power domain
  (10^(dB/10)), with a random spectral tilt and frame-to-frame fluctuation;
* room reverberation: each band's power smeared along time by an exponentially decaying
  tail (the statistical model of late reverberation: energy falls 60 dB in RT60 seconds),
  at a direct-to-reverberant energy ratio in dB;
* gain: a level change in dB (the microphone is closer or further).

Each function is pure: (frames, n_mels) float32 dB in, a new array out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from edge_runtime.config import FrontendConfig
from edge_runtime.dsp import hz_to_mel, mel_to_hz

__all__ = [
    "Augmentation",
    "add_noise",
    "add_reverb",
    "augment_window",
    "mel_band_centres",
    "time_stretch",
    "warp_frequency",
]


@dataclass(frozen=True)
class Augmentation:
    """Which perturbations a training window gets, drawn independently per window.

    Attributes:
        vtlp: frequency-axis scale alpha ~ U[1 - vtlp, 1 + vtlp] (0 = off; 0.1 is the usual
            VTLP range).
        speed: speed factor s ~ U[1 - speed, 1 + speed], time and frequency (0 = off).
        snr_db: (low, high) SNR in dB of additive noise, or None for no noise.
        noise_probability: fraction of windows that get noise.
        gain_db: level change ~ U[-gain_db, gain_db] dB (0 = off).
        rt60_s: (low, high) reverberation time in seconds of simulated room reverberation
            (`add_reverb`), or None for none. Living rooms and offices: about 0.3-0.8 s.
        drr_db: (low, high) direct-to-reverberant energy ratio in dB of the reverberation.
        reverb_probability: fraction of windows that get reverberation.
    """

    vtlp: float = 0.0
    speed: float = 0.0
    snr_db: tuple[float, float] | None = None
    noise_probability: float = 0.5
    gain_db: float = 0.0
    rt60_s: tuple[float, float] | None = None
    drr_db: tuple[float, float] = (0.0, 12.0)
    reverb_probability: float = 0.5

    def __post_init__(self) -> None:
        for name in ("vtlp", "speed"):
            value = getattr(self, name)
            if not 0.0 <= value < 0.5:
                raise ValueError(f"Augmentation.{name} must be in [0, 0.5), got {value}")
        if self.snr_db is not None and not self.snr_db[0] <= self.snr_db[1]:
            raise ValueError(f"Augmentation.snr_db must be (low, high), got {self.snr_db}")
        if not 0.0 <= self.noise_probability <= 1.0:
            raise ValueError(f"noise_probability must be in [0, 1], got {self.noise_probability}")
        if self.gain_db < 0:
            raise ValueError(f"gain_db must be >= 0, got {self.gain_db}")
        if self.rt60_s is not None and not 0 < self.rt60_s[0] <= self.rt60_s[1]:
            raise ValueError(f"Augmentation.rt60_s must be (low, high) > 0 s, got {self.rt60_s}")
        if not self.drr_db[0] <= self.drr_db[1]:
            raise ValueError(f"Augmentation.drr_db must be (low, high), got {self.drr_db}")
        if not 0.0 <= self.reverb_probability <= 1.0:
            raise ValueError(f"reverb_probability must be in [0, 1], got {self.reverb_probability}")

    @property
    def active(self) -> bool:
        """Whether any perturbation is switched on."""
        return bool(
            self.vtlp
            or self.speed
            or self.snr_db is not None
            or self.gain_db
            or self.rt60_s is not None
        )

    def source_frames(self, frames: int, speed: float) -> int:
        """Frames to crop so that a `speed`-times faster version has `frames` frames."""
        return max(1, round(frames * speed))


def mel_band_centres(config: FrontendConfig) -> np.ndarray:
    """Centre frequency in Hz of each mel band of `config`, (n_mels,) float64."""
    htk = config.mel_scale == "htk"
    lo, hi = hz_to_mel(config.fmin, htk=htk), hz_to_mel(config.mel_fmax, htk=htk)
    edges = np.linspace(lo, hi, config.n_mels + 2)
    return mel_to_hz(edges[1:-1], htk=htk)


def warp_frequency(window: np.ndarray, alpha: float, centres: np.ndarray) -> np.ndarray:
    """Scale the frequency axis by `alpha`: band i takes the value the input has at
    centres[i] / alpha (linear interpolation between band centres, clamped at the edges).

    Args:
        window: (frames, n_mels) log-mel in dB.
        alpha: frequency scale (> 1 moves energy up, like a shorter vocal tract).
        centres: band centre frequencies in Hz (`mel_band_centres`).
    """
    position = np.interp(centres / alpha, centres, np.arange(len(centres), dtype=np.float64))
    lo = np.floor(position).astype(int)
    hi = np.minimum(lo + 1, len(centres) - 1)
    frac = (position - lo).astype(np.float32)
    return window[:, lo] * (1 - frac) + window[:, hi] * frac


def time_stretch(window: np.ndarray, frames: int) -> np.ndarray:
    """Resample (T, n_mels) to (frames, n_mels) along time by linear interpolation."""
    if len(window) == frames:
        return window
    position = np.linspace(0.0, len(window) - 1, frames)
    lo = np.floor(position).astype(int)
    hi = np.minimum(lo + 1, len(window) - 1)
    frac = (position - lo).astype(np.float32)[:, None]
    return window[lo] * (1 - frac) + window[hi] * frac


def add_noise(
    window: np.ndarray, snr_db: float, rng: np.random.Generator, tilt_db: float = 0.0
) -> np.ndarray:
    """Add noise at `snr_db` (mean signal power over mean noise power) in the power domain.

    The noise spectrum falls or rises linearly in dB across the bands by `tilt_db` in all
    (pink-ish noise is about -20 dB over 0-8 kHz); each cell fluctuates like the power of
    a band of several FFT bins (a Gamma(8) draw with mean 1).
    """
    power = np.power(10.0, window.astype(np.float64) / 10.0)
    shape = np.power(10.0, tilt_db * np.linspace(-0.5, 0.5, window.shape[1]) / 10.0)
    shape /= shape.mean()
    noise = power.mean() / 10.0 ** (snr_db / 10.0) * shape * rng.gamma(8.0, 1 / 8, window.shape)
    return (10.0 * np.log10(power + noise)).astype(np.float32)


def add_reverb(window: np.ndarray, rt60_s: float, drr_db: float, hop_s: float) -> np.ndarray:
    """Add late room reverberation in the power domain.

    Each band's power is convolved along time with the tail `decay**k` (k >= 1 frames), where
    `decay` makes the energy fall 60 dB in `rt60_s` seconds: the power envelope of a room's
    late reverberation (exponentially decaying noise, Polack's model) seen at the spectrogram's
    frame rate. The tail is scaled so that its energy is `drr_db` below the direct sound's.
    Sound from before the window's first frame leaves no tail (the window is a crop).

    Args:
        window: (frames, n_mels) log-mel in dB.
        rt60_s: reverberation time in seconds (> 0).
        drr_db: direct-to-reverberant energy ratio in dB.
        hop_s: frame hop in seconds (`hop_length / sample_rate`).
    """
    from scipy.signal import lfilter  # here: `dyser-train --help` reads this module's options

    power = np.power(10.0, window.astype(np.float64) / 10.0)
    decay = 10.0 ** (-6.0 * hop_s / rt60_s)
    # tail[t] = sum_{k>=1} decay^k power[t-k] = decay * (power[t-1] + tail[t-1])
    tail = lfilter([0.0, decay], [1.0, -decay], power, axis=0)
    scale = 10.0 ** (-drr_db / 10.0) * (1.0 - decay) / decay  # the tail sums to decay/(1-decay)
    return (10.0 * np.log10(power + scale * tail)).astype(np.float32)


def augment_window(
    features: np.ndarray,
    frames: int,
    augmentation: Augmentation,
    centres: np.ndarray,
    rng: np.random.Generator,
    crop: Callable[[np.ndarray, int, np.random.Generator], np.ndarray],
    hop_s: float = 0.01,
) -> np.ndarray:
    """One augmented training window of `frames` frames from an utterance's log-mel.

    Args:
        features: (T, n_mels) log-mel in dB of one utterance (not normalised).
        frames: output window length.
        augmentation: what to apply.
        centres: mel band centres in Hz (`mel_band_centres`).
        rng: random generator (all draws come from it).
        crop: `crop(features, n, rng)` -> a random (n, n_mels) crop (`random_window`).
        hop_s: frame hop in seconds (the reverberation's time scale).
    """
    speed = rng.uniform(1 - augmentation.speed, 1 + augmentation.speed)
    window = np.asarray(crop(features, augmentation.source_frames(frames, speed), rng))
    window = time_stretch(window.astype(np.float32), frames)
    alpha = speed * rng.uniform(1 - augmentation.vtlp, 1 + augmentation.vtlp)
    if alpha != 1.0:
        window = warp_frequency(window, alpha, centres)
    # Reverberation before noise: the room reverberates the voice, not the microphone's noise.
    if augmentation.rt60_s is not None and rng.random() < augmentation.reverb_probability:
        rt60, drr = rng.uniform(*augmentation.rt60_s), rng.uniform(*augmentation.drr_db)
        window = add_reverb(window, rt60, drr, hop_s)
    if augmentation.snr_db is not None and rng.random() < augmentation.noise_probability:
        snr = rng.uniform(*augmentation.snr_db)
        window = add_noise(window, snr, rng, tilt_db=rng.uniform(-20.0, 5.0))
    if augmentation.gain_db:
        window = window + np.float32(rng.uniform(-augmentation.gain_db, augmentation.gain_db))
    return window.astype(np.float32)
