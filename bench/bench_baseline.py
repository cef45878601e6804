"""Classical floor: openSMILE eGeMAPS functionals + a linear SVM on every shared corpus.

    python bench/bench_baseline.py                   # every job whose corpus is present
    python bench/bench_baseline.py --jobs emodb-loso emodb-stratified
    python bench/bench_baseline.py --jobs loco       # leave-one-corpus-out only
    python bench/bench_baseline.py --render-only     # re-render docs from the saved JSON

Each job is a corpus under a protocol, on exactly the folds `dyser-train` uses
(`keras_dyconv.experiment.make_folds`), run with two feature normalisations: "none" (the
training-set scaler only) and "speaker" (each speaker z-scored by their own statistics).
Leave-one-corpus-out jobs train on the other corpora's common classes and test on the
held-out one, each corpus z-scored on its own ("corpus"), and also per speaker.
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
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]  # this checkout's code (see bench_training)
from _report import markdown_table, write_section  # noqa: E402

#: The shared corpora (override with DYSER_DATASETS, e.g. from a git worktree elsewhere).
DATASETS = Path(os.environ.get("DYSER_DATASETS", ROOT.parent / "shared" / "datasets"))
RESULTS = ROOT / "docs" / "results" / "baseline"
NEURAL = ROOT / "docs" / "results"
CACHE = ROOT / "runs" / "cache"
#: The 3-seed run of today's default recipe (the ablation variant that became the default).
NEURAL_DEFAULT_3SEEDS = NEURAL / "ablation" / "dataset-norm+time-pool16.json"

#: The seed paper's reported WA (%) per corpus; it does not state its folds.
PAPER = {"emodb": 89.29, "casia": 59.08, "iemocap": 71.25}
CORPUS_NAMES = {"emodb": "EmoDB", "casia": "CASIA", "ravdess": "RAVDESS", "iemocap": "IEMOCAP"}


@dataclass(frozen=True)
class Job:
    """One corpus under one protocol (a `ProtocolSpec`'s fields), in the table's words."""

    corpus: str
    protocol: dict[str, Any]
    description: str


JOBS: dict[str, Job] = {
    "emodb-loso": Job("emodb", {"name": "loso"}, "leave-one-speaker-out"),
    "emodb-stratified": Job(
        "emodb", {"name": "stratified", "k": 10}, "stratified 10-fold (speaker-dependent)"
    ),
    "casia-loso": Job("casia", {"name": "loso"}, "leave-one-speaker-out"),
    "casia-stratified": Job(
        "casia", {"name": "stratified", "k": 10}, "stratified 10-fold (speaker-dependent)"
    ),
    "ravdess-group6": Job(
        "ravdess", {"name": "group-kfold", "k": 6}, "6 folds of 4 actors (speaker groups)"
    ),
}
NORMALIZATIONS = ("none", "speaker")
#: Leave-one-corpus-out ("loco" in --jobs): these corpora, on the classes all of them have.
LOCO_CORPORA = ("emodb", "casia", "ravdess")
LOCO_NORMALIZATIONS = ("corpus", "speaker")


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


def same_folds(records: Sequence[dict], neural: dict) -> bool:
    """Whether a neural run tested the same files in the same folds (by file name)."""

    def test_sets(recs):
        return {
            r["fold"]: sorted(Path(p["path"]).name for p in r["predictions"])
            for r in recs
            if r.get("seed", 0) == min(x.get("seed", 0) for x in recs)
        }

    return test_sets(records) == test_sets(neural["folds"])


def run_job(name: str, workers: int, cache_dir: Path = CACHE) -> list[dict[str, Any]]:
    """Every normalisation of job `name`: one results dict each (not yet saved)."""
    from keras_dyconv.baseline import extract_egemaps

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
    neural_dir: Path | None = None,
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
        "neural_same_folds": {
            file: same_folds(results["folds"], other)
            for file, other in neural_runs(job.corpus, neural_dir or NEURAL)
            if _same_protocol(other["protocol"], spec.__dict__)
        },
        "versions": versions(),
        "measured": measured(),
        "timings": {"features_s": round(features_s, 1), "fit_s": round(fit_s, 1)},
    }


def run_loco(workers: int, cache_dir: Path = CACHE) -> list[dict[str, Any]]:
    """Leave-one-corpus-out over `LOCO_CORPORA` on their common classes, for each of
    `LOCO_NORMALIZATIONS`: one results dict per (held-out corpus, normalisation)."""
    from keras_dyconv.baseline import extract_egemaps, run_baseline
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


def _same_protocol(a: dict, b: dict) -> bool:
    keys = ("name", "k", "seed") if a["name"] == "stratified" else ("name",)
    if a["name"] == "group-kfold":
        keys = ("name", "k")
    return all(a.get(k) == b.get(k) for k in keys)


def save(results: dict[str, Any], results_dir: Path = RESULTS) -> Path:
    """Write one results dict as `<job>-<normalization>.json` (atomically)."""
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / f"{results['job']}-{results['normalization']}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=1))
    os.replace(tmp, path)
    return path


def load_results(results_dir: Path = RESULTS) -> list[dict[str, Any]]:
    """Every saved results file, sorted by name."""
    return [json.loads(p.read_text()) for p in sorted(results_dir.glob("*.json"))]


# ----------------------------------------------------------------------------------- rendering


def pct(x: float) -> str:
    return f"{100 * x:.1f}"


def with_ci(results: dict[str, Any], metric: str) -> str:
    lo, hi = results["pooled_ci95"][metric]
    return f"{pct(results['pooled'][metric])} [{pct(lo)}, {pct(hi)}]"


def _job_order(name: str) -> tuple[int, str]:
    names = list(JOBS)
    return (names.index(name) if name in names else len(names), name)


def _chosen_c(results: dict[str, Any]) -> str:
    cs = sorted({f"{r['c']:g}" for r in results["folds"]}, key=float)
    return ", ".join(cs)


def render_body(runs: Sequence[dict[str, Any]], neural_dir: Path = NEURAL) -> str:
    """The section's Markdown from saved results (and the neural runs in `neural_dir`)."""
    by_job: dict[str, dict[str, dict]] = {}
    for r in runs:
        by_job.setdefault(r["job"], {})[r["normalization"]] = r
    single = sorted((j for j in by_job if not j.startswith("loco-")), key=_job_order)
    order = [f"loco-{c}" for c in LOCO_CORPORA]
    loco = sorted(
        (j for j in by_job if j.startswith("loco-")),
        key=lambda j: (order.index(j) if j in order else len(order), j),
    )
    parts = [
        "`bench/bench_baseline.py`: openSMILE eGeMAPSv02 functionals (88 per utterance) + a "
        "linear SVM (scikit-learn `SVC(kernel='linear', class_weight='balanced')` after a "
        "`StandardScaler` fitted on the training part), on exactly the folds `dyser-train` "
        "uses (`make_folds`; the neural validation speakers are training speakers here). C is "
        "chosen from 0.001, 0.01, 0.1, 1, 10 by an inner cross-validation over the training "
        "part only, grouped by speaker (up to 5 folds), scored by UA. The speaker-norm. "
        "columns z-score each speaker's features by that speaker's own statistics over all of "
        "their utterances: transductive for a test speaker (a device has to hear a new voice "
        "first), like the neural per-speaker reference. WA/UA pool every fold's predictions; "
        "95% bootstrap intervals over utterances (optimistic: they ignore speaker-level "
        "variance). Raw per-fold results: `docs/results/baseline/`."
    ]
    if single:
        header = [
            "corpus",
            "protocol",
            "speaker-indep.",
            "folds",
            "utterances / classes",
            "WA [95% CI]",
            "UA [95% CI]",
            "speaker-norm. WA [95% CI]",
            "speaker-norm. UA [95% CI]",
            "C chosen (none / speaker)",
        ]
        rows = []
        for name in single:
            runs_of = by_job[name]
            first = next(iter(runs_of.values()))
            cells = []
            for norm in NORMALIZATIONS:
                r = runs_of.get(norm)
                cells += [with_ci(r, "wa"), with_ci(r, "ua")] if r else ["—", "—"]
            chosen = [_chosen_c(runs_of[n]) if n in runs_of else "—" for n in NORMALIZATIONS]
            rows.append(
                [
                    CORPUS_NAMES.get(first["corpus"], first["corpus"]),
                    first["protocol"]["description"],
                    "yes" if first["speaker_independent"] else "no",
                    first["folds_run"],
                    f"{first['n_utterances']} / {len(first['labels'])}",
                    *cells,
                    " / ".join(chosen),
                ]
            )
        parts.append(markdown_table(header, rows))
        parts.append(paper_table(by_job, single, neural_dir))
    if loco:
        parts.append(loco_table(by_job, loco))
    parts.append(measured_line(runs))
    return "\n\n".join(parts)


def neural_runs(corpus: str, neural_dir: Path = NEURAL) -> list[tuple[str, dict]]:
    """(name, results) of the saved neural runs on `corpus`: `<corpus>-*.json`, and for
    EmoDB the 3-seed run of today's default recipe (`ablation/...`)."""
    paths = sorted(neural_dir.glob(f"{corpus}-*.json"))
    three = neural_dir / "ablation" / NEURAL_DEFAULT_3SEEDS.name
    if corpus == "emodb" and three.exists():
        paths.append(three)
    return [(p.relative_to(neural_dir).as_posix(), json.loads(p.read_text())) for p in paths]


def paired_vs_svm(neural: dict[str, Any], svm: dict[str, Any]) -> str:
    """Neural minus SVM UA: mean per-fold difference with a 95% bootstrap interval over
    folds (`bench_ablation.paired_delta`; each fold's seeds averaged first). The SVM is
    deterministic, so its folds stand for every seed of the neural run."""
    from bench_ablation import paired_delta

    seeds = sorted({r["seed"] for r in neural["folds"]})
    svm_any_seed = {"folds": [{**r, "seed": s} for s in seeds for r in svm["folds"]]}
    delta, lo, hi = paired_delta(neural, svm_any_seed, "ua")
    return f"{100 * delta:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}]"


def paper_table(by_job: dict[str, dict[str, dict]], single: Sequence[str], neural_dir: Path) -> str:
    """The seed paper's rows next to the neural runs and the SVM, protocol by protocol."""
    header = [
        "corpus",
        "protocol",
        "model",
        "folds x seeds",
        "WA [95% CI]",
        "UA [95% CI]",
        "paired ΔUA vs eGeMAPS + SVM [95% CI]",
    ]
    rows = []
    corpus_of = {j: next(iter(by_job[j].values()))["corpus"] for j in single}
    corpora = list(dict.fromkeys(corpus_of.values()))
    for corpus in [*corpora, *(c for c in PAPER if c not in corpora)]:
        name = CORPUS_NAMES.get(corpus, corpus)
        if corpus in PAPER:
            protocol = "not stated (likely stratified 10-fold, speaker-dependent)"
            model = "seed paper (DyCNN + Bi-LSTM)"
            rows.append([name, protocol, model, "—", f"{PAPER[corpus]:.2f}", "—", "—"])
        for job in (j for j in single if corpus_of[j] == corpus):
            runs_of = by_job[job]
            first = next(iter(runs_of.values()))
            for file, r in neural_runs(corpus, neural_dir):
                if not _same_protocol(r["protocol"], first["protocol"]):
                    continue
                same = first.get("neural_same_folds", {}).get(file)
                recipe = r["recipe"]["name"]
                if file.startswith("ablation/"):
                    recipe = f"default today ({recipe})"
                rows.append(
                    [
                        name,
                        first["protocol"]["description"],
                        f"ours, neural: {recipe} recipe" + (" (same folds)" if same else ""),
                        f"{r['folds_run']} x {len(r['seeds'])}",
                        with_ci(r, "wa"),
                        with_ci(r, "ua"),
                        paired_vs_svm(r, runs_of["none"]) if same and "none" in runs_of else "—",
                    ]
                )
            for norm in NORMALIZATIONS:
                if norm not in runs_of:
                    continue
                r = runs_of[norm]
                model = "eGeMAPS + linear SVM" + (" (speaker-norm.)" if norm == "speaker" else "")
                delta = paired_vs_svm(r, runs_of["none"]) if norm != "none" else "—"
                rows.append(
                    [
                        name,
                        r["protocol"]["description"],
                        model,
                        f"{r['folds_run']} x 1",
                        with_ci(r, "wa"),
                        with_ci(r, "ua"),
                        delta if "none" in runs_of else "—",
                    ]
                )
        if corpus == "iemocap":
            rows.append([name, "—", "ours", "—", "not available here", "—", "—"])
    intro = (
        "**The paper's table, reproduced.** The seed paper reports WA only and does not state "
        "its folds; a stratified split over utterances (speaker-dependent) is the likely one. "
        "Ours on that protocol and on the speaker-independent ones; neural rows are read from "
        '`docs/results/` (not re-trained), "same folds" when their test sets match the SVM\'s '
        "fold by fold. The paired Δ is the mean per-fold UA difference from the SVM without "
        "speaker normalisation on the same folds (a neural run's seeds averaged per fold), "
        "with a bootstrap interval over folds."
    )
    return intro + "\n\n" + markdown_table(header, rows)


def loco_table(by_job: dict[str, dict[str, dict]], loco: Sequence[str]) -> str:
    """Leave-one-corpus-out: train on the other corpora, test on the held-out one."""
    header = [
        "held-out corpus",
        "trained on",
        "classes",
        "test utterances",
        "WA [95% CI]",
        "UA [95% CI]",
        "speaker-norm. WA [95% CI]",
        "speaker-norm. UA [95% CI]",
    ]
    rows = []
    for job in loco:
        runs_of = by_job[job]
        first = next(iter(runs_of.values()))
        cells = []
        for norm in LOCO_NORMALIZATIONS:
            r = runs_of.get(norm)
            cells += [with_ci(r, "wa"), with_ci(r, "ua")] if r else ["—", "—"]
        rows.append(
            [
                CORPUS_NAMES.get(first["corpus"], first["corpus"]),
                ", ".join(CORPUS_NAMES.get(c, c) for c in first["train_corpora"]),
                ", ".join(first["labels"]),
                first["pooled"]["n"],
                *cells,
            ]
        )
    intro = (
        "**Leave-one-corpus-out** on the classes every corpus has (common label space): train "
        "on the other corpora, test on the held-out one. WA/UA: each corpus z-scored by its "
        "own statistics (the held-out corpus's from its unlabelled audio); speaker-norm.: each "
        "speaker z-scored instead. C chosen by inner CV grouped by speaker over the training "
        "corpora."
    )
    return intro + "\n\n" + markdown_table(header, rows)


def measured_line(runs: Sequence[dict[str, Any]]) -> str:
    if not runs:
        return "No results saved yet."
    dates = sorted({r["measured"]["date"] for r in runs})
    m = runs[0]["measured"]
    v = runs[0]["versions"]
    features = sum(r["timings"]["features_s"] for r in runs if r["normalization"] != "speaker")
    fits = sum(r["timings"]["fit_s"] for r in runs)
    return (
        f"Measured {' to '.join([dates[0], dates[-1]] if len(dates) > 1 else dates)} on "
        f"{m['machine']} ({m['cores']} cores), Python {m['python']}, scikit-learn "
        f"{v['scikit-learn']}, opensmile {v['opensmile']}. Feature extraction "
        f"{features / 60:.1f} min (2 workers; cached reruns take seconds), SVM fits "
        f"{fits / 60:.1f} min in all."
    )


def render(results_dir: Path = RESULTS, neural_dir: Path | None = None) -> str:
    """Read the saved results only, write the "baseline" section, return its body."""
    body = render_body(load_results(results_dir), neural_dir or NEURAL)
    write_section("baseline", "Classical floor: eGeMAPS + linear SVM, and the paper's table", body)
    return body


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--jobs",
        nargs="+",
        help=f"default: every job whose corpus is present ({[*JOBS, 'loco']})",
    )
    parser.add_argument("--workers", type=int, default=2, help="feature extraction processes")
    parser.add_argument("--render-only", action="store_true", help="only re-render the docs")
    parser.add_argument("--results-dir", type=Path, default=RESULTS)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if not args.render_only:
        names = args.jobs or [n for n, j in JOBS.items() if (DATASETS / j.corpus).is_dir()]
        if not args.jobs and all((DATASETS / c).is_dir() for c in LOCO_CORPORA):
            names.append("loco")
        unknown = set(names) - {*JOBS, "loco"}
        if unknown:
            raise SystemExit(f"unknown jobs {sorted(unknown)}; expected some of {[*JOBS, 'loco']}")
        for name in names:
            runs = run_loco(args.workers) if name == "loco" else run_job(name, args.workers)
            for results in runs:
                print(f"  -> {save(results, args.results_dir)}")
    print(render(args.results_dir))


if __name__ == "__main__":
    main()
