"""What a run records: the declared layout of results.json, and scoring and merging runs.

`run_experiment` writes a `Results` (cross-validation) or an `AllResults` (protocol "all")
as results.json; `score_folds` computes the pooled, per-seed and ensemble metrics from the
fold records' predictions, and `merge_results` joins runs over disjoint folds or seeds
(the benchmarks spread folds over processes). The types are `TypedDict`s: results are
plain JSON objects on disk and in memory, and keys written by older runs still load.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NotRequired, TypedDict

import numpy as np

from edge_runtime.files import atomic_write
from keras_dyconv.folds import subset_record
from keras_dyconv.labels import score_both
from keras_dyconv.metrics import bootstrap_ci, pooled_and_mean, summarize
from keras_dyconv.recipes import Recipe

#: `keras_dyconv.metrics.summarize` of one evaluation: n, wa, ua, macro_f1, labels,
#: confusion (rows = true class), per_class.
Summary = dict[str, Any]
#: Per metric ("wa", "ua"), the bootstrap 95% interval [low, high].
Interval = dict[str, list[float]]
#: results.json's "online_order" of a normalization "stream" run: each test speaker's
#: utterances stream in a random order (`keras_dyconv.normalization.stream_order`) drawn by
#: ``np.random.default_rng(seed)``, the seed the fold's model was trained with
#: (`keras_dyconv.scoring.score_test`).
ONLINE_ORDER = "random per speaker, seeded by the training seed"
#: The online order of stream runs written before "online_order" was recorded: each test
#: speaker's utterances as the corpus lists them (by emotion within a speaker in CASIA and
#: RAVDESS).
CORPUS_ORDER = "corpus order"


class Prediction(TypedDict):
    """One test utterance of a fold record."""

    path: str
    label: str
    #: The predicted class (for normalization "stream": online adaptation per test speaker,
    #: in the run's `online_order`).
    predicted: str
    #: Mean class probabilities over the utterance's windows, rounded to 5 decimals.
    probabilities: list[float]
    #: Normalization "stream" runs with an "online_order" only: online in corpus order
    #: (emotion-blocked where the corpus lists a speaker's files by emotion).
    predicted_corpus_order: NotRequired[str]
    #: Normalization "stream" only: each utterance a fresh stream (no adaptation).
    predicted_independent: NotRequired[str]
    #: Normalization "stream" only: each test speaker's statistics over all their audio
    #: (`Recipe.stream_training` "neutral": over their neutral utterances, chosen by the
    #: test labels; a reference only).
    predicted_speaker_norm: NotRequired[str]
    #: Several corpora only (`label` and `predicted` are then common names): the
    #: utterance's corpus and its label in the corpus's own names.
    corpus: NotRequired[str]
    original_label: NotRequired[str]


class FoldRecord(TypedDict):
    """One fold trained and tested with one seed (the keys in results.json's order)."""

    fold: str
    seed: int
    speaker_independent: bool
    test_speakers: list[str]
    val_speakers: list[str]
    #: How the validation speakers were chosen (`keras_dyconv.protocols.Fold.val_rule`);
    #: absent in runs made before the rule was recorded.
    val_rule: NotRequired[dict[str, Any]]
    n_train: int
    n_val: int
    best_epoch: int | None
    averaged_epochs: list[int]
    refit_epochs: int
    epochs_run: int
    seconds: float
    #: `Recipe.stream_training` "neutral" only: the speakers without a neutral utterance,
    #: normalised by all their audio, among the training ("train") and test ("test")
    #: speakers (`ExperimentRun.neutral_record`).
    neutral_fallback_speakers: NotRequired[dict[str, list[str]]]
    metrics: Summary
    metrics_corpus_order: NotRequired[Summary]
    metrics_independent: NotRequired[Summary]
    metrics_speaker_norm: NotRequired[Summary]
    predictions: list[Prediction]


class Scores(TypedDict):
    """The metrics `score_folds` computes from fold records."""

    #: Distinct folds among the records.
    folds_run: int
    #: Every record's predictions concatenated (all seeds).
    pooled: Summary
    pooled_ci95: Interval
    #: Per seed (the key is the seed as a string): `keras_dyconv.metrics.pooled_and_mean`.
    per_seed: dict[str, dict[str, Any]]
    #: Mean and population std over seeds of each seed's pooled "wa" and "ua".
    seed_mean: dict[str, float]
    seed_std: dict[str, float]
    pooled_corpus_order: NotRequired[Summary]
    pooled_corpus_order_ci95: NotRequired[Interval]
    pooled_independent: NotRequired[Summary]
    pooled_independent_ci95: NotRequired[Interval]
    pooled_speaker_norm: NotRequired[Summary]
    pooled_speaker_norm_ci95: NotRequired[Interval]
    #: Several seeds: the seeds' class probabilities averaged per fold, {"pooled", "pooled_ci95"}.
    ensemble: NotRequired[dict[str, Any]]


class Timings(TypedDict):
    """Seconds a run took (merged runs: the sum, and the longest part)."""

    features_s: NotRequired[float]
    total_s: float
    max_part_s: NotRequired[float]
    #: Set by the benchmarks: wall time over parallel workers, and how many there were.
    wall_s: NotRequired[float]
    workers: NotRequired[int]


class Results(Scores):
    """results.json of a cross-validated run (the keys in its order, then `Scores`')."""

    #: `ProtocolSpec` fields and whether every fold is speaker-independent.
    protocol: dict[str, Any]
    #: `Recipe.to_dict()`.
    recipe: dict[str, Any]
    #: `keras_dyconv.runfolder.architecture`: {"arguments", "params"}.
    architecture: dict[str, Any]
    #: `FrontendConfig.to_dict()` of the features (normalization "none").
    frontend: dict[str, Any]
    #: `WindowPolicy.to_dict()`.
    window: dict[str, Any]
    labels: list[str]
    seeds: list[int]
    #: Python, Keras, backend, numpy and librosa versions.
    versions: dict[str, str]
    folds: list[FoldRecord]
    timings: Timings
    #: Normalization "stream" only: how each test speaker's utterances were ordered for the
    #: online "predicted" (`ONLINE_ORDER`); absent in runs written before it was recorded,
    #: which streamed them in corpus order (`online_order`).
    online_order: NotRequired[str]
    #: Several corpora only: the corpus the folds are made on (None for protocol "loco";
    #: "all", `keras_dyconv.multicorpus.POOLED`, when every corpus is trained and tested).
    target_corpus: NotRequired[str | None]
    #: Several corpora only: per corpus {"role": "target" | "extra training" |
    #: "pretraining" | "loco" | "pooled", "utterances", "speakers"}.
    corpora: NotRequired[dict[str, dict[str, Any]]]
    #: Several corpora only: `keras_dyconv.labels.mapping_record` of the corpora.
    label_mapping: NotRequired[dict[str, Any]]
    #: Several corpora only: `corpus_scores`, each tested corpus in its own label set
    #: ("own") and in the common one ("common"), each with "ci95" (WA, UA, macro-F1), and
    #: with several seeds "ensemble": {"own", "common"} of the seed ensemble.
    corpus_scores: NotRequired[dict[str, dict[str, Any]]]


class AllResults(TypedDict):
    """results.json of protocol "all": one model trained, nothing tested."""

    protocol: dict[str, Any]
    recipe: dict[str, Any]
    architecture: dict[str, Any]
    labels: list[str]
    versions: dict[str, str]
    #: Path of the saved model.keras.
    model: str
    val_speakers: list[str]
    val_rule: NotRequired[dict[str, Any]]
    best_epoch: int | None
    #: `Recipe.stream_training` "neutral" only: as in `FoldRecord` ("train" only).
    neutral_fallback_speakers: NotRequired[dict[str, list[str]]]
    timings: Timings
    #: Several corpora only, as in `Results`.
    target_corpus: NotRequired[str | None]
    corpora: NotRequired[dict[str, dict[str, Any]]]
    label_mapping: NotRequired[dict[str, Any]]


def score_folds(fold_records: Sequence[FoldRecord], labels: Sequence[str]) -> Scores:
    """Pooled, per-seed and across-seed metrics of fold records (from their predictions).

    Also, when present: "pooled_corpus_order", "pooled_independent" and
    "pooled_speaker_norm" (normalization "stream" online in corpus order, without
    adaptation, and its transductive per-speaker reference) and
    "ensemble" (class probabilities averaged over the seeds of each fold: what a seed
    ensemble scores).
    """
    seeds = sorted({r["seed"] for r in fold_records})

    def pairs(records, key="predicted"):
        return [
            (
                np.array([labels.index(p["label"]) for p in r["predictions"]]),
                np.array([labels.index(p[key]) for p in r["predictions"]]),
            )
            for r in records
        ]

    def pooled(records, key="predicted"):
        all_pairs = pairs(records, key)
        t_all = np.concatenate([t for t, _ in all_pairs])
        p_all = np.concatenate([p for _, p in all_pairs])
        return summarize(t_all, p_all, labels), {
            m: list(bootstrap_ci(t_all, p_all, m)) for m in ("wa", "ua")
        }

    per_seed = {
        str(seed): pooled_and_mean(pairs([r for r in fold_records if r["seed"] == seed]))
        for seed in seeds
    }
    summary, ci = pooled(fold_records)
    scores: Scores = {
        "folds_run": len({r["fold"] for r in fold_records}),
        "pooled": summary,
        "pooled_ci95": ci,
        "per_seed": per_seed,
        "seed_mean": {
            m: float(np.mean([r["pooled"][m] for r in per_seed.values()])) for m in ("wa", "ua")
        },
        "seed_std": {
            m: float(np.std([r["pooled"][m] for r in per_seed.values()])) for m in ("wa", "ua")
        },
    }
    predictions = [p for r in fold_records for p in r["predictions"]]
    for key in ("corpus_order", "independent", "speaker_norm"):
        if predictions and all(f"predicted_{key}" in p for p in predictions):
            summary, ci = pooled(fold_records, f"predicted_{key}")
            scores[f"pooled_{key}"], scores[f"pooled_{key}_ci95"] = summary, ci
    if len(seeds) > 1 and predictions and all("probabilities" in p for p in predictions):
        summary, ci = pooled(seed_ensemble(fold_records, labels))
        scores["ensemble"] = {"pooled": summary, "pooled_ci95": ci}
    return scores


def seed_ensemble(
    fold_records: Sequence[FoldRecord], labels: Sequence[str]
) -> list[dict[str, Any]]:
    """The seed ensemble of fold records: one record per fold, {"fold", "predictions"},
    each prediction its first seed's with "probabilities" the mean over the fold's seeds
    and "predicted" that mean's arg-max over `labels`. For normalization "stream" the
    probabilities averaged are the online ones (`Prediction`), each seed's streams in its
    own order where the run's `online_order` is seeded.

    Raises:
        ValueError: a fold's seeds tested other utterances or listed them in another order.
    """
    by_fold: dict[str, list[FoldRecord]] = {}
    for record in fold_records:
        by_fold.setdefault(record["fold"], []).append(record)
    out = []
    for name, records in by_fold.items():
        paths = [[p.get("path") for p in r["predictions"]] for r in records]
        if any(other != paths[0] for other in paths[1:]):
            raise ValueError(
                f"fold {name!r}: its seeds tested other utterances or listed them in another "
                "order: cannot average their probabilities"
            )
        mean = np.mean([[p["probabilities"] for p in r["predictions"]] for r in records], axis=0)
        out.append(
            {
                "fold": name,
                "predictions": [
                    {**p, "predicted": labels[int(m.argmax())], "probabilities": list(m)}
                    for p, m in zip(records[0]["predictions"], mean, strict=True)
                ],
            }
        )
    return out


def merge_results(parts: Sequence[Results]) -> Results:
    """Join results of the same experiment run over disjoint fold subsets (or seeds)."""
    if not parts:
        raise ValueError("nothing to merge")
    first = parts[0]

    def canonical(part: Results, key: str) -> str:
        value: Any = part[key]  # type: ignore[literal-required]
        if key == "recipe":  # fields added since the run take their defaults
            value = Recipe(**value).to_dict()
        return json.dumps(value, sort_keys=True, default=list)

    for part in parts[1:]:
        for key in ("labels", "recipe", "architecture", "frontend", "window"):
            # Results written before a key existed (e.g. "architecture") merge with any.
            if key in part and key in first and canonical(part, key) != canonical(first, key):
                raise ValueError(f"cannot merge runs that differ in {key!r}")
        if online_order(part) != online_order(first):
            raise ValueError(
                f"cannot merge runs whose online predictions differ in order "
                f"({online_order(first)!r} and {online_order(part)!r})"
            )
    records = [r for part in parts for r in part["folds"]]
    keys = [(r["fold"], r["seed"]) for r in records]
    if len(set(keys)) != len(keys):
        raise ValueError("the runs to merge overlap (same fold and seed twice)")
    merged = {**first, "folds": records, "seeds": sorted({r["seed"] for r in records})}
    recorded = [p["architecture"] for p in parts if "architecture" in p]
    if recorded:
        merged["architecture"] = recorded[0]
    merged["protocol"] = {
        **{k: v for k, v in first["protocol"].items() if k != "partial"},
        "speaker_independent": all(p["protocol"]["speaker_independent"] for p in parts),
    }
    # Still a subset of the protocol's folds (`keras_dyconv.folds.subset_record`)?
    n_folds = max(p["protocol"].get("partial", {}).get("n_folds", 0) for p in parts)
    ran = list(dict.fromkeys(r["fold"] for r in records))
    if len(ran) < n_folds:
        merged["protocol"]["partial"] = subset_record(ran, n_folds)
    merged["timings"] = {
        "total_s": round(sum(p["timings"]["total_s"] for p in parts), 1),
        "max_part_s": max(p["timings"]["total_s"] for p in parts),
    }
    merged.update(score_folds(records, first["labels"]))
    if "corpus_scores" in first:
        merged["corpus_scores"] = corpus_scores(records, first["labels"])
    return merged


def online_order(results: Mapping[str, Any]) -> str | None:
    """How a run's online predictions ("predicted") streamed each test speaker's
    utterances: for normalization "stream", its "online_order", or `CORPUS_ORDER` for runs
    written before that was recorded; None for other normalizations (no stream)."""
    if results.get("recipe", {}).get("normalization") != "stream":
        return None
    return results.get("online_order", CORPUS_ORDER)


def online_order_text(order: str) -> str:
    """An `online_order` in words, for tables and captions: "in corpus order" or "in a
    random order per speaker, seeded by the training seed".

    Raises:
        ValueError: not an order a run records.
    """
    words = {
        CORPUS_ORDER: "in corpus order",
        ONLINE_ORDER: "in a random order per speaker, seeded by the training seed",
    }
    if order not in words:
        raise ValueError(f"unknown online order {order!r}: expected one of {list(words)}")
    return words[order]


def corpus_scores(fold_records: Sequence[FoldRecord], labels: Sequence[str]) -> dict[str, Any]:
    """Each tested corpus's predictions (all folds and seeds pooled) scored in its own
    label set and in the common one, with bootstrap 95% intervals of WA, UA and macro-F1:
    {corpus: `keras_dyconv.labels.score_both`}. With several seeds, each corpus's also has
    "ensemble": its utterances scored so (once each) by the seed ensemble (`seed_ensemble`).
    """
    scores = _score_corpora(fold_records, labels)
    if len({r["seed"] for r in fold_records}) > 1:
        for corpus, both in _score_corpora(seed_ensemble(fold_records, labels), labels).items():
            scores[corpus]["ensemble"] = both
    return scores


def _score_corpora(records: Sequence[Mapping[str, Any]], labels: Sequence[str]) -> dict[str, Any]:
    """{corpus: `keras_dyconv.labels.score_both` with intervals} of the records' predictions."""
    by_corpus: dict[str, list[Prediction]] = {}
    for record in records:
        for p in record["predictions"]:
            by_corpus.setdefault(p["corpus"], []).append(p)
    return {
        corpus: score_both(
            [p["probabilities"] for p in preds],
            labels,
            [p["original_label"] for p in preds],
            corpus,
            intervals=True,
        )
        for corpus, preds in by_corpus.items()
    }


def write_json(path: str | os.PathLike, data: Any) -> None:
    """`data` as indented JSON (numpy values, tuples and paths converted), written to a
    temporary file and renamed into place: a kill never leaves a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(data, indent=2, default=_json_default))


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (np.ndarray, tuple)):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
