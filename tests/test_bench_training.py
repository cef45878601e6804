"""`bench/bench_training.py` over several corpora: its (fold, seed) units spread over worker
processes, one results file per seed, resumed from checkpoints (synthetic corpora)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import bench_multicorpus
import bench_training
import pytest
from bench_training import BenchRun, build_parser, share_folder, work_units
from test_multicorpus import EMODB_EMOTIONS, RAVDESS_EMOTIONS, _own_corpus
from test_pooled import _three

from keras_dyconv.corpora import load_manifest
from keras_dyconv.folds import ProtocolSpec, make_folds
from keras_dyconv.multicorpus import POOLED, multi_corpus
from keras_dyconv.results import merge_results


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def test_units_are_dealt_seed_by_seed_to_the_workers_in_turn():
    folds = {seed: [f"speaker-{i}of4" for i in range(1, 5)] for seed in (0, 1, 2)}
    shares = work_units(folds, 2)
    assert shares == [
        {seed: ["speaker-1of4", "speaker-3of4"] for seed in (0, 1, 2)},
        {seed: ["speaker-2of4", "speaker-4of4"] for seed in (0, 1, 2)},
    ]
    # Balanced to one unit, every unit once, even when the folds do not divide evenly.
    shares = work_units({0: ["a", "b", "c"], 1: ["a", "b", "c"]}, 4)
    assert shares == [{0: ["a"], 1: ["b"]}, {0: ["b"], 1: ["c"]}, {0: ["c"]}, {1: ["a"]}]
    assert work_units({0: ["a"]}, 2) == [{0: ["a"]}]  # no idle worker


def test_one_corpus_keeps_its_file_and_several_write_one_file_per_seed(tmp_path):
    parse = build_parser().parse_args
    emodb = BenchRun.from_args(parse(["--seeds", "0", "1", "--protocol", "stratified"]))
    assert emodb.corpora == ["emodb"] and emodb.data == [bench_training.EMODB]
    assert emodb.result_files() == {
        bench_training.RESULTS / "emodb-stratified-default.json": [0, 1]
    }
    assert emodb.protocol_spec(1) == ProtocolSpec("stratified", k=10, seed=0)
    pairs = ["--corpus", "emodb", "--data", "a", "--corpus", "casia", "--data", "b"]
    args = [*pairs, "--target", "all", "--seeds", "0", "2", "--name", "pooled-x"]
    pooled = BenchRun.from_args(parse(args))
    assert pooled.multi and pooled.data == [Path("a"), Path("b")] and pooled.target == POOLED
    folder = bench_training.RESULTS / "multicorpus"
    assert pooled.result_files() == {
        folder / "pooled-x-seed0.json": [0],
        folder / "pooled-x-seed2.json": [2],
    }
    assert pooled.protocol_spec(2).seed == 2  # as `dyser-train --seed 2`
    assert pooled.run_dir == bench_training.ROOT / "runs" / "bench" / "pooled-x"
    # The checkpoints are keyed by the corpora, not by the seeds.
    other = BenchRun.from_args(parse([*args[:-1], "pooled-y", "--seeds", "1"]))
    assert other.checkpoint_key() == pooled.checkpoint_key()
    moved = BenchRun.from_args(parse([*pairs[:-1], "c", *args[len(pairs) :]]))
    assert moved.checkpoint_key() != pooled.checkpoint_key()
    with pytest.raises(ValueError, match="needs --name"):
        BenchRun.from_args(parse(pairs))
    with pytest.raises(ValueError, match="in pairs: got 2 --corpus and 1 --data"):
        BenchRun.from_args(parse([*pairs[:-2], "--name", "x"]))
    with pytest.raises(ValueError, match="in pairs: got 1 --corpus and 0 --data"):
        BenchRun.from_args(parse(["--corpus", "casia"]))  # never casia from EmoDB's folder


def test_workers_share_one_pretraining_folder(tmp_path):
    run_dir = tmp_path / "run"
    links = [run_dir / f"part{i}" / "seed0" / "pretrained" for i in (0, 1)]
    for link in links:
        share_folder(link, run_dir / "pretrained")
    (links[0] / "record.json").write_text("{}")
    assert (links[1] / "record.json").read_text() == "{}"
    share_folder(links[1], run_dir / "pretrained")  # a rerun: the link stays
    assert (run_dir / "pretrained" / "record.json").exists()


def test_planned_fold_names_are_those_the_experiment_makes():
    from keras_dyconv.experiment import planned_fold_names

    corpora = _three(scale=4)
    spec = ProtocolSpec("group-kfold", k=4)
    utts, _ = multi_corpus(corpora, POOLED)
    pooled = [f.name for f in make_folds(utts, spec, per_corpus=True)]
    assert planned_fold_names(utts, spec, target=POOLED) == pooled
    utts, extra = multi_corpus(corpora, "casia")  # folds on the target's speakers only
    assert planned_fold_names(utts, ProtocolSpec("loso"), extra) == [
        f"loso-{s}" for s in ("ZhaoZuoxiang", "liuchang", "wangzhe", "zhaoquanyin")
    ]
    utts, _ = multi_corpus(corpora, None)
    assert planned_fold_names(utts, ProtocolSpec("loco")) == [
        "corpus-emodb",
        "corpus-casia",
        "corpus-ravdess",
    ]
    assert planned_fold_names(corpora["emodb"], ProtocolSpec("all")) == []


@pytest.mark.slow
def test_pooled_run_over_two_corpora_two_seeds_two_workers(tmp_path, capfd):
    """End to end (about 5 minutes on 2 busy cores): each seed's file, their merge, a resume
    that trains nothing, the timings."""
    root = tmp_path / "corpora"
    manifests = {
        "emodb": _own_corpus(root, "emodb", EMODB_EMOTIONS, 4, seed=1),
        "ravdess": _own_corpus(root, "ravdess", RAVDESS_EMOTIONS, 3, seed=2),
    }
    tiny = {"epochs": 1, "model": {"conv_filters": [4], "lstm_units": 8, "attention_units": 8}}
    bench = BenchRun(
        protocol="group-kfold",
        folds=2,
        recipe="fast",
        seeds=[0, 1],
        workers=2,
        corpora=["manifest", "manifest"],
        data=list(manifests.values()),
        target=POOLED,
        name="pooled-tiny",
        results_dir=tmp_path / "results",
        runs_dir=tmp_path / "runs",
        overrides=tiny,
        window={"frames": 100, "hop_frames": 100},
        resume=True,
    )
    paths = bench_training.run(bench)
    assert [p.name for p in paths] == ["pooled-tiny-seed0.json", "pooled-tiny-seed1.json"]
    corpora = {name: load_manifest(path) for name, path in manifests.items()}
    utts, _ = multi_corpus(corpora, POOLED)
    names = [f.name for f in make_folds(utts, ProtocolSpec("group-kfold", k=2), per_corpus=True)]
    first = [json.loads(p.read_text()) for p in paths]
    for seed, run in enumerate(first):
        assert run["seeds"] == [seed] and run["protocol"]["seed"] == seed
        assert [f["fold"] for f in run["folds"]] == names and "partial" not in run["protocol"]
        assert run["target_corpus"] == POOLED and set(run["corpus_scores"]) == set(manifests)
        timings = run["timings"]
        assert timings["workers"] == 2 and timings["wall_seeds"] == [0, 1]
        assert timings["wall_s"] >= max(f["seconds"] for f in run["folds"])
        assert timings["total_s"] > 0
    # Each worker trained one fold of each seed: a unit is one fold of one seed.
    for i in range(2):
        for seed in (0, 1):
            part = json.loads((bench.run_dir / f"part{i}/seed{seed}/results.json").read_text())
            assert [f["fold"] for f in part["folds"]] == [names[i]]
    # The seed files merge into the run of every fold and seed (as bench_multicorpus reads
    # them), scored on every utterance of both corpora once per seed.
    merged = merge_results(first)
    assert merged["seeds"] == [0, 1] and len(merged["folds"]) == 4
    assert merged["pooled"]["n"] == 2 * len(utts)
    ((name, loaded),) = bench_multicorpus.load_runs(tmp_path / "results")
    assert name == "pooled-tiny" and bench_multicorpus.run_kind(loaded) == "pooled"
    assert loaded["pooled"] == merged["pooled"]
    out = capfd.readouterr().out
    assert out.count(": train ") == 4 and "read back" not in out
    table = bench_training.cost_table(paths)
    assert "pooled-tiny-seed1.json | 1 | 2 x 1" in table and "cost target" in table
    # Run again: every unit is read back from its checkpoints, none trained again.
    again = [json.loads(p.read_text()) for p in bench_training.run(bench)]
    out = capfd.readouterr().out
    assert out.count("finished in an earlier run, read back") == 4 and ": train " not in out
    for before, after in zip(first, again, strict=True):
        assert after["folds"] == before["folds"]


def test_worker_env_keeps_one_thread_and_given_tunables():
    env = bench_training.worker_env("jax", {"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"})
    assert env["GLIBC_TUNABLES"] == f"glibc.malloc.arena_max=2:{bench_training.HUGE_PAGES}"
    assert env["OMP_NUM_THREADS"] == "1" and env["KERAS_BACKEND"] == "jax"
    assert bench_training.worker_env("jax", {})["GLIBC_TUNABLES"] == bench_training.HUGE_PAGES


def _glibc() -> tuple[int, ...]:
    name, _, version = (os.confstr("CS_GNU_LIBC_VERSION") or "").partition(" ")
    return tuple(int(p) for p in version.split(".")) if name == "glibc" else ()


@pytest.mark.skipif(
    "[madvise]" not in _read("/sys/kernel/mm/transparent_hugepage/enabled") or _glibc() < (2, 35),
    reason="needs glibc >= 2.35 (glibc.malloc.hugetlb) and Linux THP in madvise mode",
)
def test_worker_env_gives_malloc_huge_pages():
    """A worker's large malloc'd buffers (here a 64 MiB bytearray) are backed by huge pages."""
    probe = (
        "import re; b = bytearray(64 << 20); b[::4096] = bytes(len(b[::4096]));"
        "print(re.search(r'AnonHugePages:\\s+(\\d+)', open('/proc/self/smaps_rollup').read())[1])"
    )

    def huge_kib(env: dict[str, str]) -> int:
        run = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True)
        return int(run.stdout)

    plain = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
    assert huge_kib(plain) < 8 << 10
    assert huge_kib(bench_training.worker_env("tensorflow", plain)) >= 32 << 10
