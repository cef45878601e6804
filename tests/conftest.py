"""Shared fixtures."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

# The benchmark scripts (bench/_report.py, bench_*.py, render_*.py) are imported by their tests.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))


@pytest.fixture(scope="session")
def trained(tmp_path_factory) -> SimpleNamespace:
    """A tiny model trained on synthetic tones, saved with metadata, plus its audio sets."""
    from tone_corpus import trained_tiny_model  # imports Keras: only when a test needs it

    return trained_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def cli_exports(trained):
    """`dyser-export` of the `trained` model run once per (format, quantization) for the whole
    session, with --calibration and --holdout: `cli_exports(fmt, mode)` is the CLI's (exit
    status, JSON report, stderr). Converting to TFLite takes tens of seconds on a CPU, and the
    export, edge and CLI tests all need the same few artifacts; tests must not change them."""
    from export_fixtures import run_cli  # imports Keras: only when a test needs it

    done: dict[tuple[str, str], tuple[int, dict, str]] = {}

    def export(fmt: str, mode: str) -> tuple[int, dict, str]:
        if (fmt, mode) not in done:
            quantize = ["--quantize"] if mode == "int8" else ["--quantize", mode]
            data = ["--calibration", trained.train, "--holdout", trained.heldout]
            done[fmt, mode] = run_cli(trained.model_path, "--format", fmt, *quantize, *data)
        return done[fmt, mode]

    return export
