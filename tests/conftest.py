"""Shared fixtures."""

from __future__ import annotations

from types import SimpleNamespace

import pytest


@pytest.fixture(scope="session")
def trained(tmp_path_factory) -> SimpleNamespace:
    """A tiny model trained on synthetic tones, saved with metadata, plus its audio sets."""
    from tone_corpus import trained_tiny_model  # imports Keras: only when a test needs it

    return trained_tiny_model(tmp_path_factory.mktemp("tiny-model"))
