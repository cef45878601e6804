"""edge_runtime.resample: lengths, passband accuracy, alias rejection, and SNR against
librosa's default resampler (soxr_hq), which training uses."""

from __future__ import annotations

import importlib
import time
import tracemalloc
from pathlib import Path

import librosa
import numpy as np
import pytest
import soundfile as sf

from edge_runtime.config import FrontendConfig
from edge_runtime.features import Frontend
from edge_runtime.resample import resample, resampled_length
from keras_dyconv.features import librosa_features

resample_module = importlib.import_module("edge_runtime.resample")  # the package re-exports

RATES = [8000, 22050, 44100, 48000]
EMODB = Path("/work/shared/datasets/emodb/wav")


def snr_db(reference: np.ndarray, estimate: np.ndarray) -> float:
    """10 log10(|ref|^2 / |ref - est|^2), in float64."""
    ref = reference.astype(np.float64)
    return float(10 * np.log10(np.sum(ref**2) / np.sum((ref - estimate) ** 2)))


def soxr(x: np.ndarray, orig: int, target: int) -> np.ndarray:
    return librosa.resample(x, orig_sr=orig, target_sr=target, res_type="soxr_hq")


def harmonics(sr: int, seconds: float = 1.0, f0: float = 150.0, top: float = 6000.0):
    """A voiced-speech-like harmonic complex below `top` Hz."""
    t = np.arange(int(sr * seconds)) / sr
    ks = np.arange(1, int(top / f0) + 1)
    return (0.2 * np.sin(2 * np.pi * f0 * np.outer(t, ks) + ks) @ (1 / ks)).astype(np.float32)


def tone_level_db(y: np.ndarray) -> float:
    """Level of a steady tone (dB re full-scale sine), edges skipped."""
    core = y[len(y) // 8 : -len(y) // 8]
    return float(20 * np.log10(np.sqrt(2) * core.std() + 1e-30))


@pytest.mark.parametrize(("orig", "target"), [(48000, 16000), (16000, 44100), (8000, 16000)])
@pytest.mark.parametrize("n", [0, 1, 2, 7, 441, 1000])
def test_length_matches_librosa(orig, target, n):
    x = np.random.default_rng(n).standard_normal(n).astype(np.float32)
    y = resample(x, orig, target)
    reference = soxr(x, orig, target)
    assert y.dtype == np.float32
    assert len(y) == resampled_length(n, orig, target) == len(reference)
    # librosa zero-pads soxr's rounded length up to the ceiling; so do we.
    assert [v == 0 for v in y[-1:]] == [v == 0 for v in reference[-1:]]


def test_same_rate_is_identity_copy():
    x = np.arange(10, dtype=np.float32)
    y = resample(x, 16000, 16000)
    np.testing.assert_array_equal(y, x)
    assert y is not x


@pytest.mark.parametrize("orig", RATES)
def test_passband_tone_matches_ideal(orig):
    t_in = np.arange(orig) / orig
    y = resample(np.sin(2 * np.pi * 1000 * t_in).astype(np.float32), orig, 16000)
    ideal = np.sin(2 * np.pi * 1000 * np.arange(len(y)) / 16000)
    edge = 2000  # samples near the ends see the zero padding
    assert snr_db(ideal[edge:-edge], y[edge:-edge]) > 100


@pytest.mark.parametrize("freq", [8500.0, 12000.0, 20000.0])
def test_rejects_frequencies_above_target_nyquist(freq):
    t = np.arange(48000) / 48000
    y = resample(np.sin(2 * np.pi * freq * t).astype(np.float32), 48000, 16000)
    assert tone_level_db(y) < -120


@pytest.mark.parametrize("orig", RATES)
def test_snr_against_soxr_hq(orig):
    # Harmonic complex as in voiced speech (content to 0.8 x the lower Nyquist), and white
    # noise, the worst case: it fills the transition band where the two filters differ.
    top = 0.8 * min(orig, 16000) / 2
    voiced = harmonics(orig, top=top)
    noise = (0.1 * np.random.default_rng(orig).standard_normal(orig)).astype(np.float32)
    assert snr_db(soxr(voiced, orig, 16000), resample(voiced, orig, 16000)) > 65
    assert snr_db(soxr(noise, orig, 16000), resample(noise, orig, 16000)) > 50


def test_upsampling_snr_against_soxr_hq():
    x = harmonics(16000, top=6000.0)
    for target in (22050, 44100, 48000):
        assert snr_db(soxr(x, 16000, target), resample(x, 16000, target)) > 65


@pytest.mark.filterwarnings("ignore:n_fft=.*too large")
@pytest.mark.parametrize("orig", RATES)
def test_frontend_resamples_other_rates_close_to_librosa(orig):
    config = FrontendConfig()
    x = harmonics(orig, seconds=0.5, top=0.45 * min(orig, 16000))
    edge = Frontend(config)(x, sample_rate=orig)
    reference = librosa_features(x, config, sample_rate=orig)
    assert edge.shape == reference.shape
    # Bands holding signal agree closely; empty bands (e.g. above 4 kHz from an 8 kHz
    # source) sit at the top_db floor in both.
    assert np.median(np.abs(edge - reference)) < 0.01


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((np.zeros((2, 3)), 8000, 16000), "1-D"),
        ((np.zeros(3), 0, 16000), "orig_sr"),
        ((np.zeros(3), 8000, 16000.5), "target_sr"),
        ((np.zeros(3), True, 16000), "orig_sr"),
    ],
)
def test_bad_arguments(args, message):
    with pytest.raises(ValueError, match=message):
        resample(*args)


@pytest.mark.parametrize("orig", [383_999, 44_101, 8_001, 4_001])
def test_awkward_rate_pairs_run_in_bounded_memory_and_time(orig):
    """Rates whose reduced ratio is large (B1: a filter bank of ~80 M taps for 383,999 Hz)
    build their filters a block at a time: a few MiB whatever the pair, accurate to soxr."""
    x = harmonics(orig, seconds=0.25, top=0.4 * min(orig, 16000))
    tracemalloc.start()
    start = time.perf_counter()
    try:
        y = resample(x, orig, 16000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - start < 5.0
    assert peak < 16 * x.nbytes + (24 << 20), f"peak {peak / 2**20:.0f} MiB"
    reference = soxr(x, orig, 16000)
    assert snr_db(reference[400:-400], y[400:-400]) > 60  # edges: soxr's own zero padding


@pytest.mark.parametrize("orig", [22050, 44100, 11025])
def test_tabulated_filters_match_the_exact_bank(orig, monkeypatch):
    x = harmonics(orig, seconds=0.5)
    exact = resample(x, orig, 16000)
    monkeypatch.setattr(resample_module, "_MAX_EXACT_TAPS", 0)  # force the tabulated path
    tabulated = resample(x, orig, 16000)
    assert snr_db(exact, tabulated) > 120


@pytest.mark.slow
def test_snr_against_soxr_hq_on_emodb():
    files = sorted(EMODB.glob("*.wav"))[::50]
    if not files:
        pytest.skip(f"EmoDB not found at {EMODB}")
    for path in files:
        x, sr = sf.read(path, dtype="float32")
        for rate in RATES:
            copy = soxr(x, sr, rate)
            assert snr_db(soxr(copy, rate, sr), resample(copy, rate, sr)) > 60, (path, rate)
