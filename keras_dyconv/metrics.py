"""Speech-emotion-recognition metrics in numpy: WA, UA, macro F1, confusion, fold pooling, CIs.

Labels are integer class indices (0 .. n_classes - 1) unless a function says otherwise.

- WA (weighted accuracy) = correct / total: the paper's metric; it favours frequent classes.
- UA (unweighted accuracy) = mean per-class recall over the classes present in y_true: the
  usual companion on imbalanced corpora (IEMOCAP, EmoDB's 46 disgust vs 127 anger).
- Macro F1 = mean per-class F1 over the classes in y_true or y_pred (scikit-learn's
  default), a class with no correct prediction scoring 0.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

__all__ = [
    "bootstrap_ci",
    "confusion_matrix",
    "macro_f1",
    "pooled_and_mean",
    "summarize",
    "unweighted_accuracy",
    "weighted_accuracy",
]

Metric = Callable[[np.ndarray, np.ndarray], float]


def _pair(y_true: Any, y_pred: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validate two equal-length, non-empty 1-D label arrays."""
    t, p = np.asarray(y_true), np.asarray(y_pred)
    if t.ndim != 1 or p.ndim != 1 or t.shape != p.shape:
        raise ValueError(
            f"y_true and y_pred must be 1-D of equal length, got shapes {t.shape} and {p.shape}"
        )
    if t.size == 0:
        raise ValueError("y_true and y_pred are empty")
    return t, p


def weighted_accuracy(y_true: Any, y_pred: Any) -> float:
    """WA: fraction of utterances classified correctly, in [0, 1]."""
    t, p = _pair(y_true, y_pred)
    return float(np.mean(t == p))


def unweighted_accuracy(y_true: Any, y_pred: Any) -> float:
    """UA: mean recall over the classes present in `y_true`, in [0, 1]."""
    t, p = _pair(y_true, y_pred)
    classes = np.unique(t)
    return float(np.mean([np.mean(p[t == c] == c) for c in classes]))


def _per_class(t: np.ndarray, p: np.ndarray, classes: np.ndarray):
    """Support, precision, recall and F1 per class (0 where undefined)."""
    tp = np.array([np.sum((t == c) & (p == c)) for c in classes], dtype=float)
    support = np.array([np.sum(t == c) for c in classes], dtype=float)
    predicted = np.array([np.sum(p == c) for c in classes], dtype=float)
    return support, *_scores(tp, support, predicted)


def _scores(tp: np.ndarray, support: np.ndarray, predicted: np.ndarray):
    """Precision, recall and F1 from class counts (float arrays of any one shape,
    elementwise; 0 where undefined)."""
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    total = precision + recall
    f1 = np.divide(2 * precision * recall, total, out=np.zeros_like(tp), where=total > 0)
    return precision, recall, f1


def macro_f1(y_true: Any, y_pred: Any, labels: Sequence[Any] | None = None) -> float:
    """Macro F1: mean F1 over `labels` (default: the classes in y_true or y_pred), in [0, 1]."""
    t, p = _pair(y_true, y_pred)
    classes = np.union1d(t, p) if labels is None else np.asarray(labels)
    return float(np.mean(_per_class(t, p, classes)[3]))


def confusion_matrix(y_true: Any, y_pred: Any, n_classes: int) -> np.ndarray:
    """Counts, shape (n_classes, n_classes), int64: row = true class, column = predicted."""
    t, p = _pair(y_true, y_pred)
    for name, y in (("y_true", t), ("y_pred", p)):
        if not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= n_classes:
            raise ValueError(
                f"{name} must hold integer class indices in [0, {n_classes}), "
                f"got dtype {y.dtype} with values {np.unique(y)[:10]}"
            )
    counts = np.bincount(t * n_classes + p, minlength=n_classes * n_classes)
    return counts.reshape(n_classes, n_classes).astype(np.int64)


def summarize(y_true: Any, y_pred: Any, labels: Sequence[str]) -> dict[str, Any]:
    """All metrics of one evaluation as a JSON-serialisable dict.

    Args:
        y_true: true class indices into `labels`, shape (n,).
        y_pred: predicted class indices into `labels`, shape (n,).
        labels: class names.

    Returns:
        ``{"n", "wa", "ua", "macro_f1", "labels", "confusion" (rows = true),
        "per_class": {name: {"support", "precision", "recall", "f1"}}}``; macro F1 is over
        the classes that occur in y_true or y_pred; a class's recall is None (null) when it
        has no true utterances and its precision None when it is never predicted.
    """
    t, p = _pair(y_true, y_pred)
    n_classes = len(labels)
    cm = confusion_matrix(t, p, n_classes)
    support, precision, recall, f1 = _per_class(t, p, np.arange(n_classes))
    predicted = cm.sum(axis=0)
    return {
        "n": int(t.size),
        "wa": weighted_accuracy(t, p),
        "ua": unweighted_accuracy(t, p),
        "macro_f1": macro_f1(t, p),
        "labels": [str(x) for x in labels],
        "confusion": cm.tolist(),
        "per_class": {
            str(name): {
                "support": int(support[i]),
                "precision": float(precision[i]) if predicted[i] else None,
                "recall": float(recall[i]) if support[i] else None,
                "f1": float(f1[i]),
            }
            for i, name in enumerate(labels)
        },
    }


_METRICS: dict[str, Metric] = {
    "wa": weighted_accuracy,
    "ua": unweighted_accuracy,
    "macro_f1": macro_f1,
}


def pooled_and_mean(fold_results: Sequence[tuple[Any, Any]]) -> dict[str, Any]:
    """Combine cross-validation folds two ways.

    Args:
        fold_results: one ``(y_true, y_pred)`` pair per fold.

    Returns:
        ``{"n_folds", "pooled": {metric: value} over the concatenated predictions (with "n"),
        "mean": {metric: mean over folds}, "std": {metric: population std (ddof=0) over
        folds}, "per_fold": [{metric: value, "n": ...}, ...]}`` for wa, ua and macro_f1.
        Pooled and mean differ when folds differ in size or class balance; say which one a
        number is.
    """
    if not fold_results:
        raise ValueError("fold_results is empty")
    pairs = [_pair(t, p) for t, p in fold_results]
    per_fold = [
        {**{name: fn(t, p) for name, fn in _METRICS.items()}, "n": int(t.size)} for t, p in pairs
    ]
    t_all = np.concatenate([t for t, _ in pairs])
    p_all = np.concatenate([p for _, p in pairs])
    return {
        "n_folds": len(pairs),
        "pooled": {
            **{name: fn(t_all, p_all) for name, fn in _METRICS.items()},
            "n": int(t_all.size),
        },
        "mean": {name: float(np.mean([f[name] for f in per_fold])) for name in _METRICS},
        "std": {name: float(np.std([f[name] for f in per_fold])) for name in _METRICS},
        "per_fold": per_fold,
    }


def bootstrap_ci(
    y_true: Any,
    y_pred: Any,
    metric: str | Metric = "wa",
    n: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap interval of `metric`, resampling utterances with replacement.

    Utterances of one speaker are correlated, so this interval is optimistic for
    speaker-level generalisation; it measures the test-set sampling noise only.

    Args:
        metric: "wa", "ua", "macro_f1" or a callable ``(y_true, y_pred) -> float``.
        n: number of bootstrap resamples.
        level: coverage, e.g. 0.95 for the 2.5th and 97.5th percentiles.

    Returns:
        (lo, hi).
    """
    t, p = _pair(y_true, y_pred)
    fn = _METRICS.get(metric) if isinstance(metric, str) else metric
    if fn is None:
        raise ValueError(f"unknown metric {metric!r}; expected one of {sorted(_METRICS)}")
    if n < 1 or not 0.0 < level < 1.0:
        raise ValueError(f"need n >= 1 and 0 < level < 1, got n={n}, level={level}")
    rng = np.random.default_rng(seed)
    chunks = []
    per_chunk = max(1, 2**20 // t.size)  # resamples scored at once (bounded memory)
    for start in range(0, n, per_chunk):
        rows = min(per_chunk, n - start)
        resamples = np.stack([rng.integers(0, t.size, size=t.size) for _ in range(rows)])
        chunks.append(_resampled(fn, t, p, resamples))
    stats = np.concatenate(chunks)
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(stats, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def _resampled(fn: Metric, t: np.ndarray, p: np.ndarray, resamples: np.ndarray) -> np.ndarray:
    """`fn(t[i], p[i])` for every row `i` of `resamples`, bit for bit. WA, UA and macro F1
    are computed for all resamples at once (a Python call per resample made the bootstrap
    intervals of a pooled run take tens of seconds); UA and macro F1 average their classes
    with the same NumPy reduction as the per-resample call, so the rows where a class is
    missing (a different set of classes to average) are computed one by one."""
    stats = np.empty(len(resamples))
    if fn not in (weighted_accuracy, unweighted_accuracy, macro_f1):
        for row, i in enumerate(resamples):
            stats[row] = fn(t[i], p[i])
        return stats
    if fn is weighted_accuracy:
        return np.mean(t[resamples] == p[resamples], axis=1)
    classes, codes = np.unique(np.concatenate([t, p]), return_inverse=True)
    codes = codes.reshape(-1)
    tc, pc = codes[: t.size][resamples], codes[t.size :][resamples]
    k = len(classes)
    offset = np.arange(len(resamples))[:, None] * k  # a class's count per resample: bincount

    def counts(codes: np.ndarray, where: np.ndarray | None = None) -> np.ndarray:
        flat = (codes + offset)[where] if where is not None else (codes + offset).ravel()
        return np.bincount(flat, minlength=len(resamples) * k).reshape(-1, k).astype(float)

    tp = counts(tc, tc == pc)
    support = counts(tc)
    if fn is unweighted_accuracy:  # over the classes of y_true (not those only predicted)
        in_true = np.isin(np.arange(k), codes[: t.size])
        tp, support = tp[:, in_true], support[:, in_true]
        whole = support.min(axis=1) > 0  # every class of y_true drawn
        score = tp[whole] / support[whole]
    else:
        predicted = counts(pc)
        whole = np.minimum(support, 1) + np.minimum(predicted, 1) > 0
        whole = whole.all(axis=1)  # every class in y_true or y_pred
        score = _scores(tp[whole], support[whole], predicted[whole])[2]
    stats[whole] = np.mean(score, axis=1)
    for row in np.flatnonzero(~whole):
        i = resamples[row]
        stats[row] = fn(t[i], p[i])
    return stats
