"""bench/edge_worker.py, the measuring process of bench/bench_edge.py: which parts it times
and how it recognises a LiteRT engine, on a tiny numpy model (no interpreter needed)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from edge_fixtures import pcm16_wav, tiny_numpy_model

from edge_runtime.engines import LiteRTEngine, NumpyEngine
from edge_runtime.recognizer import EmotionRecognizer
from edge_runtime.speech import SpeechGateConfig

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import edge_worker

ALWAYS = ["e2e", "e2e_cpu", "model_path", "model_path_cpu", "decode", "frontend", "inference"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("worker")
    rng = np.random.default_rng(0)
    clip = 0.3 * np.sin(np.arange(16000) * 0.07) + rng.normal(0, 0.01, 16000)
    return tiny_numpy_model(folder), pcm16_wav(folder / "clip.wav", clip)


@pytest.mark.parametrize("gate", [SpeechGateConfig(), None], ids=["gate on", "gate off"])
def test_the_gate_is_timed_only_when_the_recognizer_has_one(tiny, gate):
    model, clip = tiny
    recognizer = EmotionRecognizer(model, speech_gate=gate)
    times, prediction, windows = edge_worker.time_parts(recognizer, str(clip), runs=3)
    gate_parts = ["gate", "gate_cpu"] if gate is not None else []
    assert sorted(times) == sorted(ALWAYS + gate_parts)
    assert all(len(v) == 3 and min(v) >= 0 for v in times.values())
    assert recognizer.speech_gate is gate  # restored after the calls without it
    assert prediction.label == recognizer.predict_file(clip).label
    assert windows.shape[1:] == (50, 16)


class _FakeLiteRT(LiteRTEngine):
    """A LiteRT engine by class, not by name, with a graph of two delegate partitions."""

    def __init__(self) -> None:
        self.name = "some interpreter"

    def ops(self) -> list[str]:
        return ["DELEGATE", "FULLY_CONNECTED", "DELEGATE"]


def test_litert_engines_are_recognised_by_class_not_by_name(tiny):
    model, _ = tiny
    numpy_engine = EmotionRecognizer(model).engine
    assert isinstance(numpy_engine, NumpyEngine)
    numpy_engine.name = "litert (ai_edge_litert)"
    assert edge_worker.delegate_nodes(numpy_engine) is None
    assert edge_worker.delegate_nodes(_FakeLiteRT()) == 2


def test_litert_window_timing_skips_other_engines(tiny):
    model, _ = tiny
    recognizer = EmotionRecognizer(model)
    recognizer.engine.name = "litert (ai_edge_litert)"
    assert edge_worker._litert_window_ms(recognizer, np.zeros((1, 50, 16), np.float32), 1) == {}
