"""The scoring helpers the multi-corpus tables share (`multicorpus_loco`,
`multicorpus_pooled` and the target-run table of `bench_multicorpus.py`): per-fold scores
in a corpus's own label set, pooled WA / UA and their bootstrap intervals, the paired
bootstrap over utterances every seed is scored on at once, and the "WA / UA [95%]" cells;
and what a run is read against and as: the default-recipe run of its kind it is compared
with (`default_reference`), its recipe's name and changed fields (`recipe_text`) and, for
normalization "stream", what its scores are (`stream_text`; `bench/render_baseline.py`
uses these too).

`SVM` is where the saved eGeMAPS+SVM runs are read from (`bench/bench_baseline.py`); the
table modules look it up here at call time, so a test points it elsewhere in one place.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path, PurePath
from typing import Any

import numpy as np

from keras_dyconv.labels import score_both
from keras_dyconv.metrics import bootstrap_ci, unweighted_accuracy, weighted_accuracy
from keras_dyconv.recipes import RECIPES, Recipe
from keras_dyconv.results import CORPUS_ORDER, online_order, online_order_text

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


def paired_ua(
    true: np.ndarray, mine: dict[Any, np.ndarray], theirs: dict[Any, np.ndarray]
) -> tuple[float, tuple[float, float]]:
    """UA of `mine` minus UA of `theirs` on the same utterances (true class indices
    `true`, shape (n,)), each the mean over its seeds' predictions ({seed: class indices
    (n,)}), with the paired 95% bootstrap interval of `joint_ci` (every seed of both scored
    on each draw)."""

    def delta(i: np.ndarray) -> float:
        return seed_mean("ua", true, mine, i) - seed_mean("ua", true, theirs, i)

    return delta(np.arange(len(true))), joint_ci(delta, len(true))


def signed_interval(d: float, ci: Sequence[float]) -> str:
    """A difference of fractions and its (low, high) interval as signed percentages,
    "+1.2 [-3.4, +5.6]"."""
    return f"{100 * d:+.1f} [{100 * ci[0]:+.1f}, {100 * ci[1]:+.1f}]"


def corpus_predictions(
    run: dict[str, Any], corpus: str, seed: int | None = None
) -> list[dict[str, Any]]:
    """The saved predictions of `corpus`'s utterances in a multi-corpus run, over all folds
    (of one `seed`, or of every seed when None), in the order saved."""
    return [
        p
        for r in run["folds"]
        if seed is None or r["seed"] == seed
        for p in r["predictions"]
        if p["corpus"] == corpus
    ]


def recipe_text(run: dict[str, Any]) -> str:
    """The run's recipe as its name plus every field it changed (e.g. "`default`,
    normalization stream"), so a variant never reads as the named recipe. A recipe name no
    longer in `keras_dyconv.recipes.RECIPES` (retired) is named as such and its saved
    fields are read against today's "default" (e.g. "`old` (retired recipe; `default`,
    epochs 30)")."""
    name = run["recipe"]["name"]
    named, used = (  # through JSON: tuples and the lists they were saved as compare equal
        json.loads(json.dumps(r.to_dict()))
        for r in (RECIPES.get(name, RECIPES["default"]), Recipe(**run["recipe"]))
    )
    changed = [f"{k} {used[k]}" for k in used if k != "name" and used[k] != named.get(k)]
    if name in RECIPES:
        return ", ".join([f"`{name}`", *changed])
    return f"`{name}` (retired recipe; {', '.join(['`default`', *changed])})"


#: The other scores a stream run may save beside its online ones: the predictions' key and
#: what it is, in the words of `stream_text`.
STREAM_SCORES = {
    "predicted_corpus_order": "in corpus order (emotion-blocked where a corpus lists a "
    "speaker's files by emotion)",
    "predicted_independent": "on each utterance alone (a fresh stream from the training "
    "prior, as a device scores one clip)",
    "predicted_speaker_norm": "with each test speaker's own statistics (all of their audio, "
    "transductive)",
}


def stream_text(run: dict[str, Any], scores: Callable[[str], str | None]) -> str:
    """For normalization "stream" (online CMVN): what the scores above are (online, each
    test speaker's utterances one stream in the run's `online_order`: corpus order in runs
    written before it was recorded) and, as `scores(key)` words them from the predictions'
    `key` (None where the run did not save them: that part is left out), the scores in
    corpus order when that is not the online order ("predicted_corpus_order"), on each
    utterance alone (a fresh stream from the training prior, "predicted_independent": what
    a device scores on one clip) and with every test speaker normalised by their own
    statistics (the run's transductive "predicted_speaker_norm"); "" for other runs."""
    order = online_order(run)
    if order is None:  # not a stream run
        return ""
    parts = [
        "the scores above are online, each test speaker's utterances one stream "
        + online_order_text(order)
    ]
    for key, words in STREAM_SCORES.items():
        if key == "predicted_corpus_order" and order == CORPUS_ORDER:
            continue  # the online scores above are the corpus-order ones
        said = scores(key)
        if said is not None:
            parts.append(f"{words} {said}")
    return (
        ' Normalisation "stream": '
        + "; ".join(parts)
        + " (see the section on stream normalisation)."
    )


def speaker_norm_text(run: dict[str, Any]) -> str:
    """`stream_text` of a multi-corpus run: each corpus's common-label WA / UA, in corpus
    order, e.g. "the common-label WA / UA are emodb 41.7 / 44.6, casia 25.1 / 25.1" (None
    where some prediction lacks `key`); "" for runs of other normalizations."""

    def common(key: str) -> str | None:
        if not all(key in p for r in run["folds"] for p in r["predictions"]):
            return None
        parts = []
        for corpus in run["corpora"]:
            preds = corpus_predictions(run, corpus)
            true = np.array([p["label"] for p in preds])
            guess = np.array([p[key] for p in preds])
            wa, ua = (metric(true, guess) for metric in METRICS.values())
            parts.append(f"{corpus} {pct(wa)} / {pct(ua)}")
        return "the common-label WA / UA are " + ", ".join(parts)

    return stream_text(run, common)


def fold_test_speakers(records: Sequence[dict]) -> dict[str, list[str]]:
    """{fold name: sorted test speakers} of fold records (`run_baseline`'s or a
    results.json's "folds"), of their first seed only."""
    first = min(r.get("seed", 0) for r in records)
    return {r["fold"]: sorted(r["test_speakers"]) for r in records if r.get("seed", 0) == first}


def _validation_rules(run: dict[str, Any]) -> dict[str, str | None]:
    """{fold name: how its validation speakers were chosen} of the run's first seed."""
    first = min(run["seeds"])
    return {
        r["fold"]: (r.get("val_rule") or {}).get("description")
        for r in run["folds"]
        if r["seed"] == first
    }


def default_reference(
    name: str, run: dict[str, Any], runs: Sequence[tuple[str, dict[str, Any]]]
) -> tuple[str, dict[str, Any]] | None:
    """The run a multi-corpus run `name` is read against: another saved run (name,
    results) of the same kind (the same target corpus, "all" for pooled runs, None for
    leave one corpus out, and protocol) of the plain default recipe with the same labels
    and, fold by fold, the same test speakers; the one that also validated by the same
    rule if there is one (so only the recipe differs). Never `name` itself: a
    default-recipe run is read against another one only (e.g. one validated by another
    rule). None when none is saved."""
    mine = fold_test_speakers(run["folds"])
    same_folds = [
        (other_name, other)
        for other_name, other in runs
        if other_name != name
        and other.get("target_corpus") == run.get("target_corpus")
        and other["protocol"]["name"] == run["protocol"]["name"]
        and recipe_text(other) == f"`{other['recipe']['name']}`" == "`default`"
        and other["labels"] == run["labels"]
        and fold_test_speakers(other["folds"]) == mine
    ]
    rule = _validation_rules(run)
    same_rule = [(n, other) for n, other in same_folds if _validation_rules(other) == rule]
    return (same_rule or same_folds or [None])[0]
