"""FrontendConfig: speech defaults at 16 kHz, round trips and fingerprints, refused unknown
keys and bad JSON, and validation messages."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from edge_runtime.config import (
    LEGACY_STREAM_PRIOR_FRAMES,
    N_MFCC,
    STREAM_PRIOR_FRAMES,
    FrontendConfig,
)
from edge_runtime.normalization import with_dataset_stats


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


def test_stream_config_round_trips_its_prior_weight_and_old_configs_keep_theirs():
    feats = [np.arange(8.0).reshape(4, 2), np.arange(8.0, 20.0).reshape(6, 2)]
    config = with_dataset_stats(FrontendConfig(n_mels=2), feats, "stream", speakers=["a", "b"])
    assert config.stream_prior_frames == STREAM_PRIOR_FRAMES != LEGACY_STREAM_PRIOR_FRAMES
    saved = config.to_dict()
    assert saved["stream_prior_frames"] == STREAM_PRIOR_FRAMES
    assert FrontendConfig.from_dict(saved) == config
    assert FrontendConfig.from_json(config.to_json()).fingerprint() == config.fingerprint()
    # A config saved before the field (no key) loads with the weight it was made with, and
    # one at that weight saves as before: same dict, same fingerprint.
    old = {k: v for k, v in saved.items() if k != "stream_prior_frames"}
    loaded = FrontendConfig.from_dict(old)
    assert loaded.stream_prior_frames == LEGACY_STREAM_PRIOR_FRAMES == 300
    assert loaded.to_dict() == old
    assert "stream_prior_frames" not in FrontendConfig().to_dict()
    # Its features are those of the plain config: the same feature-cache fingerprint.
    raw = config.unnormalized()
    assert raw == FrontendConfig(n_mels=2)
    assert raw.fingerprint() == FrontendConfig(n_mels=2).fingerprint()


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
        ({"stream_prior_frames": 100}, 'only used with normalization "stream"'),
        (
            {
                "normalization": "stream",
                "mean": (0.0,) * 64,
                "std": (1.0,) * 64,
                "stream_prior_frames": 0,
            },
            "stream_prior_frames must be >= 1",
        ),
        (
            {
                "normalization": "stream",
                "mean": (0.0,) * 64,
                "std": (1.0,) * 64,
                "stream_prior_frames": 6001,
            },
            "stream_prior_frames must be <= 6000",
        ),
        (
            {
                "normalization": "stream",
                "mean": (0.0,) * 64,
                "std": (1.0,) * 64,
                "stream_prior_frames": 100.0,
            },
            "stream_prior_frames must be an integer",
        ),
    ],
)
def test_config_validation(changes, message):
    with pytest.raises(ValueError, match=message):
        FrontendConfig(**changes)
