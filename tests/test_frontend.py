"""The frontend: FrontendConfig, edge (numpy) features against the librosa reference on
generated signals, and the training-side corpus extraction with its cache."""

from __future__ import annotations

import ast
import concurrent.futures
import dataclasses
import io
import json
import sys
from pathlib import Path

import librosa
import numpy as np
import pytest
import scipy.signal
import soundfile as sf

import keras_dyconv.features as kf
from edge_runtime.config import (
    FEATURE_TYPES,
    N_MFCC,
    FrontendConfig,
    dataset_statistics,
    remove_gain,
    with_dataset_stats,
)
from edge_runtime.dsp import delta, delta_width_for, mel_filterbank, preemphasis, window
from edge_runtime.features import Frontend
from edge_runtime.files import file_sha256
from edge_runtime.normalization import StreamStatistics
from edge_runtime.wav import read_wav
from keras_dyconv.features import FeatureCache, extract_corpus, librosa_features

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


def make_signal(kind: str, sr: int, seconds: float = 0.6) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    rng = np.random.default_rng(sr)
    if kind == "tone":
        y = 0.5 * np.sin(2 * np.pi * 440 * t) + 0.1 * np.sin(2 * np.pi * 3000 * t)
    elif kind == "chirp":
        y = 0.8 * scipy.signal.chirp(t, f0=50, t1=seconds, f1=0.45 * sr)
    elif kind == "noise":
        y = 0.3 * rng.standard_normal(len(t))
    elif kind == "silence":
        y = np.zeros(len(t))
    elif kind == "clipped":
        y = np.clip(3.0 * np.sin(2 * np.pi * 220 * t), -1.0, 1.0)
    elif kind == "speechlike":  # harmonics with a vibrato and an amplitude envelope
        f0 = 140 + 20 * np.sin(2 * np.pi * 5 * t)
        phase = 2 * np.pi * np.cumsum(f0) / sr
        y = sum(np.sin(k * phase) / k for k in range(1, 30)) * np.hanning(len(t)) * 0.3
    else:
        raise ValueError(kind)
    return y.astype(np.float32)


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


# --------------------------------------------------------------------------- normalization


def test_utterance_normalization_is_zero_mean_unit_std_per_feature():
    x = make_signal("speechlike", 16000)
    feats = Frontend(FrontendConfig(feature="mfcc39", normalization="utterance"))(x)
    np.testing.assert_allclose(feats.mean(axis=0), 0, atol=1e-4)
    np.testing.assert_allclose(feats.std(axis=0), 1, atol=1e-4)
    reference = librosa_features(x, FrontendConfig(feature="mfcc39", normalization="utterance"))
    np.testing.assert_allclose(feats, reference, atol=1e-3)


def test_dataset_statistics_and_normalization():
    base = FrontendConfig(n_mels=16)
    arrays = [Frontend(base)(make_signal(k, 16000)) for k in ("tone", "chirp", "noise")]
    config = with_dataset_stats(base, arrays)
    assert config.normalization == "dataset" and base.normalization == "none"
    stacked = np.concatenate(arrays).astype(np.float64)
    np.testing.assert_allclose(config.mean, stacked.mean(axis=0), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(config.std, stacked.std(axis=0), rtol=1e-9)

    x = make_signal("speechlike", 16000)
    normalized = Frontend(config)(x)
    expected = (Frontend(base)(x) - np.float32(config.mean)) / np.float32(config.std)
    np.testing.assert_allclose(normalized, expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(librosa_features(x, config), normalized, atol=1e-4)


def test_gain_normalization_ignores_the_microphone_level():
    base = FrontendConfig(n_mels=16)
    arrays = [Frontend(base)(make_signal(k, 16000)) for k in ("tone", "chirp", "noise")]
    config = with_dataset_stats(base, arrays, "gain")
    assert config.normalization == "gain"
    removed = np.concatenate([remove_gain(a) for a in arrays])
    np.testing.assert_allclose(config.mean, removed.mean(axis=0), atol=1e-9)
    x = make_signal("noise", 16000)  # broadband: no band near the power floor
    loud, quiet = Frontend(config)(x), Frontend(config)(x * 0.1)  # -20 dB
    np.testing.assert_allclose(loud, quiet, atol=1e-3)
    dataset = Frontend(with_dataset_stats(base, arrays))
    assert np.abs(dataset(x) - dataset(x * 0.1)).mean() > 0.5
    with pytest.raises(ValueError, match="with_dataset_stats needs one of"):
        with_dataset_stats(base, arrays, "utterance")


def test_stream_statistics_adapt_to_a_speaker():
    prior = FrontendConfig(n_mels=4, normalization="stream", mean=(0,) * 4, std=(1,) * 4)
    rng = np.random.default_rng(0)
    speaker = rng.normal(5.0, 2.0, size=(3000, 4))
    stats = StreamStatistics(prior)
    np.testing.assert_allclose(stats.mean, 0)
    np.testing.assert_allclose(stats.std, 1)
    stats.update(speaker[:100])  # 1 s of a new speaker after a 3 s prior: a quarter of the way
    assert 0.5 < stats.mean.mean() < 2.0
    stats.update(speaker[100:])
    np.testing.assert_allclose(stats.mean, 5.0, atol=0.6)
    np.testing.assert_allclose(stats.std, 2.0, atol=0.6)
    # A minute-long memory: another speaker takes over within a few minutes of audio.
    stats.update(rng.normal(-5.0, 1.0, size=(20000, 4)))
    np.testing.assert_allclose(stats.mean, -5.0, atol=0.2)
    stats.reset()
    np.testing.assert_allclose(stats.mean, 0)
    with pytest.raises(ValueError, match=r"expected \(frames, 4\)"):
        stats.update(np.zeros((3, 5)))
    with pytest.raises(ValueError, match="needs a config with training-set mean/std"):
        StreamStatistics(FrontendConfig(n_mels=4))


def test_stream_normalization_in_the_frontend_carries_state():
    base = FrontendConfig(n_mels=16)
    arrays = [Frontend(base)(make_signal(k, 16000)) for k in ("tone", "chirp", "noise")]
    config = with_dataset_stats(base, arrays, "stream")
    frontend = Frontend(config)
    x = make_signal("speechlike", 16000)[::-1].copy() + make_signal("noise", 16000) * 0.01
    fresh_a, fresh_b = frontend(x), frontend(x)
    np.testing.assert_array_equal(fresh_a, fresh_b)  # no stream: prior + this clip each time
    np.testing.assert_allclose(frontend(x, stream=StreamStatistics(config)), fresh_a, atol=1e-5)
    stream = StreamStatistics(config, prior_frames=1)  # a prior that fades at once
    for _ in range(30):
        later = frontend(x, stream=stream)
    # After a long stream of the same audio the running statistics are this clip's own.
    # (The top bands of this signal are almost constant: even one prior frame shows there.)
    np.testing.assert_allclose(later.mean(axis=0)[:12], 0, atol=0.05)
    np.testing.assert_allclose(later.std(axis=0)[:12], 1, atol=0.05)
    # ... while with the 3 s training-set prior a single clip is only partly normalised.
    assert np.abs(fresh_a.mean(axis=0)).max() > 0.3


def test_dataset_statistics_rejects_bad_arrays():
    with pytest.raises(ValueError, match="at least one non-empty"):
        dataset_statistics([])
    with pytest.raises(ValueError, match=r"expected \(frames, 3\)"):
        dataset_statistics([np.zeros((4, 3)), np.zeros((4, 2))])
    with pytest.raises(ValueError, match="NaN"):
        dataset_statistics([np.full((2, 2), np.nan)])
    _, std = dataset_statistics([np.ones((5, 2))])
    assert min(std) > 0  # constant features get the floor, never 0


# ------------------------------------------------------------------------------- config


def test_defaults_are_speech_at_16k():
    c = FrontendConfig()
    assert (c.sample_rate, c.win_length, c.hop_length, c.n_fft, c.n_mels) == (
        16000,
        400,
        160,
        512,
        64,
    )
    assert c.normalization == "none" and c.n_features == 64 and c.mel_fmax == 8000.0
    assert FrontendConfig(feature="mfcc39").n_features == 3 * N_MFCC == 39


def test_config_round_trips_and_fingerprint():
    config = with_dataset_stats(
        FrontendConfig(feature="mfcc39", fmax=7000), [np.arange(78.0).reshape(2, 39)]
    )
    assert FrontendConfig.from_dict(config.to_dict()) == config
    assert FrontendConfig.from_json(config.to_json()) == config
    assert json.loads(config.to_json())["mean"][:2] == [19.5, 20.5]
    assert FrontendConfig.from_json(config.to_json()).fingerprint() == config.fingerprint()
    assert len(config.fingerprint()) == 64
    # Equal values give equal fingerprints whatever their Python type; any change differs.
    same = FrontendConfig(fmin=0, fmax=8000), FrontendConfig(fmin=0.0, fmax=8000.0)
    assert same[0].fingerprint() == same[1].fingerprint()
    fingerprints = {
        FrontendConfig(**change).fingerprint()
        for change in ({}, {"n_mels": 40}, {"preemphasis": 0.95}, {"top_db": 80.0})
    }
    assert len(fingerprints) == 4
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.n_mels = 3  # type: ignore[misc]


def test_from_dict_refuses_unknown_keys_and_bad_json():
    with pytest.raises(ValueError, match=r"unknown frontend config key\(s\) \['nmels'\]"):
        FrontendConfig.from_dict({"nmels": 40})
    with pytest.raises(ValueError, match="not valid JSON"):
        FrontendConfig.from_json("{")
    with pytest.raises(ValueError, match="must be a mapping"):
        FrontendConfig.from_json("[1, 2]")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"sample_rate": 0}, "sample_rate must be >= 1"),
        ({"sample_rate": 16000.0}, "sample_rate must be an integer"),
        ({"n_fft": True}, "n_fft must be an integer"),
        ({"win_length": 600}, r"win_length \(600\) must be <= n_fft \(512\)"),
        ({"preemphasis": 1.0}, "preemphasis must be in"),
        ({"fmax": 9000}, "fmax <= sample_rate / 2"),
        ({"fmin": 8000.0}, "need fmin < fmax"),
        ({"fmin": -1.0}, "fmin must be >= 0"),
        ({"window": "kaiser"}, "window must be one of"),
        ({"pad_mode": "wrap"}, "pad_mode must be one of"),
        ({"mel_scale": "bark"}, "mel_scale must be one of"),
        ({"mel_norm": 2}, "mel_norm must be one of"),
        ({"power": 0.0}, "power must be > 0"),
        ({"amin": float("nan")}, "amin must be finite"),
        ({"top_db": -1.0}, "top_db must be >= 0"),
        ({"feature": "mfcc"}, "feature must be one of"),
        ({"feature": "mfcc39", "n_mels": 10}, "mfcc39 needs n_mels >= 13"),
        ({"delta_width": 4}, "delta_width must be an odd integer"),
        ({"center": 1}, "center must be True or False"),
        ({"normalization": "global"}, "normalization must be one of"),
        ({"normalization": "dataset"}, "needs mean"),
        ({"mean": (0.0,) * 64}, "only used with normalization in"),
        ({"normalization": "stream"}, "'stream' needs mean"),
        (
            {"normalization": "dataset", "mean": (0.0,) * 63, "std": (1.0,) * 64},
            "mean has 63 values, expected n_features=64",
        ),
        (
            {"normalization": "dataset", "mean": (0.0,) * 64, "std": (0.0,) * 64},
            "std values must all be > 0",
        ),
        ({"normalization": "dataset", "mean": "abc", "std": (1.0,) * 64}, "sequence of numbers"),
    ],
)
def test_config_validation(changes, message):
    with pytest.raises(ValueError, match=message):
        FrontendConfig(**changes)


# -------------------------------------------------------------- training-side extraction


@pytest.fixture
def corpus(tmp_path):
    paths = []
    for i, (kind, sr) in enumerate([("speechlike", 16000), ("chirp", 44100), ("tone", 8000)]):
        path = tmp_path / f"clip{i}.wav"
        sf.write(path, make_signal(kind, sr, seconds=0.3), sr, subtype="PCM_16")
        paths.append(path)
    return paths


def test_extract_corpus_caches_by_config_and_content(corpus, tmp_path, monkeypatch):
    config = FrontendConfig(feature="mfcc39")
    cache_dir = tmp_path / "cache"
    first = extract_corpus(corpus, config, cache_dir=cache_dir, progress=False)
    for path, feats in zip(corpus, first, strict=True):
        np.testing.assert_array_equal(feats, kf.file_features(path, config))
    cache = FeatureCache(cache_dir, config)
    assert sorted(p.name for p in cache.directory.iterdir()) == sorted(
        [f"{file_sha256(p)}.npy" for p in corpus] + ["config.json"]
    )
    assert FrontendConfig.from_json((cache.directory / "config.json").read_text()) == config

    # A second run reads the cache: no features are computed.
    def fail(*_):
        raise AssertionError("cache miss")

    monkeypatch.setattr(kf, "file_features", fail)
    second = extract_corpus(corpus, config, cache_dir=cache_dir, progress=False)
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)
    # New content or a new config misses.
    sf.write(corpus[0], make_signal("noise", 16000, seconds=0.3), 16000)
    with pytest.raises(AssertionError, match="cache miss"):
        extract_corpus(corpus[:1], config, cache_dir=cache_dir, progress=False)
    with pytest.raises(AssertionError, match="cache miss"):
        extract_corpus(corpus[1:], FrontendConfig(), cache_dir=cache_dir, progress=False)


def test_extract_corpus_in_parallel_matches_serial(corpus, capsys):
    # The slowest test here (seconds): each worker process imports keras_dyconv, hence Keras.
    config = FrontendConfig()
    parallel = extract_corpus(corpus, config, n_jobs=2, progress=True)
    assert capsys.readouterr().err == ""  # stderr is no terminal: no bar, no stray label
    serial = extract_corpus(corpus, config, progress=False)
    for a, b in zip(parallel, serial, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.filterwarnings("ignore:PySoundFile failed:UserWarning")
@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_load_audio_names_unreadable_files(tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio at all")
    with pytest.raises(ValueError, match=r"bad\.wav: cannot load audio"):
        kf.load_audio(bad, FrontendConfig())


def test_extract_corpus_draws_its_progress_bar_on_a_terminal(corpus, monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    extract_corpus(corpus, FrontendConfig(), progress=True)
    assert "features" in terminal.getvalue() and "100%" in terminal.getvalue()
