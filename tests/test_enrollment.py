"""bench/enrollment_statistics.py (enrollment statistics, from all or from neutral speech
only, and the online statistics they are compared with), the priors of
bench/enrollment_priors.py, bench_enrollment.py's conditions on one rebuilt fold and their
rendering, on synthetic features (no trained model, no corpus)."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from enrollment_fold import normalized_by
from enrollment_priors import make_prior, parse_prior
from enrollment_statistics import (
    enrollment_statistics,
    heard_before,
    neutral_pool,
    running_statistics,
    same_emotion_share,
    statistics_error,
)

from edge_runtime.config import FrontendConfig
from keras_dyconv.normalization import iter_normalized, stream_order


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


def _labelled():
    """Three speakers, 2 features, utterance k constant (v_k, v_k): "a" has neutral 1, 2,
    3 and anger 100, calm 50 (40 frames each); "b" one neutral 1000 and sadness 2000, "c"
    anger -5 and sadness -6 (30 frames each)."""
    rows = [
        ("a", "neutral", 1, 40),
        ("a", "anger", 100, 40),
        ("a", "neutral", 2, 40),
        ("a", "calm", 50, 40),
        ("a", "neutral", 3, 40),
        ("b", "neutral", 1000, 30),
        ("b", "sadness", 2000, 30),
        ("c", "anger", -5, 30),
        ("c", "sadness", -6, 30),
    ]
    feats = [np.full((n, 2), v, np.float32) for _, _, v, n in rows]
    return feats, [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]


#: Statistics no enrollment can give: what the fallback is recognised by.
FALLBACK = [(np.float32([-7.0, -7.0]), np.float32([3.0, 3.0]))] * 9


def test_neutral_pool_is_the_neutral_label_only():
    assert neutral_pool(["neutral", "calm", "anger", "neutral"]).tolist() == [1, 0, 0, 1]


def test_neutral_enrollment_uses_the_speakers_other_neutral_utterances_only():
    feats, speakers, labels, _ = _labelled()
    pool = neutral_pool(labels)
    rng = np.random.default_rng(0)
    stats, used = enrollment_statistics(feats, speakers, 10**6, rng, pool=pool, fallback=FALLBACK)
    means = [float(m[0]) for m, _ in stats]
    # Each of "a"'s utterances: the mean of the neutral ones (1, 2, 3) but itself; never
    # anger (100) or calm (50), never another speaker's.
    assert means[:5] == pytest.approx([2.5, 2.0, 2.0, 2.0, 1.5])
    assert used[:5] == [80, 120, 80, 120, 80]
    # "b": its sadness utterance enrolls from its one neutral utterance; that one has no
    # other neutral utterance, nor has any of "c"'s: the fallback, 0 frames enrolled.
    assert means[6] == 1000 and used[6] == 30
    for i in (5, 7, 8):
        assert used[i] == 0
        assert stats[i][0].tolist() == [-7, -7] and stats[i][1].tolist() == [3, 3]
    assert all(m.dtype == np.float32 and s.dtype == np.float32 for m, s in stats)


def test_neutral_enrollment_caps_the_seconds_in_the_seeded_order():
    feats, speakers, labels, values = _labelled()
    pool = neutral_pool(labels)
    stats, used = enrollment_statistics(
        feats, speakers, 50, np.random.default_rng(7), pool=pool, fallback=FALLBACK
    )
    assert used == [50, 50, 50, 50, 50, 0, 30, 0, 0]  # 40 + 10 frames where there are
    # The unrestricted enrollment's order (the same draws), its non-neutral utterances
    # skipped: all of the first neutral utterance and 10 frames of the second.
    rng, owners = np.random.default_rng(7), np.asarray(speakers)
    for i in range(5):
        others = np.flatnonzero(owners == speakers[i])
        first, second = [j for j in rng.permutation(others[others != i]) if pool[j]][:2]
        assert stats[i][0][0] == pytest.approx((40 * values[first] + 10 * values[second]) / 50)
    # A pool of every utterance is the unrestricted enrollment.
    everyone, _ = enrollment_statistics(feats, speakers, 50, np.random.default_rng(7))
    again, _ = enrollment_statistics(feats, speakers, 50, np.random.default_rng(7), pool=[True] * 9)
    assert all(np.array_equal(x[0], y[0]) for x, y in zip(everyone, again, strict=True))


def test_neutral_enrollment_without_a_fallback_refuses_a_speaker_with_none():
    feats, speakers, labels, _ = _labelled()
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="'b' has no other utterance in the pool"):
        enrollment_statistics(feats, speakers, 10, rng, pool=neutral_pool(labels))
    with pytest.raises(ValueError, match="9 feature sources but 8 pool"):
        enrollment_statistics(feats, speakers, 10, rng, pool=neutral_pool(labels)[:8])


def test_running_statistics_are_those_of_the_deployed_online_path():
    rng = np.random.default_rng(0)
    # Speaker "a" has 7500 frames: more than the 6000-frame memory, so it forgets.
    feats = [rng.normal(k, 1 + k, (2000 + 500 * k, 2)).astype(np.float32) for k in range(5)]
    speakers = ["a", "b", "a", "a", "b"]
    config = FrontendConfig(n_mels=2, normalization="stream", mean=(0.5, 0.5), std=(2.0, 2.0))
    order = np.arange(5)
    stats = running_statistics(feats, speakers, order, config)
    ours = normalized_by(feats, stats)
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
    from bench_results_enrollment import enrollment_results

    data = enrollment_results()
    body = render_enrollment.render(data)
    assert "reproduces the run's saved predictions label for label" in body
    assert "| online_corpus | 40.0 / 38.5 | 40.0 / 38.5 | - |" in body
    assert "| speaker | 60.0 / 61.2 | 60.0 / 61.2 | 0.00, +0.00 |" in body
    assert "| casia | online_corpus | 0.70 | 0-10 | 4 | 25.0 / 20.0 | 50.0 / 50.0 |" in body
    assert "| casia | online_corpus | 0.70 | >= 10 | 6 | 50.0 / 52.0 | 66.7 / 65.0 |" in body
    assert "| enroll_neutral_30s | 35.0 / 33.5 | 35.0 / 33.5 | 0.31, -0.12 |" in body
    assert "| enroll_neutral_all | 45.0 / 44.2 | 45.0 / 44.2 | - |" in body
    assert "`enroll_neutral_*`: enrollment of 30 s and all" in body
    assert "other neutral utterance, scored as `independent`: casia 2." in body
    del data["neutral_enroll_seconds"]  # results saved before the neutral conditions
    assert "enroll_neutral_*" not in render_enrollment.render(data)
    # A run with "predicted_corpus_order" (headline in a seeded random order) checks it too.
    data["reproduction"]["speaker-1of4"]["predicted_corpus_order"] = 0
    assert "reproduces the run's saved predictions label for label" in render_enrollment.render(
        data
    )
    data["reproduction"]["speaker-1of4"]["predicted_corpus_order"] = 2
    assert "**does not reproduce**" in render_enrollment.render(data)
    data["reproduction"]["speaker-1of4"].update(predicted=3, predicted_corpus_order=0)
    assert "**does not reproduce**" in render_enrollment.render(data)


def test_priors_are_parsed_and_made_with_their_kind_and_weight():
    import argparse

    feats, speakers = _utterances()
    assert parse_prior("within:100") == ("within", 100)
    for bad in ("within", "median:100", "pooled:0", "pooled:x"):
        with pytest.raises(argparse.ArgumentTypeError, match="KIND:FRAMES"):
            parse_prior(bad)
    base = FrontendConfig(n_mels=2)
    within = make_prior(("within", 7), base, feats, speakers)
    pooled = make_prior(("pooled", 300), base, feats, speakers)
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
    from bench_results_enrollment import enrollment_results

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


class _MeanModel:
    """A stand-in for a fold's model: softmax of a fixed linear map of each window's mean
    features (4 classes), so that every normalisation gives other probabilities."""

    weights = np.array([[1.0, -2.0, 0.5, 0.2], [-1.5, 0.5, 2.0, -0.3]])

    def predict(self, x: np.ndarray, batch_size: int = 64, verbose: int = 0) -> np.ndarray:
        logits = np.asarray(x).mean(axis=1) @ self.weights
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)


def _synthetic_fold():
    """A synthetic pooled-run fold for `bench_enrollment.run_fold` (9 test utterances of
    speakers "a", "b", "c", 4 training ones): (utts, feats, fold, classes, policy, args,
    prior), the prior that of `args.prior` over the training utterances."""
    import argparse
    from types import SimpleNamespace

    from edge_runtime.windows import WindowPolicy
    from keras_dyconv.corpora.common import Utterance
    from keras_dyconv.labels import original_label

    feats, speakers, labels, _ = _labelled()
    rng = np.random.default_rng(0)
    feats = [x + rng.normal(0, 1, x.shape).astype(np.float32) for x in feats]
    feats += [rng.normal(k, 3, (60, 2)).astype(np.float32) for k in range(4)]  # training
    speakers += ["t1", "t1", "t2", "t2"]
    labels += ["anger", "neutral", "sadness", "neutral"]
    utts = [
        Utterance(Path(f"/corpus/{k}.wav"), label, who, extra={"corpus": "ravdess"})
        for k, (label, who) in enumerate(zip(labels, speakers, strict=True))
    ]
    mapped = {u.label: original_label("ravdess", u.label) for u in utts}
    utts = [
        dataclasses.replace(u, extra={**u.extra, "original_label": mapped[u.label]}) for u in utts
    ]
    fold = SimpleNamespace(name="f1", train=list(range(9, 13)), test=list(range(9)))
    classes = ["anger", "calm", "neutral", "sadness"]
    policy = WindowPolicy(frames=20, hop_frames=10)
    args = argparse.Namespace(
        prior=("pooled", 300), seed=0, orders=2, seconds=[0.3], neutral_seconds=[0.5]
    )
    prior = make_prior(args.prior, FrontendConfig(n_mels=2), feats[9:], speakers[9:])
    return utts, feats, fold, classes, policy, args, prior


def _rescored(monkeypatch, record, fold_data):
    """`bench_enrollment.run_fold` of `record` on `_synthetic_fold`'s fold (`_MeanModel`)."""
    import bench_enrollment
    import enrollment_fold

    utts, feats, fold, classes, policy, args, _ = fold_data
    frontend = FrontendConfig(n_mels=2).to_dict()
    results = {"labels": classes, "window": policy.to_dict(), "frontend": frontend}
    monkeypatch.setattr(enrollment_fold, "fold_model", lambda *_: _MeanModel())
    rebuilt = enrollment_fold.RebuiltFold.build(results, None, record, fold, utts, feats, args)
    return bench_enrollment.run_fold(rebuilt, results, record, utts, args, print)


def test_run_fold_scores_the_neutral_enrollments_with_their_fallback(monkeypatch):
    """bench_enrollment.run_fold and summarize_folds on a synthetic fold, the model a
    stand-in: every condition is scored, the neutral enrollments from neutral speech only,
    and an utterance with no other neutral one of its speaker as "independent"."""
    import bench_enrollment

    from keras_dyconv.feeding import predict_utterances

    fold_data = utts, feats, _, classes, policy, _, prior = _synthetic_fold()
    model, test, speakers = _MeanModel(), feats[:9], [u.speaker for u in utts[:9]]
    online = predict_utterances(model, test, prior, policy, speakers=speakers)
    own = predict_utterances(model, test, prior, policy, speakers=speakers, adapt="speaker")
    saved = [  # a run written before "predicted_corpus_order": "predicted" in corpus order
        {
            "path": str(utts[k].path),
            "predicted": classes[online[k].argmax()],
            "predicted_speaker_norm": classes[own[k].argmax()],
            "probabilities": online[k].tolist(),
        }
        for k in range(9)
    ]
    done = _rescored(monkeypatch, {"fold": "f1", "predictions": saved}, fold_data)

    probs, enrolled = done["probabilities"], done["enrolled_s"]
    assert done["check"]["predicted"] == 0 and done["check"]["running_statistics_equal"]
    assert "predicted_corpus_order" not in done["check"]  # the check of old runs, as before
    neutral = ["enroll_neutral_0.5s", "enroll_neutral_all"]
    assert list(probs)[-4:] == ["enroll_all", *neutral, "independent"]
    # The fallback utterances ("b"'s neutral one, all of "c"'s): 0 s, scored as independent.
    for name in neutral:
        assert enrolled[name][[5, 7, 8]].tolist() == [0, 0, 0]
        np.testing.assert_allclose(probs[name][[5, 7, 8]], probs["independent"][[5, 7, 8]])
    # "a" has 80-120 frames of other neutral speech: 0.5 s caps it, "all" does not.
    assert enrolled["enroll_neutral_0.5s"][:5].tolist() == [0.5] * 5
    assert enrolled["enroll_neutral_all"][:5].tolist() == [0.8, 1.2, 0.8, 1.2, 0.8]
    assert enrolled["enroll_neutral_all"][6] == 0.3  # "b"'s sadness: its one neutral
    assert not np.allclose(probs["enroll_neutral_all"][:5], probs["enroll_all"][:5])

    summary = bench_enrollment.summarize_folds([done], utts, classes)["ravdess"]
    assert summary["no_neutral_enrollment"] == 3
    assert {*neutral, "online_random", "speaker"} <= set(summary["conditions"])
    assert summary["enrolled_s_mean"]["enroll_neutral_all"] == pytest.approx(5.1 / 9)


def test_run_fold_reproduces_a_run_whose_headline_streams_in_a_seeded_random_order(monkeypatch):
    """A run with "predicted_corpus_order" (`keras_dyconv.scoring.score_test`): its
    "predicted" and probabilities are online in the random order of its training seed,
    its "predicted_corpus_order" is what ``online_corpus`` reproduces; saved corpus-order
    probabilities under "predicted" are refused."""
    from keras_dyconv.feeding import predict_utterances
    from keras_dyconv.scoring import predict_in_order

    fold_data = utts, feats, _, classes, policy, _, prior = _synthetic_fold()
    model, test, speakers = _MeanModel(), feats[:9], [u.speaker for u in utts[:9]]
    order = stream_order(speakers, np.random.default_rng(5))  # training seed 5
    seeded = predict_in_order(model, test, prior, policy, speakers, order)
    corpus = predict_utterances(model, test, prior, policy, speakers=speakers)
    own = predict_utterances(model, test, prior, policy, speakers=speakers, adapt="speaker")
    assert np.abs(seeded - corpus).max() > 1e-3  # the order changes the probabilities
    saved = [
        {
            "path": str(utts[k].path),
            "predicted": classes[seeded[k].argmax()],
            "probabilities": seeded[k].tolist(),
            "predicted_corpus_order": classes[corpus[k].argmax()],
            "predicted_speaker_norm": classes[own[k].argmax()],
        }
        for k in range(9)
    ]
    record = {"fold": "f1", "seed": 5, "metrics_corpus_order": {}, "predictions": saved}
    done = _rescored(monkeypatch, record, fold_data)
    check = done["check"]
    assert check["predicted"] == check["predicted_corpus_order"] == 0
    assert check["max_probability_difference"] < 1e-6
    np.testing.assert_allclose(done["probabilities"]["online_corpus"], corpus)
    for p, k in zip(saved, range(9), strict=True):  # the corpus order saved as the headline
        p["probabilities"] = corpus[k].tolist()
    with pytest.raises(SystemExit, match="does not reproduce"):
        _rescored(monkeypatch, record, fold_data)


def test_predict_in_order_puts_each_row_back_at_its_utterance():
    """Streaming in `order` and writing row k back to utterance ``order[k]``: checked
    against the permuted stream itself, on a model whose output the running statistics
    change (so rows left in stream order would differ)."""
    from edge_runtime.windows import WindowPolicy
    from keras_dyconv.feeding import predict_utterances
    from keras_dyconv.scoring import predict_in_order

    feats, speakers, _, _ = _labelled()
    config = FrontendConfig(n_mels=2, normalization="stream", mean=(0.0, 0.0), std=(1.0, 1.0))
    policy = WindowPolicy(frames=20, hop_frames=10)
    order = stream_order(speakers, np.random.default_rng(0))
    # Not its own inverse: writing rows to `order` and reading them from it differ.
    assert not np.array_equal(order[order], np.arange(len(order)))
    heard = predict_utterances(
        _MeanModel(),
        [feats[k] for k in order],
        config,
        policy,
        speakers=[speakers[k] for k in order],
    )
    got = predict_in_order(_MeanModel(), feats, config, policy, speakers, order)
    np.testing.assert_allclose(got, heard[np.argsort(order)])
    assert not np.allclose(got, heard)
