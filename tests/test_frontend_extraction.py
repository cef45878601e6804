"""The training-side corpus extraction (keras_dyconv.features.extract_corpus): its cache keyed
by config and content, parallel extraction, unreadable files and the progress bar."""

from __future__ import annotations

import io
import sys

import numpy as np
import pytest
import soundfile as sf
from frontend_signals import make_signal

import keras_dyconv.features as kf
from edge_runtime.config import (
    FrontendConfig,
)
from edge_runtime.files import file_sha256
from keras_dyconv.features import FeatureCache, extract_corpus


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
    # soundfile's reason, not the empty one of the audioread fallback that followed it.
    with pytest.raises(ValueError, match=r"bad\.wav: cannot load audio \(.*Format not recogn"):
        kf.load_audio(bad, FrontendConfig())


def test_extract_corpus_draws_its_progress_bar_on_a_terminal(corpus, monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    extract_corpus(corpus, FrontendConfig(), progress=True)
    assert "features" in terminal.getvalue() and "100%" in terminal.getvalue()
