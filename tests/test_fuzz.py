"""Seeded fuzzing of the edge input path in the default test run (issue 22, point 7).

A few thousand cases from `bench/bench_fuzz.py`'s generator (valid WAVs of every format,
then mutated, truncated, lying, streamed, with NaN/inf/1e30 floats; random bytes; other
formats) go through `EmotionRecognizer.predict_file` on a tiny numpy model. Every case must
end in a prediction or a `WavError` naming the file, each within 2 s, and where soundfile
also reads the samples they must be bit-identical. The long run (>= 100,000 cases, its
report in docs/benchmarks.md) is `python bench/bench_fuzz.py`.
"""

from __future__ import annotations

import importlib.util
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from edge_fixtures import tiny_numpy_model

from edge_runtime.recognizer import EmotionRecognizer
from edge_runtime.wav import WavError

CASES = 3000
SEED = 20261206

_spec = importlib.util.spec_from_file_location(
    "bench_fuzz", Path(__file__).resolve().parents[1] / "bench" / "bench_fuzz.py"
)
bench_fuzz = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_fuzz)


@pytest.fixture(scope="module")
def recognizer(tmp_path_factory) -> EmotionRecognizer:
    # The gate off: the generator makes noise and tones, which the speech gate would stop
    # before the frontend and model (the bench's 100,000 cases fuzz the gated path).
    model = tiny_numpy_model(tmp_path_factory.mktemp("fuzz"))
    return EmotionRecognizer(model, engine="numpy", speech_gate=None)


def test_generator_is_seeded_and_covers_every_kind():
    first = [bench_fuzz.generate(np.random.default_rng((SEED, i))) for i in range(200)]
    again = [bench_fuzz.generate(np.random.default_rng((SEED, i))) for i in range(200)]
    assert first == again
    assert {kind for kind, _ in first} == set(bench_fuzz.KINDS)


def test_fuzzed_files_give_a_prediction_or_a_file_naming_wav_error(recognizer, tmp_path):
    scratch = tmp_path / "case.wav"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a RuntimeWarning (overflow, NaN) is a failure too
        report = bench_fuzz.fuzz(CASES, SEED, recognizer, scratch)
    assert report["unexpected"] == [], report["unexpected"][:5]
    outcomes = Counter(report["outcomes"])
    assert outcomes["ok"] > CASES // 4 and outcomes["WavError"] > CASES // 4  # both exercised
    assert report["slowest_case"]["cpu_seconds"] < 2.0, report["slowest_case"]
    agreement = report["soundfile"]
    assert agreement.get("different", 0) == 0
    assert agreement["identical"] > CASES // 5


def test_fuzz_errors_name_the_file(recognizer, tmp_path):
    scratch = tmp_path / "named.wav"
    rng = np.random.default_rng(SEED)
    refused = 0
    for _ in range(200):
        _, raw = bench_fuzz.generate(rng)
        scratch.write_bytes(raw)
        try:
            recognizer.predict_file(scratch)
        except WavError as err:
            refused += 1
            assert str(err).startswith(f"{scratch}: ") and err.source == str(scratch)
    assert refused > 20
