"""edge_runtime end to end: engines, recognizer, streaming and the `python -m edge_runtime` CLI.

Artifacts are exported from the tiny tone model (conftest `trained`) in every engine's
format, then run the way a device runs them. Tones are not speech, so these runs turn the
speech gate off (`speech_gate=None`, `--no-speech-gate`); tests/test_speech_gate.py tests it.
Hostile input to every command is in tests/test_edge_hostile_input.py.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import subprocess
import sys
import tracemalloc
import wave
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from edge_fixtures import ROOT, edit_manifest, run_edge
from tone_corpus import LABELS, tone

from edge_runtime.artifact import Artifact, load_artifact
from edge_runtime.engines import EngineError, open_engine
from edge_runtime.numpy_engine import GraphError, NumpyModel
from edge_runtime.recognizer import DEFAULT_MODEL, EmotionRecognizer, StreamRecognizer


@pytest.fixture(scope="module")
def exported(cli_exports) -> SimpleNamespace:
    """The tiny model in every engine's format, exported once per session by `dyser-export`
    (conftest `cli_exports`, also checked by tests/test_export.py)."""
    paths = {}
    for name, fmt, mode in [
        ("tflite", "tflite", "none"),
        ("int8", "tflite", "int8"),
        ("onnx", "onnx", "none"),
        ("numpy", "numpy", "none"),
    ]:
        code, report, stderr = cli_exports(fmt, mode)
        assert code == 0 and report["passed"], (name, stderr)
        paths[name] = Path(report["output"])
    return SimpleNamespace(**paths)


def heldout_files(trained) -> list[tuple[Path, str]]:
    with open(trained.heldout) as f:
        return [(trained.heldout.parent / r["path"], r["label"]) for r in csv.DictReader(f)]


def test_all_engines_agree_on_top1(trained, exported):
    x = trained.x_held
    probs = {
        name: open_engine(getattr(exported, name)).predict(x)
        for name in ("tflite", "onnx", "numpy", "int8")
    }
    reference = np.asarray(trained.model.predict(x, verbose=0))
    for name in ("tflite", "onnx", "numpy"):
        np.testing.assert_allclose(probs[name], reference, atol=1e-4)
        assert (probs[name].argmax(1) == reference.argmax(1)).all(), name
    assert (probs["int8"].argmax(1) == reference.argmax(1)).mean() >= 0.95
    assert open_engine(exported.numpy).name.startswith("numpy")
    with pytest.raises(EngineError, match="numpy"):
        open_engine(exported.tflite, engine="numpy")


def test_numpy_graph_is_refused_when_malformed(tmp_path):
    bad = tmp_path / "bad.npz"
    np.savez(bad, weights=np.zeros(3))
    with pytest.raises(GraphError, match="no 'graph'"):
        NumpyModel(bad)
    graph = json.dumps({"version": 1, "layers": [{"type": "conv3d", "name": "x"}]}).encode()
    np.savez(bad, graph=np.frombuffer(graph, np.uint8))
    with pytest.raises(GraphError, match="conv3d"):
        NumpyModel(bad)


@pytest.mark.parametrize("name", ["int8", "numpy", "onnx"])
def test_recognizer_classifies_files(trained, exported, name):
    recognizer = EmotionRecognizer(getattr(exported, name), speech_gate=None)
    files = heldout_files(trained)
    predictions = [recognizer.predict_file(path) for path, _ in files]
    accuracy = np.mean([p.label == label for p, (_, label) in zip(predictions, files, strict=True)])
    assert accuracy >= 0.9
    first = predictions[0]
    assert set(first.probabilities) == set(LABELS)
    assert sum(first.probabilities.values()) == pytest.approx(1.0, abs=0.02)  # int8 steps
    assert len(first.window_starts) == len(first.window_probabilities) >= 1
    assert json.loads(json.dumps(first.to_dict()))["label"] == first.label


def test_recognizer_resamples_other_rates(trained, exported, tmp_path):
    recognizer = EmotionRecognizer(exported.numpy, speech_gate=None)
    rng = np.random.default_rng(5)
    rate = recognizer.frontend.config.sample_rate
    samples = np.concatenate([tone("high", rng) for _ in range(4)])
    native = recognizer.predict_samples(samples, rate)
    doubled = recognizer.predict_samples(np.repeat(samples, 2), 2 * rate)  # crude 2x upsample
    assert native.label == doubled.label == "high"


def test_cli_predict_text_json_and_errors(trained, exported, tmp_path):
    (path, label), *_ = heldout_files(trained)
    text = run_edge("predict", str(exported.numpy), str(path), "--no-speech-gate")
    assert text.returncode == 0, text.stderr
    assert text.stdout.decode().startswith(f"{path}: {label}")
    as_json = run_edge(
        "predict", "--model", str(exported.int8), str(path), "--json", "--no-speech-gate"
    )
    assert as_json.returncode == 0, as_json.stderr
    record = json.loads(as_json.stdout)
    assert record["file"] == str(path) and set(record["probabilities"]) == set(LABELS)
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    bad_file = run_edge("predict", str(exported.numpy), str(path), str(broken))
    assert bad_file.returncode == 1 and b"broken.wav" in bad_file.stderr
    assert bad_file.stdout.decode().count("\n") == 1  # the good file was still classified
    tampered = tmp_path / "tampered.npz"
    data = bytearray(exported.numpy.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, different content
    tampered.write_bytes(bytes(data))
    (tmp_path / "tampered.npz.json").write_bytes(Path(f"{exported.numpy}.json").read_bytes())
    refused = run_edge("predict", str(tampered), str(path))
    assert refused.returncode == 2 and b"sha256" in refused.stderr.lower()
    wrong_engine = run_edge("predict", str(exported.onnx), str(path), "--engine", "litert")
    assert wrong_engine.returncode == 2


def test_cli_predict_adapts_across_files_unless_independent(trained, exported, tmp_path):
    model = tmp_path / "stream.npz"
    model.write_bytes(exported.numpy.read_bytes())
    Path(f"{model}.json").write_bytes(Path(f"{exported.numpy}.json").read_bytes())
    edit_manifest(model, lambda d: d["frontend"].update(normalization="stream"), reseal=True)
    (path, _), *_ = heldout_files(trained)

    def probabilities(*extra: str) -> list[dict]:
        out = run_edge(
            "predict", str(model), str(path), str(path), "--json", "--no-speech-gate", *extra
        )
        assert out.returncode == 0, out.stderr
        return [json.loads(line)["probabilities"] for line in out.stdout.splitlines()]

    adapted = probabilities()
    assert adapted[0] != adapted[1]  # the second pass is normalised with both in the stats
    independent = probabilities("--independent")
    assert independent[0] == independent[1] == adapted[0]


def test_cli_info(exported):
    result = run_edge("info", str(exported.int8), "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["quantization"] == "int8" and info["labels"] == list(LABELS)
    assert "UNIDIRECTIONAL_SEQUENCE_LSTM" in info["ops"] and "DELEGATE" not in info["ops"]
    text = run_edge("info", str(exported.numpy))
    assert b"dynamic_conv2d" in text.stdout and text.returncode == 0


def test_cli_stream_decisions_partial_frames_and_closed_pipe(trained, exported):
    recognizer = EmotionRecognizer(exported.numpy)
    rate = recognizer.frontend.config.sample_rate
    rng = np.random.default_rng(7)
    samples = np.concatenate([tone(label, rng) for label in ("low",) * 6 + ("high",) * 6])
    pcm = (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes() + b"\x01"  # odd byte
    hop = 0.25
    result = run_edge(
        "stream",
        str(exported.numpy),
        "--hop",
        str(hop),
        "--json",
        "--smoothing",
        "0",
        "--rate",
        str(rate),
        "--no-speech-gate",
        stdin=pcm,
    )
    assert result.returncode == 0, result.stderr
    decisions = [json.loads(line) for line in result.stdout.decode().splitlines()]
    window = recognizer.window_samples
    hop_samples = int(hop * rate)
    expected = [t for t in range(hop_samples, len(samples) + 1, hop_samples) if t >= window]
    assert [d["time_s"] for d in decisions] == [round(t / rate, 3) for t in expected]
    assert decisions[0]["label"] == "low" and decisions[-1]["label"] == "high"
    # The reader closing early (like `| head -1`) ends the stream quietly.
    head = subprocess.run(
        f"{sys.executable} -m edge_runtime stream {exported.numpy} --rate {rate} --hop 0.05"
        " | head -1",
        shell=True,
        input=pcm * 4,
        capture_output=True,
        cwd=ROOT,
        timeout=120,
    )
    assert head.returncode == 0 and len(head.stdout.splitlines()) == 1
    assert b"Traceback" not in head.stderr


def stream_normalised(artifact: Artifact) -> Artifact:
    """The same model declared as trained with normalization "stream" (same prior)."""
    config = dataclasses.replace(artifact.metadata.frontend, normalization="stream")
    metadata = dataclasses.replace(artifact.metadata, frontend=config)
    return dataclasses.replace(artifact, metadata=metadata)


def test_recognizers_adapt_to_the_stream(trained, exported):
    artifact = stream_normalised(load_artifact(exported.numpy))
    rate = artifact.metadata.frontend.sample_rate
    clip = tone("low", np.random.default_rng(3)) * 0.05  # a quiet device
    recognizer = EmotionRecognizer(artifact, engine="numpy", speech_gate=None)
    first = recognizer.predict_samples(clip, rate)
    again = recognizer.predict_samples(clip, rate)  # the statistics now include clip twice
    assert not np.allclose(first.window_probabilities, again.window_probabilities)
    assert recognizer.stream.count > 2 * len(recognizer.frontend(clip))
    recognizer.reset_stream()
    np.testing.assert_allclose(
        recognizer.predict_samples(clip, rate).window_probabilities, first.window_probabilities
    )
    # Streaming feeds every frame to the statistics about once, however small the hop.
    live = EmotionRecognizer(artifact, engine="numpy", speech_gate=None)
    stream = StreamRecognizer(live, sample_rate=rate, hop_s=0.1)
    signal = np.tile(clip, 4)
    decisions = stream.push(signal)
    assert decisions
    heard = live.stream.count - live.stream.prior_frames
    assert heard == pytest.approx(len(signal) / live.frontend.config.hop_length, rel=0.05)
    # A dataset-normalised model keeps no state.
    plain = EmotionRecognizer(exported.numpy)
    assert plain.stream is None
    plain.reset_stream()


def test_streaming_memory_is_bounded(exported):
    recognizer = EmotionRecognizer(exported.numpy)
    chunk = np.zeros(1600, np.float32)
    # Warm-up on a throwaway stream, outside the measured windows: CPython keeps freed tuples
    # in free lists (up to 2000 per tuple size, emptied by a full gc) and tracemalloc counts
    # them as allocated. The gate's per-frame work fills them over a stream's first ~200 s,
    # then they stay full (a warm 10 s and 60 s window trace the same peak). Unwarmed, how
    # much a window fills them depends on earlier tests (after tests/test_speech_gate.py:
    # 372 KB for 10 s, 679 KB for 60 s) though the stream keeps no growing state. A fresh
    # stream is measured so that its own state still starts from nothing.
    warm = StreamRecognizer(recognizer, hop_s=0.5, smoothing=0.5)
    for _ in range(3000):
        warm.push(chunk)
    stream = StreamRecognizer(recognizer, hop_s=0.5, smoothing=0.5)

    def peak_after(seconds: int) -> int:
        tracemalloc.start()
        for _ in range(seconds * 10):
            stream.push(chunk)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return peak

    # Flat: a warm stream's 60 s trace the same peak as its 10 s (measured: 152 bytes less).
    # A leak of a 100-byte object per 0.1 s push adds 500 of them (~70 KB) to the 60 s peak.
    short, long = peak_after(10), peak_after(60)
    assert long - short < 50_000, (short, long)
    assert stream._ring.size == stream.window


def test_edge_inference_imports_only_numpy_and_stdlib(exported, trained):
    (path, _), *_ = heldout_files(trained)
    script = (
        "import sys; from edge_runtime.recognizer import EmotionRecognizer\n"
        f"print(EmotionRecognizer({str(exported.numpy)!r}).predict_file({str(path)!r}).label)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'tensorflow', 'keras', 'scipy', 'librosa', 'torch', 'jax', 'onnxruntime', 'click'})\n"
        "assert not bad, bad"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, cwd=ROOT, timeout=120
    )
    assert result.returncode == 0, result.stderr.decode()[-2000:]


@pytest.mark.skipif(not DEFAULT_MODEL.exists(), reason="no shipped default model")
def test_shipped_default_model(tmp_path):
    recognizer = EmotionRecognizer()
    assert recognizer.artifact.artifact_info.quantization == "int8"
    assert DEFAULT_MODEL.stat().st_size < 1_000_000
    # Trained on EmoDB, CASIA and RAVDESS in the common label space (issue 23, point 9).
    assert set(recognizer.labels) == {
        "anger",
        "boredom",
        "calm",
        "disgust",
        "fear",
        "happiness",
        "neutral",
        "sadness",
        "surprise",
    }
    corpora = recognizer.artifact.metadata.info["corpora"]
    assert set(corpora) == {"emodb", "casia", "ravdess"}
    assert {c["role"] for c in corpora.values()} == {"pooled"}
    rng = np.random.default_rng(0)
    clip = tmp_path / "clip.wav"
    samples = 0.3 * np.sin(2 * np.pi * 180 * np.arange(48000) / 16000) + rng.normal(0, 0.01, 48000)
    with wave.open(str(clip), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(16000)
        f.writeframes((samples * 32767).astype("<i2").tobytes())
    # No model argument: the shipped one. A tone is not speech: the gate is turned off.
    result = run_edge("predict", str(clip), "--json", "--no-speech-gate")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["label"] in recognizer.labels


def test_numpy_only_install_predicts(exported, trained, tmp_path):
    """A fresh venv with nothing but numpy and dyser installed --no-deps (no network)."""
    import venv

    import numpy

    env_dir, site = tmp_path / "venv", tmp_path / "site"
    venv.EnvBuilder(with_pip=False, system_site_packages=False).create(env_dir)
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(site),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stderr[-2000:]
    numpy_dir = Path(numpy.__file__).parent
    for entry in [numpy_dir, *numpy_dir.parent.glob("numpy.libs")]:
        (site / entry.name).symlink_to(entry)
    python = env_dir / "bin" / "python"
    (path, label), *_ = heldout_files(trained)
    script = (
        "import sys, importlib.util\n"
        "assert importlib.util.find_spec('keras') is None and "
        "importlib.util.find_spec('ai_edge_litert') is None\n"
        "from edge_runtime.recognizer import EmotionRecognizer\n"
        f"print(EmotionRecognizer({str(exported.numpy)!r}, speech_gate=None)"
        f".predict_file({str(path)!r}).label)\n"
    )
    run = subprocess.run(
        [str(python), "-c", script],
        env={"PYTHONPATH": str(site)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip() == label
    # The shipped int8 TFLite model needs an interpreter: a clear error, exit status 2.
    cli = subprocess.run(
        [str(python), "-m", "edge_runtime", "predict", str(path)],
        env={"PYTHONPATH": str(site)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert cli.returncode == 2 and "pip install ai-edge-litert" in cli.stderr
