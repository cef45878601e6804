"""Synthetic tone audio and a tiny trained model, shared by the export and edge tests.

Three classes of harmonic tones in separate frequency bands (plus noise), written as WAV
files, turned into features by the edge frontend, and used to train a small DyCNN-BiLSTM
for real (`trained_tiny_model`, used by the session fixture `trained` in conftest.py).
"""

from __future__ import annotations

import csv
from pathlib import Path
from types import SimpleNamespace

import keras
import numpy as np
from edge_fixtures import pcm16_wav

from edge_runtime.config import FrontendConfig
from edge_runtime.features import Frontend
from edge_runtime.metadata import ModelMetadata
from edge_runtime.normalization import with_dataset_stats
from edge_runtime.windows import WindowPolicy, split_windows
from keras_dyconv.modelio import save_model
from keras_dyconv.models import build_dycnn_bilstm

LABELS = ("low", "mid", "high")
BANDS = {"low": 300.0, "mid": 900.0, "high": 2200.0}  # Hz, fundamental of each class
RAW_CONFIG = FrontendConfig(
    sample_rate=8000, n_fft=256, win_length=200, hop_length=80, n_mels=16, fmax=4000.0
)
POLICY = WindowPolicy(frames=32, hop_frames=8)
SECONDS = 0.5


def tone(label: str, rng: np.random.Generator) -> np.ndarray:
    """A harmonic tone near the class's band with vibrato, a random gain and noise."""
    sr = RAW_CONFIG.sample_rate
    t = np.arange(int(SECONDS * sr)) / sr
    f0 = BANDS[label] * rng.uniform(0.9, 1.1)
    phase = 2 * np.pi * np.cumsum(f0 * (1 + 0.02 * np.sin(2 * np.pi * 5 * t))) / sr
    y = sum(np.sin(h * phase) / h for h in (1, 2, 3))
    y = rng.uniform(0.1, 0.5) * y / np.abs(y).max() + rng.normal(0, 0.01, len(t))
    return y.astype(np.float32)


def write_corpus(folder: Path, per_class: int, seed: int) -> Path:
    """WAVs under folder/ and a manifest folder/manifest.csv (path,label,speaker)."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    rows = []
    for label in LABELS:
        for i in range(per_class):
            name = f"{label}_{seed}_{i:02d}.wav"
            pcm16_wav(folder / name, tone(label, rng), RAW_CONFIG.sample_rate)
            rows.append((name, label, f"spk{i % 3}"))
    manifest = folder / "manifest.csv"
    with open(manifest, "w", newline="") as f:
        csv.writer(f).writerows([("path", "label", "speaker"), *rows])
    return manifest


def windows_of(manifest: Path, config: FrontendConfig) -> tuple[np.ndarray, np.ndarray]:
    frontend = Frontend(config)
    xs, ys = [], []
    with open(manifest) as f:
        for row in csv.DictReader(f):
            cut = split_windows(frontend.wav_features(manifest.parent / row["path"]), POLICY)
            xs.append(cut)
            ys += [LABELS.index(row["label"])] * len(cut)
    return np.concatenate(xs), np.array(ys)


def tiny_model(**changes) -> keras.Model:
    options = dict(
        num_classes=len(LABELS),
        n_mels=RAW_CONFIG.n_mels,
        conv_filters=(4, 8),
        num_kernels=2,
        temperature=2.0,
        dropout=0.1,
        lstm_units=8,
        attention_units=8,
    )
    return build_dycnn_bilstm(**{**options, **changes})


def trained_tiny_model(root: Path) -> SimpleNamespace:
    """A tiny model trained on synthetic audio, saved with metadata, plus its audio sets."""
    train = write_corpus(root / "train", per_class=10, seed=1)
    heldout = write_corpus(root / "heldout", per_class=8, seed=2)
    frontend = Frontend(RAW_CONFIG)
    raw = [frontend.wav_features(p) for p in sorted((root / "train").glob("*.wav"))]
    config = with_dataset_stats(RAW_CONFIG, raw)
    x, y = windows_of(train, config)
    keras.utils.set_random_seed(0)
    model = tiny_model()
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=16, epochs=30, verbose=0)
    x_held, y_held = windows_of(heldout, config)
    accuracy = float(np.mean(model.predict(x_held, verbose=0).argmax(1) == y_held))
    assert accuracy > 0.9, f"the tiny model did not learn the synthetic task ({accuracy:.2f})"
    metadata = ModelMetadata(labels=LABELS, frontend=config, window=POLICY)
    model_path = save_model(model, root / "tiny.keras", metadata)
    return SimpleNamespace(
        root=root,
        model=model,
        model_path=model_path,
        metadata=metadata,
        train=train,
        heldout=heldout,
        x_held=x_held,
        y_held=y_held,
    )
