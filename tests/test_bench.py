"""The benchmark scripts' wiring (their runs need EmoDB and hours; this checks the calls)."""

from __future__ import annotations

import argparse
import dataclasses
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import bench_ablation
import bench_training


def test_ablation_calls_bench_training_with_every_option(monkeypatch, tmp_path):
    calls = []

    def fake_run(args: bench_training.BenchRun) -> Path:
        calls.append(args)
        raise SystemExit("stop before training")

    monkeypatch.setattr(bench_training, "run", fake_run)
    monkeypatch.setattr(bench_ablation, "ABLATION", tmp_path)
    with pytest.raises(SystemExit, match="stop before training"):
        bench_ablation.run_variant("dataset-norm+window2s", [0, 1], 2, "tensorflow", resume=True)
    options = {
        action.dest
        for action in bench_training.build_parser()._actions
        if action.help != argparse.SUPPRESS and action.dest not in ("help", "table_only")
    }
    (args,) = calls
    fields = {f.name for f in dataclasses.fields(args)}
    assert options <= fields, options - fields
    assert args.seeds == [0, 1] and args.resume and args.window == {"frames": 200, "hop_frames": 50}
    assert args.overrides["model"]["pool_size"] == [2, 2]  # ABLATION_MODEL pins the 8x model


@pytest.mark.parametrize("name", list(bench_ablation.VARIANTS))
def test_every_ablation_variant_is_a_valid_recipe(name):
    from edge_runtime.config import FrontendConfig
    from edge_runtime.windows import WindowPolicy
    from keras_dyconv.models import model_arguments
    from keras_dyconv.recipes import get_recipe

    overrides = dict(bench_ablation.VARIANTS[name][0])
    FrontendConfig(**overrides.pop("frontend", {}))
    WindowPolicy(**overrides.pop("window", {}))
    recipe = get_recipe("default").with_overrides(**overrides)  # unknown fields raise
    model_arguments(num_classes=7, **{**bench_ablation.ABLATION_MODEL, **recipe.model})
    paired = bench_ablation.PAIRED_WITH.get(name, bench_ablation.BASELINE)
    assert paired in bench_ablation.VARIANTS


def test_seconds_per_epoch_counts_refit_epochs():
    folds = [
        {"seconds": 90.0, "epochs_run": 30, "refit_epochs": 0},
        {"seconds": 200.0, "epochs_run": 30, "refit_epochs": 20},  # 4 s: the median
        {"seconds": 500.0, "epochs_run": 45},  # older results have no refit_epochs
    ]
    assert bench_ablation.seconds_per_epoch({"folds": folds}) == pytest.approx(4.0)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_killing_the_bench_stops_its_workers(tmp_path):
    """A killed parent used to leave its workers training into the checkpoints that the
    restarted run resumed from."""
    worker = "import os, sys, time; open(sys.argv[1], 'w').write(str(os.getpid())); time.sleep(60)"
    pid_files = [tmp_path / "worker0.pid", tmp_path / "worker1.pid"]
    parent = textwrap.dedent(
        f"""
        import os, sys
        sys.path.insert(0, {str(Path(bench_training.__file__).parent)!r})
        import bench_training
        bench_training.exit_on_sigterm()
        workers = [[sys.executable, "-c", {worker!r}, p] for p in {list(map(str, pid_files))!r}]
        bench_training.run_workers(workers, dict(os.environ))
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", parent])
    deadline = time.monotonic() + 60
    while not all(p.exists() and p.read_text() for p in pid_files):
        assert time.monotonic() < deadline and proc.poll() is None, "workers did not start"
        time.sleep(0.1)
    proc.terminate()
    assert proc.wait(timeout=30) == 128 + signal.SIGTERM
    for p in pid_files:
        with pytest.raises(ProcessLookupError):
            os.kill(int(p.read_text()), 0)
