"""Metrics against hand-computed values."""

from __future__ import annotations

import json

import numpy as np
import pytest

from keras_dyconv.metrics import (
    bootstrap_ci,
    confusion_matrix,
    macro_f1,
    pooled_and_mean,
    summarize,
    unweighted_accuracy,
    weighted_accuracy,
)

# 10 utterances, 3 classes (supports 4, 2, 4). Worked by hand:
#   correct: positions 0 1 4 6 7 8 -> WA = 6/10
#   recall:  class 0 2/4, class 1 1/2, class 2 3/4 -> UA = (0.5 + 0.5 + 0.75) / 3 = 7/12
#   precision: class 0 2/3 (predicted at 0 1 5), class 1 1/3 (at 2 4 9), class 2 3/4
#   F1: class 0 2*(2/3*1/2)/(2/3+1/2) = 4/7, class 1 2*(1/3*1/2)/(1/3+1/2) = 2/5,
#       class 2 3/4 -> macro F1 = (4/7 + 2/5 + 3/4) / 3 = 241/420
Y_TRUE = np.array([0, 0, 0, 0, 1, 1, 2, 2, 2, 2])
Y_PRED = np.array([0, 0, 1, 2, 1, 0, 2, 2, 2, 1])


def test_hand_computed() -> None:
    assert weighted_accuracy(Y_TRUE, Y_PRED) == pytest.approx(0.6)
    assert unweighted_accuracy(Y_TRUE, Y_PRED) == pytest.approx(7 / 12)
    assert macro_f1(Y_TRUE, Y_PRED) == pytest.approx(241 / 420)
    np.testing.assert_array_equal(
        confusion_matrix(Y_TRUE, Y_PRED, 3), [[2, 1, 1], [1, 1, 0], [0, 1, 3]]
    )
    assert confusion_matrix(Y_TRUE, Y_PRED, 4).shape == (4, 4)
    assert confusion_matrix(Y_TRUE, Y_PRED, 3).dtype == np.int64


def test_ua_differs_from_wa_on_imbalance() -> None:
    # Always predicting the majority class: WA 0.9, UA 0.5.
    t = np.array([0] * 9 + [1])
    p = np.zeros(10, dtype=int)
    assert weighted_accuracy(t, p) == pytest.approx(0.9)
    assert unweighted_accuracy(t, p) == pytest.approx(0.5)
    assert macro_f1(t, p) == pytest.approx((2 * 0.9 / 1.9 + 0) / 2)


def test_absent_classes() -> None:
    # Class 1 is predicted but never true: it counts in macro F1 (F1 0), not in UA.
    t, p = np.array([0, 0]), np.array([0, 1])
    assert unweighted_accuracy(t, p) == pytest.approx(0.5)
    assert macro_f1(t, p) == pytest.approx((2 / 3 + 0) / 2)
    assert macro_f1(t, p, labels=[0]) == pytest.approx(2 / 3)
    # Works on string labels too.
    assert weighted_accuracy(["a", "b"], ["a", "a"]) == 0.5
    assert unweighted_accuracy(["a", "b"], ["a", "a"]) == 0.5


def test_summarize_is_json() -> None:
    s = summarize(Y_TRUE, Y_PRED, ["anger", "joy", "sad", "bored"])
    assert json.loads(json.dumps(s)) == s
    assert s["n"] == 10 and s["wa"] == pytest.approx(0.6) and s["ua"] == pytest.approx(7 / 12)
    assert s["macro_f1"] == pytest.approx(241 / 420)
    assert s["confusion"][0] == [2, 1, 1, 0]
    assert s["per_class"]["anger"] == pytest.approx(
        {"support": 4, "precision": 2 / 3, "recall": 0.5, "f1": 4 / 7}
    )
    assert s["per_class"]["bored"] == {"support": 0, "precision": None, "recall": None, "f1": 0.0}


def test_pooled_and_mean() -> None:
    folds = [([0, 0, 1, 1], [0, 0, 1, 0]), ([0, 1], [1, 1])]
    r = pooled_and_mean(folds)
    assert json.loads(json.dumps(r)) == r
    assert r["n_folds"] == 2
    assert r["per_fold"][0]["wa"] == pytest.approx(0.75) and r["per_fold"][1]["wa"] == 0.5
    assert r["mean"]["wa"] == pytest.approx(0.625) and r["std"]["wa"] == pytest.approx(0.125)
    assert r["mean"]["ua"] == pytest.approx((0.75 + 0.5) / 2)
    # Pooled: 6 predictions, 4 correct; recall 2/3 for both classes.
    assert r["pooled"]["n"] == 6
    assert r["pooled"]["wa"] == pytest.approx(4 / 6) and r["pooled"]["ua"] == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="empty"):
        pooled_and_mean([])


def test_bootstrap_ci() -> None:
    rng = np.random.default_rng(0)
    t = rng.integers(0, 4, size=400)
    p = np.where(rng.random(400) < 0.7, t, (t + 1) % 4)
    wa = weighted_accuracy(t, p)
    lo, hi = bootstrap_ci(t, p, "wa", n=1000, seed=0)
    # Against the normal approximation of a binomial proportion: wa +- 1.96 * sd.
    half = 1.96 * np.sqrt(wa * (1 - wa) / 400)
    assert lo == pytest.approx(wa - half, abs=0.012) and hi == pytest.approx(wa + half, abs=0.012)
    assert bootstrap_ci(t, p, "wa", n=1000, seed=0) == (lo, hi)
    lo_ua, hi_ua = bootstrap_ci(t, p, unweighted_accuracy, n=300, seed=1)
    assert lo_ua < unweighted_accuracy(t, p) < hi_ua
    assert bootstrap_ci(t, t, "macro_f1", n=50) == (1.0, 1.0)
    # Fewer utterances, wider interval.
    lo_small, hi_small = bootstrap_ci(t[:50], p[:50], "wa", n=1000, seed=0)
    assert hi_small - lo_small > 2 * (hi - lo)


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        (lambda: weighted_accuracy([0, 1], [0]), "equal length"),
        (lambda: unweighted_accuracy([], []), "empty"),
        (lambda: macro_f1([[0]], [[0]]), "1-D"),
        (lambda: confusion_matrix([0, 3], [0, 1], 3), r"y_true must hold .* \[0, 3\)"),
        (lambda: confusion_matrix([0, 1], [0.5, 1], 3), "y_pred must hold integer"),
        (lambda: bootstrap_ci([0], [0], "accuracy"), "unknown metric 'accuracy'"),
        (lambda: bootstrap_ci([0], [0], "wa", level=95), "0 < level < 1"),
    ],
)
def test_bad_input(call, expected: str) -> None:
    with pytest.raises(ValueError, match=expected):
        call()


def test_bootstrap_ci_scores_every_resample_as_the_metric_does() -> None:
    """bootstrap_ci scores WA, UA and macro F1 of all resamples at once: the interval is the
    one of calling the metric on each resample, bit for bit, also when a resample misses a
    class (tiny sets), for string labels, a class only predicted and 8 or more classes."""
    rng = np.random.default_rng(3)
    for n_classes, size in [(2, 3), (3, 7), (7, 60), (9, 200)]:
        t = rng.integers(0, n_classes, size)
        p = np.where(rng.random(size) < 0.6, t, rng.integers(0, n_classes, size))
        extra = np.where(rng.random(size) < 0.1, n_classes, p)  # a class only predicted
        for y_true, y_pred in [(t, p), (t.astype(str), p.astype(str)), (t, extra)]:
            metrics = [("wa", weighted_accuracy), ("ua", unweighted_accuracy)]
            for name, fn in [*metrics, ("macro_f1", macro_f1)]:
                draw = np.random.default_rng(1)
                stats = []
                for _ in range(200):
                    i = draw.integers(0, size, size=size)
                    stats.append(fn(y_true[i], y_pred[i]))
                alpha = (1.0 - 0.95) / 2.0  # as bootstrap_ci computes it
                expected = tuple(float(q) for q in np.quantile(stats, [alpha, 1.0 - alpha]))
                assert bootstrap_ci(y_true, y_pred, name, n=200, seed=1) == expected
