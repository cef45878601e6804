"""Multi-corpus runs against the single-corpus default and the eGeMAPS+SVM.

Renders the "multicorpus" section of docs/benchmarks.md from the saved `dyser-train`
results.json of multi-corpus runs in docs/results/multicorpus/ (nothing is trained here).
What a file is comes from its content (`run_kind`), not its name:

* **Target runs** (`dyser-train --corpus ... --corpus ... --target T`: folds on corpus T,
  the other corpora extra training data). T is scored in its own label set
  (`keras_dyconv.labels.score_both` "own": the arg-max over T's classes, as the
  single-corpus model has only those), per fold and pooled, next to the single-corpus
  default recipe on the same folds (docs/results/<T>-loso-default.json, where saved) and
  the eGeMAPS+SVM on the same folds (docs/results/baseline/<T>-loso-none.json,
  `bench/bench_baseline.py`). Pooled intervals: `keras_dyconv.metrics.bootstrap_ci` over
  utterances; paired differences: `bench_ablation.paired_delta` (mean per-fold
  difference, bootstrap over folds). Name: ``<T>-<protocol>-<variant>.json``, e.g.
  ``emodb-loso-pretrain.json``.
* **Leave-one-corpus-out runs** (`dyser-train --corpus emodb --data D1 --corpus casia
  --data D2 --corpus ravdess --data D3 --protocol loco --seed S --out X`): one row per
  held-out corpus, WA / UA in the classes every corpus shares, with 95% bootstrap
  intervals over the held-out utterances (several seeds: the seeds' mean, every seed
  scored on the same resample, and each seed's UA), next to the eGeMAPS+SVM trained and
  tested on the same corpora (docs/results/baseline/loco-<corpus>-corpus.json, features
  z-normalised per corpus, and loco-<corpus>-speaker.json, per speaker; with the paired
  neural-minus-SVM UA where both tested the same utterances), chance level, and the
  issue's target: UA >= 50 on each held-out corpus and above the SVMs saved. A recipe
  variant (e.g. ``--normalization stream --stream-training online``) is named in the
  caption by every field it changes; a stream run's caption says its scores are online
  and gives each corpus's WA / UA on each clip alone and with each test speaker's own
  statistics, where the run saved those. A last column pairs each held-out corpus's UA
  with the default-recipe LOCO run's (`multicorpus_scores.default_reference`, e.g.
  ``loco-seed0.json``; never the run itself, so a default-recipe run has it only beside
  another one) on the same utterances (paired bootstrap over them), where that run
  tested them. Name: ``loco-seed<S>.json``, one file per seed
  (``loco-<variant>-seed<S>.json`` for a recipe variant), or ``loco.json`` for a run with
  several ``--seed``.
* **Pooled runs** (`dyser-train --corpus ... --corpus ... --target all --protocol P`:
  every corpus trained and tested at once, folds on their union; every corpus's role
  "pooled"): one row per corpus from the run's "corpus_scores", WA / UA in its own label
  set and in the common one with their recorded 95% bootstrap intervals (all folds and
  seeds pooled), each seed's own UA, the seed ensemble's own UA (several seeds: each
  fold's seeds' class probabilities averaged, "corpus_scores" "ensemble") and its paired
  difference from the seeds' mean on the same utterances, next to the eGeMAPS+SVM pooled
  on exactly the same folds (docs/results/baseline/pooled-<job>-<corpus|speaker>.json with
  the same labels and the same test speakers in every fold, features z-normalised per
  corpus or per speaker), in the corpus's own label set, with the paired neural-minus-SVM
  UA on the same utterances (seeds averaged; bootstrap over the utterances), where saved.
  The caption names a recipe variant and a stream run's scores as for LOCO runs, and a
  last column pairs each corpus's own UA with the default-recipe pooled run's on the same
  folds (`multicorpus_scores.default_reference`, by the same rule as for LOCO runs). Name:
  ``pooled-<protocol>-seed<S>.json`` (or ``pooled-<protocol>.json`` for several ``--seed``).
  A pooled run of protocol "all" (one model, no test folds) is refused: nothing to score.

Files whose names differ only in a ``-seed<N>`` suffix are the seeds of one run: they
are merged (`keras_dyconv.results.merge_results`, which refuses runs that differ in
labels, recipe or, for stream runs, the order of the online streams) into one table named
without the suffix.

    python bench/bench_multicorpus.py            # rewrite the section
    python bench/bench_multicorpus.py --no-write # print it
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]  # this checkout's code
import multicorpus_scores  # noqa: E402
from _report import markdown_table, write_section  # noqa: E402
from bench_ablation import paired_delta  # noqa: E402
from multicorpus_loco import loco_table  # noqa: E402
from multicorpus_pooled import pooled_table  # noqa: E402
from multicorpus_scores import (  # noqa: E402
    default_reference,
    own_scores,
    pct,
    pooled_ci,
    pooled_wa_ua,
    signed_interval,
)

from keras_dyconv.results import merge_results  # noqa: E402

NAME = "multicorpus"
TITLE = "Multi-corpus training: extra corpora, leave one corpus out, pooled"
RUNS = ROOT / "docs" / "results" / "multicorpus"
NEURAL = ROOT / "docs" / "results"


def _delta(run: dict, base: dict, metric: str) -> str:
    d, lo, hi = paired_delta(run, base, metric)
    return signed_interval(d, (lo, hi))


def run_table(name: str, run: dict[str, Any]) -> str:
    """One saved run: per fold and pooled, against the single-corpus default and the SVM."""
    target = run["target_corpus"]
    own = {"folds": own_scores(run)}
    single_path = NEURAL / f"{target}-loso-default.json"
    single = json.loads(single_path.read_text()) if single_path.exists() else None
    svm_path = multicorpus_scores.SVM / f"{target}-loso-none.json"
    svm = json.loads(svm_path.read_text()) if svm_path.exists() else None

    def by_fold(ref: dict | None) -> dict[str, dict]:
        return {} if ref is None else {r["fold"]: r["metrics"] for r in ref["folds"]}

    single_f, svm_f = by_fold(single), by_fold(svm)
    rows = []
    for f, r in zip(own["folds"], run["folds"], strict=True):
        m = f["metrics"]
        s, v = single_f.get(f["fold"]), svm_f.get(f["fold"])
        rows.append(
            [
                f["fold"],
                f"{pct(m['wa'])} / {pct(m['ua'])}",
                "-" if s is None else f"{pct(s['wa'])} / {pct(s['ua'])}",
                "-" if v is None else f"{pct(v['wa'])} / {pct(v['ua'])}",
                f"{r['seconds']:.0f}",
                str(r["best_epoch"]),
            ]
        )
    wa, ua = pooled_wa_ua(own["folds"])
    ci = {m: pooled_ci(own["folds"], m) for m in ("wa", "ua")}
    pooled = [f"{pct(wa)} / {pct(ua)}"]
    for ref, ref_f in ((single, single_f), (svm, svm_f)):
        same = [{"metrics": ref_f[f["fold"]]} for f in own["folds"] if f["fold"] in ref_f]
        pooled.append("-" if ref is None or not same else " / ".join(map(pct, pooled_wa_ua(same))))
    rows.append(["**pooled**", *[f"**{p}**" for p in pooled], "", ""])
    text = [
        f"**{name}**: target {target}, extra corpora "
        + ", ".join(c for c, e in run["corpora"].items() if e["role"] != "target")
        + f", seeds {run['seeds']}, recipe `{run['recipe']['name']}`"
        + (" with `--pretrain-extra`" if run["recipe"].get("pretrain_extra") else "")
        + ". WA / UA (%) in the target's own label set.",
        markdown_table(
            [
                "fold",
                "multi-corpus",
                "single-corpus default",
                "eGeMAPS+SVM",
                "fold s",
                "best epoch",
            ],
            rows,
        ),
        f"Pooled 95% intervals (bootstrap over utterances): WA {pct(ci['wa'][0])}-"
        f"{pct(ci['wa'][1])}, UA {pct(ci['ua'][0])}-{pct(ci['ua'][1])}. In the common label "
        f"space (arg-max over all {len(run['labels'])} classes): WA {pct(run['pooled']['wa'])} "
        f"/ UA {pct(run['pooled']['ua'])}.",
    ]
    paired = []
    for label, ref in (("single-corpus default", single), ("eGeMAPS+SVM", svm)):
        if ref is not None:
            base = {"folds": [{**r, "seed": s} for s in run["seeds"] for r in ref["folds"]]}
            paired.append(f"{label}: WA {_delta(own, base, 'wa')}, UA {_delta(own, base, 'ua')}")
    if paired:
        text.append(
            "Paired per-fold differences (multi-corpus minus reference, mean [95% bootstrap "
            "over folds]): " + "; ".join(paired) + "."
        )
    text.append(timing_line(run))
    return "\n\n".join(text)


def timing_line(run: dict[str, Any]) -> str:
    """Wall times: the pretraining (per seed) and the folds, as each was measured."""
    folds = [r["seconds"] for r in run["folds"]]
    line = (
        f"Wall time (2 shared CPU cores): folds {sum(folds) / 60:.1f} min in all "
        f"({min(folds):.0f}-{max(folds):.0f} s each)"
    )
    pre = run.get("pretraining")
    if pre:
        parts = [
            f"seed {s}: {p['seconds'] / 60:.1f} min on {p['n_train']} utterances of "
            f"{len(p['train_speakers'])} speakers (validation {p['n_val']} of "
            f"{len(p['val_speakers'])}), best epoch {p['best_epoch']} of {p['epochs_run']}"
            for s, p in pre["seeds"].items()
        ]
        total = sum(folds) + sum(p["seconds"] for p in pre["seeds"].values())
        line += f"; pretraining {'; '.join(parts)}; in one process: {total / 60:.1f} min"
    return line + "."


def run_kind(run: dict[str, Any]) -> str:
    """What a saved results.json is, from its content: "pooled" (every corpus's role
    "pooled": `dyser-train --target all`), "target" (folds on one target corpus, the other
    corpora extra training data) or "loco" (protocol loco)."""
    if {c["role"] for c in run["corpora"].values()} == {"pooled"}:
        if not run.get("folds"):
            raise ValueError("a pooled run without test folds (protocol 'all'?): nothing to score")
        return "pooled"
    if run.get("target_corpus"):
        return "target"
    if run["protocol"]["name"] == "loco":
        return "loco"
    raise ValueError(
        f"neither a pooled, a target-corpus nor a leave-one-corpus-out run (protocol "
        f"{run['protocol']['name']!r}, target_corpus {run.get('target_corpus')!r})"
    )


def load_runs(runs_dir: Path = RUNS) -> list[tuple[str, dict[str, Any]]]:
    """(name, results) of every saved run in `runs_dir`, in file-name order. Files whose
    names differ only in a ``-seed<N>`` suffix (``loco-seed0.json``, ``loco-seed1.json``)
    are the seeds of one run: merged (`keras_dyconv.results.merge_results`, which refuses
    runs that differ in labels, recipe or online order) and named without the suffix
    (``loco``)."""
    groups: dict[str, list[Path]] = {}
    for path in sorted(runs_dir.glob("*.json")):
        groups.setdefault(re.sub(r"-seed\d+$", "", path.stem), []).append(path)
    runs = []
    for name, paths in groups.items():
        parts = [json.loads(p.read_text()) for p in paths]
        try:
            runs.append((name, parts[0] if len(parts) == 1 else merge_results(parts)))
        except ValueError as e:
            raise ValueError(f"{', '.join(map(str, paths))}: {e}") from None
    return runs


def render(runs_dir: Path = RUNS) -> str:
    """The section body from every saved run in `runs_dir` (each as `run_kind` says; a
    pooled or leave-one-corpus-out run with its `default_reference`, where saved)."""
    runs = load_runs(runs_dir)
    if not runs:
        return "No multi-corpus run saved yet."
    sections = []
    for name, run in runs:
        try:
            kind = run_kind(run)
        except ValueError as e:
            raise ValueError(f"{runs_dir / name}[-seed<N>].json: {e}") from None
        if kind == "target":
            sections.append(run_table(name, run))
        else:
            table = pooled_table if kind == "pooled" else loco_table
            sections.append(table(name, run, default_reference(name, run, runs)))
    return "\n\n".join(sections)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=Path, default=RUNS)
    parser.add_argument("--no-write", action="store_true", help="print the section only")
    args = parser.parse_args(argv)
    body = render(args.runs)
    if args.no_write:
        print(body)
    else:
        write_section(NAME, TITLE, body)


if __name__ == "__main__":
    main()
