"""The benches end to end on tiny inputs: measure -> JSON -> the Markdown section that its
renderer makes of that JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import wave
from pathlib import Path

import _report
import numpy as np
import pytest
from bench_results import REPO, dynconv_results
from test_speech_gate import speech_like


def test_memory_bench_round_trip(tmp_path):
    """The bench on two tiny caches (Keras's numpy backend: the feeding is numpy), both
    modes, with the same batches."""
    out, markdown = tmp_path / "memory.json", tmp_path / "benchmarks.md"
    proc = subprocess.run(
        [
            *(sys.executable, str(REPO / "bench" / "bench_memory.py"), "--hours", "0.01", "0.03"),
            *("--cache", str(tmp_path), "--results", str(out), "--markdown", str(markdown)),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO), "KERAS_BACKEND": "numpy"},
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads(out.read_text())
    assert [s["hours"] for s in data["sizes"]] == [0.01, 0.03]
    for size in data["sizes"]:
        assert [r["mode"] for r in size["runs"]] == ["memory", "stream"]
        assert size["runs"][0]["sha256"] == size["runs"][1]["sha256"]
        assert size["frames"] >= size["hours"] * 360_000
    assert list(tmp_path.glob("bench-memory-*")) == []  # the caches are removed
    _assert_round_trip("memory", out, markdown, proc.stdout)


def _write_wav(path: Path, seconds: float, freq: float, rate: int = 16000) -> None:
    t = np.arange(int(rate * seconds)) / rate
    x = 0.3 * np.sin(2 * np.pi * freq * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
    x += 0.01 * np.random.default_rng(int(freq)).normal(size=t.size)
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(rate)
        f.writeframes((x * 32767).astype("<i2").tobytes())


def _run_bench(script: str, *args: str, timeout: float) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "KERAS_BACKEND": "tensorflow"}
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / script), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def _assert_round_trip(name: str, out: Path, markdown: Path, printed: str) -> None:
    """The section the measure step wrote is what its renderer makes of the saved JSON."""
    module = _report.renderer(name)
    body = module.render(_report.load_json(out))
    assert _report.read_section(name, markdown) == _report.section_block(name, module.TITLE, body)
    assert body in printed
    assert _report.stale_sections([name], results=out.parent, markdown=markdown) == []


def test_frontend_bench_round_trip(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i, freq in enumerate((200.0, 330.0)):
        _write_wav(corpus / f"s{i}.wav", 3.2, freq)
    out, markdown = tmp_path / "frontend.json", tmp_path / "benchmarks.md"
    proc = _run_bench(
        "bench_frontend.py",
        *("--corpus", str(corpus), "--runs", "3"),
        *("--results", str(out), "--markdown", str(markdown)),
        timeout=300,
    )
    data = json.loads(out.read_text())
    assert data["corpus"]["files"] == 2 and data["settings"]["runs"] == 3
    assert [r["rate"] for r in data["resampled"]] == [8000, 22050, 44100, 48000]
    assert data["native"]["logmel"]["max"] < 1e-3
    _assert_round_trip("frontend", out, markdown, proc.stdout)


@pytest.mark.slow
def test_dynconv_bench_round_trip(tmp_path):
    out, markdown = tmp_path / "dynconv.json", tmp_path / "benchmarks.md"
    proc = _run_bench(
        "bench_dynconv.py",
        *("--quick", "--backends", "tensorflow"),
        *("--results", str(out), "--markdown", str(markdown)),
        timeout=900,
    )
    data = json.loads(out.read_text())
    assert [r["label"] for r in data["results"]] == ["tensorflow"]
    assert data["settings"]["rounds"] == {"train": 3, "infer": 5, "model": 3}
    _assert_round_trip("dynconv", out, markdown, proc.stdout)


def test_dynconv_quick_writes_nothing_unless_told(tmp_path, monkeypatch):
    import bench_dynconv

    canned = dynconv_results()["results"][:1]
    monkeypatch.setattr(bench_dynconv, "_run_config", lambda config, quick: canned[0])
    written = []
    monkeypatch.setattr(_report, "save_json", lambda path, data: written.append(path))
    monkeypatch.setattr(_report, "write_section", lambda *args: written.append(args[0]))
    bench_dynconv.main(["--quick", "--backends", "tensorflow"])
    assert written == []
    out = tmp_path / "dynconv.json"
    bench_dynconv.main(["--quick", "--backends", "tensorflow", "--results", str(out)])
    assert written[0] == out


EMODB = next(
    (
        p
        for p in (REPO.parent / "shared/datasets/emodb", Path("/work/shared/datasets/emodb"))
        if (p / "wav").is_dir()
    ),
    None,
)


@pytest.mark.slow
@pytest.mark.skipif(EMODB is None, reason="no EmoDB")
def test_export_bench_round_trip(tmp_path):
    out, markdown = tmp_path / "export.json", tmp_path / "benchmarks.md"
    proc = _run_bench(
        "bench_export.py",
        *("--epochs", "1", "--calibration-utterances", "8", "--emodb", str(EMODB)),
        *("--results", str(out), "--markdown", str(markdown)),
        timeout=3600,
    )
    data = json.loads(out.read_text())
    assert len(data["exports"]) == 8 and data["settings"]["epochs"] == 1
    _assert_round_trip("export", out, markdown, proc.stdout)


@pytest.mark.slow
def test_edge_bench_round_trip(tmp_path, trained):
    audio = tmp_path / "audio"
    audio.mkdir()
    for i in range(22):  # --quick calibrates on every 20th file: 2 of them, split in two
        _write_wav(audio / f"s{i:02}.wav", 3.5 if i == 0 else 1.5, 150.0 + 20 * i)
    out, markdown = tmp_path / "edge.json", tmp_path / "benchmarks.md"
    proc = _run_bench(
        "bench_edge.py",
        *("--model", str(trained.model_path), "--audio", str(audio), "--quick"),
        *("--runs", "2", "--no-emulator"),
        *("--results", str(out), "--markdown", str(markdown)),
        timeout=1800,
    )
    data = json.loads(out.read_text())
    assert [(m["format"], m["quantize"]) for m in data["models"]] == [
        ("tflite", "none"),
        ("tflite", "int8"),
        ("onnx", "int8"),
        ("numpy", "none"),
    ]
    assert all(m["predict"]["runs"] == 2 for m in data["models"])
    for m in data["models"]:
        p = m["predict"]
        assert {"gate", "gate_cpu", "model_path", "model_path_cpu"} <= set(p["median"])
        litert = m["format"] == "tflite"
        assert (p["delegate_nodes"] is None) != litert
        if litert:  # x86: XNNPACK takes part of the graph; builtin kernels only: none
            assert p["delegate_nodes"] == p["window_ms"]["default_nodes"] > 0
            assert p["window_ms"]["builtin_nodes"] == 0
    _assert_round_trip("edge", out, markdown, proc.stdout)


def test_speech_gate_bench_round_trip(tmp_path):
    wav_dir = tmp_path / "datasets" / "emodb" / "wav"
    wav_dir.mkdir(parents=True)
    for seed in range(2):
        samples = speech_like(seed=seed) if seed else np.zeros(16000, np.float32)
        with wave.open(str(wav_dir / f"{seed}.wav"), "wb") as f:
            f.setnchannels(1)
            f.setsampwidth(2)
            f.setframerate(16000)
            f.writeframes((samples * 32767).astype("<i2").tobytes())
    out, markdown = tmp_path / "speech_gate.json", tmp_path / "benchmarks.md"
    proc = _run_bench(
        "bench_speech_gate.py",
        *("--datasets", str(tmp_path / "datasets"), "--seeds", "1", "--synthetic", "2"),
        *("--results", str(out), "--markdown", str(markdown)),
        timeout=300,
    )
    data = json.loads(out.read_text())
    (rejection,) = data["corpora"]["emodb"]["rejections"]  # the silent file
    assert rejection["file"] == "emodb/wav/0.wav" and rejection["reason"].startswith("silent")
    assert data["nonspeech"]["white noise"]["gated"] == 6 and data["settings"]["seeds"] == 1
    _assert_round_trip("speech_gate", out, markdown, proc.stdout)


def test_fuzz_bench_round_trip(tmp_path):
    out, markdown = tmp_path / "fuzz.json", tmp_path / "benchmarks.md"
    proc = _run_bench(
        "bench_fuzz.py",
        *("--cases", "40", "--results", str(out), "--markdown", str(markdown)),
        timeout=300,
    )
    data = json.loads(out.read_text())
    assert data["cases"] == 40 and data["speech_gate"] and data["unexpected"] == []
    _assert_round_trip("fuzz", out, markdown, proc.stdout)
