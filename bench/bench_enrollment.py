"""Online stream normalisation against enrollment and the test speaker's own statistics.

A model trained with ``--normalization stream`` normalises a test speaker's features by
running statistics (`edge_runtime.normalization.StreamStatistics`: a training prior, for
the run rescored here the pooled statistics weighted as 3 s (`--prior`), a 60 s memory,
the current utterance included). Its pooled run scores 8-19 points (WA) below the
transductive reference that normalises each test speaker by the statistics of all their
audio. This bench rebuilds each fold's final model from its
checkpoints (nothing is trained), checks that it reproduces the run's saved predictions
(online in corpus order, for runs that record "predicted_corpus_order" also online in their
seeded random order, and the speaker reference, label for label), then scores each
test corpus (common and own label set, `keras_dyconv.labels.score_both`, all folds pooled)
with the same model under:

* ``online_corpus``: online, each speaker's utterances in corpus order (the run's
  "predicted_corpus_order", or "predicted" in runs written before that; RAVDESS and CASIA
  order their files by emotion within a speaker);
* ``online_random<k>``: online, each speaker's utterances in `--orders` random orders
  (seeded; ``online_random``: their mean);
* ``before_utterance_random0``: as ``online_random0`` but with the statistics from just
  before the utterance (it is not part of its own normalisation);
* ``no_forgetting_random0`` / ``no_forgetting_corpus``: online without the 60 s memory
  (every frame of the speaker so far counts);
* ``enroll_<N>s``: each utterance normalised by the statistics of N seconds of *other*
  utterances of its speaker (drawn in a random order, the last one cut to make N s;
  `enrollment_statistics`), then frozen: what a device has after an enrollment;
  ``enroll_all``: all the other utterances (the speaker reference, leave-one-out);
* ``enroll_stream_<N>s``: the same N seconds through a device's `StreamStatistics` (the
  training prior of `--prior`, the 60 s memory), then frozen;
* ``enroll_neutral_<N>s`` (`--neutral-seconds`) / ``enroll_neutral_all``: as
  ``enroll_<N>s`` / ``enroll_all`` (the same seeded order, frozen, no prior) but from the
  speaker's other *neutral* utterances only (common label "neutral"; RAVDESS's "calm" does
  not count), what a device gets when a user enrolls by speaking calmly (the acted corpora
  give every speaker every emotion, so ``enroll_<N>s`` is optimistic). An utterance whose
  speaker has no other neutral utterance is scored as ``independent``; their count is
  saved per corpus ("no_neutral_enrollment");
* ``independent``: the training prior plus the utterance alone (no adaptation);
* ``speaker``: the statistics of all the speaker's utterances (the run's
  "predicted_speaker_norm", transductive).

It also records, per corpus, how emotion-blocked each order is (the mean share of a
stream's last 60 s that has the scored utterance's emotion, `same_emotion_share`), the
online scores by seconds of the speaker heard before the utterance (the cold start), next
to the speaker reference on the same utterances, and how far each condition's statistics
are from the speaker's own (`statistics_error`).

    nice -n 19 python bench/bench_enrollment.py \\
        --run runs/stream-a/results.json runs/ckpt-stream-a \\
        --run runs/stream-b/results.json runs/ckpt-stream-b --cache runs/cache

Saves docs/results/bench/enrollment.json and renders its section of docs/benchmarks.md
(`bench/render_enrollment.py`; `--results`, `--markdown`, `--no-write`). The folds are
rebuilt by `bench/enrollment_fold.py`, the statistics made by
`bench/enrollment_statistics.py`, the priors by `bench/enrollment_priors.py`.

With ``--priors KIND:FRAMES ...`` it measures stream priors instead (the same models,
orders and enrollments: the online random orders and ``enroll_stream_<N>s`` with each
prior: "pooled" or "within"-speaker training statistics, weighted as FRAMES) and saves
them as the "priors" entry of the saved results, the rest kept (a later run without
``--priors`` rewrites the file without them).
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]  # this checkout's code

from _report import (  # noqa: E402
    add_output_options,
    load_json,
    output_targets,
    publish,
    results_path,
)
from enrollment_fold import (  # noqa: E402
    RebuiltFold,
    error_means,
    normalized_by,
    random_mean,
    scores,
)
from enrollment_priors import (  # noqa: E402
    PRIOR_KINDS,
    make_prior,
    parse_prior,
    prior_fold,
    summarize_priors,
)
from enrollment_statistics import (  # noqa: E402
    Statistics,
    heard_before,
    neutral_pool,
    running_statistics,
    same_emotion_share,
)

from edge_runtime.config import (  # noqa: E402
    LEGACY_STREAM_PRIOR_FRAMES,
    STREAM_MEMORY_FRAMES,
    FrontendConfig,
)
from keras_dyconv.normalization import load_features  # noqa: E402

DATASETS = Path("/work/shared/datasets")
#: Seconds of enrollment audio (other utterances of the test speaker).
ENROLL_SECONDS = (10.0, 30.0, 60.0, 120.0)
#: Seconds of enrollment from the test speaker's other neutral utterances only.
NEUTRAL_SECONDS = (30.0, 60.0)
#: Random per-speaker orders of the online condition.
ORDERS = 3
#: Seconds of the speaker's audio heard before an utterance: the bounds of the cold-start
#: buckets of the online scores.
HEARD_BUCKETS = (0.0, 10.0, 30.0, 60.0, float("inf"))
#: A memory (frames) longer than any speaker's audio: statistics that never forget.
NO_FORGETTING = 10**12


def run_fold(
    rebuilt: RebuiltFold,
    results: dict[str, Any],
    record: dict[str, Any],
    utts,
    args: argparse.Namespace,
    log,
) -> dict[str, Any]:
    """Every condition's utterance probabilities on the test utterances of `rebuilt`, the
    fold `record` of the run `results` over `utts`, after the check that the rebuilt model
    gives the run's saved predictions."""
    from keras_dyconv.feeding import predict_utterances
    from keras_dyconv.normalization import iter_normalized, stream_order
    from keras_dyconv.scoring import predict_in_order

    labels = results["labels"]
    saved = record["predictions"]
    if [p["path"] for p in saved] != [str(utts[i].path) for i in rebuilt.test]:
        raise ValueError(f"{record['fold']}: the rebuilt fold's test utterances differ")
    prior = make_prior(args.prior, rebuilt.config, rebuilt.train, rebuilt.train_speakers)
    model, policy, test = rebuilt.model, rebuilt.policy, rebuilt.test
    sources, speakers, identity = rebuilt.sources, rebuilt.speakers, rebuilt.identity
    probs: dict[str, np.ndarray] = {}

    def timed(name: str, compute) -> None:
        t0 = time.time()
        probs[name] = compute()
        log(f"  {record['fold']} {name}: {time.time() - t0:.0f} s")

    def online(order: np.ndarray) -> np.ndarray:
        return predict_in_order(model, sources, prior, policy, speakers, order)

    timed("online_corpus", lambda: online(identity))
    timed(
        "speaker",
        lambda: predict_utterances(
            model, sources, prior, policy, speakers=speakers, adapt="speaker"
        ),
    )
    # Runs that record "predicted_corpus_order" scored their headline "predicted" (and saved
    # its probabilities) online in the random order of their training seed
    # (`keras_dyconv.scoring.score_test`); older runs in corpus order.
    compared = {"predicted": probs["online_corpus"], "predicted_speaker_norm": probs["speaker"]}
    if "metrics_corpus_order" in record:
        compared["predicted_corpus_order"] = probs["online_corpus"]
        seeded = stream_order(speakers, np.random.default_rng(record["seed"]))
        compared["predicted"] = online(seeded)
    check = {}
    for key, p in compared.items():
        got = [labels[k] for k in p.argmax(axis=1)]
        check[key] = sum(g != saved_p[key] for g, saved_p in zip(got, saved, strict=True))
    gap = float(np.abs(compared["predicted"] - [p["probabilities"] for p in saved]).max())
    check["max_probability_difference"] = gap
    log(f"  {record['fold']} reproduction: {check}")
    if any(check[key] for key in compared) or gap > 1e-4:
        raise SystemExit(f"{record['fold']}: the rebuilt model does not reproduce the run: {check}")

    lengths = [len(load_features(s)) for s in sources]
    true = [utts[i].extra["original_label"] for i in test]
    heard, share = {}, {"online_corpus": same_emotion_share(lengths, speakers, true, identity)}
    heard["online_corpus"] = heard_before(lengths, speakers, identity)
    used: dict[str, Statistics] = {
        "prior_only": [(np.float32(prior.mean), np.float32(prior.std))] * len(test),
        "speaker": rebuilt.reference,
        # Each utterance its own stream: what "independent" normalises with.
        "independent": rebuilt.independent(prior),
        "online_corpus": running_statistics(sources, speakers, identity, prior),
    }
    # The online path, recomputed from `running_statistics`, is the one the run deploys.
    again = normalized_by(sources, used["online_corpus"])
    deployed = iter_normalized(sources, prior, speakers)
    check["running_statistics_equal"] = all(
        np.array_equal(x, y) for x, y in zip(again, deployed, strict=True)
    )
    if not check["running_statistics_equal"]:
        raise SystemExit(f"{record['fold']}: running_statistics differs from the online path")

    orders, memory = rebuilt.orders, STREAM_MEMORY_FRAMES
    for k, order in enumerate(orders):
        name = f"online_random{k}"
        timed(name, lambda order=order: online(order))
        used[name] = running_statistics(sources, speakers, order, prior)
        heard[name] = heard_before(lengths, speakers, order)
        share[name] = same_emotion_share(lengths, speakers, true, order)
    # Variants of the online path: statistics from before the utterance, no forgetting.
    variants = {
        "before_utterance_random0": (orders[0] if orders else identity, False, memory),
        "no_forgetting_random0": (orders[0] if orders else identity, True, NO_FORGETTING),
        "no_forgetting_corpus": (identity, True, NO_FORGETTING),
    }
    for name, (order, include, frames) in variants.items():
        stats = used[name] = running_statistics(sources, speakers, order, prior, include, frames)
        timed(name, lambda stats=stats: rebuilt.predict(stats))
    frame_rate = rebuilt.frame_rate
    enrolled = {}

    def enroll(name: str, frames: int, **kwargs) -> None:
        stats, got = rebuilt.enroll(frames, **kwargs)
        used[name] = stats
        enrolled[name] = np.asarray(got) / frame_rate
        timed(name, lambda: rebuilt.predict(stats))

    def spans(seconds: Sequence[float]) -> list[tuple[str, int]]:
        return [(f"{s:g}s", round(s * frame_rate)) for s in seconds] + [("all", NO_FORGETTING)]

    for label, frames in spans(args.seconds):
        enroll(f"enroll_{label}", frames)
        if label != "all":
            enroll(f"enroll_stream_{label}", frames, prior=prior)
    # Enrollment from the speaker's neutral speech only; without any: as "independent".
    neutral = neutral_pool([utts[i].label for i in test])
    for label, frames in spans(args.neutral_seconds):
        enroll(f"enroll_neutral_{label}", frames, pool=neutral, fallback=used["independent"])
    timed(
        "independent",
        lambda: predict_utterances(model, sources, prior, policy, adapt="independent"),
    )
    rebuilt.release()
    return {
        "fold": record["fold"],
        "check": check,
        "test": test,
        "probabilities": probs,
        "heard_s": {k: v / frame_rate for k, v in heard.items()},
        "same_emotion_share": share,
        "enrolled_s": enrolled,
        "statistics_error": rebuilt.errors(used),
    }


# ----------------------------------------------------------------------------- scoring
def summarize_folds(folds: list[dict[str, Any]], utts, labels: Sequence[str]) -> dict[str, Any]:
    """Per corpus (all folds pooled): each condition's scores ("online_random" also as the
    mean of the orders); the online scores by seconds of the speaker heard before the
    utterance (`HEARD_BUCKETS`, the random orders pooled) next to the speaker reference on
    the same utterances; the emotion blocking of each order; how far each condition's
    statistics are from the speaker's own (`statistics_error`); the enrollment seconds and
    how many utterances had no neutral enrollment (scored as "independent")."""
    test = np.concatenate([f["test"] for f in folds])
    corpora = np.array([utts[i].extra["corpus"] for i in test])
    true = np.array([utts[i].extra["original_label"] for i in test])

    def joined(key: str) -> dict[str, np.ndarray]:
        return {c: np.concatenate([f[key][c] for f in folds]) for c in folds[0][key]}

    probs, heard, share = joined("probabilities"), joined("heard_s"), joined("same_emotion_share")
    enrolled, errors = joined("enrolled_s"), joined("statistics_error")
    randoms = [c for c in probs if re.fullmatch(r"online_random\d+", c)]
    streams = {"online_corpus": ["online_corpus"], "online_random": randoms}
    out: dict[str, Any] = {}
    for corpus in dict.fromkeys(corpora.tolist()):
        mine = corpora == corpus
        conditions = {c: scores(probs[c][mine], true[mine], labels, corpus) for c in probs}
        conditions["online_random"] = random_mean(conditions)
        by_heard: dict[str, list[dict[str, Any]]] = {}
        for name, members in streams.items():
            by_heard[name] = []
            for low, high in itertools.pairwise(HEARD_BUCKETS):
                keeps = [mine & (heard[c] >= low) & (heard[c] < high) for c in members]
                if not sum(k.sum() for k in keeps):
                    continue
                y = np.concatenate([true[k] for k in keeps])
                online = np.concatenate([probs[c][k] for c, k in zip(members, keeps, strict=True)])
                speaker = np.concatenate([probs["speaker"][k] for k in keeps])
                by_heard[name].append(
                    {
                        "heard_s": [low, high if np.isfinite(high) else None],
                        "n": len(y),
                        "online": scores(online, y, labels, corpus),
                        "speaker": scores(speaker, y, labels, corpus),
                    }
                )
        out[corpus] = {
            "n": int(mine.sum()),
            "conditions": conditions,
            "by_heard": by_heard,
            "same_emotion_share": {c: float(v[mine].mean()) for c, v in share.items()},
            "statistics_error": error_means(errors, mine),
            "enrolled_s_mean": {c: float(v[mine].mean()) for c, v in enrolled.items()},
        }
        if "enroll_neutral_all" in enrolled:
            # No other neutral utterance of the speaker: scored as "independent".
            out[corpus]["no_neutral_enrollment"] = int(
                (enrolled["enroll_neutral_all"][mine] == 0).sum()
            )
    return out


# ----------------------------------------------------------------------------- main
def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--run",
        nargs=2,
        action="append",
        metavar=("RESULTS_JSON", "CHECKPOINT_DIR"),
        required=True,
        help="a stream run's results.json and its --checkpoint folder (repeatable)",
    )
    parser.add_argument("--cache", type=Path, required=True, help="the run's feature cache")
    parser.add_argument("--datasets", type=Path, default=DATASETS, help="holds <corpus>/")
    parser.add_argument("--seconds", type=float, nargs="+", default=list(ENROLL_SECONDS))
    parser.add_argument(
        "--neutral-seconds",
        type=float,
        nargs="+",
        default=list(NEUTRAL_SECONDS),
        help="seconds of the enroll_neutral_<N>s conditions (besides enroll_neutral_all): "
        "enrollment from the speaker's other neutral utterances only, what a user speaking "
        "calmly gives a device; an utterance whose speaker has no other is scored as "
        "'independent'",
    )
    parser.add_argument("--orders", type=int, default=ORDERS)
    parser.add_argument("--seed", type=int, default=0, help="seed of the random orders")
    parser.add_argument("--folds", nargs="+", help="only these folds (default: all)")
    parser.add_argument(
        "--prior",
        type=parse_prior,
        default=("pooled", LEGACY_STREAM_PRIOR_FRAMES),
        metavar="KIND:FRAMES",
        help="the prior the run's models were trained and tested with (default: "
        f"pooled:{LEGACY_STREAM_PRIOR_FRAMES}, that of runs made before the within-speaker "
        "prior; the reproduction check fails on a wrong one)",
    )
    parser.add_argument(
        "--priors",
        nargs="+",
        type=lambda spec: parse_prior(spec) and spec,
        metavar="KIND:FRAMES",
        help=f"instead of the conditions: compare stream priors (KIND one of {PRIOR_KINDS}, "
        "e.g. pooled:300 within:100) online in random orders and through enrollment, and "
        'save them as the "priors" entry of the saved results',
    )
    add_output_options(parser, "enrollment")
    args = parser.parse_args(argv)

    from keras_dyconv.corpora import load_corpus
    from keras_dyconv.features import extract_corpus
    from keras_dyconv.folds import ProtocolSpec, make_folds
    from keras_dyconv.multicorpus import POOLED, multi_corpus

    def log(message: str) -> None:
        print(message, flush=True)

    runs = [(json.loads(Path(r).read_text()), Path(c)) for r, c in args.run]
    first = runs[0][0]
    for results, _ in runs[1:]:
        for key in ("recipe", "frontend", "window", "labels", "architecture", "corpora"):
            if results[key] != first[key]:
                raise SystemExit(f"the runs differ in {key!r}: they are not folds of one run")
    if first["recipe"]["normalization"] != "stream" or first.get("target_corpus") != POOLED:
        raise SystemExit("needs a pooled (--target all) run with --normalization stream")
    loaded = {name: load_corpus(name, args.datasets / name) for name in first["corpora"]}
    utts, _ = multi_corpus(loaded, POOLED)
    config = FrontendConfig.from_dict(first["frontend"])
    log(f"features of {len(utts)} utterances from the cache {args.cache}")
    feats = extract_corpus([u.path for u in utts], config, cache_dir=args.cache, as_paths=True)
    protocol = {k: v for k, v in first["protocol"].items() if k in ProtocolSpec.__annotations__}
    folds = {f.name: f for f in make_folds(utts, ProtocolSpec(**protocol), per_corpus=True)}
    done = []
    for results, checkpoints in runs:
        for record in results["folds"]:
            if args.folds and record["fold"] not in args.folds:
                continue
            fold = folds[record["fold"]]
            if sorted({utts[i].speaker for i in fold.test}) != record["test_speakers"]:
                raise SystemExit(f"{record['fold']}: the rebuilt fold's test speakers differ")
            log(f"fold {record['fold']}: {len(fold.test)} test utterances")
            rebuilt = RebuiltFold.build(results, checkpoints, record, fold, utts, feats, args)
            if not args.priors:
                done.append(run_fold(rebuilt, results, record, utts, args, log))
                continue
            done.append(prior_fold(rebuilt, args, log))
            log(json.dumps(summarize_priors(done, utts, first["labels"])))
    if args.priors:
        saved = load_json(args.results or results_path("enrollment"))
        saved["priors"] = {
            "what": "stream priors compared (bench/bench_enrollment.py --priors)",
            "folds": [f["fold"] for f in done],
            "seed": args.seed,
            "orders": args.orders,
            "enroll_seconds": args.seconds,
            "stream_memory_frames": STREAM_MEMORY_FRAMES,
            "corpora": summarize_priors(done, utts, first["labels"]),
        }
        print(publish("enrollment", saved, **output_targets(args)))
        return
    summary = summarize_folds(done, utts, first["labels"])
    body = publish(
        "enrollment",
        {
            "what": "pooled stream run rescored: online (corpus / random orders), enrollment, "
            "prior only, speaker statistics (bench/bench_enrollment.py)",
            "runs": [r for r, _ in args.run],
            "folds": [f["fold"] for f in done],
            "reproduction": {f["fold"]: f["check"] for f in done},
            "seed": args.seed,
            "orders": args.orders,
            "enroll_seconds": args.seconds,
            "neutral_enroll_seconds": args.neutral_seconds,
            "stream_prior": f"{args.prior[0]}:{args.prior[1]}",
            "stream_prior_frames": args.prior[1],
            "stream_memory_frames": STREAM_MEMORY_FRAMES,
            "corpora": summary,
        },
        **output_targets(args),
    )
    print(body)


if __name__ == "__main__":
    main()
