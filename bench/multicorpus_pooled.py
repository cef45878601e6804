"""The pooled tables of `bench_multicorpus.py`: one row per corpus of a saved
`dyser-train --target all` results.json (nothing is trained here), in its own label set and
in the common one, with several seeds the seed ensemble's own UA against the seeds' mean
(`ensemble_paired`), next to the eGeMAPS+SVM pooled on the same folds
(`multicorpus_scores.SVM`, `bench/bench_baseline.py`) and the default-recipe run on them,
where one other than the run itself is saved (`multicorpus_scores.default_reference`); the
caption says how many validation speakers each corpus had, and names the recipe and what a
stream run's scores are (`multicorpus_scores.recipe_text`, `speaker_norm_text`). See
`bench_multicorpus` for how the file is named.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import multicorpus_scores
import numpy as np
from _report import markdown_table
from multicorpus_scores import (
    METRICS,
    SVM_NORMS,
    corpus_predictions,
    fold_test_speakers,
    interval,
    label_indices,
    own_scores,
    paired_ua,
    pct,
    pooled_wa_ua,
    recipe_text,
    signed_interval,
    speaker_norm_text,
    utterance_key,
)

from keras_dyconv.baseline import score_rows
from keras_dyconv.labels import class_mask
from keras_dyconv.results import corpus_scores, online_order, online_order_text, seed_ensemble


def _summary_cells(summary: dict[str, Any]) -> list[str]:
    """WA and UA of a `summarize` record, each with its "ci95" interval where recorded."""
    ci = summary.get("ci95", {})
    return [interval(summary[m], ci[m]) if m in ci else pct(summary[m]) for m in METRICS]


def _pooled_svms(run: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The eGeMAPS+SVM pooled runs on exactly `run`'s folds: {normalisation (a key of
    `SVM_NORMS`): results} from docs/results/baseline/pooled-*-<norm>.json with the same
    labels and, fold by fold (same names), the same test speakers as the run's first seed."""
    mine = fold_test_speakers(run["folds"])
    found = {}
    for norm in SVM_NORMS:
        for path in sorted(multicorpus_scores.SVM.glob(f"pooled-*-{norm}.json")):
            svm = json.loads(path.read_text())
            if svm["labels"] == run["labels"] and fold_test_speakers(svm["folds"]) == mine:
                found[norm] = svm
                break
    return found


def _own_predicted(rows: np.ndarray, labels: Sequence[str], corpus: str) -> np.ndarray:
    """Per row of class scores over `labels`, the arg-max over `corpus`'s own classes
    (`keras_dyconv.labels.class_mask`): class indices into `labels`, shape (n,)."""
    return np.where(class_mask(corpus, labels), rows, -np.inf).argmax(axis=1)


def _own_by_key(
    preds: Sequence[dict[str, Any]], rows: np.ndarray, labels: Sequence[str], corpus: str
) -> dict[str, np.intp]:
    """{utterance key: own-label class index predicted} of `corpus`'s predictions, from
    their class scores `rows` over `labels` (shape (n, C); arg-max over its own classes)."""
    return dict(
        zip(
            [utterance_key(p["path"]) for p in preds],
            _own_predicted(rows, labels, corpus),
            strict=True,
        )
    )


def _own_by_seed(run: dict[str, Any], corpus: str) -> dict[str, dict[str, np.intp]]:
    """Per seed of a pooled run ("seed N"), `_own_by_key` of its `corpus` predictions
    (from their mean window probabilities)."""
    out = {}
    for seed in run["seeds"]:
        preds = corpus_predictions(run, corpus, seed)
        out[f"seed {seed}"] = _own_by_key(preds, _probabilities(preds), run["labels"], corpus)
    return out


def _probabilities(preds: Sequence[dict[str, Any]]) -> np.ndarray:
    """The predictions' "probabilities", shape (n, C)."""
    return np.array([p["probabilities"] for p in preds])


def _paired_own_ua(
    run: dict[str, Any], corpus: str, mine: dict[str, dict], theirs: dict[str, dict]
) -> tuple[float, tuple[float, float]]:
    """Own-label UA of `mine` minus that of `theirs` ({name: `_own_by_key`}, each averaged
    over its names) on the utterances of `corpus` the run's first seed tested, with a
    paired 95% bootstrap interval over them (`paired_ua`).

    Raises:
        ValueError: one of `mine` or `theirs` did not test those utterances.
    """
    first = min(run["seeds"])
    preds = corpus_predictions(run, corpus, first)
    keys = [utterance_key(p["path"]) for p in preds]  # the bootstrap draws index them
    for name, got in [*mine.items(), *theirs.items()]:
        if sorted(got) != sorted(keys):
            raise ValueError(f"{corpus}: {name} tested other utterances than seed {first}")
    true = label_indices(run["labels"], [p["label"] for p in preds], corpus)
    a, b = ({s: np.array([d[k] for k in keys]) for s, d in x.items()} for x in (mine, theirs))
    return paired_ua(true, a, b)


def pooled_paired(
    run: dict[str, Any], other: dict[str, Any], corpus: str
) -> tuple[float, tuple[float, float]]:
    """Own-label UA of a pooled run's `corpus` (mean over seeds) minus that of `other` on
    the same utterances, with a paired 95% bootstrap interval over those utterances (each
    resample scores every seed of both on the same draw). `other`: a pooled eGeMAPS+SVM
    (`bench/bench_baseline.py`, its "scores_own") or another pooled neural run (its
    seeds averaged).

    Raises:
        ValueError: `other` or a seed did not test the same utterances of `corpus`.
    """
    if "seeds" in other:
        theirs = {f"the other run's {k}": v for k, v in _own_by_seed(other, corpus).items()}
    else:
        preds = corpus_predictions(other, corpus)
        rows = score_rows(preds, "scores_own")
        theirs = {"the SVM": _own_by_key(preds, rows, run["labels"], corpus)}
    return _paired_own_ua(run, corpus, _own_by_seed(run, corpus), theirs)


def ensemble_paired(run: dict[str, Any], corpus: str) -> tuple[float, tuple[float, float]]:
    """Own-label UA of a pooled run's seed ensemble
    (`keras_dyconv.results.seed_ensemble`) on `corpus` minus its seeds' mean on the same
    utterances, with a paired 95% bootstrap interval over them (each resample scores the
    ensemble and every seed on the same draw)."""
    preds = [
        p
        for r in seed_ensemble(run["folds"], run["labels"])
        for p in r["predictions"]
        if p["corpus"] == corpus
    ]
    ensemble = _own_by_key(preds, _probabilities(preds), run["labels"], corpus)
    return _paired_own_ua(run, corpus, {"the seed ensemble": ensemble}, _own_by_seed(run, corpus))


def _ensemble_cell(run: dict[str, Any], corpus: str) -> str:
    """The seed ensemble on `corpus` in its own label set (its "corpus_scores" record):
    "UA [95%]; minus the seeds' mean UA [paired 95%]" (`ensemble_paired`); "—" with one
    seed. A multi-seed results.json written before "ensemble" was recorded is scored here."""
    if len(run["seeds"]) < 2:
        return "—"
    scores = run["corpus_scores"][corpus]
    if "ensemble" not in scores:
        scores = corpus_scores(run["folds"], run["labels"])[corpus]
    own = scores["ensemble"]["own"]
    paired = signed_interval(*ensemble_paired(run, corpus))
    return f"{interval(own['ua'], own['ci95']['ua'])}; {paired}"


def _pooled_svm_cell(run: dict[str, Any], svm: dict[str, Any] | None, corpus: str) -> str:
    """A pooled SVM (`_pooled_svms`) on `corpus` in its own label set: "WA / UA [95%]; neural
    minus SVM UA [paired 95%]"; "-" where none is saved."""
    if svm is None:
        return "-"
    own = svm["corpus_scores"][corpus]["own"]
    cell = f"{pct(own['wa'])} / {interval(own['ua'], own['ci95']['ua'])}"
    return f"{cell}; {signed_interval(*pooled_paired(run, svm, corpus))}"


def pooled_row(
    run: dict[str, Any],
    corpus: str,
    svms: dict[str, dict[str, Any]],
    reference: dict[str, Any] | None = None,
) -> list[object]:
    """One corpus of a pooled run (`dyser-train --target all`), as `pooled_table` shows it:
    its "corpus_scores" (all folds and seeds), each seed's own UA, the seed ensemble
    (`_ensemble_cell`), the pooled SVMs on the same folds (`svms`: `_pooled_svms`) and the
    difference to a `reference` run."""
    scores = run["corpus_scores"][corpus]
    own_labels = scores["own"]["labels"]
    entry = run["corpora"][corpus]
    tested = {s for r in run["folds"] for s in r["test_speakers"] if s.startswith(f"{corpus}/")}
    n_tested = scores["own"]["n"] // len(run["seeds"])
    # A partial run (--max-folds / --only-folds) tests only some of a corpus's speakers.
    row: list[object] = [
        corpus,
        f"{len(tested)} of {entry['speakers']}",
        f"{n_tested} of {entry['utterances']}",
    ]
    row += [len(own_labels), *_summary_cells(scores["own"]), *_summary_cells(scores["common"])]
    if len(run["seeds"]) > 1:
        own = own_scores(run, corpus)
        by_seed = {s: [f for f in own if f["seed"] == s] for s in run["seeds"]}
        pooled = {s: " / ".join(map(pct, pooled_wa_ua(f))) for s, f in by_seed.items() if f}
        row.append(", ".join(f"{s}: {wa_ua}" for s, wa_ua in pooled.items()))
    row.append(_ensemble_cell(run, corpus))
    row += [_pooled_svm_cell(run, svms.get(norm), corpus) for norm in SVM_NORMS]
    if reference is not None:
        row.append(signed_interval(*pooled_paired(run, reference, corpus)))
    return row


def ensemble_text(run: dict[str, Any]) -> str:
    """What the seed-ensemble column is, for `pooled_table`'s caption: the seeds' class
    probabilities averaged per fold (for normalization "stream": the online ones, each
    seed's streams in the run's `online_order`), or that a one-seed run has none."""
    if len(run["seeds"]) < 2:
        return " Seed ensemble: none with one seed (—)."
    order = online_order(run)
    averaged = (
        "class probabilities"
        if order is None
        else "online class probabilities (as scored above: each test speaker's utterances "
        f"one stream {online_order_text(order)})"
    )
    return (
        f" Seed ensemble: each fold's {averaged} averaged over its seeds, arg-max over the "
        "corpus's own classes: its own-label UA [95% bootstrap over utterances]; after the "
        '";": minus the seeds\' mean own-label UA, every seed scored on the same utterances '
        "[paired 95% bootstrap over them]."
    )


def validation_text(run: dict[str, Any]) -> str:
    """How many speakers of each corpus the run's folds validated on (from each fold's
    "val_rule"), e.g. "validation speakers per fold: emodb 1-2, casia 0, ravdess 4";
    "" when the folds do not record it per corpus."""
    rules = [r.get("val_rule", {}).get("per_corpus") for r in run["folds"]]
    if not rules or not all(rules):
        return ""
    parts = []
    for corpus in run["corpora"]:
        counts = sorted({rule[corpus]["val_speakers"] for rule in rules if corpus in rule})
        if counts:
            span = str(counts[0]) if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
            parts.append(f"{corpus} {span}")
    return " Validation speakers per fold: " + ", ".join(parts) + "."


def pooled_table(
    name: str, run: dict[str, Any], reference: tuple[str, dict[str, Any]] | None = None
) -> str:
    """A pooled run: every corpus trained and tested at once, one row per corpus in its own
    label set and in the common one, with several seeds the seed ensemble's own UA against
    the seeds' mean (`ensemble_paired`), next to the eGeMAPS+SVM pooled on the same folds
    and, where given, the default-recipe run on them (`reference`:
    `multicorpus_scores.default_reference`)."""
    corpora, seeds, protocol = list(run["corpora"]), run["seeds"], run["protocol"]
    svms = _pooled_svms(run)
    header = ["corpus", "test speakers", "test utterances", "own classes", "own WA [95%]"]
    header += ["own UA [95%]"]
    header += ["common WA [95%]", "common UA [95%]"]
    header += ["own WA / UA per seed"] if len(seeds) > 1 else []
    header += ["seed ensemble: own UA [95%]; minus seeds' mean [paired 95%]"]
    header += [f"eGeMAPS+SVM {n}: own WA / UA [95%]" for n in SVM_NORMS.values()]
    header += [f"minus {reference[0]}: own UA [paired 95%]"] if reference else []
    files = ", ".join(f"{s['job']}-{n}.json" for n, s in svms.items()) or "pooled-*-<norm>.json"
    folds = [r["seconds"] for r in run["folds"]]
    return "\n\n".join(
        [
            f"**{name}**: pooled, {', '.join(corpora)} trained and tested at once "
            f"(protocol {protocol['name']} on their union, {run['folds_run']} folds; seeds "
            f"{seeds}, recipe {recipe_text(run)}). WA / UA (%) of each corpus in its own "
            "label set (arg-max over its classes) and in the common one (arg-max over all "
            f"{len(run['labels'])} classes), pooled over folds"
            + (" and seeds" if len(seeds) > 1 else "")
            + "; intervals: 95% bootstrap over utterances. eGeMAPS+SVM: one linear SVM over "
            "the same common classes on exactly these folds (the same test speakers in every "
            "fold, trained on every corpus's training and validation speakers), features "
            "z-normalised per corpus or per speaker, each corpus scored in its own label set "
            "(only the one-vs-one classifiers between two of its classes vote) "
            f"(docs/results/baseline/{files}, `bench/bench_baseline.py`), where saved; "
            'after the ";": neural minus SVM own-label UA on the same utterances'
            + (", the neural seeds averaged" if len(seeds) > 1 else "")
            + " [paired 95% bootstrap over them]."
            + ensemble_text(run)
            + validation_text(run)
            + speaker_norm_text(run)
            + (
                f" Last column: own-label UA minus that of {reference[0]} (the default recipe "
                "on the same folds) on the same utterances [paired 95% bootstrap]."
                if reference
                else ""
            ),
            markdown_table(
                header,
                [pooled_row(run, c, svms, reference and reference[1]) for c in corpora],
            ),
            f"Wall time (2 shared CPU cores): folds {sum(folds) / 60:.1f} min in all "
            f"({min(folds):.0f}-{max(folds):.0f} s each).",
        ]
    )
