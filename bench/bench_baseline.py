"""Classical floor: openSMILE eGeMAPS functionals + a linear SVM on every shared corpus.

    python bench/bench_baseline.py                   # every job whose corpus is present
    python bench/bench_baseline.py --jobs emodb-loso emodb-stratified
    python bench/bench_baseline.py --jobs loco       # leave-one-corpus-out only
    python bench/bench_baseline.py --jobs pooled-group4 --workers 1
    python bench/bench_baseline.py --render-only     # re-render docs from the saved JSON

Each job is a corpus under a protocol, on exactly the folds `dyser-train` uses
(`keras_dyconv.experiment.make_folds`), run with two feature normalisations: "none" (the
training-set scaler only) and "speaker" (each speaker z-scored by their own statistics).
Leave-one-corpus-out jobs train on the other corpora's common classes and test on the
held-out one, each corpus z-scored on its own ("corpus"), and also per speaker. Pooled jobs
(`POOLED_JOBS`, e.g. "pooled-group4") pool the corpora as `dyser-train --target all` does,
on exactly its folds (`keras_dyconv.folds.chosen_folds` with ``per_corpus``), one SVM over
the union's common classes, each corpus scored in its own label set
(`keras_dyconv.baseline.corpus_scores`), with the same two normalisations as LOCO.
Every (job, normalisation) writes its raw results (per-fold C, predictions, pooled WA/UA
with bootstrap intervals) to docs/results/baseline/<job>-<normalisation>.json. The
"baseline" section of docs/benchmarks.md is then rendered from those files alone (and from
the neural results already in docs/results/), so `--render-only` reproduces it exactly.
Features are cached under runs/cache (keyed by each file's content), so reruns are fast.
The corpora are read from ../shared/datasets beside the checkout, or from $DYSER_DATASETS.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]  # this checkout's code (see bench_training)
from _report import save_json, write_section  # noqa: E402
from multicorpus_scores import fold_test_speakers  # noqa: E402
from render_baseline import (  # noqa: E402
    JOBS,
    LOCO_CORPORA,
    LOCO_NORMALIZATIONS,
    NEURAL,
    NORMALIZATIONS,
    POOLED_JOBS,
    POOLED_NORMALIZATIONS,
    TITLE,
    render_body,
    same_protocol,
)

#: The shared corpora (override with DYSER_DATASETS, e.g. from a git worktree elsewhere).
DATASETS = Path(os.environ.get("DYSER_DATASETS", ROOT.parent / "shared" / "datasets"))
RESULTS = ROOT / "docs" / "results" / "baseline"
CACHE = ROOT / "runs" / "cache"


def load(corpus: str):
    """The corpus's utterances, from the project's loader and the shared copy."""
    from keras_dyconv.corpora import load_corpus

    return load_corpus(corpus, DATASETS / corpus)


def versions() -> dict[str, str]:
    import numpy
    import opensmile
    import sklearn

    return {
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "scikit-learn": sklearn.__version__,
        "opensmile": opensmile.__version__,
    }


def measured() -> dict[str, Any]:
    return {
        "date": date.today().isoformat(),
        "machine": platform.machine(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
    }


def run_job(name: str, workers: int, cache_dir: Path = CACHE) -> list[dict[str, Any]]:
    """Every normalisation of job `name`: one results dict each (not yet saved)."""
    from keras_dyconv.egemaps import extract_egemaps

    utts = load(JOBS[name].corpus)
    t0 = time.time()
    feats = extract_egemaps([u.path for u in utts], cache_dir=cache_dir, n_jobs=workers)
    features_s = time.time() - t0
    return [evaluate(name, utts, feats, norm, features_s) for norm in NORMALIZATIONS]


def evaluate(
    name: str,
    utts: Sequence,
    feats,
    normalization: str,
    features_s: float,
) -> dict[str, Any]:
    """The baseline on job `name`'s folds of `utts`: the dict saved as JSON."""
    from keras_dyconv.baseline import run_baseline
    from keras_dyconv.experiment import ProtocolSpec, make_folds

    job = JOBS[name]
    spec = ProtocolSpec(**job.protocol)
    t0 = time.time()
    results = run_baseline(utts, feats, make_folds(utts, spec), normalization=normalization)
    fit_s = time.time() - t0
    pooled = results["pooled"]
    print(f"{name} ({normalization}): WA {pooled['wa']:.3f} UA {pooled['ua']:.3f}", flush=True)
    return {
        "job": name,
        "corpus": job.corpus,
        "protocol": {**spec.__dict__, "description": job.description},
        "n_utterances": len(utts),
        "n_speakers": len({u.speaker for u in utts}),
        **results,
        "versions": versions(),
        "measured": measured(),
        "timings": {"features_s": round(features_s, 1), "fit_s": round(fit_s, 1)},
    }


def run_loco(workers: int, cache_dir: Path = CACHE) -> list[dict[str, Any]]:
    """Leave-one-corpus-out over `LOCO_CORPORA` on their common classes, for each of
    `LOCO_NORMALIZATIONS`: one results dict per (held-out corpus, normalisation)."""
    from keras_dyconv.baseline import run_baseline
    from keras_dyconv.egemaps import extract_egemaps
    from keras_dyconv.labels import COMMON_LABELS, corpus_classes, to_common
    from keras_dyconv.protocols import leave_one_corpus_out, namespace_speakers
    from keras_dyconv.results import score_folds

    classes = [c for c in COMMON_LABELS if all(c in corpus_classes(k) for k in LOCO_CORPORA)]
    utts = [
        u
        for corpus in LOCO_CORPORA
        for u in namespace_speakers(to_common(load(corpus), corpus), corpus)
        if u.label in classes
    ]
    corpus_of = [u.extra["corpus"] for u in utts]
    t0 = time.time()
    feats = extract_egemaps([u.path for u in utts], cache_dir=cache_dir, n_jobs=workers)
    features_s = time.time() - t0
    out = []
    for normalization in LOCO_NORMALIZATIONS:
        t1 = time.time()
        results = run_baseline(
            utts,
            feats,
            list(leave_one_corpus_out(utts)),
            labels=classes,
            normalization=normalization,
            corpora=corpus_of,
        )
        fit_s = time.time() - t1
        for record in results["folds"]:
            held = record["fold"].removeprefix("corpus-")
            scores = score_folds([record], classes)
            print(
                f"loco-{held} ({normalization}): WA {scores['pooled']['wa']:.3f} "
                f"UA {scores['pooled']['ua']:.3f}",
                flush=True,
            )
            out.append(
                {
                    "job": f"loco-{held}",
                    "corpus": held,
                    "train_corpora": [c for c in LOCO_CORPORA if c != held],
                    "protocol": {
                        "name": "leave-one-corpus-out",
                        "description": "train on the other corpora, test on this one",
                    },
                    "n_utterances": corpus_of.count(held),
                    "n_speakers": len(record["test_speakers"]),
                    "model": results["model"],
                    "labels": classes,
                    "normalization": normalization,
                    "speaker_independent": True,
                    "folds": [record],
                    **scores,
                    "versions": versions(),
                    "measured": measured(),
                    # Extraction and fits are shared by the held-out corpora: each gets a third.
                    "timings": {
                        "features_s": round(features_s / len(LOCO_CORPORA), 1),
                        "fit_s": round(fit_s / len(LOCO_CORPORA), 1),
                    },
                }
            )
    return out


def pooled_folds(name: str) -> tuple[list, list, Any]:
    """Pooled job `name`'s utterances (every corpus in the common label space, speakers
    namespaced: `multi_corpus(..., POOLED)`), folds and `ProtocolSpec`: made by the same
    calls, on the same input, as `dyser-train --corpus C1 --data D1 ... --target all
    --protocol P` makes them (`keras_dyconv.folds.chosen_folds`, per corpus)."""
    from keras_dyconv.folds import ProtocolSpec, chosen_folds
    from keras_dyconv.multicorpus import POOLED, multi_corpus

    job = POOLED_JOBS[name]
    utts, _ = multi_corpus({c: load(c) for c in job.corpora}, POOLED)
    spec = ProtocolSpec(**job.protocol)
    folds, _ = chosen_folds(utts, spec, None, None, per_corpus=True)
    return utts, folds, spec


def assert_same_test_speakers(records: Sequence[dict], neural: dict, where: str) -> None:
    """Check that fold records (`run_baseline`'s, or any with "fold" and "test_speakers")
    test the same speakers, fold by fold (same fold names), as a neural run's first seed.

    Raises:
        ValueError: naming `where` and the first fold that differs.
    """
    mine, theirs = fold_test_speakers(records), fold_test_speakers(neural["folds"])
    if mine != theirs:
        fold = next(f for f in sorted(mine.keys() | theirs.keys()) if mine.get(f) != theirs.get(f))
        raise ValueError(
            f"{where}: the SVM's folds are not the neural run's: fold {fold} tests "
            f"{mine.get(fold, 'nobody')} here and {theirs.get(fold, 'nobody')} there"
        )


def pooled_neural_runs(neural_dir: Path) -> list[tuple[str, dict]]:
    """(name, results) of the saved pooled neural runs (`dyser-train --target all`):
    docs/results/multicorpus/pooled-*.json."""
    paths = sorted((neural_dir / "multicorpus").glob("pooled-*.json"))
    return [(p.relative_to(neural_dir).as_posix(), json.loads(p.read_text())) for p in paths]


def run_pooled(
    name: str, workers: int, cache_dir: Path = CACHE, neural_dir: Path | None = None
) -> list[dict[str, Any]]:
    """Pooled job `name` (`POOLED_JOBS`) for each of `POOLED_NORMALIZATIONS`: one results
    dict each, with "corpus_scores" (each corpus in its own and the common label set).

    Raises:
        ValueError: a saved pooled neural run of the same protocol
            (docs/results/multicorpus/pooled-*.json under `neural_dir`) tests other
            speakers in some fold than these folds do (checked before any fitting).
    """
    from keras_dyconv.baseline import run_baseline
    from keras_dyconv.egemaps import extract_egemaps

    job = POOLED_JOBS[name]
    utts, folds, spec = pooled_folds(name)
    # Before any fitting: every saved pooled neural run of this protocol tests the same
    # speakers in the same folds, or nothing is measured.
    planned = [
        {"fold": f.name, "test_speakers": sorted({utts[i].speaker for i in f.test})} for f in folds
    ]
    neural = []
    for file, run in pooled_neural_runs(neural_dir or NEURAL):
        if same_protocol(run["protocol"], spec.__dict__):
            assert_same_test_speakers(planned, run, file)
            neural.append(file)
    corpus_of = [u.extra["corpus"] for u in utts]
    t0 = time.time()
    feats = extract_egemaps([u.path for u in utts], cache_dir=cache_dir, n_jobs=workers)
    features_s = time.time() - t0
    out = []
    for normalization in POOLED_NORMALIZATIONS:
        t1 = time.time()
        results = run_baseline(utts, feats, folds, normalization=normalization, corpora=corpus_of)
        fit_s = time.time() - t1
        own = {c: s["own"] for c, s in results["corpus_scores"].items()}
        print(
            f"{name} ({normalization}): "
            + ", ".join(f"{c} WA {o['wa']:.3f} UA {o['ua']:.3f}" for c, o in own.items()),
            flush=True,
        )
        out.append(
            {
                "job": name,
                "corpus": "+".join(job.corpora),
                "corpora": {
                    c: {
                        "utterances": corpus_of.count(c),
                        "speakers": len({u.speaker for u in utts if u.extra["corpus"] == c}),
                    }
                    for c in job.corpora
                },
                "protocol": {
                    **spec.__dict__,
                    "per_corpus": True,
                    "description": job.description,
                },
                "n_utterances": len(utts),
                "n_speakers": len({u.speaker for u in utts}),
                **results,
                # The saved pooled neural runs of the protocol, each checked to test the
                # same speakers in every fold (`assert_same_test_speakers`).
                "neural_same_folds": neural,
                "versions": versions(),
                "measured": measured(),
                "timings": {"features_s": round(features_s, 1), "fit_s": round(fit_s, 1)},
            }
        )
    return out


def save(results: dict[str, Any], results_dir: Path = RESULTS) -> Path:
    """Write one results dict as `<job>-<normalization>.json` (atomically)."""
    return save_json(results_dir / f"{results['job']}-{results['normalization']}.json", results)


def load_results(results_dir: Path = RESULTS) -> list[dict[str, Any]]:
    """Every saved results file, sorted by name."""
    return [json.loads(p.read_text()) for p in sorted(results_dir.glob("*.json"))]


def render(results_dir: Path = RESULTS, neural_dir: Path | None = None) -> str:
    """Read the saved results only, write the "baseline" section, return its body."""
    body = render_body(load_results(results_dir), neural_dir or NEURAL)
    write_section("baseline", TITLE, body)
    return body


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--jobs",
        nargs="+",
        help=f"default: every job whose corpus is present ({[*JOBS, 'loco', *POOLED_JOBS]})",
    )
    parser.add_argument("--workers", type=int, default=2, help="feature extraction processes")
    parser.add_argument("--render-only", action="store_true", help="only re-render the docs")
    parser.add_argument("--results-dir", type=Path, default=RESULTS)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if not args.render_only:
        known = [*JOBS, "loco", *POOLED_JOBS]
        names = args.jobs or [n for n, j in JOBS.items() if (DATASETS / j.corpus).is_dir()]
        if not args.jobs and all((DATASETS / c).is_dir() for c in LOCO_CORPORA):
            names.append("loco")
        if not args.jobs:
            names += [
                n for n, j in POOLED_JOBS.items() if all((DATASETS / c).is_dir() for c in j.corpora)
            ]
        unknown = set(names) - set(known)
        if unknown:
            raise SystemExit(f"unknown jobs {sorted(unknown)}; expected some of {known}")
        for name in names:
            if name == "loco":
                runs = run_loco(args.workers)
            elif name in POOLED_JOBS:
                runs = run_pooled(name, args.workers)
            else:
                runs = run_job(name, args.workers)
            for results in runs:
                print(f"  -> {save(results, args.results_dir)}")
    print(render(args.results_dir))


if __name__ == "__main__":
    main()
