"""Pitch channels (edge_runtime.pitch): the numpy YIN against librosa.yin and librosa's own
cumulative mean normalised difference, properties on tones of known F0, the frontend option
`pitch` on both sides, and a tiny model with pitch channels exported and run on the edge.

Tolerances: the numpy tracker repeats librosa's arithmetic in float64 (only the FFT of the
autocorrelation differs: numpy's, of another length), so min d' agrees to 1e-9 absolute on
every frame, and F0 to 1e-9 relative on every frame with a clear trough (min d' < 0.5).
Where d' is flat (a frame of one click: d' = 1 at every lag) the argmin is a tie broken by
rounding, so F0 may differ there (at most 2 % of frames); such frames are unvoiced, their
log-F0 channel 0 on both sides. The float32 channels agree to 1e-4 on every frame.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import scipy.signal

from edge_runtime.config import (
    PITCH_CHANNELS,
    PITCH_DEFINITION,
    PITCH_FMIN_HZ,
    PITCH_SILENCE_DB,
    PITCH_VOICED_PERIODICITY,
    FrontendConfig,
)
from edge_runtime.features import Frontend
from edge_runtime.pitch import (
    pitch_channels,
    yin,
)
from edge_runtime.windows import split_windows
from keras_dyconv.features import librosa_features, librosa_pitch, librosa_yin

RATES = [8000, 16000, 22050, 44100]
F0_RTOL = 1e-9
D_ATOL = 1e-9
CHANNEL_ATOL = 1e-4


def harmonic(f0: np.ndarray, sr: int, n_harmonics: int = 8) -> np.ndarray:
    """Harmonics 1..n (amplitude 1/h, below Nyquist) of an F0 track (Hz per sample)."""
    phase = 2 * np.pi * np.cumsum(f0) / sr
    y = sum(np.sin(h * phase) / h for h in range(1, n_harmonics + 1) if h * f0.max() < sr / 2)
    return 0.3 * y / np.abs(y).max()


def make_signal(kind: str, sr: int, seconds: float = 1.0) -> np.ndarray:
    n = int(sr * seconds)
    t = np.arange(n) / sr
    rng = np.random.default_rng(sr)
    if kind == "glide":  # 90 -> 400 Hz, exponential
        y = harmonic(90.0 * (400 / 90) ** (t / seconds), sr)
    elif kind == "vibrato":
        y = harmonic(180 + 25 * np.sin(2 * np.pi * 5 * t), sr) * np.hanning(n)
    elif kind == "noise":
        y = 0.3 * rng.standard_normal(n)
    elif kind == "silence":
        y = np.zeros(n)
    elif kind == "tone-gaps":  # voiced, silent, noisy and voiced again
        y = harmonic(np.full(n, 130.0), sr)
        y[n // 4 : n // 2] = 0.0
        y[n // 2 : 3 * n // 4] = 0.05 * rng.standard_normal(n // 4)
    elif kind == "chirp":  # a pure sine sweeping past the pitch range
        y = 0.5 * scipy.signal.chirp(t, f0=40, t1=seconds, f1=0.4 * sr)
    else:
        raise ValueError(kind)
    return y.astype(np.float32)


KINDS = ["glide", "vibrato", "noise", "silence", "tone-gaps", "chirp"]


def assert_same_yin(ours, reference) -> None:
    (f0, d_min, power), (ref_f0, ref_d, ref_power) = ours, reference
    np.testing.assert_allclose(power, ref_power, rtol=1e-12, atol=1e-300)
    assert f0.shape == ref_f0.shape
    np.testing.assert_allclose(d_min, ref_d, rtol=0, atol=D_ATOL)
    clear = (ref_d < 0.5) & (ref_power >= 10 ** (PITCH_SILENCE_DB / 10))
    np.testing.assert_allclose(f0[clear], ref_f0[clear], rtol=F0_RTOL)
    assert np.mean(~np.isclose(f0, ref_f0, rtol=F0_RTOL, atol=0)) <= 0.02


# ------------------------------------------------------------------ parity with librosa


@pytest.mark.parametrize("sr", RATES)
@pytest.mark.parametrize("kind", KINDS)
def test_yin_matches_librosa(kind, sr):
    x = make_signal(kind, sr)
    hop = round(0.01 * sr)
    ours = yin(x, sr, hop)
    assert ours[0].shape == (1 + len(x) // hop,)
    assert_same_yin(ours, librosa_yin(x, sr, hop))
    assert np.all(ours[2] >= 0)


@pytest.mark.parametrize("pad_mode", ["constant", "edge", "reflect"])
def test_yin_matches_librosa_for_pad_modes_and_odd_hops(pad_mode):
    x = make_signal("vibrato", 16000, seconds=0.5)
    for hop in (100, 160, 333):
        assert_same_yin(yin(x, 16000, hop, pad_mode), librosa_yin(x, 16000, hop, pad_mode))


def test_yin_matches_librosa_over_many_blocks():
    # 2 s = 201 frames: several blocks of frames (_BLOCK_FRAMES), the last one partial.
    x = np.tile(make_signal("glide", 16000, seconds=1.0), 2)
    assert_same_yin(yin(x, 16000, 160), librosa_yin(x, 16000, 160))


@pytest.mark.parametrize("kind", KINDS)
def test_channels_match_the_training_side(kind):
    config = FrontendConfig()
    x = make_signal(kind, 16000)
    edge, reference = pitch_channels(x, config), librosa_pitch(x, config)
    assert edge.shape == reference.shape == (config.n_frames(len(x)), PITCH_CHANNELS)
    assert edge.dtype == np.float32
    np.testing.assert_allclose(edge, reference, rtol=0, atol=CHANNEL_ATOL)


# ------------------------------------------------------------------ known-F0 properties


@pytest.mark.parametrize("sr", [8000, 16000, 48000])
@pytest.mark.parametrize("f0", [60.0, 110.0, 220.0, 440.0, 580.0])
def test_steady_tones_give_their_pitch(f0, sr):
    config = FrontendConfig(sample_rate=sr, hop_length=sr // 100, fmax=None)
    x = harmonic(np.full(sr, f0), sr).astype(np.float32)
    channels = pitch_channels(x, config)[10:-10]  # frames whose YIN frame is all signal
    semitones, periodicity = channels[:, 0], channels[:, 1]
    assert np.all(periodicity > 0.99)
    # Within 0.12 semitones (0.7 %): librosa.yin's d' leans towards shorter lags (more at
    # low pitches), and at 8 kHz a 440 Hz period is only 18 samples for the parabola.
    np.testing.assert_allclose(semitones, 12 * np.log2(f0 / PITCH_FMIN_HZ), atol=0.12)


def test_a_glide_is_tracked_frame_by_frame():
    sr, seconds = 16000, 2.0
    t = np.arange(int(sr * seconds)) / sr
    track = 90.0 * (400 / 90) ** (t / seconds)
    channels = pitch_channels(harmonic(track, sr).astype(np.float32), FrontendConfig())
    truth = 12 * np.log2(track[::160] / PITCH_FMIN_HZ)
    truth = np.append(truth, truth[-1])  # frame 200 is centred on the last sample
    inner = slice(5, -5)
    assert np.all(channels[inner, 1] >= PITCH_VOICED_PERIODICITY)
    np.testing.assert_allclose(channels[inner, 0], truth[inner], atol=0.15)


def test_noise_and_silence_are_unvoiced():
    config = FrontendConfig()
    noise = pitch_channels(make_signal("noise", 16000), config)
    assert np.mean(noise[:, 0] > 0) < 0.05 and np.median(noise[:, 1]) < 0.5
    silence = pitch_channels(np.zeros(16000, np.float32), config)
    np.testing.assert_array_equal(silence, 0.0)
    # Unvoiced frames are exactly 0; voiced ones are the tone's pitch.
    gaps = pitch_channels(make_signal("tone-gaps", 16000), config)
    voiced = gaps[:, 1] >= PITCH_VOICED_PERIODICITY
    np.testing.assert_array_equal(gaps[~voiced, 0], 0.0)
    target = 12 * np.log2(130 / PITCH_FMIN_HZ)
    np.testing.assert_allclose(gaps[voiced, 0], target, atol=0.15)  # edge frames: 0.1 off
    assert 0.4 < voiced.mean() < 0.6  # the two tone quarters and the edges of each
    assert np.all(gaps[28:48] == 0.0)  # the digital silence (frames wholly inside it)


def test_the_level_does_not_matter_above_the_silence_floor():
    config = FrontendConfig()
    x = make_signal("glide", 16000)  # 0.3 peak: -50 dB more is still above the floor
    loud, quiet = pitch_channels(x, config), pitch_channels(x * 10 ** (-50 / 20), config)
    np.testing.assert_allclose(loud, quiet, atol=1e-4)


# ------------------------------------------------------------------- the frontend option


@pytest.mark.parametrize("feature", ["logmel", "logmel_deltas", "mfcc39"])
@pytest.mark.parametrize("kind", ["vibrato", "noise", "silence"])
def test_frontend_with_pitch_matches_librosa(feature, kind):
    config = FrontendConfig(feature=feature, pitch=True)
    x = make_signal(kind, 16000, seconds=0.6)
    edge, reference = Frontend(config)(x), librosa_features(x, config)
    assert edge.shape == reference.shape == (config.n_frames(len(x)), config.n_features)
    atol = 2e-3 if feature == "mfcc39" else 1e-3  # as tests/test_frontend.py
    np.testing.assert_allclose(edge, reference, rtol=0, atol=atol)


@pytest.mark.parametrize("n", [2, 3, 159, 160, 641, 642, 1280])
def test_frontend_with_pitch_on_very_short_clips(n):
    config = FrontendConfig(feature="logmel_deltas", pitch=True)
    x = make_signal("vibrato", 16000, seconds=0.1)[:n]
    edge, reference = Frontend(config)(x), librosa_features(x, config)
    assert edge.shape == reference.shape == (config.n_frames(n), 3 * (64 + PITCH_CHANNELS))
    np.testing.assert_allclose(edge, reference, rtol=0, atol=1e-3)


def test_pitch_channels_follow_the_static_features():
    x = make_signal("glide", 16000)
    plain = Frontend(FrontendConfig())(x)
    pitch = pitch_channels(x, FrontendConfig())
    with_pitch = Frontend(FrontendConfig(pitch=True))(x)
    assert with_pitch.shape == (101, 66) and FrontendConfig(pitch=True).channels == 1
    np.testing.assert_array_equal(with_pitch, np.concatenate([plain, pitch], axis=1))
    # log-mel with deltas: 66 "bands" of (value, delta, delta-delta); the last two are pitch.
    config = FrontendConfig(feature="logmel_deltas", pitch=True)
    bands = Frontend(config)(x).reshape(101, 66, 3)
    assert config.n_features == 198 and config.channels == 3
    np.testing.assert_array_equal(bands[..., 0], with_pitch)
    # MFCC: 13 MFCCs and the pitch, then their 15 deltas, then their 15 delta-deltas.
    config = FrontendConfig(feature="mfcc39", pitch=True)
    mfcc = Frontend(config)(x)
    assert mfcc.shape == (101, 45) == (101, config.n_features)
    np.testing.assert_array_equal(mfcc[:, 13:15], pitch)


def test_config_option_validation_and_fingerprint(monkeypatch):
    with pytest.raises(ValueError, match="pitch must be True or False"):
        FrontendConfig(pitch=1)
    with pytest.raises(ValueError, match="pitch=True needs center=True"):
        FrontendConfig(pitch=True, center=False)
    with pytest.raises(ValueError, match="needs sample_rate > 1200 Hz"):
        FrontendConfig(pitch=True, sample_rate=1000, n_fft=64, win_length=64, hop_length=10)
    # Configs saved before the option keep their fingerprint: "pitch" is only written when set.
    assert "pitch" not in FrontendConfig().to_dict()
    config = FrontendConfig(pitch=True)
    assert config.to_dict()["pitch"] is True
    assert FrontendConfig.from_json(config.to_json()) == config
    assert config.fingerprint() != FrontendConfig().fingerprint()
    # The tracker's constants are part of the definition: changing one misses the caches.
    before = config.fingerprint()
    monkeypatch.setitem(PITCH_DEFINITION, "voiced_periodicity", 0.6)
    assert config.fingerprint() != before
    assert FrontendConfig().fingerprint() == FrontendConfig(pitch=False).fingerprint()
    stats = dataclasses.replace(config, normalization="dataset", mean=(0.0,) * 66, std=(1.0,) * 66)
    assert stats.n_features == 66


# ------------------------------------------------------------------- export and the edge


@pytest.fixture(scope="module")
def pitch_model(tmp_path_factory):
    """A tiny model trained on tone features with pitch channels, saved with its metadata,
    and held-out WAV files."""
    import keras
    from tone_corpus import LABELS, POLICY, RAW_CONFIG, tiny_model, windows_of, write_corpus

    from edge_runtime.metadata import ModelMetadata
    from edge_runtime.normalization import with_dataset_stats
    from keras_dyconv.modelio import save_model

    root = tmp_path_factory.mktemp("pitch-model")
    train = write_corpus(root / "train", per_class=6, seed=1)
    heldout = write_corpus(root / "heldout", per_class=2, seed=2)
    raw = dataclasses.replace(RAW_CONFIG, pitch=True)
    frontend = Frontend(raw)
    config = with_dataset_stats(
        raw, [frontend.wav_features(p) for p in sorted(train.parent.glob("*.wav"))]
    )
    assert config.n_features == RAW_CONFIG.n_mels + PITCH_CHANNELS
    x, y = windows_of(train, config)
    keras.utils.set_random_seed(0)
    model = tiny_model(n_mels=config.n_features)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=16, epochs=10, verbose=0)
    path = save_model(model, root / "pitch.keras", ModelMetadata(LABELS, config, POLICY))
    wavs = sorted(heldout.parent.glob("*.wav"))
    return model, path, config, wavs


def _exports_and_runs(pitch_model, tmp_path, fmt: str, engine: str) -> None:
    """Export the pitch model to `fmt` through dyser-export and predict WAV files through
    EmotionRecognizer with `engine`: it reproduces the Keras model on the same files (the
    frontend rebuilt from the manifest adds the pitch)."""
    import json

    from click.testing import CliRunner
    from tone_corpus import LABELS, POLICY

    from edge_runtime.artifact import load_artifact
    from edge_runtime.recognizer import EmotionRecognizer
    from export.cli import main

    model, path, config, wavs = pitch_model
    out = tmp_path / f"pitch.{'npz' if fmt == 'numpy' else fmt}"
    # Parity on the exporter's synthetic tones and noise, through the pitch frontend.
    args = [str(path), "--format", fmt, "--quantize", "none", "--out", str(out), "--json"]
    result = CliRunner().invoke(main, [*args, "--latency-runs", "1"])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["passed"]
    artifact = load_artifact(out)
    assert artifact.metadata.frontend == config and config.pitch
    assert artifact.artifact_info.input.shape == (1, POLICY.frames, config.n_features)
    recognizer = EmotionRecognizer(out, engine=engine, speech_gate=None)
    for wav in wavs:
        prediction = recognizer.predict_file(wav)
        windows = split_windows(Frontend(config).wav_features(wav), POLICY)
        expected = model.predict(windows, verbose=0)
        np.testing.assert_allclose(prediction.window_probabilities, expected, atol=1e-4)
        assert prediction.label == LABELS[int(expected.mean(axis=0).argmax())]


def test_a_model_with_pitch_channels_exports_and_runs_on_the_edge_engines(pitch_model, tmp_path):
    """ONNX (onnxruntime) and the numpy format: the pitch is added by the edge frontend,
    which every engine shares; LiteRT is the slow test below."""
    for fmt, engine in (("onnx", "onnxruntime"), ("numpy", "numpy")):
        _exports_and_runs(pitch_model, tmp_path, fmt, engine)


@pytest.mark.slow  # a TFLite conversion (~20 s); the engine-independent pitch path is above,
# and TFLite models with wider inputs by test_export.py (log-mel deltas, 48 features)
def test_a_model_with_pitch_channels_exports_to_tflite_and_runs_on_litert(pitch_model, tmp_path):
    _exports_and_runs(pitch_model, tmp_path, "tflite", "litert")
