"""EmoDB leave-one-speaker-out ablation grid: recipe variants x seeds, paired comparisons.

    python bench/bench_ablation.py                          # every variant, seeds 0 1 2
    python bench/bench_ablation.py --variants stream-norm+avg5 --seeds 0
    python bench/bench_ablation.py --table-only             # re-render docs from saved JSON

Each variant is the default recipe with a few fields changed (`VARIANTS`); the paired
comparisons are against `dataset-norm`, the default recipe before this ablation. Its merged
per-fold results (predictions and class probabilities included) go to
docs/results/ablation/<variant>.json; running more seeds later adds them to that file. The
"ablation" section of docs/benchmarks.md is rendered from every such file: pooled WA/UA with
a bootstrap interval, the spread across seeds, the seed ensemble, and a paired comparison
with `dataset-norm` on the same (fold, seed) pairs, with a bootstrap interval over folds.
Normalization "stream" adapts to the test speaker as a device would (online CMVN); it is
reported in its own columns, next to the transductive per-speaker reference.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]  # this checkout's code (see bench_training)
import bench_training  # noqa: E402
from _report import (  # noqa: E402
    markdown_table,
    save_environment,
    saved_machine_line,
    verdict,
    write_section,
)

ABLATION = ROOT / "docs" / "results" / "ablation"
#: The paired comparisons are against this variant: the default recipe before the ablation.
BASELINE = "dataset-norm"
AUGMENT = {"vtlp": 0.1, "speed": 0.1, "snr_db": [10.0, 30.0]}
SPEC_AUGMENT = [2, 25, 2, 8]  # time masks, max frames, frequency masks, max mel bands
#: Pooling of the default architecture since `dataset-norm+time-pool16`: time 16x.
TIME_POOL16 = {"pool_size": [[2, 2], [2, 2], [4, 2]]}
STREAM = {"normalization": "stream", "stream_training": "speaker"}
#: The architecture every variant runs unless it sets these model arguments itself: the
#: default before `dataset-norm+time-pool16` became it (time pooled 8x), so the variants and
#: their results keep one meaning.
ABLATION_MODEL = {"pool_size": [2, 2]}

#: Variant name -> (recipe fields changed from `RECIPES["default"]`, plus "frontend": the
#: `FrontendConfig` fields changed from its defaults, and "window": the `WindowPolicy` fields;
#: what it tests). Every variant names its normalisation, so it keeps its meaning whatever
#: the default is.
VARIANTS: dict[str, tuple[dict, str]] = {
    "dataset-norm": (
        {"normalization": "dataset"},
        "training-set mean/std normalisation (the default recipe before this ablation)",
    ),
    "stream-norm": (
        STREAM,
        "online CMVN: per-speaker statistics in training, running statistics at test",
    ),
    "stream-online": (
        {"normalization": "stream", "stream_training": "online"},
        "online CMVN, trained on running statistics drawn at random points of each "
        "training speaker's stream (and on fresh streams)",
    ),
    "dataset-norm+augment": (
        {"normalization": "dataset", "augmentation": AUGMENT},
        "VTLP 0.9-1.1, speed 0.9-1.1, noise at 10-30 dB SNR on half the windows",
    ),
    "dataset-norm+wide-perturb": (
        {"normalization": "dataset", "augmentation": {"vtlp": 0.2, "speed": 0.2}},
        "wider pitch shift and speed range: frequency scaled by 0.8-1.2 with the tempo kept "
        "(what librosa.effects.pitch_shift does to a spectrogram, here up to 3.9 semitones; "
        "the VTLP above is up to 1.8) and speed 0.8-1.2, not 0.9-1.1",
    ),
    "dataset-norm+reverb": (
        {"normalization": "dataset", "augmentation": {"rt60_s": [0.3, 0.8]}},
        "simulated room reverberation (RT60 0.3-0.8 s, direct-to-reverberant ratio 0-12 dB) "
        "on half the windows",
    ),
    "dataset-norm+specaug": (
        {"normalization": "dataset", "spec_augment": SPEC_AUGMENT},
        "SpecAugment: 2 time masks of up to 0.25 s and 2 masks of up to 8 mel bands per "
        "training window",
    ),
    "time-pool16+specaug": (
        {"normalization": "dataset", "spec_augment": SPEC_AUGMENT, "model": TIME_POOL16},
        "SpecAugment as in `dataset-norm+specaug`, on the default architecture (time pooled 16x)",
    ),
    "dataset-norm+mixup": (
        {"normalization": "dataset", "mixup_alpha": 0.2},
        "mixup of training windows and their labels, Beta(0.2, 0.2)",
    ),
    "gain-norm": ({"normalization": "gain"}, "utterance level removed before dataset mean/std"),
    "dataset-norm+avg5": (
        {"normalization": "dataset", "average_checkpoints": 5},
        "mean weights of the 5 best validation epochs",
    ),
    "dataset-norm+epochs90": (
        {"normalization": "dataset", "epochs": 90},
        "up to 90 epochs, not 45 (most folds of dataset-norm chose an epoch near the cap)",
    ),
    "dataset-norm+refit": (
        {"normalization": "dataset", "refit": True},
        "after the validation speakers chose the epoch, retrain on all 9 training speakers",
    ),
    "dataset-norm+depth4": (
        {"normalization": "dataset", "model": {"conv_filters": [16, 32, 64, 64]}},
        "a 4th dynamic-conv block: time pooled 16x (18 LSTM steps per 3 s, not 37; TFLite "
        "int8 2.0 ms vs float32 2.6 ms per 3 s window, one thread, x86)",
    ),
    "dataset-norm+time-pool16": (
        {"normalization": "dataset", "model": TIME_POOL16},
        "the 3rd block pools time 4x: 18 LSTM steps per 3 s, not 37, same parameters "
        "(TFLite int8 2.1 ms vs float32 2.3 ms; time pooled 8x: int8 2.9 ms vs float32 "
        "2.6 ms; same side-by-side single-thread run on x86). The default architecture "
        "since 2026-11-24",
    ),
    "dataset-norm+K1": (
        {"normalization": "dataset", "model": {"num_kernels": 1}},
        "K=1: a static convolution in every block (the attention has nothing to choose "
        "from): does dynamic convolution help at all?",
    ),
    "dataset-norm+K8": (
        {"normalization": "dataset", "model": {"num_kernels": 8}},
        "K=8 kernels per dynamic convolution, not 4",
    ),
    "dataset-norm+wide": (
        {"normalization": "dataset", "model": {"conv_filters": [32, 64, 128]}},
        "twice the filters per block (32/64/128, not 16/32/64)",
    ),
    "time-pool16+wide": (
        {"normalization": "dataset", "model": {**TIME_POOL16, "conv_filters": [32, 64, 128]}},
        "twice the filters per block on the default architecture (time pooled 16x)",
    ),
    "dataset-norm+temp1": (
        {"normalization": "dataset", "temperature": [1.0, 1.0, 1]},
        "attention temperature 1 from the start, no 30 -> 1 annealing",
    ),
    "dataset-norm+deltas": (
        {"normalization": "dataset", "frontend": {"feature": "logmel_deltas"}},
        "log-mel, delta and delta-delta as 3 input channels (as Chen et al. 2018)",
    ),
    "dataset-norm+mfcc39": (
        {"normalization": "dataset", "frontend": {"feature": "mfcc39"}},
        "13 MFCC + deltas + delta-deltas instead of 64 log-mel bands",
    ),
    "dataset-norm+floor60": (
        {"normalization": "dataset", "frontend": {"amin": 1e-6}},
        "log-mel floored at -60 dB (power 1e-6), not -100 dB: near-silent frames and each "
        "recording's noise floor no longer spread the features (the prototype in "
        "shared/notes/accuracy.md used log(power + 1e-6))",
    ),
    "dataset-norm+window2s": (
        {"normalization": "dataset", "window": {"frames": 200, "hop_frames": 50}},
        "2 s windows every 0.5 s, not 3 s every 1 s: 65% of EmoDB utterances are shorter "
        "than 3 s and are tiled (repeated) to fill a window, 24% are shorter than 2 s",
    ),
    "dataset-norm+hop25": (
        {"normalization": "dataset", "window": {"hop_frames": 25}},
        "test-time window aggregation: validation and test windows every 0.25 s, not 1 s "
        "(4x the windows averaged per long utterance; training unchanged)",
    ),
    "dataset-norm+class-weights": (
        {"normalization": "dataset", "class_weighting": True},
        "inverse-frequency class weights",
    ),
    "dataset-norm+class-weights+avg5": (
        {"normalization": "dataset", "class_weighting": True, "average_checkpoints": 5},
        "the two best single levers of the 1-seed screen together",
    ),
    "stream-norm+augment": (
        {**STREAM, "augmentation": AUGMENT},
        "stream-norm with the augmentation above",
    ),
    "stream-norm+avg5": (
        {**STREAM, "average_checkpoints": 5},
        "stream-norm, mean weights of the 5 best validation epochs",
    ),
    "stream-norm+class-weights": (
        {**STREAM, "class_weighting": True},
        "stream-norm, inverse-frequency class weights",
    ),
    "stream-norm+depth4": (
        {**STREAM, "model": {"conv_filters": [16, 32, 64, 64]}},
        "stream-norm with the 4-block model above",
    ),
    "dataset-norm+distill3": (
        {"normalization": "dataset", "distill": 3},
        "3 teachers (other seeds) distilled into the one evaluated model: the seed "
        "ensemble's knowledge in the single model the edge runs",
    ),
    "stream-norm+distill3": (
        {**STREAM, "distill": 3},
        "stream-norm, 3 teachers (other seeds) distilled into the one model",
    ),
}

#: Variants compared with another variant than `BASELINE`: those built on a later default.
PAIRED_WITH = {
    "time-pool16+specaug": "dataset-norm+time-pool16",
    "time-pool16+wide": "dataset-norm+time-pool16",
}


def run_variant(
    name: str, seeds: list[int], workers: int, backend: str, resume: bool = False
) -> Path:
    """Train and score `name` for the `seeds` not yet in its results file; merge them in."""
    from keras_dyconv.results import CORPUS_ORDER, merge_results, online_order

    path = ABLATION / f"{name}.json"
    existing = json.loads(path.read_text()) if path.exists() else None
    todo = [s for s in seeds if existing is None or s not in existing["seeds"]]
    if not todo:
        return path
    if existing is not None and online_order(existing) == CORPUS_ORDER:
        # New seeds score in a random order per speaker: they could not be merged in.
        raise ValueError(
            f"{path} scored its stream runs in corpus order; new seeds of {name!r} would be "
            "scored in a random order per speaker: rerun every seed into a new file"
        )
    overrides = dict(VARIANTS[name][0])
    frontend = overrides.pop("frontend", {})
    window = overrides.pop("window", {})
    overrides["model"] = {**ABLATION_MODEL, **overrides.get("model", {})}
    (part,) = bench_training.run(
        bench_training.BenchRun(
            protocol="loso",
            folds=10,
            recipe="default",
            seeds=todo,
            workers=workers,
            backend=backend,
            name=f"ablation-{name}-seeds{'-'.join(map(str, todo))}",
            results_dir=ABLATION,
            overrides={**overrides, "name": name},
            frontend=frontend,
            window=window,
            resume=resume,
        )
    )
    new = json.loads(part.read_text())
    merged = new if existing is None else merge_results([existing, new])
    if existing is not None:
        merged["timings"]["wall_s"] = existing["timings"].get("wall_s", 0) + new["timings"].get(
            "wall_s", 0
        )
    path.write_text(json.dumps(merged, indent=1))
    part.unlink()  # only once merged: a failed merge keeps the new seeds
    return path


def fold_scores(run: dict, key: str = "metrics") -> dict[tuple[str, int], dict]:
    """(fold, seed) -> that fold's metrics."""
    return {(r["fold"], r["seed"]): r[key] for r in run["folds"]}


def paired_delta(
    run: dict, base: dict, metric: str, key: str = "metrics", seed: int = 0
) -> tuple[float, float, float]:
    """Mean per-fold difference run - base over common (fold, seed) pairs (`key`: which of
    the run's fold metrics), with a 95% bootstrap interval over folds (each fold's seeds
    averaged first)."""
    a, b = fold_scores(run, key), fold_scores(base)
    common = sorted(set(a) & set(b))
    folds = sorted({f for f, _ in common})
    per_fold = np.array(
        [np.mean([a[k][metric] - b[k][metric] for k in common if k[0] == f]) for f in folds]
    )
    rng = np.random.default_rng(seed)
    boots = per_fold[rng.integers(0, len(per_fold), (2000, len(per_fold)))].mean(axis=1)
    return (
        float(per_fold.mean()),
        float(np.quantile(boots, 0.025)),
        float(np.quantile(boots, 0.975)),
    )


def pct(x: float) -> str:
    return f"{100 * x:.1f}"


def with_ci(value: float, ci: list[float]) -> str:
    return f"{pct(value)} [{pct(ci[0])}, {pct(ci[1])}]"


def targets(runs: dict[str, dict]) -> str:
    """Issue 9's targets against the best variant with at least 3 seeds (metrics pooled
    over the seeds; a `stream` variant's non-adaptive numbers are its fresh-stream ones)."""
    full = {n: r for n, r in runs.items() if len(r["seeds"]) >= 3}
    if not full:
        return "Targets: no variant has 3 seeds yet."

    def stream(r: dict) -> bool:
        return r["recipe"].get("normalization") == "stream"

    def fixed(r: dict, metric: str) -> float:
        return (r["pooled_independent"] if stream(r) else r["pooled"])[metric]

    best = max(full, key=lambda n: fixed(full[n], "ua"))
    ua, wa = fixed(full[best], "ua"), fixed(full[best], "wa")
    text = (
        f"Targets (issue 9, >= 3 seeds): best non-adaptive UA {pct(ua)} (`{best}`) against "
        f"80 (first bar) and 83: {verdict(ua >= 0.83)}; WA {pct(wa)} against "
        f"85: {verdict(wa >= 0.85)}."
    )
    adaptive = [n for n, r in full.items() if stream(r)]
    if adaptive:
        top = max(adaptive, key=lambda n: full[n]["pooled"]["ua"])
        online = full[top]["pooled"]["ua"]
        text += f" Online-adapted UA {pct(online)} (`{top}`) against 86: {verdict(online >= 0.86)}."
    return text


def seconds_per_epoch(run: dict) -> float:
    """Median over folds of a fold's seconds per epoch trained (refit epochs counted): the
    rows were recorded on shared machines of different speed, and this tells them apart
    where wall minutes cannot (a variant's own extra work, e.g. distillation's teachers,
    counts too)."""
    return float(
        np.median(
            [r["seconds"] / (r["epochs_run"] + (r.get("refit_epochs") or 0)) for r in run["folds"]]
        )
    )


def table_row(name: str, r: dict, runs: dict[str, dict]) -> list[str]:
    """The ablation table's row of variant `name` (results `r`; `runs`: every variant's,
    for the paired comparison)."""
    adaptive = r["recipe"].get("normalization") == "stream"
    # A "stream" model's non-adaptive score: every test utterance a fresh stream.
    key = "pooled_independent" if adaptive else "pooled"
    non_adaptive = (
        (
            with_ci(r[key]["wa"], r[f"{key}_ci95"]["wa"]),
            with_ci(r[key]["ua"], r[f"{key}_ci95"]["ua"]),
        )
        if key in r
        else ("—", "—")
    )
    pooled = (
        with_ci(r["pooled"]["wa"], r["pooled_ci95"]["wa"]),
        with_ci(r["pooled"]["ua"], r["pooled_ci95"]["ua"]),
    )
    online = pooled if adaptive else ("—", "—")
    seeds_ua = f"{pct(r['seed_mean']['ua'])} ± {pct(r['seed_std']['ua'])}"
    ens = r.get("ensemble")
    ensemble = f"{pct(ens['pooled']['wa'])} / {pct(ens['pooled']['ua'])}" if ens else "—"
    deltas = ["—", "—"]
    base = runs.get(PAIRED_WITH.get(name, BASELINE))
    if base is not None and name != BASELINE:
        keys = ["metrics_independent" if adaptive else "metrics"]
        keys += ["metrics"] if adaptive else []
        for i, key in enumerate(keys):
            if all(key in f for f in r["folds"]):
                d_ua = paired_delta(r, base, "ua", key)
                d_wa = paired_delta(r, base, "wa", key)
                deltas[i] = (
                    f"{100 * d_ua[0]:+.1f} [{100 * d_ua[1]:+.1f}, {100 * d_ua[2]:+.1f}] / "
                    f"{100 * d_wa[0]:+.1f}"
                ) + (f" (vs {PAIRED_WITH[name]})" if name in PAIRED_WITH else "")
    ref = r.get("pooled_speaker_norm")
    return [
        name,
        str(len(r["seeds"])),
        *non_adaptive,
        *online,
        f"{pct(ref['wa'])} / {pct(ref['ua'])}" if ref else "—",
        seeds_ua,
        ensemble,
        *deltas,
        f"{r['timings'].get('wall_s', r['timings']['total_s']) / 60:.0f}",
        f"{seconds_per_epoch(r):.1f}",
    ]


def online_orders(runs: dict[str, dict]) -> str:
    """How the `stream` variants' online predictions ordered each test speaker's utterances
    (`keras_dyconv.results.online_order`), in words: one order for all of them (none: the
    order runs record now), or each order with its variants."""
    from keras_dyconv.results import ONLINE_ORDER, online_order, online_order_text

    by_order: dict[str, list[str]] = {}
    for name, run in runs.items():
        order = online_order(run)
        if order is not None:
            by_order.setdefault(order, []).append(name)
    if len(by_order) < 2:
        return online_order_text(next(iter(by_order), ONLINE_ORDER))
    said = [
        ", ".join(f"`{n}`" for n in names) + f": {online_order_text(order)}"
        for order, names in by_order.items()
    ]
    return f"({'; '.join(said)})"


def render_table() -> None:
    runs = {p.stem: json.loads(p.read_text()) for p in sorted(ABLATION.glob("*.json"))}
    if not runs:
        print("no ablation results yet")
        return
    order = [n for n in VARIANTS if n in runs] + [n for n in runs if n not in VARIANTS]
    rows = [table_row(name, runs[name], runs) for name in order]
    header = [
        "variant",
        "seeds",
        "WA [95% CI]",
        "UA [95% CI]",
        "online-adapted WA [95% CI]",
        "online-adapted UA [95% CI]",
        "per-speaker ref. WA / UA",
        "UA mean ± std (seeds)",
        "seed ensemble WA / UA",
        f"paired ΔUA [95% CI] / ΔWA vs {BASELINE}",
        "online-adapted paired ΔUA [95% CI] / ΔWA",
        "wall min",
        "s / epoch",
    ]
    described = "\n".join(
        f"- `{n}`: {VARIANTS[n][1]}"
        + (f"; paired with `{PAIRED_WITH[n]}`" if n in PAIRED_WITH else "")
        for n in order
        if n in VARIANTS
    )
    not_run = [n for n in VARIANTS if n not in runs]
    if not_run:
        described += "\n\nDefined in `VARIANTS` but not run yet: " + ", ".join(
            f"`{n}`" for n in not_run
        )
    described += "\n\n" + targets(runs)
    body = "\n\n".join(
        [
            "`bench/bench_ablation.py`: EmoDB leave-one-speaker-out (10 folds, two "
            "validation speakers carved out of the training speakers), TensorFlow backend, "
            "default recipe with the changes listed below, on the model as it was before "
            "`dataset-norm+time-pool16` became the default architecture (time pooled 8x: "
            "`ABLATION_MODEL`) unless a variant says otherwise. WA/UA pool every seed's "
            "predictions (bootstrap interval over utterances). For `stream` normalisation "
            "the WA/UA columns are without adaptation (each test utterance a fresh stream: "
            "the training prior plus itself); the online-adapted columns score it as a "
            f"device runs it: each test speaker's utterances {online_orders(runs)} as one "
            "stream, normalised by the running statistics heard so far (no labels, no "
            "look-ahead); "
            "the per-speaker reference uses each test speaker's whole audio (transductive, "
            "not deployable). The seed ensemble averages the class probabilities of a "
            "fold's seeds; it and the spread over seeds use the online-adapted predictions "
            "for `stream` normalisation. The paired Δ is the mean per-fold difference from "
            f"`{BASELINE}` (or the variant named in the cell) on the same (fold, seed) pairs, "
            "with a bootstrap interval over folds. Rows were recorded on shared 2-core "
            "machines of different speed: compare costs by `s / epoch` side by side with a "
            "row of the same day (e.g. `dataset-norm` at 3.8 and `dataset-norm+temp1` at 9.3 "
            "train the same model on machines about 2x apart), not by wall minutes. Raw "
            "per-fold results: `docs/results/ablation/`.",
            described,
            markdown_table(header, rows),
            saved_machine_line("ablation"),
        ]
    )
    write_section("ablation", "EmoDB LOSO ablation (recipe levers)", body)
    print(markdown_table(header, rows))


def main() -> None:
    bench_training.exit_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--backend", default="tensorflow")
    parser.add_argument("--table-only", action="store_true")
    parser.add_argument(
        "--resume", action="store_true", help="checkpoint every epoch; resume an interrupted run"
    )
    args = parser.parse_args()
    if not args.table_only:
        if not bench_training.EMODB.exists():
            raise SystemExit(f"EmoDB not found at {bench_training.EMODB}")
        ABLATION.mkdir(parents=True, exist_ok=True)
        for name in args.variants:
            path = run_variant(name, args.seeds, args.workers, args.backend, args.resume)
            print(f"results -> {path}")
            save_environment("ablation", ("numpy", "keras", "tensorflow"))
            render_table()
    render_table()


if __name__ == "__main__":
    main()
