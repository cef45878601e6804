"""The edge (numpy) frontend against the librosa reference: its building blocks bit for bit,
and the features on generated signals, short clips, config variants and EmoDB. The config,
normalisation and training-side extraction are in test_frontend_{config,normalization,
extraction}.py."""

from __future__ import annotations

import ast
import concurrent.futures
from pathlib import Path

import librosa
import numpy as np
import pytest
import scipy.signal
import soundfile as sf
from frontend_signals import make_signal

import keras_dyconv.features as kf
from edge_runtime.config import (
    FEATURE_TYPES,
    FrontendConfig,
)
from edge_runtime.dsp import delta, delta_width_for, mel_filterbank, preemphasis, window
from edge_runtime.features import Frontend
from edge_runtime.wav import read_wav
from keras_dyconv.features import librosa_features

pytestmark = [
    pytest.mark.filterwarnings("ignore:n_fft=.*too large:UserWarning"),
    pytest.mark.filterwarnings("ignore:Empty filters detected:UserWarning"),
]

LOGMEL_ATOL = 1e-3  # dB
MFCC_ATOL = 2e-3  # MFCC values reach several hundred; this is ~1e-5 relative
RATES = [8000, 16000, 22050, 44100, 48000]
EMODB = Path("/work/shared/datasets/emodb/wav")


def imported_exports(module) -> list[str]:
    """The names in `module.__all__` that the module imports rather than defines."""
    tree = ast.parse(Path(module.__file__).read_text())
    imported = {
        (alias.asname or alias.name).split(".")[0]
        for node in tree.body
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    return sorted(imported & set(module.__all__))


def test_feature_modules_export_only_what_they_define():
    """One place per name: the dsp and normalisation steps are imported from
    `edge_runtime.dsp` / `edge_runtime.normalization`, not re-exported by the features
    modules."""
    import edge_runtime.features as ef

    assert imported_exports(ef) == []
    assert imported_exports(kf) == []
    assert set(ef.__all__) <= set(dir(ef)) and set(kf.__all__) <= set(dir(kf))
    # The checker sees a re-export.
    fake = type("M", (), {"__file__": ef.__file__, "__all__": [*ef.__all__, "normalize"]})
    assert imported_exports(fake) == ["normalize"]


def speech_config(sr: int, **changes) -> FrontendConfig:
    """25 ms windows, 10 ms hop, n_fft the next power of two, at rate `sr`."""
    win = round(0.025 * sr)
    n_fft = 1 << (win - 1).bit_length()
    return FrontendConfig(
        sample_rate=sr, win_length=win, hop_length=round(0.01 * sr), n_fft=n_fft, **changes
    )


def assert_matches_librosa(samples: np.ndarray, config: FrontendConfig) -> None:
    edge = Frontend(config)(samples)
    reference = librosa_features(samples, config)
    assert edge.dtype == np.float32 and edge.flags.c_contiguous
    assert edge.shape == reference.shape == (config.n_frames(len(samples)), config.n_features)
    atol = MFCC_ATOL if config.feature == "mfcc39" else LOGMEL_ATOL
    np.testing.assert_allclose(edge, reference, rtol=0, atol=atol)


# ------------------------------------------------------------------------ building blocks


@pytest.mark.parametrize("sr", RATES)
@pytest.mark.parametrize(("htk", "norm"), [(False, "slaney"), (True, None), (True, "slaney")])
def test_mel_filterbank_is_librosa_bit_for_bit(sr, htk, norm):
    n_fft = 512 if sr <= 16000 else 2048
    ours = mel_filterbank(sr, n_fft, 40, 20.0, sr / 2 - 100, htk=htk, norm=norm)
    theirs = librosa.filters.mel(
        sr=sr, n_fft=n_fft, n_mels=40, fmin=20.0, fmax=sr / 2 - 100, htk=htk, norm=norm
    )
    assert ours.dtype == theirs.dtype == np.float32
    np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("name", ["hann", "hamming"])
@pytest.mark.parametrize("length", [1, 2, 200, 400, 401, 1102])
def test_window_is_scipy_periodic_bit_for_bit(name, length):
    np.testing.assert_array_equal(
        window(name, length), scipy.signal.get_window(name, length, fftbins=True)
    )


def test_preemphasis_reproduces_librosa_zi_none():
    x = np.random.default_rng(0).uniform(-1, 1, 1000).astype(np.float32)
    ours = preemphasis(x, 0.97)
    np.testing.assert_array_equal(ours, librosa.effects.preemphasis(x, coef=0.97))
    # librosa's zi=None state makes y[0] = 3 x[0] - x[1], not x[0] - 0.97 (2 x[0] - x[1]).
    x0, x1 = float(x[0]), float(x[1])
    assert ours[0] == pytest.approx(3 * x0 - x1, rel=1e-6)
    assert ours[0] != pytest.approx(x0 - 0.97 * (2 * x0 - x1), rel=1e-3)


@pytest.mark.parametrize("width", [3, 5, 9])
@pytest.mark.parametrize("order", [1, 2])
@pytest.mark.parametrize("n_frames", [9, 10, 57])
def test_delta_matches_librosa_interp(width, order, n_frames):
    x = np.random.default_rng(n_frames).normal(size=(n_frames, 13)).astype(np.float32)
    ours = delta(x, width, order)
    theirs = librosa.feature.delta(x.T, width=width, order=order).T
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5)


def test_delta_width_for_short_clips():
    assert [delta_width_for(n, 9) for n in (1, 2, 3, 4, 5, 8, 9, 100)] == [0, 0, 3, 3, 5, 7, 9, 9]


# ------------------------------------------------------------------- parity with librosa

KINDS = ["tone", "chirp", "noise", "silence", "clipped", "speechlike"]


@pytest.mark.parametrize("feature", FEATURE_TYPES)
@pytest.mark.parametrize("sr", RATES)
@pytest.mark.parametrize("kind", KINDS)
def test_matches_librosa_on_generated_signals(kind, sr, feature):
    assert_matches_librosa(make_signal(kind, sr), speech_config(sr, feature=feature))


@pytest.mark.parametrize("feature", FEATURE_TYPES)
@pytest.mark.parametrize("n", [2, 100, 399, 400, 1279, 1280, 1281])
def test_matches_librosa_on_very_short_clips(n, feature):
    # 399 samples is shorter than one 400-sample window; 1279 gives 8 frames (deltas over
    # 7), 1280 gives the 9 frames a full delta window needs.
    x = make_signal("speechlike", 16000, seconds=0.1)[:n]
    assert_matches_librosa(x, FrontendConfig(feature=feature))


@pytest.mark.parametrize(
    "changes",
    [
        {"mel_scale": "htk", "mel_norm": None},
        {"power": 1.0},
        {"center": False},
        {"pad_mode": "reflect"},
        {"pad_mode": "edge"},
        {"top_db": 80.0},
        {"window": "hamming"},
        {"preemphasis": 0.0},
        {"fmin": 80.0, "fmax": 7600.0, "n_mels": 40},
        {"ref": 10.0, "amin": 1e-8, "top_db": 60.0},
        {"n_fft": 400, "win_length": 400, "hop_length": 100},
        {"feature": "mfcc39", "delta_width": 5, "n_mels": 26},
        {"n_mels": 128, "n_fft": 256, "win_length": 256, "hop_length": 128},  # empty filters
    ],
)
def test_matches_librosa_for_config_variants(changes):
    x = make_signal("speechlike", 16000)
    assert_matches_librosa(x, FrontendConfig(**changes))
    assert_matches_librosa(x, FrontendConfig(**{"feature": "mfcc39", **changes}))


def test_default_shapes_and_layout():
    frontend = Frontend()
    feats = frontend(make_signal("noise", 16000, seconds=3.0))
    assert feats.shape == (301, 64) and feats.dtype == np.float32  # time-major
    mfcc = Frontend(FrontendConfig(feature="mfcc39"))(make_signal("noise", 16000))
    assert mfcc.shape == (61, 39)
    # log-mel with deltas: each band's value, delta and delta-delta side by side.
    config = FrontendConfig(feature="logmel_deltas")
    stacked = Frontend(config)(make_signal("noise", 16000, seconds=3.0))
    assert stacked.shape == (301, 192) and config.channels == 3 and config.n_features == 192
    bands = stacked.reshape(301, 64, 3)
    np.testing.assert_array_equal(bands[..., 0], feats)
    np.testing.assert_allclose(bands[..., 1], delta(feats, 9, 1), atol=1e-5)
    np.testing.assert_allclose(bands[..., 2], delta(feats, 9, 2), atol=1e-5)


def test_scratch_reuse_across_lengths_and_threads():
    # The Frontend keeps per-thread scratch arrays: results must not depend on what it
    # computed before, nor on other threads using it at the same time.
    config = FrontendConfig(feature="mfcc39")
    signals = [make_signal(k, 16000, s) for k, s in [("noise", 2.0), ("tone", 0.3), ("chirp", 1.0)]]
    expected = [Frontend(config)(x) for x in signals]
    shared = Frontend(config)
    for x, want in zip(signals * 2, expected * 2, strict=True):
        np.testing.assert_array_equal(shared(x), want)
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        results = list(pool.map(shared, signals * 8))
    for got, want in zip(results, expected * 8, strict=True):
        np.testing.assert_array_equal(got, want)


@pytest.mark.slow
def test_matches_librosa_on_emodb():
    paths = sorted(EMODB.glob("*.wav"))[::25]
    if not paths:
        pytest.skip(f"EmoDB not found at {EMODB}")
    for feature in ("logmel", "mfcc39"):
        config = FrontendConfig(feature=feature)
        frontend = Frontend(config)
        for path in paths:
            samples, rate = read_wav(path)
            assert rate == config.sample_rate
            atol = LOGMEL_ATOL if feature == "logmel" else MFCC_ATOL
            np.testing.assert_allclose(
                frontend(samples), kf.file_features(path, config), rtol=0, atol=atol
            )


@pytest.mark.parametrize(
    ("samples", "message"),
    [
        (np.zeros((2, 800), np.float32), "1-D"),
        (np.zeros(800, np.int16), "floating-point"),
        (np.array([0.1], np.float32), "at least 2"),
        (np.array([0.1, np.nan, 0.2], np.float32), "NaN"),
    ],
)
def test_bad_signals_raise_clear_errors(samples, message):
    with pytest.raises(ValueError, match=message):
        Frontend()(samples)


def test_uncentered_needs_a_full_frame():
    with pytest.raises(ValueError, match="at least 512"):
        Frontend(FrontendConfig(center=False))(np.zeros(511, np.float32))


def test_wav_features_match_librosa_loading(tmp_path):
    x = make_signal("speechlike", 22050, seconds=0.5)
    path = tmp_path / "a.wav"
    sf.write(path, x, 22050, subtype="PCM_16")
    config = FrontendConfig()
    edge = Frontend(config).wav_features(path)
    reference = kf.file_features(path, config)
    assert edge.shape == reference.shape
    assert np.median(np.abs(edge - reference)) < 0.01  # dB; the resamplers differ slightly
