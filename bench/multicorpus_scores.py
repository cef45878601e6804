"""The scoring helpers the multi-corpus tables share (`multicorpus_loco`,
`multicorpus_pooled` and the target-run table of `bench_multicorpus.py`): per-fold scores
in a corpus's own label set, pooled WA / UA and their bootstrap intervals, the paired
bootstrap over utterances every seed is scored on at once, and the "WA / UA [95%]" cells.

`SVM` is where the saved eGeMAPS+SVM runs are read from (`bench/bench_baseline.py`); the
table modules look it up here at call time, so a test points it elsewhere in one place.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path, PurePath
from typing import Any

import numpy as np

from keras_dyconv.labels import score_both
from keras_dyconv.metrics import bootstrap_ci, unweighted_accuracy, weighted_accuracy

#: The saved eGeMAPS+SVM runs (`bench/bench_baseline.py`).
SVM = Path(__file__).resolve().parent.parent / "docs" / "results" / "baseline"
METRICS = {"wa": weighted_accuracy, "ua": unweighted_accuracy}
#: The eGeMAPS+SVM LOCO and pooled runs: file suffix -> how its features are normalised.
SVM_NORMS = {"corpus": "per-corpus z", "speaker": "per-speaker z"}


def own_scores(
    run: dict[str, Any], corpus: str | None = None, space: str = "own"
) -> list[dict[str, Any]]:
    """`corpus` (default: the run's target corpus) in its own label set (`space` "own") or
    the common one ("common"), per fold that tested it: records (fold, seed, metrics) as
    `paired_delta` reads them."""
    corpus, labels = corpus or run["target_corpus"], run["labels"]
    folds = []
    for r in run["folds"]:
        preds = [p for p in r["predictions"] if p["corpus"] == corpus]
        if not preds:
            continue
        probabilities = [p["probabilities"] for p in preds]
        true = [p["original_label"] for p in preds]
        scored = score_both(probabilities, labels, true, corpus)[space]
        folds.append({"fold": r["fold"], "seed": r["seed"], "metrics": scored})
    return folds


def pct(x: float) -> str:
    """A fraction as a percentage with one decimal ("12.3")."""
    return f"{100 * x:.1f}"


def _confusion(folds: Sequence[dict[str, Any]]) -> np.ndarray:
    """The confusion matrix (rows: true class) pooled over fold records."""
    return sum(np.asarray(f["metrics"]["confusion"], dtype=np.int64) for f in folds)


def pooled_wa_ua(folds: Sequence[dict[str, Any]]) -> tuple[float, float]:
    """Pooled (WA, UA) over fold records, from their confusion matrices."""
    cm = _confusion(folds).astype(np.float64)
    seen = cm.sum(1) > 0
    return float(np.trace(cm) / cm.sum()), float((np.diag(cm)[seen] / cm.sum(1)[seen]).mean())


def pooled_ci(folds: Sequence[dict[str, Any]], metric: str) -> tuple[float, float]:
    """`bootstrap_ci` of `metric` over the pooled utterances (rebuilt from the confusion)."""
    cm = _confusion(folds)
    true = np.repeat(np.arange(cm.shape[0]), cm.sum(1))
    pred = np.concatenate([np.repeat(np.arange(cm.shape[1]), row) for row in cm])
    return bootstrap_ci(true, pred, metric)


def label_indices(labels: Sequence[str], names: Sequence[str], where: str) -> np.ndarray:
    """`names` as indices into `labels`; a name outside them is an error naming `where`."""
    unknown = sorted(set(names) - set(labels))
    if unknown:
        raise ValueError(f"{where}: labels {unknown} are not among {list(labels)}")
    return np.array([labels.index(n) for n in names])


def joint_ci(stat: Callable[[np.ndarray], float], n: int) -> tuple[float, float]:
    """`bootstrap_ci` of `stat(indices)` over `n` utterances: each resample draws the
    utterances once and scores every system (each seed, the SVM) on that same draw."""
    i = np.arange(n)
    return bootstrap_ci(i, i, lambda t, _: stat(t))


def interval(x: float, ci: Sequence[float]) -> str:
    """A fraction and its (low, high) interval as "x [low, high]" in percent."""
    return f"{pct(x)} [{pct(ci[0])}, {pct(ci[1])}]"


def seed_mean(metric: str, true: np.ndarray, preds: dict[int, np.ndarray], i: np.ndarray) -> float:
    """`metric` ("wa", "ua") on utterances `i`, averaged over the seeds' predictions."""
    fn = METRICS[metric]
    return float(np.mean([fn(true[i], p[i]) for p in preds.values()]))


def utterance_key(path: str) -> str:
    """An utterance's last three path parts (e.g. ``casia/ZhaoZuoxiang/angry/201.wav`` ->
    ``ZhaoZuoxiang/angry/201.wav``): the same file whether a run was given the corpus as
    an absolute or a relative path."""
    return "/".join(PurePath(path).parts[-3:])
