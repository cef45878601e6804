"""Multi-corpus runs against the single-corpus default and the eGeMAPS+SVM, fold by fold.

Renders the "multicorpus" section of docs/benchmarks.md from the saved `dyser-train`
results of multi-corpus runs in docs/results/multicorpus/ (nothing is trained here; the
runs are made with `dyser-train --corpus ... --corpus ... --target T`, see the section's
command line). Each run's target corpus is scored in its own label set
(`keras_dyconv.labels.score_both` "own": the arg-max over the target's classes, as the
single-corpus model has only those), per fold and pooled, next to:

* the single-corpus default recipe on the same folds: docs/results/<target>-loso-default.json
  (where saved);
* the eGeMAPS+SVM on the same folds: docs/results/baseline/<target>-loso-none.json
  (`bench/bench_baseline.py`).

Pooled intervals: `keras_dyconv.metrics.bootstrap_ci` over utterances; paired differences:
`bench_ablation.paired_delta` (mean per-fold difference, bootstrap over folds).

    python bench/bench_multicorpus.py            # rewrite the section
    python bench/bench_multicorpus.py --no-write # print it
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]  # this checkout's code
from _report import markdown_table, write_section  # noqa: E402
from bench_ablation import paired_delta  # noqa: E402

from keras_dyconv.labels import score_both  # noqa: E402
from keras_dyconv.metrics import bootstrap_ci  # noqa: E402

NAME, TITLE = "multicorpus", "Multi-corpus training: extra corpora, pretrain then fine-tune"
RUNS = ROOT / "docs" / "results" / "multicorpus"
NEURAL = ROOT / "docs" / "results"
SVM = NEURAL / "baseline"


def own_scores(run: dict[str, Any]) -> list[dict[str, Any]]:
    """The run's target corpus in its own label set, per fold: records (fold, seed,
    metrics) as `paired_delta` reads them."""
    corpus, labels = run["target_corpus"], run["labels"]
    folds = []
    for r in run["folds"]:
        preds = [p for p in r["predictions"] if p["corpus"] == corpus]
        probabilities = [p["probabilities"] for p in preds]
        true = [p["original_label"] for p in preds]
        own = score_both(probabilities, labels, true, corpus)["own"]
        folds.append({"fold": r["fold"], "seed": r["seed"], "metrics": own})
    return folds


def pct(x: float) -> str:
    return f"{100 * x:.1f}"


def _confusion(folds: Sequence[dict[str, Any]]) -> np.ndarray:
    """The confusion matrix (rows: true class) pooled over fold records."""
    return sum(np.asarray(f["metrics"]["confusion"], dtype=np.int64) for f in folds)


def _pooled(folds: Sequence[dict[str, Any]]) -> tuple[float, float]:
    """Pooled (WA, UA) over fold records, from their confusion matrices."""
    cm = _confusion(folds).astype(np.float64)
    seen = cm.sum(1) > 0
    return float(np.trace(cm) / cm.sum()), float((np.diag(cm)[seen] / cm.sum(1)[seen]).mean())


def _pooled_ci(folds: Sequence[dict[str, Any]], metric: str) -> tuple[float, float]:
    """`bootstrap_ci` of `metric` over the pooled utterances (rebuilt from the confusion)."""
    cm = _confusion(folds)
    true = np.repeat(np.arange(cm.shape[0]), cm.sum(1))
    pred = np.concatenate([np.repeat(np.arange(cm.shape[1]), row) for row in cm])
    return bootstrap_ci(true, pred, metric)


def _delta(run: dict, base: dict, metric: str) -> str:
    d, lo, hi = paired_delta(run, base, metric)
    return f"{100 * d:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}]"


def run_table(name: str, run: dict[str, Any]) -> str:
    """One saved run: per fold and pooled, against the single-corpus default and the SVM."""
    target = run["target_corpus"]
    own = {"folds": own_scores(run)}
    single_path = NEURAL / f"{target}-loso-default.json"
    single = json.loads(single_path.read_text()) if single_path.exists() else None
    svm_path = SVM / f"{target}-loso-none.json"
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
    wa, ua = _pooled(own["folds"])
    ci = {m: _pooled_ci(own["folds"], m) for m in ("wa", "ua")}
    pooled = [f"{pct(wa)} / {pct(ua)}"]
    for ref, ref_f in ((single, single_f), (svm, svm_f)):
        same = [{"metrics": ref_f[f["fold"]]} for f in own["folds"] if f["fold"] in ref_f]
        pooled.append("-" if ref is None or not same else " / ".join(map(pct, _pooled(same))))
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


def render(runs_dir: Path = RUNS) -> str:
    """The section body from every saved run in `runs_dir`."""
    paths = sorted(runs_dir.glob("*.json"))
    if not paths:
        return "No multi-corpus run saved yet."
    return "\n\n".join(run_table(p.stem, json.loads(p.read_text())) for p in paths)


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
