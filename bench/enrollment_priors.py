"""The stream priors `bench_enrollment.py` measures: `--prior` (the run's) and the
`--priors` candidates.

A prior is "KIND:FRAMES" (`parse_prior`): the training set's statistics of a kind
(`PRIOR_KINDS`) weighted as FRAMES frames (`make_prior`). `prior_fold` rescores one
rebuilt fold (`enrollment_fold.RebuiltFold`) with each candidate, `summarize_priors` pools
the folds per corpus.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from enrollment_fold import RebuiltFold, error_means, random_mean, scores

from edge_runtime.config import FrontendConfig
from keras_dyconv.normalization import FeatureSource, load_features

#: Prior kinds `--priors` measures: "pooled", the training set's statistics over all its
#: frames (the prior of "stream" configs made before the within-speaker one); "within", the
#: mean of the training speakers' means and of their variances (no between-speaker spread).
PRIOR_KINDS = ("pooled", "within")


def parse_prior(spec: str) -> tuple[str, int]:
    """A `--priors` entry "KIND:FRAMES" (e.g. "within:100") as (kind, frames)."""
    kind, _, frames = spec.partition(":")
    if kind not in PRIOR_KINDS or not frames.isdigit() or int(frames) < 1:
        raise argparse.ArgumentTypeError(
            f"a prior is KIND:FRAMES with KIND one of {PRIOR_KINDS} and FRAMES >= 1, got {spec!r}"
        )
    return kind, int(frames)


def make_prior(
    prior: tuple[str, int],
    config: FrontendConfig,
    sources: Sequence[FeatureSource],
    speakers: Sequence[str],
) -> FrontendConfig:
    """The "stream" config of a (kind, frames) prior (`parse_prior`) made from training
    features and their speakers (`with_dataset_stats`, with speakers for "within"),
    weighted as `frames`."""
    from edge_runtime.normalization import with_dataset_stats

    kind, frames = prior
    made = with_dataset_stats(
        config,
        (load_features(s) for s in sources),
        "stream",
        speakers=speakers if kind == "within" else None,
    )
    return dataclasses.replace(made, stream_prior_frames=frames)


def prior_fold(fold: RebuiltFold, args: argparse.Namespace, log) -> dict[str, Any]:
    """Per `--priors` candidate, the utterance probabilities of one fold's test utterances
    each as a fresh stream ("independent"), online in `--orders` random orders and after
    `--seconds` of enrollment through a device's stream, with that prior (the same orders
    and enrollments for every candidate: "pooled:300" is the bench's conditions of those
    names), and how far those statistics are from the speaker's own (`statistics_error`)."""
    from enrollment_statistics import running_statistics

    # The statistics of each kind, computed once; each candidate sets its weight.
    kinds = {
        k: make_prior((k, 1), fold.config, fold.train, fold.train_speakers) for k in PRIOR_KINDS
    }
    probs: dict[str, dict[str, np.ndarray]] = {}
    errors: dict[str, dict[str, np.ndarray]] = {}
    for spec in args.priors:
        kind, frames = parse_prior(spec)
        prior = dataclasses.replace(kinds[kind], stream_prior_frames=frames)
        used = {"independent": fold.independent(prior)}
        for k, order in enumerate(fold.orders):
            used[f"online_random{k}"] = running_statistics(
                fold.sources, fold.speakers, order, prior
            )
        for seconds in args.seconds:
            used[f"enroll_stream_{seconds:g}s"], _ = fold.enroll(
                round(seconds * fold.frame_rate), prior
            )
        t0 = time.time()
        probs[spec] = {name: fold.predict(stats) for name, stats in used.items()}
        errors[spec] = fold.errors(used)
        log(f"  {fold.fold} prior {spec}: {time.time() - t0:.0f} s")
    fold.release()
    return {"fold": fold.fold, "test": fold.test, "probabilities": probs, "errors": errors}


def summarize_priors(folds: list[dict[str, Any]], utts, labels: Sequence[str]) -> dict[str, Any]:
    """Per corpus and prior candidate (all folds pooled): each condition's scores
    ("online_random" also as the mean of the orders) and statistics error."""
    test = np.concatenate([f["test"] for f in folds])
    corpora = np.array([utts[i].extra["corpus"] for i in test])
    true = np.array([utts[i].extra["original_label"] for i in test])
    out: dict[str, Any] = {}
    for corpus in dict.fromkeys(corpora.tolist()):
        mine = corpora == corpus
        out[corpus] = {}
        for spec in folds[0]["probabilities"]:
            probs = {
                c: np.concatenate([f["probabilities"][spec][c] for f in folds])
                for c in folds[0]["probabilities"][spec]
            }
            errors = {c: np.concatenate([f["errors"][spec][c] for f in folds]) for c in probs}
            conditions = {c: scores(p[mine], true[mine], labels, corpus) for c, p in probs.items()}
            out[corpus][spec] = {
                "conditions": {"online_random": random_mean(conditions), **conditions},
                "statistics_error": error_means(errors, mine),
            }
    return out
