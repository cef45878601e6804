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
