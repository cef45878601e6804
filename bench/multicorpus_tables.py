"""The leave-one-corpus-out and pooled tables of `bench_multicorpus.py`, and the scoring
helpers they share with its target-run table (`own_scores`, `pooled_wa_ua`, `pooled_ci`).

Each table is rendered from a saved `dyser-train` results.json (nothing is trained here)
next to the eGeMAPS+SVM runs saved under `SVM` (`bench/bench_baseline.py`); see
`bench_multicorpus` for what each kind of run is and how its file is named.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path, PurePath
from typing import Any

import numpy as np
from _report import markdown_table, verdict
from render_baseline import fold_test_speakers

from keras_dyconv.baseline import score_rows
from keras_dyconv.labels import class_mask, score_both
from keras_dyconv.metrics import bootstrap_ci, unweighted_accuracy, weighted_accuracy
from keras_dyconv.recipes import Recipe, get_recipe
from keras_dyconv.results import CORPUS_ORDER, online_order, online_order_text

#: The saved eGeMAPS+SVM runs (`bench/bench_baseline.py`).
SVM = Path(__file__).resolve().parent.parent / "docs" / "results" / "baseline"
METRICS = {"wa": weighted_accuracy, "ua": unweighted_accuracy}
#: The eGeMAPS+SVM LOCO and pooled runs: file suffix -> how its features are normalised.
SVM_NORMS = {"corpus": "per-corpus z", "speaker": "per-speaker z"}


def own_scores(
    run: dict[str, Any], corpus: str | None = None, space: str = "own"
) -> list[dict[str, Any]]:
    """`corpus` (default: the run's target corpus) in its own label set (`space` "own") or
    the common one ("common"), per fold that tested it: records (fold, seed, metrics) as
    `paired_delta` reads them."""
    corpus, labels = corpus or run["target_corpus"], run["labels"]
    folds = []
    for r in run["folds"]:
        preds = [p for p in r["predictions"] if p["corpus"] == corpus]
        if not preds:
            continue
        probabilities = [p["probabilities"] for p in preds]
        true = [p["original_label"] for p in preds]
        scored = score_both(probabilities, labels, true, corpus)[space]
        folds.append({"fold": r["fold"], "seed": r["seed"], "metrics": scored})
    return folds


def pct(x: float) -> str:
    return f"{100 * x:.1f}"


def _confusion(folds: Sequence[dict[str, Any]]) -> np.ndarray:
    """The confusion matrix (rows: true class) pooled over fold records."""
    return sum(np.asarray(f["metrics"]["confusion"], dtype=np.int64) for f in folds)


def pooled_wa_ua(folds: Sequence[dict[str, Any]]) -> tuple[float, float]:
    """Pooled (WA, UA) over fold records, from their confusion matrices."""
    cm = _confusion(folds).astype(np.float64)
    seen = cm.sum(1) > 0
    return float(np.trace(cm) / cm.sum()), float((np.diag(cm)[seen] / cm.sum(1)[seen]).mean())


def pooled_ci(folds: Sequence[dict[str, Any]], metric: str) -> tuple[float, float]:
    """`bootstrap_ci` of `metric` over the pooled utterances (rebuilt from the confusion)."""
    cm = _confusion(folds)
    true = np.repeat(np.arange(cm.shape[0]), cm.sum(1))
    pred = np.concatenate([np.repeat(np.arange(cm.shape[1]), row) for row in cm])
    return bootstrap_ci(true, pred, metric)


def _indices(labels: Sequence[str], names: Sequence[str], where: str) -> np.ndarray:
    """`names` as indices into `labels`; a name outside them is an error naming `where`."""
    unknown = sorted(set(names) - set(labels))
    if unknown:
        raise ValueError(f"{where}: labels {unknown} are not among {list(labels)}")
    return np.array([labels.index(n) for n in names])


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
    true = _indices(labels, [p["label"] for p in first], f"corpus-{corpus}")
    preds = {}
    for r in records:
        by_path = {p["path"]: p["predicted"] for p in r["predictions"]}
        if sorted(by_path) != sorted(paths):
            raise ValueError(f"corpus-{corpus}: seed {r['seed']} tested other utterances")
        where = f"corpus-{corpus} seed {r['seed']}"
        preds[r["seed"]] = _indices(labels, [by_path[p] for p in paths], where)
    return paths, true, preds


def _joint_ci(stat: Callable[[np.ndarray], float], n: int) -> tuple[float, float]:
    """`bootstrap_ci` of `stat(indices)` over `n` utterances: each resample draws the
    utterances once and scores every system (each seed, the SVM) on that same draw."""
    i = np.arange(n)
    return bootstrap_ci(i, i, lambda t, _: stat(t))


def _svm_loco(corpus: str, normalization: str) -> dict[str, Any] | None:
    """The eGeMAPS+SVM LOCO run testing on `corpus` (docs/results/baseline/
    loco-<corpus>-<normalization>.json), None if not saved."""
    path = SVM / f"loco-{corpus}-{normalization}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _interval(x: float, ci: Sequence[float]) -> str:
    return f"{pct(x)} [{pct(ci[0])}, {pct(ci[1])}]"


def _seed_mean(metric: str, true: np.ndarray, preds: dict[int, np.ndarray], i: np.ndarray) -> float:
    """`metric` ("wa", "ua") on utterances `i`, averaged over the seeds' predictions."""
    fn = METRICS[metric]
    return float(np.mean([fn(true[i], p[i]) for p in preds.values()]))


def _utterance_key(path: str) -> str:
    """An utterance's last three path parts (e.g. ``casia/ZhaoZuoxiang/angry/201.wav`` ->
    ``ZhaoZuoxiang/angry/201.wav``): the same file whether a run was given the corpus as
    an absolute or a relative path."""
    return "/".join(PurePath(path).parts[-3:])


def _svm_summary(svm: dict[str, Any]) -> str:
    """A saved eGeMAPS+SVM run's pooled "WA / UA [95%]" (%)."""
    pooled = svm["pooled"]
    return f"{pct(pooled['wa'])} / {_interval(pooled['ua'], svm['pooled_ci95']['ua'])}"


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
    by_key = {_utterance_key(p["path"]): p["predicted"] for p in fold["predictions"]}
    keys = [_utterance_key(p) for p in paths]
    if len(by_key) == len(fold["predictions"]) and sorted(by_key) == sorted(keys):
        s = _indices(labels, [by_key[k] for k in keys], f"loco-{corpus}-{norm}.json")
        lo, hi = _joint_ci(
            lambda i: _seed_mean("ua", true, preds, i) - unweighted_accuracy(true[i], s[i]),
            len(true),
        )
        d = _seed_mean("ua", true, preds, np.arange(len(true))) - unweighted_accuracy(true, s)
        cell += f"; {100 * d:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}]"
    return cell, svm["pooled"]["ua"]


def loco_row(run: dict[str, Any], corpus: str) -> list[object]:
    """One held-out corpus of a leave-one-corpus-out run, as `loco_table` shows it."""
    labels = run["labels"]
    paths, true, preds = held_out(run, corpus)
    every = np.arange(len(true))
    neural = {m: _seed_mean(m, true, preds, every) for m in METRICS}
    row: list[object] = [corpus, ", ".join(c for c in run["corpora"] if c != corpus), len(true)]
    for m in METRICS:
        ci = _joint_ci(lambda i, m=m: _seed_mean(m, true, preds, i), len(true))
        row.append(_interval(neural[m], ci))
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
    return row


def loco_table(name: str, run: dict[str, Any]) -> str:
    """A leave-one-corpus-out run: one row per held-out corpus (common classes), next to
    the eGeMAPS+SVM trained on the same corpora and the target "UA >= 50, above the SVM"."""
    labels, corpora, seeds = run["labels"], list(run["corpora"]), run["seeds"]
    header = ["held out", "trained on", "n", "WA [95%]", "UA [95%]"]
    header += ["WA / UA per seed"] if len(seeds) > 1 else []
    header += [f"eGeMAPS+SVM {v}: WA / UA [95%]" for v in SVM_NORMS.values()]
    header += ["chance WA / UA", "UA >= 50 and above the SVMs"]
    seconds = {
        c: sum(r["seconds"] for r in run["folds"] if r["fold"] == f"corpus-{c}") for c in corpora
    }
    return "\n\n".join(
        [
            f"**{name}**: leave one corpus out over {', '.join(corpora)}, the {len(labels)} "
            f"classes they share ({', '.join(labels)}); seeds {seeds}, recipe "
            f"`{run['recipe']['name']}`. WA / UA (%) on each held-out corpus"
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
            "majority class, UA 1 / classes.",
            markdown_table(header, [loco_row(run, c) for c in corpora]),
            "Wall time (2 shared CPU cores), per held-out corpus over all seeds: "
            + ", ".join(f"{c} {s / 60:.1f} min" for c, s in seconds.items())
            + f"; {sum(seconds.values()) / 60:.1f} min in all.",
        ]
    )


def _summary_cells(summary: dict[str, Any]) -> list[str]:
    """WA and UA of a `summarize` record, each with its "ci95" interval where recorded."""
    ci = summary.get("ci95", {})
    return [_interval(summary[m], ci[m]) if m in ci else pct(summary[m]) for m in METRICS]


def _pooled_svms(run: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The eGeMAPS+SVM pooled runs on exactly `run`'s folds: {normalisation (a key of
    `SVM_NORMS`): results} from docs/results/baseline/pooled-*-<norm>.json with the same
    labels and, fold by fold (same names), the same test speakers as the run's first seed."""
    mine = fold_test_speakers(run["folds"])
    found = {}
    for norm in SVM_NORMS:
        for path in sorted(SVM.glob(f"pooled-*-{norm}.json")):
            svm = json.loads(path.read_text())
            if svm["labels"] == run["labels"] and fold_test_speakers(svm["folds"]) == mine:
                found[norm] = svm
                break
    return found


def _own_predicted(rows: np.ndarray, labels: Sequence[str], corpus: str) -> np.ndarray:
    """Per row of class scores over `labels`, the arg-max over `corpus`'s own classes
    (`keras_dyconv.labels.class_mask`): class indices into `labels`, shape (n,)."""
    return np.where(class_mask(corpus, labels), rows, -np.inf).argmax(axis=1)


def _corpus_predictions(
    run: dict[str, Any], corpus: str, seed: int | None = None
) -> list[dict[str, Any]]:
    """The saved predictions of `corpus`'s utterances, over all folds (of one `seed`, or of
    every seed when None), in the order saved."""
    return [
        p
        for r in run["folds"]
        if seed is None or r["seed"] == seed
        for p in r["predictions"]
        if p["corpus"] == corpus
    ]


def _own_by_key(run: dict[str, Any], corpus: str) -> dict[str, dict[str, np.ndarray]]:
    """Per seed of a pooled run ("seed N"), {utterance key: own-label class index
    predicted} for `corpus` (mean window probabilities, arg-max over its own classes)."""
    out = {}
    for seed in run["seeds"]:
        preds = _corpus_predictions(run, corpus, seed)
        rows = np.array([p["probabilities"] for p in preds])
        out[f"seed {seed}"] = dict(
            zip(
                [_utterance_key(p["path"]) for p in preds],
                _own_predicted(rows, run["labels"], corpus),
                strict=True,
            )
        )
    return out


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
    labels = run["labels"]
    mine = _own_by_key(run, corpus)
    first = min(run["seeds"])
    keys = list(mine[f"seed {first}"])  # in prediction order: the bootstrap draws index them
    if "seeds" in other:
        theirs = {f"the other run's {k}": v for k, v in _own_by_key(other, corpus).items()}
    else:
        preds = _corpus_predictions(other, corpus)
        scores = _own_predicted(score_rows(preds, "scores_own"), labels, corpus)
        theirs = {
            "the SVM": dict(zip([_utterance_key(p["path"]) for p in preds], scores, strict=True))
        }
    for name, got in [*mine.items(), *theirs.items()]:
        if sorted(got) != sorted(keys):
            raise ValueError(f"{corpus}: {name} tested other utterances than seed {first}")
    true_of = {
        _utterance_key(p["path"]): p["label"] for p in _corpus_predictions(run, corpus, first)
    }
    true = _indices(labels, [true_of[k] for k in keys], corpus)
    a, b = ({s: np.array([d[k] for k in keys]) for s, d in x.items()} for x in (mine, theirs))

    def delta(i: np.ndarray) -> float:
        return _seed_mean("ua", true, a, i) - _seed_mean("ua", true, b, i)

    return delta(np.arange(len(keys))), _joint_ci(delta, len(keys))


def _pooled_svm_cell(run: dict[str, Any], svm: dict[str, Any] | None, corpus: str) -> str:
    """A pooled SVM (`_pooled_svms`) on `corpus` in its own label set: "WA / UA [95%]; neural
    minus SVM UA [paired 95%]"; "-" where none is saved."""
    if svm is None:
        return "-"
    own = svm["corpus_scores"][corpus]["own"]
    d, (lo, hi) = pooled_paired(run, svm, corpus)
    return (
        f"{pct(own['wa'])} / {_interval(own['ua'], own['ci95']['ua'])}; "
        f"{100 * d:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}]"
    )


def pooled_row(
    run: dict[str, Any],
    corpus: str,
    svms: dict[str, dict[str, Any]],
    reference: dict[str, Any] | None = None,
) -> list[object]:
    """One corpus of a pooled run (`dyser-train --target all`), as `pooled_table` shows it:
    its "corpus_scores" (all folds and seeds), each seed's own UA, the pooled SVMs on the
    same folds (`svms`: `_pooled_svms`) and the difference to a `reference` run."""
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
    row += [_pooled_svm_cell(run, svms.get(norm), corpus) for norm in SVM_NORMS]
    if reference is not None:
        d, (lo, hi) = pooled_paired(run, reference, corpus)
        row.append(f"{100 * d:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}]")
    return row


def pooled_reference(
    name: str, run: dict[str, Any], runs: Sequence[tuple[str, dict[str, Any]]]
) -> tuple[str, dict[str, Any]] | None:
    """The run a pooled variant is read against: another saved pooled run of the plain
    default recipe with the same labels and, fold by fold, the same test speakers; None for
    the default run itself or when none is saved."""
    mine = fold_test_speakers(run["folds"])
    for other_name, other in runs:
        if (
            other_name != name
            and other.get("target_corpus") == run.get("target_corpus") == "all"
            and recipe_text(other) == f"`{other['recipe']['name']}`" == "`default`"
            and other["labels"] == run["labels"]
            and fold_test_speakers(other["folds"]) == mine
        ):
            return other_name, other
    return None


def recipe_text(run: dict[str, Any]) -> str:
    """The run's recipe as its name plus every field it changed (e.g. "`default`,
    normalization stream"), so a variant never reads as the named recipe."""
    named, used = (  # through JSON: tuples and the lists they were saved as compare equal
        json.loads(json.dumps(r.to_dict()))
        for r in (get_recipe(run["recipe"]["name"]), Recipe(**run["recipe"]))
    )
    changed = [f"{k} {used[k]}" for k in used if k != "name" and used[k] != named.get(k)]
    return ", ".join([f"`{run['recipe']['name']}`", *changed])


def speaker_norm_text(run: dict[str, Any]) -> str:
    """For normalization "stream" (online CMVN): what the table's scores are (online, each
    test speaker's utterances one stream in the run's `online_order`: corpus order in runs
    written before it was recorded), each corpus's common-label WA / UA in corpus order
    where the run also saved those ("predicted_corpus_order"), and with every test speaker
    normalised by their own statistics (the run's transductive "predicted_speaker_norm");
    "" for other runs."""
    if run["recipe"].get("normalization") != "stream":
        return ""

    def common(key: str) -> str:
        parts = []
        for corpus in run["corpora"]:
            preds = _corpus_predictions(run, corpus)
            true = np.array([p["label"] for p in preds])
            guess = np.array([p[key] for p in preds])
            wa, ua = (metric(true, guess) for metric in METRICS.values())
            parts.append(f"{corpus} {pct(wa)} / {pct(ua)}")
        return ", ".join(parts)

    order = online_order(run)
    stream = online_order_text(order)
    if order != CORPUS_ORDER:
        stream += (
            "; in corpus order (emotion-blocked where a corpus lists a speaker's files by "
            "emotion) the common-label WA / UA are " + common("predicted_corpus_order")
        )
    return (
        ' Normalisation "stream": the scores above are online, each test speaker\'s '
        f"utterances one stream {stream}; with each test speaker's own statistics "
        "(all of their audio, transductive) the common-label WA / UA are "
        + common("predicted_speaker_norm")
        + " (see the section on stream normalisation)."
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
    label set and in the common one, next to the eGeMAPS+SVM pooled on the same folds and,
    for a variant, the default run on them (`reference`: `pooled_reference`)."""
    corpora, seeds, protocol = list(run["corpora"]), run["seeds"], run["protocol"]
    svms = _pooled_svms(run)
    header = ["corpus", "test speakers", "test utterances", "own classes", "own WA [95%]"]
    header += ["own UA [95%]"]
    header += ["common WA [95%]", "common UA [95%]"]
    header += ["own WA / UA per seed"] if len(seeds) > 1 else []
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
