"""Log-mel augmentation (keras_dyconv.augment) against real audio-domain perturbations."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
from scipy.signal import fftconvolve

from edge_runtime.config import FrontendConfig
from edge_runtime.features import Frontend
from edge_runtime.windows import random_window
from keras_dyconv.augment import (
    Augmentation,
    add_noise,
    add_reverb,
    augment_window,
    mel_band_centres,
    time_stretch,
    warp_frequency,
)

SR = 16000
CONFIG = FrontendConfig()
CENTRES = mel_band_centres(CONFIG)


def voice(seconds: float = 2.0, pitch: float = 1.0) -> np.ndarray:
    """A harmonic voice-like signal: 140 Hz vibrato pitch (times `pitch`), 29 harmonics,
    amplitude beats."""
    t = np.arange(int(seconds * SR)) / SR
    f0 = 140 * pitch * (1 + 0.1 * np.sin(2 * np.pi * 1.5 * t))
    phase = 2 * np.pi * np.cumsum(f0) / SR
    x = sum(np.sin(k * phase) / k for k in range(1, 30)) * (0.5 + 0.5 * np.sin(4 * np.pi * t) ** 2)
    return (0.1 * x).astype(np.float32)


def test_band_centres_are_the_filter_peaks():
    mel = librosa.filters.mel(sr=SR, n_fft=CONFIG.n_fft, n_mels=CONFIG.n_mels)
    peaks = librosa.fft_frequencies(sr=SR, n_fft=CONFIG.n_fft)[mel.argmax(axis=1)]
    assert np.abs(peaks - CENTRES).max() <= SR / CONFIG.n_fft  # within one FFT bin


@pytest.mark.parametrize("speed", [0.9, 1.1])
def test_speed_perturbation_matches_resampled_audio(speed):
    frontend = Frontend(CONFIG)
    x = voice()
    original = frontend.unnormalized(x)
    # Playing the clip `speed` times faster = reading it as if recorded at SR * speed.
    real = frontend.unnormalized(
        librosa.resample(x, orig_sr=SR * speed, target_sr=SR, res_type="soxr_hq")
    )
    stretched = time_stretch(original, len(real))
    approx = warp_frequency(stretched, speed, CENTRES)
    bands = slice(5, 60)  # away from DC and the resampler's band edge
    err = np.abs(real - approx)[:, bands].mean()
    err_time_only = np.abs(real - stretched)[:, bands].mean()
    assert err < 1.5 and err < 0.3 * err_time_only, (err, err_time_only)


@pytest.mark.parametrize("semitones", [-3.0, 3.0])
def test_frequency_warp_is_a_pitch_shift_with_the_tempo_kept(semitones):
    # What librosa.effects.pitch_shift aims at: every frequency scaled, duration kept. The
    # reference is the same voice synthesised at the shifted pitch (its spectrum scales with
    # the harmonics), since a phase vocoder's own smearing is 4.7-5.2 dB here.
    frontend = Frontend(CONFIG)
    ratio = 2.0 ** (semitones / 12)
    original = frontend.unnormalized(voice())
    real = frontend.unnormalized(voice(pitch=ratio))
    approx = warp_frequency(original, ratio, CENTRES)
    bands = slice(5, 60)
    err = np.abs(real - approx)[:, bands].mean()
    err_unshifted = np.abs(real - original)[:, bands].mean()
    assert err < 2.5 and err < 0.4 * err_unshifted, (err, err_unshifted)


def test_vtlp_moves_a_formant_peak_by_alpha():
    frontend = Frontend(CONFIG)
    t = np.arange(SR) / SR
    feats = frontend.unnormalized(np.sin(2 * np.pi * 1000 * t).astype(np.float32))
    warped = warp_frequency(feats, 1.2, CENTRES)
    peak = CENTRES[feats.mean(axis=0).argmax()]
    moved = CENTRES[warped.mean(axis=0).argmax()]
    assert moved / peak == pytest.approx(1.2, abs=0.06)
    np.testing.assert_array_equal(warp_frequency(feats, 1.0, CENTRES), feats)


def test_time_stretch_keeps_ends_and_length():
    x = np.arange(20, dtype=np.float32)[:, None] * np.ones((1, 3), np.float32)
    y = time_stretch(x, 39)
    assert y.shape == (39, 3)
    assert y[0, 0] == 0 and y[-1, 0] == 19 and np.all(np.diff(y[:, 0]) > 0)


@pytest.mark.parametrize("snr", [0.0, 10.0, 20.0])
def test_noise_has_the_requested_snr(snr):
    rng = np.random.default_rng(0)
    clean = Frontend(CONFIG).unnormalized(voice(1.0))
    noisy = add_noise(clean, snr, rng, tilt_db=-10.0)
    p_clean = np.power(10.0, clean.astype(np.float64) / 10)
    p_noise = np.power(10.0, noisy.astype(np.float64) / 10) - p_clean
    assert (p_noise > 0).all()
    measured = 10 * np.log10(p_clean.mean() / p_noise.mean())
    assert measured == pytest.approx(snr, abs=0.3)


def room_impulse_response(rt60: float, drr_db: float, rng: np.random.Generator) -> np.ndarray:
    """Polack's statistical room: a unit direct path, then Gaussian noise whose power falls
    60 dB in `rt60` seconds, with `drr_db` less energy than the direct path."""
    t = np.arange(1, int(1.5 * rt60 * SR)) / SR
    tail = rng.standard_normal(len(t)) * 10.0 ** (-3.0 * t / rt60)
    tail *= np.sqrt(10.0 ** (-drr_db / 10.0) / np.sum(tail**2))
    return np.concatenate([[1.0], tail])


@pytest.mark.parametrize("rt60, drr", [(0.3, 10.0), (0.9, 0.0)])
def test_reverb_matches_audio_convolved_with_a_room_impulse(rt60, drr):
    frontend, hop = Frontend(CONFIG), CONFIG.hop_length / SR
    x = np.concatenate([voice(1.0), np.zeros(SR // 2, np.float32)])  # the voice stops at 1 s
    wet_audio = fftconvolve(x, room_impulse_response(rt60, drr, np.random.default_rng(0)))
    dry = frontend.unnormalized(x)
    real = frontend.unnormalized(wet_audio[: len(x)].astype(np.float32))
    approx = add_reverb(dry, rt60, drr, hop)
    assert approx.shape == dry.shape and approx.dtype == np.float32
    bands = slice(5, 60)
    err, err_dry = (np.abs(real - f)[:, bands].mean() for f in (approx, dry))
    assert err < 0.3 * err_dry, (err, err_dry)

    def power(f: np.ndarray) -> np.ndarray:
        return np.power(10.0, f[:, bands].astype(np.float64) / 10.0)

    # Same reverberant energy per band (power domain) ...
    band_error_db = 10 * np.log10(power(real).mean(axis=0) / power(approx).mean(axis=0))
    assert np.median(np.abs(band_error_db)) < 1.0
    # ... and the same decay after the voice stops: -60 dB per RT60.
    after = np.arange(105, 125)  # 50-250 ms after the offset at frame 100
    slopes = [
        np.polyfit(after * hop, 10 * np.log10(power(f).sum(axis=1))[after], 1)[0]
        for f in (real, approx)
    ]
    assert slopes == pytest.approx([-60 / rt60] * 2, rel=0.1)


def test_reverb_of_an_impulse_has_the_requested_tail():
    window = np.full((300, 4), -200.0, np.float32)  # silence far below the tail
    window[10] = 0.0  # one frame at 0 dB
    wet = add_reverb(window, rt60_s=0.5, drr_db=6.0, hop_s=0.01)
    assert (wet[:10] < -199).all() and wet[10] == pytest.approx(0.0, abs=1e-6)  # causal
    assert np.diff(wet[11:40, 0]) == pytest.approx(-1.2, abs=1e-3)  # 60 dB / 0.5 s per 10 ms
    tail = np.power(10.0, wet[11:].astype(np.float64) / 10)
    assert 10 * np.log10(tail.sum(axis=0)) == pytest.approx(-6.0, abs=0.01)  # DRR


def test_augment_window_is_seeded_and_shaped():
    feats = Frontend(CONFIG).unnormalized(voice(1.5))
    aug = Augmentation(
        vtlp=0.1,
        speed=0.15,
        snr_db=(5.0, 20.0),
        noise_probability=1.0,
        gain_db=6,
        rt60_s=(0.3, 0.8),
        reverb_probability=1.0,
    )
    a = augment_window(feats, 300, aug, CENTRES, np.random.default_rng(3), random_window)
    b = augment_window(feats, 300, aug, CENTRES, np.random.default_rng(3), random_window)
    assert a.shape == (300, 64) and a.dtype == np.float32 and np.isfinite(a).all()
    np.testing.assert_array_equal(a, b)
    plain = augment_window(
        feats, 300, Augmentation(), CENTRES, np.random.default_rng(3), random_window
    )
    assert not Augmentation().active and aug.active
    assert plain.shape == a.shape and not np.allclose(plain, a)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"vtlp": 0.6}, "vtlp"),
        ({"speed": -0.1}, "speed"),
        ({"snr_db": (20.0, 5.0)}, "snr_db"),
        ({"noise_probability": 2.0}, "noise_probability"),
        ({"gain_db": -1.0}, "gain_db"),
        ({"rt60_s": (0.0, 0.5)}, "rt60_s"),
        ({"rt60_s": (0.8, 0.3)}, "rt60_s"),
        ({"drr_db": (10.0, 0.0)}, "drr_db"),
        ({"reverb_probability": -0.5}, "reverb_probability"),
    ],
)
def test_bad_augmentation_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Augmentation(**kwargs)
