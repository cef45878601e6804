"""bench/enrollment_statistics.py (enrollment statistics and the online statistics they are
compared with) and bench_enrollment.py's priors and rendering, on synthetic features (no
model, no corpus)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import bench_enrollment
from enrollment_statistics import (
    enrollment_statistics,
    heard_before,
    running_statistics,
    same_emotion_share,
    statistics_error,
    stream_order,
)

from edge_runtime.config import FrontendConfig
from keras_dyconv.normalization import iter_normalized


def _utterances():
    """Two speakers of 3 utterances, 2 features: speaker "a" utterance k is constant
    (10k, -k) and 100 + k frames long, speaker "b" constant (1000, 7), 50 frames each."""
    feats = [np.tile(np.float32([10 * k, -k]), (100 + k, 1)) for k in range(3)]
    feats += [np.tile(np.float32([1000, 7]), (50, 1)) for _ in range(3)]
    return feats, ["a", "a", "a", "b", "b", "b"]


def test_enrollment_uses_other_utterances_of_the_speaker_only():
    feats, speakers = _utterances()
    stats, used = enrollment_statistics(feats, speakers, 10**6, np.random.default_rng(0))
    # Utterance 0 of "a": utterances 1 (101 frames of 10, -1) and 2 (102 frames of 20, -2).
    mean, std = stats[0]
    assert mean == pytest.approx([(101 * 10 + 102 * 20) / 203, -(101 + 204) / 203], rel=1e-6)
    assert used[:3] == [203, 202, 201]
    # Speaker "b": never a frame of speaker "a" (all its frames are 1000, 7).
    for mean, std in stats[3:]:
        assert mean.tolist() == [1000, 7]
        assert std.tolist() == pytest.approx([1e-6, 1e-6])  # MIN_STD floor
    assert all(m.dtype == np.float32 and s.dtype == np.float32 for m, s in stats)


def test_enrollment_takes_exactly_the_frames_asked_from_a_seeded_order():
    feats, speakers = _utterances()
    stats, used = enrollment_statistics(feats, speakers, 120, np.random.default_rng(3))
    assert used == [120, 120, 120, 100, 100, 100]  # "b" has 100 other frames only
    # Utterance 2 of "a": 120 frames of utterances 0 (value 0) and 1 (value 10), one whole
    # and the start of the other, in the seeded order; never of utterance 2 (value 20).
    mean = float(stats[2][0][0])
    assert min(abs(mean - v) for v in (101 * 10 / 120, 20 * 10 / 120)) < 1e-4
    again, _ = enrollment_statistics(feats, speakers, 120, np.random.default_rng(3))
    assert all(np.array_equal(x[0], y[0]) for x, y in zip(stats, again, strict=True))


def test_enrollment_through_a_device_stream_keeps_the_prior():
    feats, speakers = _utterances()
    prior = FrontendConfig(n_mels=2, normalization="stream", mean=(0.0, 0.0), std=(1.0, 1.0))
    stats, _ = enrollment_statistics(feats, speakers, 300, np.random.default_rng(0), prior)
    # Speaker "b": 100 other frames of (1000, 7) after the prior's 300 frames of 0.
    assert stats[3][0] == pytest.approx([1000 * 100 / 400, 7 * 100 / 400])


def test_enrollment_refuses_what_it_cannot_do():
    feats, speakers = _utterances()
    with pytest.raises(ValueError, match="one utterance"):
        enrollment_statistics(feats[:4], speakers[:4], 10, np.random.default_rng(0))
    with pytest.raises(ValueError, match="at least 1 frame"):
        enrollment_statistics(feats, speakers, 0, np.random.default_rng(0))
    with pytest.raises(ValueError, match="6 feature sources but 5"):
        enrollment_statistics(feats, speakers[:5], 10, np.random.default_rng(0))


def test_running_statistics_are_those_of_the_deployed_online_path():
    rng = np.random.default_rng(0)
    # Speaker "a" has 7500 frames: more than the 6000-frame memory, so it forgets.
    feats = [rng.normal(k, 1 + k, (2000 + 500 * k, 2)).astype(np.float32) for k in range(5)]
    speakers = ["a", "b", "a", "a", "b"]
    config = FrontendConfig(n_mels=2, normalization="stream", mean=(0.5, 0.5), std=(2.0, 2.0))
    order = np.arange(5)
    stats = running_statistics(feats, speakers, order, config)
    ours = bench_enrollment.normalized_by(feats, stats)
    theirs = iter_normalized(feats, config, speakers)
    assert all(np.array_equal(x, y) for x, y in zip(ours, theirs, strict=True))
    before = running_statistics(feats, speakers, order, config, include_current=False)
    assert before[0][0] == pytest.approx([0.5, 0.5])  # nothing heard yet: the prior
    assert before[2][0] != pytest.approx(stats[2][0])


def test_orders_heard_frames_and_emotion_share():
    speakers = ["a", "a", "b", "a", "b"]
    order = stream_order(speakers, np.random.default_rng(1))
    assert sorted(order.tolist()) == [0, 1, 2, 3, 4]
    assert [speakers[i] for i in order] == speakers  # each speaker keeps their positions
    lengths = [10, 20, 30, 40, 50]
    identity = np.arange(5)
    assert heard_before(lengths, speakers, identity).tolist() == [0, 10, 0, 30, 30]
    labels = ["x", "x", "y", "z", "y"]
    share = same_emotion_share(lengths, speakers, labels, identity, memory=50)
    # Utterance 3 ("z", 40 frames) keeps 10 frames of utterance 1 ("x") in a 50-frame memory.
    assert share.tolist() == [1.0, 1.0, 1.0, 0.8, 1.0]


def test_statistics_error_measures_the_distance_to_the_reference():
    reference = [(np.float32([0, 10]), np.float32([1, 2]))]
    same = statistics_error(reference, reference)
    assert same.tolist() == [[0.0, 0.0]]
    off = statistics_error([(np.float32([1, 12]), np.float32([2, 4]))], reference)
    # Means 1 reference std away on each feature; stds twice the reference's.
    assert off[0] == pytest.approx([1.0, np.log(2)])


def test_render_enrollment_reads_every_number_from_the_json():
    import render_enrollment
    from bench_results import enrollment_results

    data = enrollment_results()
    body = render_enrollment.render(data)
    assert "reproduces the run's saved predictions label for label" in body
    assert "| online_corpus | 40.0 / 38.5 | 40.0 / 38.5 | - |" in body
    assert "| speaker | 60.0 / 61.2 | 60.0 / 61.2 | 0.00, +0.00 |" in body
    assert "| casia | online_corpus | 0.70 | 0-10 | 4 | 25.0 / 20.0 | 50.0 / 50.0 |" in body
    assert "| casia | online_corpus | 0.70 | >= 10 | 6 | 50.0 / 52.0 | 66.7 / 65.0 |" in body
    data["reproduction"]["speaker-1of4"]["predicted"] = 3
    assert "**does not reproduce**" in render_enrollment.render(data)


def test_priors_are_parsed_and_made_with_their_kind_and_weight():
    import argparse

    feats, speakers = _utterances()
    assert bench_enrollment.parse_prior("within:100") == ("within", 100)
    for bad in ("within", "median:100", "pooled:0", "pooled:x"):
        with pytest.raises(argparse.ArgumentTypeError, match="KIND:FRAMES"):
            bench_enrollment.parse_prior(bad)
    base = FrontendConfig(n_mels=2)
    within = bench_enrollment.make_prior(("within", 7), base, feats, speakers)
    pooled = bench_enrollment.make_prior(("pooled", 300), base, feats, speakers)
    assert (within.normalization, within.stream_prior_frames) == ("stream", 7)
    assert pooled.stream_prior_frames == 300
    # Feature 0: speaker "a" has mean (101 * 10 + 102 * 20) / 303, "b" 1000 (each weighs
    # the same); pooled, every frame weighs the same.
    mean_a = (101 * 10 + 102 * 20) / 303
    assert within.mean[0] == pytest.approx((mean_a + 1000) / 2)
    assert pooled.mean[0] == pytest.approx((303 * mean_a + 150 * 1000) / 453)
    assert within.std[0] < 10 < pooled.std[0]  # no spread between the two speakers


def test_render_enrollment_adds_the_priors_compared():
    import render_enrollment
    from bench_results import enrollment_results

    def scores(wa: float, ua: float) -> dict:
        return {space: {"n": 10, "wa": wa, "ua": ua} for space in ("common", "own")}

    data = enrollment_results()
    assert "Stream priors" not in render_enrollment.render(data)
    conditions = {
        "online_random": scores(45.0, 44.0),
        "independent": scores(35.0, 36.0),
        "enroll_stream_10s": scores(30.0, 31.5),
        "enroll_stream_60s": scores(50.0, 49.0),
    }
    error = {"online_random0": {"mean_in_std": 0.1, "log_std_ratio": 0.05}}
    data["priors"] = {
        "folds": ["speaker-1of4"],
        "seed": 0,
        "orders": 2,
        "enroll_seconds": [10.0, 60.0],
        "corpora": {"casia": {"within:100": {"conditions": conditions, "statistics_error": error}}},
    }
    body = render_enrollment.render(data)
    assert "2 random orders" in body
    row = "| casia | within:100 | 45.0 / 44.0 | 35.0 / 36.0 | 30.0 / 31.5 | 50.0 / 49.0 |"
    assert row in body
    assert "| online_random | independent | enroll_stream_10s | enroll_stream_60s |" in body
