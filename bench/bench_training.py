"""EmoDB accuracy benchmark: a recipe under a protocol, folds spread over worker processes.

    python bench/bench_training.py --protocol loso --recipe default
    python bench/bench_training.py --protocol stratified --folds 10 --recipe default
    python bench/bench_training.py --protocol loso --recipe paper
    python bench/bench_training.py --table-only          # re-render docs from saved results

With --resume every epoch is checkpointed under runs/bench/<name>/ and running the same
command again resumes an interrupted run: finished folds are read back, an interrupted one
continues from its last epoch (the long `paper` recipe spans sessions this way).

Each run writes its merged results (per-fold metrics and predictions) to
docs/results/emodb-<protocol>-<recipe>.json, then the "training" section of
docs/benchmarks.md is rendered from every such file. Workers run one fold subset each with
one thread, which on a 2-core machine is faster than one process using both cores.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# This checkout's packages, not whichever copy is pip-installed (runs from a git worktree
# must test that worktree's code); the workers are started with the same path.
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]
from _report import (  # noqa: E402
    markdown_table,
    save_environment,
    saved_machine_line,
    verdict,
    write_section,
)

EMODB = ROOT.parent / "shared" / "datasets" / "emodb"
RESULTS = ROOT / "docs" / "results"
ONE_THREAD = {
    "OMP_NUM_THREADS": "1",
    "TF_NUM_INTRAOP_THREADS": "1",
    "TF_NUM_INTEROP_THREADS": "1",
    "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
}


def fold_names(protocol: str, k: int) -> list[str]:
    from edge_runtime.config import FrontendConfig  # noqa: F401  (fast import check)
    from keras_dyconv.corpora import load_emodb
    from keras_dyconv.experiment import ProtocolSpec, make_folds

    return [f.name for f in make_folds(load_emodb(EMODB), ProtocolSpec(protocol, k=k))]


def worker(args: argparse.Namespace) -> None:
    if os.environ.get("KERAS_BACKEND") == "torch":
        import torch

        torch.set_num_threads(1)
    from edge_runtime.config import FrontendConfig
    from edge_runtime.windows import WindowPolicy
    from keras_dyconv.corpora import load_emodb
    from keras_dyconv.experiment import ProtocolSpec, run_experiment
    from keras_dyconv.recipes import get_recipe

    recipe = get_recipe(args.recipe).with_overrides(**json.loads(args.overrides))
    run_experiment(
        load_emodb(EMODB),
        args.out,
        FrontendConfig(**json.loads(args.frontend)),
        recipe,
        ProtocolSpec(args.protocol, k=args.folds),
        seeds=args.seeds,
        policy=WindowPolicy(**json.loads(args.window)),
        cache_dir=ROOT / "runs" / "cache",
        only_folds=args.only.split(","),
        checkpoint_dir=args.checkpoints,
        verbose=0,
        log=lambda msg: print(f"[{args.out.name}] {msg}", flush=True),
    )


@dataclass(frozen=True)
class BenchRun:
    """What one `run` trains and where it goes: the options of `build_parser` (the recipe,
    frontend and window changes as dicts, not JSON text)."""

    protocol: str = "loso"
    folds: int = 10
    recipe: str = "default"
    seeds: list[int] = field(default_factory=lambda: [0])
    workers: int = 2
    backend: str = "tensorflow"
    #: Result name (default emodb-<protocol>-<recipe>).
    name: str | None = None
    #: Where the results JSON goes (default docs/results).
    results_dir: Path | None = None
    #: `Recipe` fields changed from the recipe's.
    overrides: dict[str, Any] = field(default_factory=dict)
    #: `FrontendConfig` fields changed from its defaults.
    frontend: dict[str, Any] = field(default_factory=dict)
    #: `WindowPolicy` fields changed from its defaults.
    window: dict[str, Any] = field(default_factory=dict)
    #: Checkpoint every epoch; resume an interrupted run.
    resume: bool = False

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> BenchRun:
        """The run the command line asks for."""
        values = {f.name: getattr(args, f.name) for f in fields(cls)}
        for name in ("overrides", "frontend", "window"):
            values[name] = json.loads(values[name])
        return cls(**values)


def run(args: BenchRun) -> Path:
    from edge_runtime.config import FrontendConfig
    from keras_dyconv.corpora import load_emodb
    from keras_dyconv.features import extract_corpus
    from keras_dyconv.results import merge_results

    utts = load_emodb(EMODB)
    # Fill the feature cache once, in parallel, before the workers start.
    extract_corpus(
        [u.path for u in utts],
        FrontendConfig(**args.frontend),
        cache_dir=ROOT / "runs" / "cache",
        n_jobs=args.workers,
    )
    names = fold_names(args.protocol, args.folds)
    tag = args.name or f"emodb-{args.protocol}-{args.recipe}"
    run_dir = ROOT / "runs" / "bench" / tag
    env = {
        **os.environ,
        **ONE_THREAD,
        "KERAS_BACKEND": args.backend,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    # Checkpoints are keyed by the options too, so a changed command never reads back folds
    # of another configuration.
    options = [args.protocol, args.folds, args.recipe, args.seeds, args.backend]
    overrides, frontend, window = (
        json.dumps(d) for d in (args.overrides, args.frontend, args.window)
    )
    options += [overrides, frontend, window]
    key = hashlib.sha256(json.dumps(options).encode()).hexdigest()[:10]
    commands, t0 = [], time.time()
    for i in range(args.workers):
        subset = names[i :: args.workers]
        if not subset:
            continue
        cmd = [
            sys.executable,
            __file__,
            "--worker",
            "--protocol",
            args.protocol,
            "--recipe",
            args.recipe,
            "--folds",
            str(args.folds),
            "--only",
            ",".join(subset),
            "--out",
            str(run_dir / f"part{i}"),
            "--overrides",
            overrides,
            "--frontend",
            frontend,
            "--window",
            window,
            "--seeds",
            *map(str, args.seeds),
        ]
        if args.resume:
            cmd += ["--checkpoints", str(run_dir / f"checkpoints-{key}" / f"part{i}")]
        commands.append(cmd)
    codes = run_workers(commands, env)
    if any(codes):
        raise SystemExit(f"a worker failed: exit codes {codes}")
    parts = [
        json.loads((run_dir / f"part{i}" / "results.json").read_text()) for i in range(len(codes))
    ]
    merged = merge_results(parts)
    # A resumed run's wall time is that of its busiest worker's folds, whenever they ran.
    busiest = max(sum(f["seconds"] for f in p["folds"]) for p in parts)
    merged["timings"]["wall_s"] = round(max(time.time() - t0, busiest), 1)
    merged["timings"]["workers"] = len(codes)
    results_dir = args.results_dir or RESULTS
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / f"{tag}.json"
    path.write_text(json.dumps(merged, indent=1))
    return path


def pct(x: float) -> str:
    return f"{100 * x:.1f}"


def render_table() -> None:
    from keras_dyconv import build_dycnn_bilstm

    rows, default = [], {}
    for path in sorted(RESULTS.glob("emodb-*.json")):
        r = json.loads(path.read_text())
        if r["recipe"]["name"] == "default":
            default[r["protocol"]["name"]] = r
        proto = r["protocol"]
        name = proto["name"] + (f" k={proto['k']}" if proto["name"] != "loso" else "")
        pooled, ci = r["pooled"], r["pooled_ci95"]
        seed0 = next(iter(r["per_seed"].values()))
        params = r.get("architecture", {}).get("params")  # recorded since it existed
        if params is None:
            model = r["recipe"].get("model", {})
            params = build_dycnn_bilstm(num_classes=len(r["labels"]), **model).count_params()
        normalization = r["recipe"].get("normalization", "dataset")
        rows.append(
            [
                f"{r['recipe']['name']} ({normalization} norm.)",
                name,
                "yes" if proto["speaker_independent"] else "no",
                f"{r['folds_run']} x {len(r['seeds'])}",
                f"{pct(pooled['wa'])} [{pct(ci['wa'][0])}, {pct(ci['wa'][1])}]",
                f"{pct(pooled['ua'])} [{pct(ci['ua'][0])}, {pct(ci['ua'][1])}]",
                f"{pct(seed0['mean']['wa'])} ± {pct(seed0['std']['wa'])}",
                f"{pct(seed0['mean']['ua'])} ± {pct(seed0['std']['ua'])}",
                f"{r['timings'].get('wall_s', r['timings']['total_s']) / 60:.1f}",
                r["versions"]["backend"],
                f"{params:,}",
            ]
        )
    header = [
        "recipe",
        "protocol",
        "speaker-indep.",
        "folds x seeds",
        "pooled WA [95% CI]",
        "pooled UA [95% CI]",
        "WA mean ± std (folds)",
        "UA mean ± std (folds)",
        "wall min",
        "backend",
        "params",
    ]
    figure = plot_folds()
    body = "\n\n".join(
        [
            "`bench/bench_training.py` on `../shared/datasets/emodb` (535 utterances, 7 classes). "
            "WA = accuracy, UA = mean per-class recall. The 95% interval is a bootstrap over "
            "utterances (it ignores speaker-level variance, so it is optimistic). Model selection "
            "uses two validation speakers carved out of the training speakers (LOSO) or a "
            "validation fraction of the training part (stratified); the test fold is never used. "
            "Raw per-fold results and predictions: `docs/results/`. The default recipe over "
            "3 seeds (variant `dataset-norm+time-pool16`), and the recipe levers tried "
            "against it, are in the ablation section below. The `paper` recipe is the seed "
            "paper's settings for comparison (RMSProp, learning rate 0.01, batch 200, 1000 "
            "iterations, e.g. 500 epochs of a LOSO fold's ~355 training utterances, no early "
            "stopping; the validation data still chooses the epoch), on the same architecture.",
            markdown_table(header, rows),
            *([targets(default)] if default else []),
            *([f"![Per-fold accuracy of every run]({figure})"] if figure else []),
            saved_machine_line("training"),
        ]
    )
    write_section("training", "EmoDB accuracy (dyser-train recipes)", body)
    print(markdown_table(header, rows))


def targets(default: dict[str, dict]) -> str:
    """The training issue's targets for the default recipe (results by protocol name)."""
    checks = []  # (target, measured, met)
    if "stratified" in default:
        wa = default["stratified"]["pooled"]["wa"]
        checks.append(("stratified 10-fold WA >= 92%", pct(wa), wa >= 0.92))
    if "loso" in default:
        pooled, minutes = default["loso"]["pooled"], default["loso"]["timings"]["wall_s"] / 60
        checks += [
            ("LOSO WA >= 85%", pct(pooled["wa"]), pooled["wa"] >= 0.85),
            ("LOSO UA >= 83%", pct(pooled["ua"]), pooled["ua"] >= 0.83),
            ("LOSO run <= 45 min", f"{minutes:.0f} min", minutes <= 45),
        ]
    parts = [f"{name}: {verdict(ok)} ({measured})" for name, measured, ok in checks]
    return "Targets (default recipe): " + "; ".join(parts) + "."


def plot_folds() -> str | None:
    """Bar chart of per-fold WA/UA of every saved run -> docs/img/emodb-folds.png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [json.loads(p.read_text()) for p in sorted(RESULTS.glob("emodb-*.json"))]
    if not runs:
        return None
    fig, axes = plt.subplots(len(runs), 1, figsize=(9, 2.6 * len(runs)), squeeze=False)
    for ax, r in zip(axes[:, 0], runs, strict=True):
        folds = sorted(r["folds"], key=lambda f: (len(f["fold"]), f["fold"], f["seed"]))
        names = [f["fold"].split("-")[-1] for f in folds]
        wa = [100 * f["metrics"]["wa"] for f in folds]
        ua = [100 * f["metrics"]["ua"] for f in folds]
        x = range(len(names))
        ax.bar([i - 0.2 for i in x], wa, 0.4, label="WA")
        ax.bar([i + 0.2 for i in x], ua, 0.4, label="UA")
        ax.axhline(100 * r["pooled"]["wa"], color="C0", ls="--", lw=1)
        ax.set_xticks(list(x), names, fontsize=8)
        ax.set_ylim(0, 100)
        ax.set_ylabel("%")
        ax.set_title(f"{r['recipe']['name']} recipe, {r['protocol']['name']} (dashed: pooled WA)")
        ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    out = ROOT / "docs" / "img" / "emodb-folds.png"
    out.parent.mkdir(exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return "img/emodb-folds.png"


def build_parser() -> argparse.ArgumentParser:
    """The command line (`BenchRun.from_args` turns it into a `run`)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--protocol", default="loso", choices=["loso", "stratified"])
    parser.add_argument("--folds", type=int, default=10, help="k for stratified")
    parser.add_argument("--recipe", default="default")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--backend", default=os.environ.get("KERAS_BACKEND", "tensorflow"))
    parser.add_argument("--table-only", action="store_true")
    parser.add_argument("--name", help="result name (default emodb-<protocol>-<recipe>)")
    parser.add_argument("--results-dir", type=Path, help="where the JSON goes (docs/results)")
    parser.add_argument(
        "--overrides", default="{}", help='recipe fields as JSON, e.g. {"average_checkpoints": 5}'
    )
    parser.add_argument(
        "--frontend", default="{}", help='frontend fields as JSON, e.g. {"feature": "mfcc39"}'
    )
    parser.add_argument(
        "--window", default="{}", help='window policy fields as JSON, e.g. {"frames": 200}'
    )
    parser.add_argument(
        "--resume", action="store_true", help="checkpoint every epoch; resume an interrupted run"
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--checkpoints", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--only", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    return parser


def run_workers(commands: list[list[str]], env: dict[str, str]) -> list[int]:
    """Run the worker commands in parallel and return their exit codes.

    An interrupted parent (Ctrl-C, or a kill: `exit_on_sigterm`) stops its workers first:
    left running, they would go on writing the run's checkpoints under a restarted run.
    """
    procs = [subprocess.Popen(cmd, env=env) for cmd in commands]
    try:
        return [p.wait() for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            p.wait()


def exit_on_sigterm() -> None:
    """Turn SIGTERM (`kill`) into SystemExit, so that `finally` blocks (`run_workers`) run."""
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


def main() -> None:
    exit_on_sigterm()
    args = build_parser().parse_args()
    if args.worker:
        worker(args)
        return
    if not args.table_only:
        if not EMODB.exists():
            raise SystemExit(f"EmoDB not found at {EMODB}")
        print(f"results -> {run(BenchRun.from_args(args))}")
        save_environment("training", ("numpy", "keras", "tensorflow"))
    render_table()


if __name__ == "__main__":
    main()
