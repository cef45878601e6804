"""Feature normalisation: per utterance, dataset statistics, gain removal, and stream
statistics that adapt to a speaker and carry state through the frontend."""

from __future__ import annotations

import numpy as np
import pytest
from frontend_signals import make_signal

from edge_runtime.config import MIN_STD, STREAM_PRIOR_FRAMES, FrontendConfig
from edge_runtime.features import Frontend
from edge_runtime.normalization import (
    StreamStatistics,
    dataset_statistics,
    remove_gain,
    with_dataset_stats,
    within_speaker_statistics,
)
from keras_dyconv.features import librosa_features


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
    # ... while with the config's 1 s training-set prior a single clip is only partly
    # normalised.
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


def _two_speakers():
    """Speaker "a": frames 0, 2, 4 of feature 0 (mean 2, variance 8/3) and feature 1 always
    1; speaker "b": frames 10, 10, 10, 14 (mean 11, variance 3) and feature 1 always 5. The
    arrays interleave the speakers."""
    arrays = [
        np.array([[0.0, 1.0], [2.0, 1.0]]),
        np.array([[10.0, 5.0], [10.0, 5.0]]),
        np.array([[4.0, 1.0]]),
        np.array([[10.0, 5.0], [14.0, 5.0]]),
    ]
    return arrays, ["a", "b", "a", "b"]


def test_within_speaker_statistics_leave_out_the_spread_between_speakers():
    arrays, speakers = _two_speakers()
    mean, std = within_speaker_statistics(arrays, speakers)
    # Each speaker weighs the same: the mean of the means, the root of the mean variance.
    assert mean == pytest.approx([(2 + 11) / 2, (1 + 5) / 2])
    assert std == pytest.approx([np.sqrt((8 / 3 + 3) / 2), MIN_STD])
    # The pooled statistics weigh frames and include the spread between the speakers.
    pooled_mean, pooled_std = dataset_statistics(arrays)
    assert pooled_mean == pytest.approx([50 / 7, 23 / 7])
    assert pooled_std[1] == pytest.approx(4 * np.sqrt(12) / 7)  # 4 apart, shares 3:4
    # One speaker: the within-speaker statistics are the pooled ones.
    np.testing.assert_allclose(
        within_speaker_statistics(arrays, "aaaa"), dataset_statistics(arrays), rtol=1e-12
    )
    with pytest.raises(ValueError, match="fewer speakers than arrays"):
        within_speaker_statistics(arrays, ["a", "b"])
    with pytest.raises(ValueError, match="more speakers than feature arrays"):
        within_speaker_statistics(arrays, [*speakers, "c"])
    with pytest.raises(ValueError, match=r"expected \(frames, 3\)"):
        within_speaker_statistics(arrays, speakers, n_features=3)


def test_stream_prior_is_the_within_speaker_statistics_weighted_as_the_config_says():
    arrays, speakers = _two_speakers()
    base = FrontendConfig(n_mels=2)
    config = with_dataset_stats(base, iter(arrays), "stream", speakers=iter(speakers))
    assert (config.mean, config.std) == within_speaker_statistics(arrays, speakers)
    assert config.stream_prior_frames == STREAM_PRIOR_FRAMES
    pooled = with_dataset_stats(base, arrays, "stream")  # no speakers: the pooled statistics
    assert (pooled.mean, pooled.std) == dataset_statistics(arrays)
    with pytest.raises(ValueError, match='speakers are only used with normalization "stream"'):
        with_dataset_stats(base, arrays, "dataset", speakers=speakers)
    # A fresh stream weighs the prior as the config's stream_prior_frames.
    for frames in (STREAM_PRIOR_FRAMES, 300):
        weighted = FrontendConfig(
            n_mels=2, normalization="stream", mean=(0, 0), std=(1, 1), stream_prior_frames=frames
        )
        stream = StreamStatistics(weighted)
        stream.update(np.full((100, 2), 4.0, np.float32))
        assert stream.mean.tolist() == pytest.approx([400 / (frames + 100)] * 2)
    assert StreamStatistics(weighted, prior_frames=1).prior_frames == 1
