"""The classical floor: openSMILE eGeMAPSv02 functionals + a linear SVM, on the project's folds.

Every neural number is read against this baseline, measured on exactly the same folds
(`keras_dyconv.folds.make_folds`) and scored by the same code
(`keras_dyconv.results.score_folds`: pooled WA / UA with bootstrap intervals).

    from keras_dyconv.baseline import run_baseline
    from keras_dyconv.egemaps import extract_egemaps
    from keras_dyconv.folds import ProtocolSpec, make_folds
    utts = load_corpus("emodb", "/data/emodb")
    feats = extract_egemaps([u.path for u in utts], cache_dir="runs/cache", n_jobs=2)
    results = run_baseline(utts, feats, make_folds(utts, ProtocolSpec("loso")))

Per fold, the SVM trains on the fold's training AND validation utterances (the neural
model's validation speakers are training speakers; the SVM does its own model selection)
and predicts the test utterances. Model selection never sees a test utterance:

- the features are standardised by a scaler fitted on the training part only;
- C is chosen from `C_GRID` by an inner cross-validation over the training part, grouped by
  speaker (`GroupKFold`, at most `INNER_SPLITS` folds), scored by UA; then the scaler and
  SVM are refitted on the whole training part with that C.

Several corpora pooled in the common label space (`keras_dyconv.labels`; every utterance
with ``extra["corpus"]`` and ``extra["original_label"]``, e.g. from
`keras_dyconv.multicorpus.multi_corpus`): one SVM over the common classes, and each
prediction also records the SVM's class scores twice: "scores", one-vs-one votes over every
pair of classes (scikit-learn's "ovr" decision function), and "scores_own", votes over the
pairs of the utterance's own corpus's classes only (`restricted_scores`): what the SVM says
when told which classes the corpus has, as the neural model's arg-max over a corpus's own
classes (`keras_dyconv.labels.score_both` "own") does. `corpus_scores` scores each corpus
with `score_both`: "common" from "scores", "own" from "scores_own".

Normalisations (`NORMALIZATIONS`), applied to the features before the above:

- "none": only the training-set scaler.
- "speaker": each speaker's features z-scored by that speaker's own mean and std over all
  of their utterances (a strong known variant). For a test speaker this uses their
  unlabelled test audio (transductive, like the neural "per-speaker reference"): a device
  has to gather a new speaker's statistics first. Report it in its own column.
- "corpus": each corpus z-scored by its own statistics (for multi-corpus training and
  leave-one-corpus-out; the held-out corpus's unlabelled audio gives its statistics).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from keras_dyconv.corpora import Utterance
from keras_dyconv.egemaps import FEATURE_SET, N_FEATURES, opensmile_version
from keras_dyconv.labels import class_indices
from keras_dyconv.metrics import unweighted_accuracy
from keras_dyconv.protocols import Fold, assert_no_leak, assert_test_partition

__all__ = [
    "C_GRID",
    "INNER_SPLITS",
    "NORMALIZATIONS",
    "FittedSVM",
    "corpus_scores",
    "fit_svm",
    "normalize_by_group",
    "restricted_scores",
    "run_baseline",
    "score_rows",
]

#: SVM regularisation values tried by the inner cross-validation.
C_GRID: tuple[float, ...] = (1e-3, 1e-2, 1e-1, 1.0, 10.0)
#: Inner cross-validation folds (fewer when the training part has fewer speakers).
INNER_SPLITS = 5
NORMALIZATIONS = ("none", "speaker", "corpus")


# ------------------------------------------------------------------------------ normalisation


def normalize_by_group(feats: np.ndarray, groups: Sequence[str]) -> np.ndarray:
    """Z-score the rows of each group (speaker, corpus) by that group's own mean and std.

    Args:
        feats: (n, d) features.
        groups: length n, the group of each row.

    Returns:
        (n, d) float64; a feature constant within a group becomes 0 there.
    """
    feats = np.asarray(feats, dtype=np.float64)
    groups = np.asarray(groups)
    if feats.ndim != 2 or len(groups) != len(feats):
        raise ValueError(
            f"feats must be (n, d) with one group per row, got {feats.shape} and {len(groups)}"
        )
    out = np.empty_like(feats)
    for g in np.unique(groups):
        rows = groups == g
        mean, std = feats[rows].mean(axis=0), feats[rows].std(axis=0)
        out[rows] = (feats[rows] - mean) / np.where(std > 0, std, 1.0)
    return out


# ------------------------------------------------------------------------------------- the SVM


@dataclass
class FittedSVM:
    """A scaler + linear SVM fitted on one training part, with how C was chosen.

    Attributes:
        pipeline: scikit-learn ``StandardScaler -> SVC(kernel="linear")``, refitted on the
            whole training part with the chosen C.
        c: the chosen C.
        inner_ua: mean inner-CV UA of each C in the grid (C as a string key).
        inner_groups: the speakers the inner CV split (exactly the training speakers).
        inner_splits: the inner CV's (train, validation) speaker sets, one pair per split.
    """

    pipeline: Any
    c: float
    inner_ua: dict[str, float]
    inner_groups: list[str]
    inner_splits: list[tuple[list[str], list[str]]] = field(default_factory=list)

    def predict(self, feats: np.ndarray) -> np.ndarray:
        """Class indices, shape (n,)."""
        return self.pipeline.predict(feats)


def _pipeline(c: float):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    # One-vs-one decision values ("ovo") for `restricted_scores`; predictions are the same.
    svc = SVC(kernel="linear", C=c, class_weight="balanced", decision_function_shape="ovo")
    return make_pipeline(StandardScaler(), svc)


def fit_svm(
    feats: np.ndarray,
    y: np.ndarray,
    groups: Sequence[str],
    c_grid: Sequence[float] = C_GRID,
    inner_splits: int = INNER_SPLITS,
) -> FittedSVM:
    """Choose C by speaker-grouped inner CV (UA) on (feats, y), then refit on all of it.

    Only pass the training part: everything given here is training data.

    Args:
        feats: (n, d) training features.
        y: (n,) integer class indices.
        groups: (n,) speaker of each row; inner folds never split a speaker.
        c_grid: the C values tried (ties go to the earlier value).
        inner_splits: at most this many inner folds (fewer with fewer speakers; >= 2
            speakers needed).
    """
    from sklearn.model_selection import GroupKFold

    feats, y, groups = np.asarray(feats), np.asarray(y), np.asarray(groups)
    speakers = sorted(set(groups.tolist()))
    if len(speakers) < 2:
        raise ValueError(f"inner CV needs >= 2 training speakers, got {speakers}")
    splitter = GroupKFold(n_splits=min(inner_splits, len(speakers)))
    splits = list(splitter.split(feats, y, groups))
    scores = {c: [] for c in c_grid}
    for tr, va in splits:
        for c in c_grid:
            model = _pipeline(c).fit(feats[tr], y[tr])
            scores[c].append(unweighted_accuracy(y[va], model.predict(feats[va])))
    mean = {c: float(np.mean(v)) for c, v in scores.items()}
    best = max(c_grid, key=lambda c: (mean[c], -list(c_grid).index(c)))
    pipeline = _pipeline(best).fit(feats, y)
    return FittedSVM(
        pipeline=pipeline,
        c=float(best),
        inner_ua={f"{c:g}": v for c, v in mean.items()},
        inner_groups=speakers,
        inner_splits=[
            (sorted(set(groups[tr].tolist())), sorted(set(groups[va].tolist())))
            for tr, va in splits
        ],
    )


def restricted_scores(fitted: FittedSVM, x: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """Class scores of a fitted multi-class SVM with only the pairs of allowed classes voting.

    The SVM is one-vs-one: one binary classifier per pair of classes. For each row, only
    the classifiers of two allowed classes vote; a class's score is its votes plus
    scikit-learn's tie-breaking confidence term (in (-1/3, 1/3)), so with every class
    allowed this is exactly ``SVC.decision_function`` of shape "ovr" (whose arg-max is the
    SVM's prediction). A class not allowed, or absent from the training part, scores -inf.

    Args:
        fitted: `fit_svm`'s result (class indices 0..C-1 as its labels).
        x: (n, d) features, normalised as the training part was.
        allowed: (n, C) or (C,) bool, the classes each row may be given.

    Returns:
        (n, C) float64 scores.
    """
    x = np.asarray(x)
    svc = fitted.pipeline[-1]
    classes = np.asarray(svc.classes_)
    n_classes = int(np.asarray(allowed).shape[-1])
    allowed = np.broadcast_to(np.asarray(allowed, dtype=bool), (len(x), n_classes))
    if classes.max(initial=-1) >= n_classes:
        raise ValueError(f"the SVM knows class {classes.max()}, allowed has {n_classes} columns")
    dec = svc.decision_function(fitted.pipeline[:-1].transform(x))
    if len(classes) == 2:  # binary: one column, positive for classes[1]
        dec = -np.reshape(dec, (-1, 1))
    elif svc.decision_function_shape == "ovr":
        raise ValueError("restricted_scores needs the SVM's one-vs-one decision function")
    votes = np.zeros((len(x), n_classes))
    confidence = np.zeros((len(x), n_classes))
    k = 0
    for a in range(len(classes)):
        for b in range(a + 1, len(classes)):
            i, j = classes[a], classes[b]
            both = allowed[:, i] & allowed[:, j]
            d = np.where(both, dec[:, k], 0.0)
            votes[:, i] += both & (d >= 0)
            votes[:, j] += both & (d < 0)
            confidence[:, i] += d
            confidence[:, j] -= d
            k += 1
    scores = votes + confidence / (3 * (np.abs(confidence) + 1))
    known = np.zeros(n_classes, dtype=bool)
    known[classes] = True
    return np.where(allowed & known, scores, -np.inf)


def corpus_scores(fold_records: Sequence[dict[str, Any]], labels: Sequence[str]) -> dict[str, Any]:
    """Each corpus's predictions of pooled-corpus fold records (`run_baseline` with
    ``extra["original_label"]`` on every utterance), all folds pooled, scored by
    `keras_dyconv.labels.score_both` with bootstrap 95% intervals: "common" from each
    prediction's "scores" (arg-max over every class), "own" from its "scores_own" (votes
    among the corpus's own classes only). The same scoring, on the same keys, as a neural
    run's `keras_dyconv.results.corpus_scores`.

    Returns:
        {corpus: {"common": summary, "own": summary}}, each summary with "ci95".
    """
    from keras_dyconv.labels import score_both

    by_corpus: dict[str, list[dict[str, Any]]] = {}
    for record in fold_records:
        for p in record["predictions"]:
            by_corpus.setdefault(p["corpus"], []).append(p)
    out = {}
    for corpus, preds in by_corpus.items():
        true = [p["original_label"] for p in preds]
        out[corpus] = {
            "common": score_both(score_rows(preds, "scores"), labels, true, corpus, True)["common"],
            "own": score_both(score_rows(preds, "scores_own"), labels, true, corpus, True)["own"],
        }
    return out


def score_rows(predictions: Sequence[dict[str, Any]], key: str) -> np.ndarray:
    """The `key` ("scores" or "scores_own") of pooled-corpus predictions as an (n, C)
    float64 array, -inf where a class was not allowed (null in the JSON)."""
    rows = [[-np.inf if v is None else v for v in p[key]] for p in predictions]
    return np.array(rows, dtype=np.float64).reshape(len(rows), -1)


def _normalized(
    feats: np.ndarray, utts: Sequence[Utterance], normalization: str, corpora: Sequence[str] | None
) -> np.ndarray:
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")
    if normalization == "speaker":
        return normalize_by_group(feats, [u.speaker for u in utts])
    if normalization == "corpus":
        if corpora is None:
            raise ValueError("normalization 'corpus' needs the corpus of every utterance")
        return normalize_by_group(feats, corpora)
    return np.asarray(feats, dtype=np.float64)


def run_baseline(
    utts: Sequence[Utterance],
    feats: np.ndarray,
    folds: Sequence[Fold],
    labels: Sequence[str] | None = None,
    normalization: str = "none",
    corpora: Sequence[str] | None = None,
    c_grid: Sequence[float] = C_GRID,
    inner_splits: int = INNER_SPLITS,
) -> dict[str, Any]:
    """Fit and test the baseline on every fold and score it with the project's scoring
    (`keras_dyconv.results.score_folds`): a JSON-ready dict.

    Args:
        utts: the utterances the folds index.
        feats: (len(utts), 88) functionals (`keras_dyconv.egemaps.extract_egemaps`).
        folds: e.g. `make_folds(utts, spec)`; checked with `assert_no_leak` and
            `assert_test_partition` (every utterance tested exactly once).
        labels: class names (default: sorted labels of `utts`).
        normalization: one of `NORMALIZATIONS`.
        corpora: the corpus of each utterance, for normalization "corpus".
        c_grid: the C values the inner cross-validation tries (`fit_svm`).
        inner_splits: at most this many inner folds.

    Returns:
        ``{"model", "labels", "normalization", "speaker_independent", "folds", "folds_run",
        "pooled", "pooled_ci95" (bootstrap over utterances), "per_seed", ...}`` as in
        `results.json`. "folds" holds one record per fold in `run_experiment`'s format:
        fold, seed (0), speaker_independent, test/train speakers, n_train, c, inner_ua,
        metrics (`summarize`), predictions (path, speaker, label, predicted). Pooled
        corpora (every utterance with ``extra["original_label"]``): each prediction adds
        corpus, original_label, scores and scores_own, and the dict "corpus_scores"
        (`corpus_scores`).
    """
    from keras_dyconv.results import score_folds

    feats = np.asarray(feats)
    if feats.shape != (len(utts), N_FEATURES):
        raise ValueError(
            f"feats must be ({len(utts)}, {N_FEATURES}) for {len(utts)} utterances, "
            f"got {feats.shape}"
        )
    labels, y = class_indices(utts, labels)
    assert_test_partition(folds, len(utts))
    x = _normalized(feats, utts, normalization, corpora)
    speakers = np.array([u.speaker for u in utts])
    records = []
    for fold in folds:
        assert_no_leak(fold, utts)
        records.append(_fold_record(fold, utts, x, y, speakers, labels, c_grid, inner_splits))
    pooled = bool(utts) and all("original_label" in u.extra for u in utts)
    return {
        "model": {
            "features": f"openSMILE {FEATURE_SET} functionals ({N_FEATURES})",
            "opensmile": opensmile_version(),
            "classifier": "SVC(kernel='linear', class_weight='balanced') after StandardScaler",
            "c_grid": list(c_grid),
            "inner_cv": f"GroupKFold by speaker, <= {inner_splits} splits, UA",
        },
        "labels": labels,
        "normalization": normalization,
        "speaker_independent": all(f.speaker_independent for f in folds),
        "folds": records,
        **score_folds(records, labels),
        **({"corpus_scores": corpus_scores(records, labels)} if pooled else {}),
    }


def _fold_record(
    fold: Fold,
    utts: Sequence[Utterance],
    x: np.ndarray,
    y: np.ndarray,
    speakers: np.ndarray,
    labels: list[str],
    c_grid: Sequence[float],
    inner_splits: int,
) -> dict[str, Any]:
    """Fit the baseline on `fold`'s training and validation utterances and test it: the
    fold's record (see `run_baseline`)."""
    from keras_dyconv.metrics import summarize

    train = np.union1d(fold.train, fold.val)
    model = fit_svm(x[train], y[train], speakers[train], c_grid, inner_splits)
    pred = model.predict(x[fold.test])
    predictions = [
        {
            "path": str(utts[i].path),
            "speaker": str(utts[i].speaker),
            "label": labels[y[i]],
            "predicted": labels[int(p)],
        }
        for i, p in zip(fold.test, pred, strict=True)
    ]
    if all("original_label" in utts[i].extra for i in fold.test):
        _add_scores(predictions, model, x[fold.test], [utts[i] for i in fold.test], labels)
    return {
        "fold": fold.name,
        "seed": 0,
        "speaker_independent": fold.speaker_independent,
        "test_speakers": sorted(set(speakers[fold.test].tolist())),
        "train_speakers": model.inner_groups,
        "n_train": len(train),
        "c": model.c,
        "inner_ua": model.inner_ua,
        "metrics": summarize(y[fold.test], pred, labels),
        "predictions": predictions,
    }


def _add_scores(
    predictions: list[dict[str, Any]],
    model: FittedSVM,
    x: np.ndarray,
    utts: Sequence[Utterance],
    labels: Sequence[str],
) -> None:
    """Add each test utterance's corpus, own label, "scores" and "scores_own" (rounded to 5
    decimals; null for a class its corpus lacks) to `predictions` (pooled corpora)."""
    from keras_dyconv.labels import class_mask

    everything = restricted_scores(model, x, np.ones(len(labels), dtype=bool))
    corpora = [u.extra["corpus"] for u in utts]
    masks = {c: class_mask(c, labels) for c in set(corpora)}
    own = restricted_scores(model, x, np.stack([masks[c] for c in corpora]))

    def rounded(row: np.ndarray) -> list[float | None]:
        return [round(float(v), 5) if np.isfinite(v) else None for v in row]

    for p, u, full, mine in zip(predictions, utts, everything, own, strict=True):
        p.update(
            corpus=u.extra["corpus"],
            original_label=u.extra["original_label"],
            scores=rounded(full),
            scores_own=rounded(mine),
        )
