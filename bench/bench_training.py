"""Accuracy benchmark: a recipe under a protocol, its (fold, seed) units spread over workers.

EmoDB alone (the default corpus), one results file for every seed:

    python bench/bench_training.py --protocol loso --recipe default
    python bench/bench_training.py --protocol stratified --folds 10 --recipe default
    python bench/bench_training.py --protocol loso --recipe paper
    python bench/bench_training.py --table-only          # re-render docs from saved results

Several corpora, as `dyser-train` takes them (--corpus/--data pairs, --target; --protocol
loco holds each corpus out), one results file per seed, e.g. the pooled run over three
corpora and three seeds of the multi-corpus issue (recipe changes as --overrides, e.g.
'{"normalization": "stream", "stream_training": "online"}'):

    python bench/bench_training.py --corpus emodb --data ../shared/datasets/emodb \
        --corpus casia --data ../shared/datasets/casia \
        --corpus ravdess --data ../shared/datasets/ravdess \
        --target all --protocol group-kfold --folds 4 --seeds 0 1 2 --workers 2 --resume \
        --name pooled-group-kfold-valrule4

The run's work units are its folds times its seeds, dealt seed by seed to the workers in
turn (`work_units`); each worker is one process with one thread (on a 2-core machine faster
than one process using both cores) and runs its units one after another, a
`run_experiment` per seed over its folds of that seed. The feature cache is filled once,
in parallel, before the workers start. With --resume every epoch is checkpointed under
runs/bench/<name>/checkpoints-<key>/<fold>/seed<seed>/ (the key hashes the options that
shape training) and running the same command again resumes an interrupted run: finished
units are read back, an interrupted one continues from its last epoch (the long `paper`
recipe spans sessions this way), whatever the number of workers.

Results: one corpus writes docs/results/<corpus>-<protocol>-<recipe>.json (or --name),
then renders the "training" section of docs/benchmarks.md from every emodb-*.json there;
several corpora write docs/results/multicorpus/<name>-seed<N>.json (--name required; the
layout `bench_multicorpus.py` reads, which merges a run's seed files), then render the
"multicorpus" section. Protocol folds are made as `dyser-train` makes them: with several
corpora each seed's as `dyser-train --seed N` (a seed-dependent protocol, stratified, has
other folds per seed), with one corpus seed 0's for every seed. Each file's "timings" add
to the process seconds ("total_s") the run's wall time ("wall_s", from loading the corpora
to the last worker's end, of all the seeds in "wall_seeds"; a resumed run's at least its
busiest worker's fold seconds, whenever they ran) and "workers". The run ends with a table
per file of its folds and fold seconds, and the wall time against the multi-corpus cost
target (`COST_TARGET_S`).
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
from typing import TYPE_CHECKING, Any

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

from keras_dyconv.corpora import CORPORA  # noqa: E402
from keras_dyconv.folds import PROTOCOLS  # noqa: E402

if TYPE_CHECKING:
    from keras_dyconv.corpora import Utterance
    from keras_dyconv.folds import ProtocolSpec

EMODB = ROOT.parent / "shared" / "datasets" / "emodb"
RESULTS = ROOT / "docs" / "results"
ONE_THREAD = {
    "OMP_NUM_THREADS": "1",
    "TF_NUM_INTRAOP_THREADS": "1",
    "TF_NUM_INTEROP_THREADS": "1",
    "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
}
#: glibc's malloc asks for transparent huge pages (Linux, THP in "madvise" mode, as on
#: Debian): a training step allocates fresh tensor memory each time, and with 4 KiB pages
#: it spent ~25% of its time in page faults (~90k per second); huge pages cut the faults
#: 6-12x and the one-thread step time ~17% (0.96 s vs 1.17 s, 3 interleaved runs). A no-op
#: elsewhere.
HUGE_PAGES = "glibc.malloc.hugetlb=1"
#: The multi-corpus issue's cost target: a 3-seed run over the three corpora within 4 h of
#: wall time on the 2-core CPU.
COST_TARGET_S = 4 * 3600


@dataclass(frozen=True)
class BenchRun:
    """What one `run` trains and where it goes: the options of `build_parser` (the recipe,
    frontend and window changes as dicts, not JSON text).

    Raises:
        ValueError: corpora and data not in pairs; several corpora without a name.
    """

    protocol: str = "loso"
    folds: int = 10
    recipe: str = "default"
    seeds: list[int] = field(default_factory=lambda: [0])
    workers: int = 2
    backend: str = "tensorflow"
    #: Corpus loaders (keys of `keras_dyconv.corpora.CORPORA`), as `dyser-train --corpus`.
    corpora: list[str] = field(default_factory=lambda: ["emodb"])
    #: Each corpus's root folder or manifest, in the order of `corpora`.
    data: list[Path] = field(default_factory=lambda: [EMODB])
    #: Several corpora: the corpus the folds are made on (`dyser-train --target`; "all":
    #: pooled, every corpus trained and tested; default: the first corpus).
    target: str | None = None
    #: Result name (default <corpus>-<protocol>-<recipe>; several corpora: required).
    name: str | None = None
    #: Where the results JSON goes (default docs/results, several corpora its multicorpus/).
    results_dir: Path | None = None
    #: Where the workers' folders, the checkpoints and the feature cache go (default runs/).
    runs_dir: Path = ROOT / "runs"
    #: `Recipe` fields changed from the recipe's.
    overrides: dict[str, Any] = field(default_factory=dict)
    #: `FrontendConfig` fields changed from its defaults.
    frontend: dict[str, Any] = field(default_factory=dict)
    #: `WindowPolicy` fields changed from its defaults.
    window: dict[str, Any] = field(default_factory=dict)
    #: Checkpoint every epoch; resume an interrupted run.
    resume: bool = False

    def __post_init__(self) -> None:
        if len(self.corpora) != len(self.data):
            raise ValueError(
                f"give --corpus and --data in pairs: got {len(self.corpora)} --corpus and "
                f"{len(self.data)} --data"
            )
        if self.multi and self.name is None:
            raise ValueError(
                "a multi-corpus run needs --name: its results are "
                "docs/results/multicorpus/<name>-seed<N>.json"
            )

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> BenchRun:
        """The run the command line asks for (no --corpus and --data: EmoDB)."""
        values = {f.name: getattr(args, f.name) for f in fields(cls)}
        for name in ("overrides", "frontend", "window"):
            values[name] = json.loads(values[name])
        if values["corpora"] is None and values["data"] is None:
            del values["corpora"], values["data"]
        else:
            values["corpora"], values["data"] = values["corpora"] or [], values["data"] or []
        return cls(**values)

    @property
    def multi(self) -> bool:
        """Several corpora (or leave-one-corpus-out): one results file per seed."""
        return len(self.corpora) > 1 or self.protocol == "loco"

    @property
    def run_dir(self) -> Path:
        """The workers' folders and the checkpoints: runs/bench/<result name>."""
        return (
            self.runs_dir
            / "bench"
            / (self.name or f"{self.corpora[0]}-{self.protocol}-{self.recipe}")
        )

    def protocol_spec(self, seed: int) -> ProtocolSpec:
        """The folds of `seed`'s training: as `dyser-train --seed seed` makes them with
        several corpora, seed 0's for every seed with one."""
        from keras_dyconv.folds import ProtocolSpec

        return ProtocolSpec(self.protocol, k=self.folds, seed=seed if self.multi else 0)

    def result_files(self) -> dict[Path, list[int]]:
        """Each results file and the seeds it holds: one corpus, every seed in one file
        (docs/results/<name>.json); several, a file per seed
        (docs/results/multicorpus/<name>-seed<N>.json)."""
        if not self.multi:
            name = self.name or f"{self.corpora[0]}-{self.protocol}-{self.recipe}"
            return {(self.results_dir or RESULTS) / f"{name}.json": list(self.seeds)}
        folder = self.results_dir or RESULTS / "multicorpus"
        return {folder / f"{self.name}-seed{seed}.json": [seed] for seed in self.seeds}

    def checkpoint_key(self) -> str:
        """A hash of the options that shape a unit's training, so that a changed command
        never reads back units of another configuration (not the seeds: a unit's
        checkpoints are its seed's)."""
        options: list[Any] = [self.protocol, self.folds, self.recipe, self.backend]
        options += [self.overrides, self.frontend, self.window]
        if self.multi:
            options += [self.corpora, [str(d) for d in self.data], self.target]
        return hashlib.sha256(json.dumps(options, sort_keys=True).encode()).hexdigest()[:10]


def load_corpora(run: BenchRun) -> tuple[list[Utterance], list[Utterance], str | None]:
    """`dyser-train`'s corpora of `run` (`keras_dyconv.cli_inputs.load_corpora`): (utts, extra,
    target) for `run_experiment`."""
    import click

    from keras_dyconv import cli_inputs

    loco = run.protocol == "loco"
    try:
        return cli_inputs.load_corpora(tuple(run.corpora), tuple(run.data), run.target, loco)
    except click.ClickException as err:
        raise SystemExit(f"bench_training: {err.format_message()}") from None


def worker_env(backend: str, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a worker process: `base` (default: this process's) with one
    thread, glibc huge pages (added to any GLIBC_TUNABLES already set), the Keras backend,
    and this checkout first on the import path."""
    base = dict(os.environ if base is None else base)
    return {
        **base,
        **ONE_THREAD,
        "GLIBC_TUNABLES": ":".join(filter(None, [base.get("GLIBC_TUNABLES"), HUGE_PAGES])),
        "KERAS_BACKEND": backend,
        "PYTHONPATH": os.pathsep.join([str(ROOT), base.get("PYTHONPATH", "")]),
    }


def work_units(folds: dict[int, list[str]], workers: int) -> list[dict[int, list[str]]]:
    """Deal the (fold, seed) units of `folds` ({seed: its fold names, in order}), seed by
    seed, to `workers` in turn: per worker that gets any, {seed: its folds of that seed}."""
    units = [(seed, name) for seed, names in folds.items() for name in names]
    shares = []
    for i in range(min(workers, len(units))):
        share: dict[int, list[str]] = {}
        for seed, name in units[i::workers]:
            share.setdefault(seed, []).append(name)
        shares.append(share)
    return shares


def worker(args: argparse.Namespace, run: BenchRun) -> None:
    """A worker process: its units (`--units`, {seed: fold names}) one seed after another,
    each seed's results in <--out>/seed<seed>/results.json."""
    if os.environ.get("KERAS_BACKEND") == "torch":
        import torch

        torch.set_num_threads(1)
    from edge_runtime.config import FrontendConfig
    from edge_runtime.windows import WindowPolicy
    from keras_dyconv.experiment import run_experiment
    from keras_dyconv.pretraining import PRETRAINED_DIR
    from keras_dyconv.recipes import get_recipe

    utts, extra, target = load_corpora(run)
    recipe = get_recipe(run.recipe).with_overrides(**run.overrides)
    for seed, names in json.loads(args.units).items():
        out = args.out / f"seed{seed}"
        if recipe.pretrain_extra:
            share_folder(out / PRETRAINED_DIR, args.out.parent / PRETRAINED_DIR)
        tag = f"[{args.out.name} seed {seed}]"
        run_experiment(
            utts,
            out,
            FrontendConfig(**run.frontend),
            recipe,
            run.protocol_spec(int(seed)),
            seeds=[int(seed)],
            policy=WindowPolicy(**run.window),
            cache_dir=run.runs_dir / "cache",
            only_folds=names,
            checkpoint_dir=args.checkpoints,
            verbose=0,
            log=lambda msg, tag=tag: print(f"{tag} {msg}", flush=True),
            extra=extra,
            target=target,
        )


def share_folder(link: Path, shared: Path) -> None:
    """Make `link` (unless it exists) a link to the folder `shared` (made if missing): the
    workers' run folders share one, e.g. their pretrained models (`Recipe.pretrain_extra`,
    kept in a run folder's `keras_dyconv.pretraining.PRETRAINED_DIR`), so each seed's is
    trained once, by the first worker to need it, and read by the others."""
    shared.mkdir(parents=True, exist_ok=True)
    link.parent.mkdir(parents=True, exist_ok=True)
    if not link.exists():
        link.symlink_to(shared.resolve(), target_is_directory=True)


def worker_command(
    run: BenchRun, share: dict[int, list[str]], out: Path, checkpoints: Path | None
) -> list[str]:
    """The command line of a worker that runs the units `share` into `out`."""
    cmd = [sys.executable, __file__, "--worker", "--protocol", run.protocol]
    cmd += ["--folds", str(run.folds), "--recipe", run.recipe, "--runs-dir", str(run.runs_dir)]
    for corpus, data in zip(run.corpora, run.data, strict=True):
        cmd += ["--corpus", corpus, "--data", str(data)]
    for option, value in (("--target", run.target), ("--name", run.name)):
        if value is not None:
            cmd += [option, value]
    for option in ("overrides", "frontend", "window"):
        cmd += [f"--{option}", json.dumps(getattr(run, option))]
    cmd += ["--units", json.dumps(share), "--out", str(out)]
    return cmd + ([] if checkpoints is None else ["--checkpoints", str(checkpoints)])


def run(args: BenchRun) -> list[Path]:
    """Train every (fold, seed) unit of `args` over its workers; write and return its
    results files (`BenchRun.result_files`)."""
    from edge_runtime.config import FrontendConfig
    from keras_dyconv.experiment import planned_fold_names
    from keras_dyconv.features import extract_corpus
    from keras_dyconv.results import merge_results

    t0 = time.time()
    utts, extra, target = load_corpora(args)
    # Fill the feature cache once, in parallel, before the workers start.
    extract_corpus(
        [u.path for u in [*utts, *extra]],
        FrontendConfig(**args.frontend),
        cache_dir=args.runs_dir / "cache",
        n_jobs=args.workers,
    )
    folds = {s: planned_fold_names(utts, args.protocol_spec(s), extra, target) for s in args.seeds}
    shares = work_units(folds, args.workers)
    checkpoints = args.run_dir / f"checkpoints-{args.checkpoint_key()}" if args.resume else None
    env = worker_env(args.backend)
    parts = [args.run_dir / f"part{i}" for i in range(len(shares))]
    commands = [
        worker_command(args, share, part, checkpoints)
        for share, part in zip(shares, parts, strict=True)
    ]
    codes = run_workers(commands, env)
    if any(codes):
        raise SystemExit(f"a worker failed: exit codes {codes}")
    wall = time.time() - t0
    results = [
        {seed: json.loads((part / f"seed{seed}" / "results.json").read_text()) for seed in share}
        for share, part in zip(shares, parts, strict=True)
    ]
    # A resumed run's wall time is that of its busiest worker's folds, whenever they ran.
    busiest = max(sum(f["seconds"] for r in w.values() for f in r["folds"]) for w in results)
    timings = {"wall_s": round(max(wall, busiest), 1), "workers": len(shares)}
    paths = []
    for path, seeds in args.result_files().items():
        merged = merge_results([r for w in results for s, r in w.items() if s in seeds])
        merged["timings"].update(timings, wall_seeds=list(args.seeds))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(merged, indent=1))
        paths.append(path)
    return paths


def cost_table(paths: list[Path]) -> str:
    """The runs of `paths` (one `run`'s results files): per file its seeds, folds and fold
    seconds summed, then the run's wall time (several corpora: against `COST_TARGET_S`)."""
    runs = [json.loads(p.read_text()) for p in paths]
    rows = [
        [
            p.name,
            ", ".join(map(str, r["seeds"])),
            f"{r['folds_run']} x {len(r['seeds'])}",
            f"{sum(f['seconds'] for f in r['folds']) / 3600:.2f}",
            f"{r['timings']['total_s'] / 3600:.2f}",
        ]
        for p, r in zip(paths, runs, strict=True)
    ]
    header = ["results", "seeds", "folds x seeds", "fold h summed", "process h summed"]
    timings = runs[0]["timings"]
    wall = timings["wall_s"]
    line = (
        f"Wall time {wall / 3600:.2f} h for seeds {timings['wall_seeds']} with "
        f"{timings['workers']} workers"
    )
    if "corpora" in runs[0]:
        line += (
            f" over {len(runs[0]['corpora'])} corpora; cost target (3 seeds over the three "
            f"corpora <= {COST_TARGET_S / 3600:.0f} h): {verdict(wall <= COST_TARGET_S)}"
        )
    return markdown_table(header, rows) + "\n\n" + line + "."


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
    protocols = [p for p in PROTOCOLS if p not in ("split", "all")]  # those with test folds
    parser.add_argument("--protocol", default="loso", choices=protocols)
    parser.add_argument("--folds", type=int, default=10, help="k for stratified and group-kfold")
    parser.add_argument("--recipe", default="default")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--backend", default=os.environ.get("KERAS_BACKEND", "tensorflow"))
    parser.add_argument(
        "--corpus",
        dest="corpora",
        action="append",
        choices=list(CORPORA),
        help="as dyser-train's; repeat --corpus/--data pairs for several (default: EmoDB)",
    )
    parser.add_argument(
        "--data", action="append", type=Path, help="each --corpus's root folder or manifest"
    )
    parser.add_argument("--target", help="several corpora: as dyser-train's ('all': pooled)")
    parser.add_argument("--table-only", action="store_true")
    parser.add_argument(
        "--name",
        help="result name (default <corpus>-<protocol>-<recipe>; several corpora: required, "
        "their files are <name>-seed<N>.json)",
    )
    parser.add_argument(
        "--results-dir",
        type=Path,
        help="where the JSON goes (docs/results; several corpora docs/results/multicorpus)",
    )
    parser.add_argument(
        "--runs-dir",
        type=Path,
        default=ROOT / "runs",
        help="where the workers' folders, checkpoints and feature cache go (runs/)",
    )
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
    parser.add_argument("--units", help=argparse.SUPPRESS)
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
    parser = build_parser()
    args = parser.parse_args()
    try:
        bench = BenchRun.from_args(args)
    except ValueError as err:
        parser.error(str(err))
    if args.worker:
        worker(args, bench)
        return
    if not args.table_only:
        for corpus, data in zip(bench.corpora, bench.data, strict=True):
            if not data.exists():
                raise SystemExit(f"{corpus} not found at {data}")
        paths = run(bench)
        print("\n".join(["results -> " + ", ".join(map(str, paths)), cost_table(paths)]))
        if bench.multi:
            import bench_multicorpus

            bench_multicorpus.main([])
            return
        save_environment("training", ("numpy", "keras", "tensorflow"))
    render_table()


if __name__ == "__main__":
    main()
