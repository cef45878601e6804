"""The leave-one-corpus-out tables of `bench_multicorpus.py`: one row per held-out corpus
of a saved `dyser-train --protocol loco` results.json (nothing is trained here), next to the
eGeMAPS+SVM trained on the same corpora (`multicorpus_scores.SVM`, `bench/bench_baseline.py`)
and the default-recipe run on the same utterances, where one other than the run itself is
saved (`multicorpus_scores.default_reference`); see `bench_multicorpus` for how the file is
named.
"""

from __future__ import annotations

import json
from typing import Any

import multicorpus_scores
import numpy as np
from _report import markdown_table, verdict
from multicorpus_scores import (
    METRICS,
    SVM_NORMS,
    interval,
    joint_ci,
    label_indices,
    paired_ua,
    pct,
    recipe_text,
    seed_mean,
    signed_interval,
    speaker_norm_text,
    utterance_key,
)

from keras_dyconv.metrics import unweighted_accuracy, weighted_accuracy


def held_out(
    run: dict[str, Any], corpus: str
) -> tuple[list[str], np.ndarray, dict[int, np.ndarray]]:
    """A leave-one-corpus-out run's predictions on held-out `corpus` (fold
    ``corpus-<corpus>``), in the common classes: (paths, true class indices (n,), {seed:
    predicted class indices (n,)}), every seed's aligned to the same utterances."""
    labels = run["labels"]
    records = [r for r in run["folds"] if r["fold"] == f"corpus-{corpus}"]
    if not records:
        raise ValueError(f"no fold 'corpus-{corpus}' in the run (folds run: {run['folds_run']})")
    first = records[0]["predictions"]
    paths = [p["path"] for p in first]
    true = label_indices(labels, [p["label"] for p in first], f"corpus-{corpus}")
    preds = {}
    for r in records:
        by_path = {p["path"]: p["predicted"] for p in r["predictions"]}
        if sorted(by_path) != sorted(paths):
            raise ValueError(f"corpus-{corpus}: seed {r['seed']} tested other utterances")
        where = f"corpus-{corpus} seed {r['seed']}"
        preds[r["seed"]] = label_indices(labels, [by_path[p] for p in paths], where)
    return paths, true, preds


def _svm_loco(corpus: str, normalization: str) -> dict[str, Any] | None:
    """The eGeMAPS+SVM LOCO run testing on `corpus` (docs/results/baseline/
    loco-<corpus>-<normalization>.json), None if not saved."""
    path = multicorpus_scores.SVM / f"loco-{corpus}-{normalization}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _svm_summary(svm: dict[str, Any]) -> str:
    """A saved eGeMAPS+SVM run's pooled "WA / UA [95%]" (%)."""
    pooled = svm["pooled"]
    return f"{pct(pooled['wa'])} / {interval(pooled['ua'], svm['pooled_ci95']['ua'])}"


def _svm_cell(
    run: dict[str, Any],
    corpus: str,
    norm: str,
    paths: list[str],
    true: np.ndarray,
    preds: dict[int, np.ndarray],
) -> tuple[str, float | None]:
    """The eGeMAPS+SVM cell of held-out `corpus` (features normalised per `norm`) and its
    UA; ("-", None) where it is not saved or was trained on other corpora or classes.
    Tested on the same utterances: neural minus SVM UA, paired bootstrap."""
    svm, labels = _svm_loco(corpus, norm), run["labels"]
    trained = sorted(c for c in run["corpora"] if c != corpus)
    if svm is None or svm["labels"] != labels or sorted(svm["train_corpora"]) != trained:
        return "-", None
    cell = _svm_summary(svm)
    (fold,) = svm["folds"]
    by_key = {utterance_key(p["path"]): p["predicted"] for p in fold["predictions"]}
    keys = [utterance_key(p) for p in paths]
    if len(by_key) == len(fold["predictions"]) and sorted(by_key) == sorted(keys):
        s = label_indices(labels, [by_key[k] for k in keys], f"loco-{corpus}-{norm}.json")
        cell += "; " + signed_interval(*paired_ua(true, preds, {"svm": s}))
    return cell, svm["pooled"]["ua"]


def _reference_cell(
    reference: dict[str, Any],
    corpus: str,
    paths: list[str],
    true: np.ndarray,
    preds: dict[int, np.ndarray],
) -> str:
    """Held-out `corpus`'s UA (`preds`: each seed's predictions on `paths`) minus that of
    the `reference` run (which held out `corpus` too: `default_reference`) on the same
    utterances, seeds averaged on both sides: "+d [paired 95%]"; "-" where the reference
    did not test exactly these utterances."""
    theirs, _, their_preds = held_out(reference, corpus)
    index = {utterance_key(p): i for i, p in enumerate(theirs)}
    keys = [utterance_key(p) for p in paths]
    if len(index) != len(theirs) or sorted(index) != sorted(keys):
        return "-"
    order = np.array([index[k] for k in keys])
    return signed_interval(*paired_ua(true, preds, {s: p[order] for s, p in their_preds.items()}))


def loco_row(
    run: dict[str, Any], corpus: str, reference: dict[str, Any] | None = None
) -> list[object]:
    """One held-out corpus of a leave-one-corpus-out run, as `loco_table` shows it (and the
    difference to a `reference` run, where given)."""
    labels = run["labels"]
    paths, true, preds = held_out(run, corpus)
    every = np.arange(len(true))
    neural = {m: seed_mean(m, true, preds, every) for m in METRICS}
    row: list[object] = [corpus, ", ".join(c for c in run["corpora"] if c != corpus), len(true)]
    for m in METRICS:
        ci = joint_ci(lambda i, m=m: seed_mean(m, true, preds, i), len(true))
        row.append(interval(neural[m], ci))
    if len(preds) > 1:
        row.append(
            ", ".join(
                f"{k}: {pct(weighted_accuracy(true, p))} / {pct(unweighted_accuracy(true, p))}"
                for k, p in preds.items()
            )
        )
    svm_ua = []
    for norm in SVM_NORMS:
        cell, ua = _svm_cell(run, corpus, norm, paths, true, preds)
        row.append(cell)
        svm_ua += [] if ua is None else [ua]
    majority = np.bincount(true, minlength=len(labels)).max() / len(true)
    row.append(f"{pct(majority)} / {pct(1 / len(labels))}")
    met = neural["ua"] >= 0.5 and bool(svm_ua) and neural["ua"] > max(svm_ua)
    row.append(verdict(met) + ("" if svm_ua else " (no matching SVM)"))
    if reference is not None:
        row.append(_reference_cell(reference, corpus, paths, true, preds))
    return row


def loco_table(
    name: str, run: dict[str, Any], reference: tuple[str, dict[str, Any]] | None = None
) -> str:
    """A leave-one-corpus-out run: one row per held-out corpus (common classes), next to
    the eGeMAPS+SVM trained on the same corpora and the target "UA >= 50, above the SVM";
    where given, minus the default-recipe run (`reference`:
    `multicorpus_scores.default_reference`) on the same utterances."""
    labels, corpora, seeds = run["labels"], list(run["corpora"]), run["seeds"]
    header = ["held out", "trained on", "n", "WA [95%]", "UA [95%]"]
    header += ["WA / UA per seed"] if len(seeds) > 1 else []
    header += [f"eGeMAPS+SVM {v}: WA / UA [95%]" for v in SVM_NORMS.values()]
    header += ["chance WA / UA", "UA >= 50 and above the SVMs"]
    header += [f"minus {reference[0]}: UA [paired 95%]"] if reference else []
    seconds = {
        c: sum(r["seconds"] for r in run["folds"] if r["fold"] == f"corpus-{c}") for c in corpora
    }
    return "\n\n".join(
        [
            f"**{name}**: leave one corpus out over {', '.join(corpora)}, the {len(labels)} "
            f"classes they share ({', '.join(labels)}); seeds {seeds}, recipe "
            f"{recipe_text(run)}. WA / UA (%) on each held-out corpus"
            + (
                f", the mean of the {len(seeds)} seeds; intervals: 95% bootstrap over the "
                "held-out utterances, each resample scoring every seed on the same draw"
                if len(seeds) > 1
                else "; intervals: 95% bootstrap over the held-out utterances"
            )
            + ". eGeMAPS+SVM: the same training and test corpora and classes, features "
            "z-normalised per corpus or per speaker (docs/results/baseline/loco-<corpus>-"
            '<corpus|speaker>.json, `bench/bench_baseline.py`); after the ";": neural minus '
            "SVM UA [paired 95% bootstrap over the same utterances]. Chance: WA of always the "
            "majority class, UA 1 / classes."
            + speaker_norm_text(run)
            + (
                f" Last column: UA minus that of {reference[0]} (the default recipe, "
                "seeds averaged) on the same held-out utterances [paired 95% bootstrap], "
                'where it tested them ("-" where not).'
                if reference
                else ""
            ),
            markdown_table(header, [loco_row(run, c, reference and reference[1]) for c in corpora]),
            "Wall time (2 shared CPU cores), per held-out corpus over all seeds: "
            + ", ".join(f"{c} {s / 60:.1f} min" for c, s in seconds.items())
            + f"; {sum(seconds.values()) / 60:.1f} min in all.",
        ]
    )
