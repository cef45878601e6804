"""The benchmark scripts' wiring (their runs need EmoDB and hours; this checks the calls)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import bench_ablation
import bench_training


def test_ablation_calls_bench_training_with_every_option(monkeypatch, tmp_path):
    calls = []

    def fake_run(args: argparse.Namespace) -> Path:
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
    assert options <= set(vars(args)), options - set(vars(args))
    assert (
        args.seeds == [0, 1] and args.resume and args.window == '{"frames": 200, "hop_frames": 50}'
    )
    assert '"pool_size": [2, 2]' in args.overrides  # ABLATION_MODEL pins the 8x architecture


@pytest.mark.parametrize("name", list(bench_ablation.VARIANTS))
def test_every_ablation_variant_is_a_valid_recipe(name):
    from edge_runtime.config import FrontendConfig
    from edge_runtime.windows import WindowPolicy
    from keras_dyconv.models import model_arguments
    from keras_dyconv.training import get_recipe

    overrides = dict(bench_ablation.VARIANTS[name][0])
    FrontendConfig(**overrides.pop("frontend", {}))
    WindowPolicy(**overrides.pop("window", {}))
    recipe = get_recipe("default").with_overrides(**overrides)  # unknown fields raise
    model_arguments(num_classes=7, **{**bench_ablation.ABLATION_MODEL, **recipe.model})
    paired = bench_ablation.PAIRED_WITH.get(name, bench_ablation.BASELINE)
    assert paired in bench_ablation.VARIANTS
