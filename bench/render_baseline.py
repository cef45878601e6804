"""Render the "baseline" section of docs/benchmarks.md from bench_baseline.py's JSON files.

`render_body(runs, neural_dir)` reads only the saved results: the SVM's, one file per (job,
normalisation) under docs/results/baseline/, and the neural runs already saved under
docs/results/ (not re-trained; `dyser-train` or bench_training.py results.json, whether
they tested the SVM's folds is checked when rendering, `same_folds`): single-corpus runs
`<corpus>-*.json` and, next to the pooled SVM, the pooled runs `PAPER_POOLED_RUNS` under
multicorpus/. The jobs themselves (corpus, protocol, normalisations) are defined here, in
the table's words, and run by bench_baseline.py.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _report import markdown_table
from multicorpus_pooled import pooled_paired
from multicorpus_scores import (
    SVM_NORMS,
    fold_test_speakers,
    interval,
    pct,
    recipe_text,
    signed_interval,
    speaker_norm_text,
    stream_text,
    utterance_key,
)

from keras_dyconv.baseline import score_rows
from keras_dyconv.results import merge_results, online_order

NAME = "baseline"
TITLE = "Classical floor: eGeMAPS + linear SVM, and the paper's table"
ROOT = Path(__file__).resolve().parent.parent
NEURAL = ROOT / "docs" / "results"
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


@dataclass(frozen=True)
class PooledJob:
    """Several corpora pooled (`dyser-train --target all`) under one protocol (a
    `ProtocolSpec`'s fields, folds on their union), in the table's words."""

    corpora: tuple[str, ...]
    protocol: dict[str, Any]
    description: str


#: Pooled jobs: one SVM over the union's common classes, on the folds of the pooled neural
#: run of the same protocol (`dyser-train --corpus ... --target all --protocol ...`).
POOLED_JOBS: dict[str, PooledJob] = {
    "pooled-group4": PooledJob(
        LOCO_CORPORA,
        {"name": "group-kfold", "k": 4},
        "4 speaker-grouped folds on the union, balanced by corpus",
    ),
}
POOLED_NORMALIZATIONS = LOCO_NORMALIZATIONS
#: The pooled neural runs (`dyser-train --target all`) the paper's table reads next to the
#: pooled SVM, by name under docs/results/multicorpus/ (``<name>-seed<N>.json``, the seeds
#: of one run, merged): today's default recipe and the stream recipe (normalization stream,
#: stream_training online), both on two seeds and validating by today's rule. Earlier
#: one-seed pooled runs are read in the multi-corpus section only.
PAPER_POOLED_RUNS = ("pooled-group-kfold-valrule4", "pooled-group-kfold-streamonline-valrule4")


def same_protocol(a: dict, b: dict) -> bool:
    """Whether two protocols (`ProtocolSpec` fields) make the same folds."""
    keys = ("name", "k", "seed") if a["name"] == "stratified" else ("name",)
    if a["name"] == "group-kfold":
        keys = ("name", "k")
    return all(a.get(k) == b.get(k) for k in keys)


def with_ci(results: dict[str, Any], metric: str, key: str = "pooled") -> str:
    """`results[key][metric]` with its interval `results[key + "_ci95"][metric]`, in
    percent: "12.3 [10.0, 14.6]"."""
    return interval(results[key][metric], results[f"{key}_ci95"][metric])


def same_folds(records: Sequence[dict], neural: dict) -> bool:
    """Whether a neural run (its first seed) tested the same utterances as fold `records`
    (their first seed) in the same folds (same names). Utterances are compared by their
    last three path parts (`multicorpus_scores.utterance_key`): a corpus such as CASIA
    repeats file names across speakers and emotions, and the two runs may have been given
    the corpus as an absolute or a relative path."""

    def test_sets(recs: Sequence[dict]) -> dict[str, list[str]]:
        first = min(r.get("seed", 0) for r in recs)
        return {
            r["fold"]: sorted(utterance_key(p["path"]) for p in r["predictions"])
            for r in recs
            if r.get("seed", 0) == first
        }

    return test_sets(records) == test_sets(neural["folds"])


def neural_model(file: str, run: dict[str, Any]) -> str:
    """The "model" cell of a saved neural run: "ours, neural: <recipe name> recipe" when it
    ran a named recipe unchanged, "ours, neural: recipe <the recipe and every field it
    changed>" (`multicorpus_scores.recipe_text`) for a variant, "default today (<ablation
    variant>) recipe" for the 3-seed ablation run of today's default (`ablation/...`)."""
    name = run["recipe"]["name"]
    if file.startswith("ablation/"):
        return f"ours, neural: default today ({name}) recipe"
    text = recipe_text(run)
    return f"ours, neural: {name} recipe" if text == f"`{name}`" else f"ours, neural: recipe {text}"


def stream_note(corpus: str, description: str, file: str, run: dict[str, Any]) -> str:
    """The note under the paper's table on a normalization "stream" run's row: its WA / UA
    are online per test speaker (`multicorpus_scores.stream_text`), with the run's pooled
    scores in corpus order, on each clip alone and with each test speaker's own
    statistics, each with its 95% interval, where saved."""

    def scores(key: str) -> str | None:
        pooled = key.replace("predicted", "pooled")
        if pooled not in run:
            return None
        return f"WA / UA are {with_ci(run, 'wa', pooled)} / {with_ci(run, 'ua', pooled)}"

    return f"{CORPUS_NAMES.get(corpus, corpus)}, {description}, `{file}`:" + stream_text(
        run, scores
    )


#: The columns of `_wa_ua_cells`: each normalisation's WA and UA (the first normalisation
#: has none beyond the training-set scaler; the second is per speaker).
WA_UA_HEADER = ("WA [95% CI]", "UA [95% CI]", "speaker-norm. WA [95% CI]")
WA_UA_HEADER += ("speaker-norm. UA [95% CI]",)


def _wa_ua_cells(runs_of: dict[str, dict], norms: Sequence[str]) -> list[str]:
    """WA and UA with their intervals under each normalisation of `norms` ("—" where the
    job was not run with it)."""
    cells = []
    for norm in norms:
        r = runs_of.get(norm)
        cells += [with_ci(r, "wa"), with_ci(r, "ua")] if r else ["—", "—"]
    return cells


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
    single = sorted(
        (j for j in by_job if not j.startswith("loco-") and j not in POOLED_JOBS), key=_job_order
    )
    pooled = [j for j in POOLED_JOBS if j in by_job]
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
            *WA_UA_HEADER,
            "C chosen (none / speaker)",
        ]
        rows = []
        for name in single:
            runs_of = by_job[name]
            first = next(iter(runs_of.values()))
            cells = _wa_ua_cells(runs_of, NORMALIZATIONS)
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
    for job in pooled:
        parts.append(pooled_table(by_job[job]))
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
    return signed_interval(delta, (lo, hi))


def paper_table(by_job: dict[str, dict[str, dict]], single: Sequence[str], neural_dir: Path) -> str:
    """The seed paper's rows next to the neural runs and the SVM, protocol by protocol: each
    single-corpus job of `single`, then each pooled job saved in `by_job` (`POOLED_JOBS`,
    with the `PAPER_POOLED_RUNS` saved in `neural_dir`, `pooled_paper_rows`)."""
    header = [
        "corpus",
        "protocol",
        "model",
        "folds x seeds",
        "WA [95% CI]",
        "UA [95% CI]",
        "paired ΔUA vs eGeMAPS + SVM [95% CI]",
    ]
    rows, notes = [], []
    corpus_of = {j: next(iter(by_job[j].values()))["corpus"] for j in single}
    pooled_jobs = [by_job[j] for j in POOLED_JOBS if j in by_job]
    pooled_runs = pooled_neural_runs(neural_dir) if pooled_jobs else []
    pooled_corpora = [c for svms in pooled_jobs for c in next(iter(svms.values()))["corpora"]]
    corpora = list(dict.fromkeys([*corpus_of.values(), *pooled_corpora]))
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
                if not same_protocol(r["protocol"], first["protocol"]):
                    continue
                same = same_folds(first["folds"], r)
                model = neural_model(file, r) + (" (same folds)" if same else "")
                if online_order(r) is not None:
                    model += "; scored online per test speaker (note below)"
                    notes.append(stream_note(corpus, first["protocol"]["description"], file, r))
                rows.append(
                    [
                        name,
                        first["protocol"]["description"],
                        model,
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
        for svms in pooled_jobs:
            if corpus in next(iter(svms.values()))["corpora"]:
                rows += pooled_paper_rows(svms, pooled_runs, corpus)
        if corpus == "iemocap":
            rows.append([name, "—", "ours", "—", "not available here", "—", "—"])
    notes += [pooled_stream_note(files, r) for files, r in pooled_runs if online_order(r)]
    intro = (
        "**The paper's table, reproduced.** The seed paper reports WA only and does not state "
        "its folds; a stratified split over utterances (speaker-dependent) is the likely one. "
        "Ours on that protocol and on the speaker-independent ones; neural rows are read from "
        '`docs/results/` (not re-trained), "same folds" when their test sets match the SVM\'s '
        "fold by fold. The paired Δ is the mean per-fold UA difference from the SVM without "
        "speaker normalisation on the same folds (a neural run's seeds averaged per fold), "
        "with a bootstrap interval over folds."
    )
    if pooled_jobs:
        intro += (
            " The pooled rows: one model (or SVM) trained and tested on several corpora at "
            "once, on speaker-grouped folds over their union (the protocol cell says how many "
            "of the corpus's speakers each fold tests; the other corpora's speakers are extra "
            "training data), the neural runs read from `docs/results/multicorpus/` (the seed "
            "files of a run merged), next to the eGeMAPS + SVM pooled on exactly those folds "
            "(the Pooled table below; features z-scored per corpus or per speaker). Their WA / "
            "UA are in the corpus's own label set (arg-max over its own classes), all folds "
            "and seeds pooled, and their paired Δ is another one: own-label UA minus that of "
            "the per-corpus-z SVM on the same utterances (a neural run's seeds averaged), with "
            "a paired bootstrap interval over those utterances, not folds."
        )
    return "\n\n".join([intro, markdown_table(header, rows), *notes])


def pooled_neural_runs(neural_dir: Path = NEURAL) -> list[tuple[list[str], dict[str, Any]]]:
    """(files, results) of each `PAPER_POOLED_RUNS` saved in `neural_dir`/multicorpus:
    ``<name>-seed<N>.json`` merged (`keras_dyconv.results.merge_results`, as
    `bench_multicorpus.load_runs` merges them) or ``<name>.json``; files relative to
    `neural_dir`. A run with no file is left out."""
    folder, found = neural_dir / "multicorpus", []
    for name in PAPER_POOLED_RUNS:
        pattern = rf"{re.escape(name)}(-seed\d+)?"
        paths = [p for p in sorted(folder.glob(f"{name}*.json")) if re.fullmatch(pattern, p.stem)]
        if paths:
            parts = [json.loads(p.read_text()) for p in paths]
            run = parts[0] if len(parts) == 1 else merge_results(parts)
            found.append(([p.relative_to(neural_dir).as_posix() for p in paths], run))
    return found


def pooled_protocol(svm: dict[str, Any], corpus: str) -> str:
    """The paper table's protocol cell of a pooled job (`svm`: one of its results) for
    `corpus`, e.g. "EmoDB+CASIA+RAVDESS pooled, 4 speaker-grouped folds on the union,
    balanced by corpus (speaker-independent; 1 CASIA speaker tested per fold)"."""
    name = CORPUS_NAMES.get(corpus, corpus)
    tested = fold_test_speakers(svm["folds"]).values()
    counts = sorted({sum(s.startswith(f"{corpus}/") for s in speakers) for speakers in tested})
    span = str(counts[0]) if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
    independent = "speaker-independent" if svm["speaker_independent"] else "speaker-dependent"
    return (
        f"{'+'.join(CORPUS_NAMES.get(c, c) for c in svm['corpora'])} pooled, "
        f"{svm['protocol']['description']} ({independent}; {span} {name} "
        f"speaker{'' if counts == [1] else 's'} tested per fold)"
    )


def _svm_as_seed(svm: dict[str, Any]) -> dict[str, Any]:
    """A pooled eGeMAPS+SVM result as `pooled_paired` reads a neural run: one seed (0), its
    own-label decision scores ("scores_own", -inf for a class the corpus lacks) as each
    prediction's "probabilities"."""
    folds = [
        {
            **r,
            "seed": 0,
            "predictions": [
                {**p, "probabilities": row}
                for p, row in zip(
                    r["predictions"], score_rows(r["predictions"], "scores_own"), strict=True
                )
            ],
        }
        for r in svm["folds"]
    ]
    return {**svm, "seeds": [0], "folds": folds}


def pooled_paper_rows(
    svms: dict[str, dict[str, Any]],
    runs: Sequence[tuple[list[str], dict[str, Any]]],
    corpus: str,
) -> list[list[str]]:
    """The paper table's rows of `corpus` in a pooled job (`svms`: its results by
    normalisation): each neural run of `runs` (`pooled_neural_runs`), then the SVM per
    normalisation. WA / UA [95%] in the corpus's own label set; the paired Δ is own-label UA
    minus that of the per-corpus-z SVM on the same utterances (`pooled_paired`: a neural
    run's seeds averaged, paired bootstrap over the utterances), for a neural run where it
    tested the SVM's folds (same labels, same utterances fold by fold: "same folds")."""
    first = next(iter(svms.values()))
    name, protocol = CORPUS_NAMES.get(corpus, corpus), pooled_protocol(first, corpus)
    base = svms.get(POOLED_NORMALIZATIONS[0])
    rows = []

    def row(model: str, result: dict[str, Any], n_seeds: int, delta: str) -> list[str]:
        own = result["corpus_scores"][corpus]["own"]
        cells = [interval(own[m], own["ci95"][m]) for m in ("wa", "ua")]
        return [name, protocol, model, f"{result['folds_run']} x {n_seeds}", *cells, delta]

    for files, run in runs:
        same = run["labels"] == first["labels"] and same_folds(first["folds"], run)
        model = neural_model(files[0], run) + (" (same folds)" if same else "")
        if online_order(run) is not None:
            model += "; scored online per test speaker (note below)"
        delta = signed_interval(*pooled_paired(run, base, corpus)) if same and base else "—"
        rows.append(row(model, run, len(run["seeds"]), delta))
    for norm in POOLED_NORMALIZATIONS:
        if norm not in svms:
            continue
        svm = svms[norm]
        paired = base is not None and svm is not base
        delta = signed_interval(*pooled_paired(_svm_as_seed(svm), base, corpus)) if paired else "—"
        rows.append(row(f"eGeMAPS + linear SVM ({SVM_NORMS[norm]})", svm, 1, delta))
    return rows


def pooled_stream_note(files: Sequence[str], run: dict[str, Any]) -> str:
    """The note under the paper's table on a pooled normalization "stream" run (`files`:
    where it was read from): its scores are online per test speaker, with each corpus's
    other scores (`multicorpus_scores.speaker_norm_text`)."""
    names = "+".join(CORPUS_NAMES.get(c, c) for c in run["corpora"])
    where = ", ".join(f"`{f}`" for f in files)
    return f"{names} pooled, {where}:" + speaker_norm_text(run)


def loco_table(by_job: dict[str, dict[str, dict]], loco: Sequence[str]) -> str:
    """Leave-one-corpus-out: train on the other corpora, test on the held-out one."""
    header = [
        "held-out corpus",
        "trained on",
        "classes",
        "test utterances",
        *WA_UA_HEADER,
    ]
    rows = []
    for job in loco:
        runs_of = by_job[job]
        first = next(iter(runs_of.values()))
        cells = _wa_ua_cells(runs_of, LOCO_NORMALIZATIONS)
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


def pooled_table(runs_of: dict[str, dict]) -> str:
    """A pooled job: one SVM over the union's common classes, each corpus scored in its own
    label set (votes among its own classes) and in the common one, per normalisation."""
    first = next(iter(runs_of.values()))
    header = ["corpus", "test utterances", "own classes"]
    for n in ("corpus-norm.", "speaker-norm."):
        header += [f"{n} own WA [95% CI]", f"{n} own UA [95% CI]", f"{n} common WA / UA"]
    rows = []
    for corpus in first["corpora"]:
        cells = []
        for norm in POOLED_NORMALIZATIONS:
            if norm not in runs_of:
                cells += ["—"] * 3
                continue
            scores = runs_of[norm]["corpus_scores"][corpus]
            own, common = scores["own"], scores["common"]
            cells += [interval(own[m], own["ci95"][m]) for m in ("wa", "ua")]
            cells.append(f"{pct(common['wa'])} / {pct(common['ua'])}")
        own_of = first["corpus_scores"][corpus]["own"]
        rows.append([CORPUS_NAMES.get(corpus, corpus), own_of["n"], len(own_of["labels"]), *cells])
    chosen = "; ".join(f"{n}: {_chosen_c(r)}" for n, r in runs_of.items())
    names = ", ".join(CORPUS_NAMES.get(c, c) for c in first["corpora"])
    checked = ", ".join(first.get("neural_same_folds", [])) or "none saved"
    intro = (
        f"**Pooled** ({first['job']}): {names} "
        f"trained and tested at once on the folds of the pooled neural run "
        f"(`dyser-train --target all`, protocol {first['protocol']['name']}, "
        f"{first['folds_run']} folds: {first['protocol']['description']}; the same test "
        f"speakers in every fold checked against {checked}). One SVM over the "
        f"{len(first['labels'])} common classes, trained on every training speaker of every "
        "corpus; each corpus scored in its own label set: only the one-vs-one classifiers "
        "between two of its own classes vote (the SVM told which classes the corpus has, as "
        "the neural model's arg-max over a corpus's own classes); common: the SVM's "
        "prediction over all classes (one the corpus lacks counts as wrong). Corpus-norm.: "
        "each corpus z-scored by its own statistics (over all of its audio, test speakers' "
        "included, unlabelled); speaker-norm.: each speaker z-scored instead. C chosen by "
        "inner CV grouped by speaker over the training speakers (UA over the common "
        f"classes): {chosen}. The neural runs are read against it in the multi-corpus "
        "section."
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
