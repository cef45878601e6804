"""The artifact manifest (write, read, verify) and the engines' checks, without TensorFlow.

Model files here are opaque bytes: the manifest logic must refuse what does not match
before any interpreter sees the file. Engines running real exports are in test_export.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from edge_fixtures import edit_manifest

from edge_runtime.artifact import (
    ArtifactError,
    TensorSpec,
    load_artifact,
    manifest_digest,
    manifest_path,
    write_manifest,
)
from edge_runtime.config import STREAM_PRIOR_FRAMES, FrontendConfig
from edge_runtime.engines import EngineError, dequantize, open_engine, quantize
from edge_runtime.files import FILE_MODE
from edge_runtime.metadata import ModelMetadata
from edge_runtime.windows import WindowPolicy

LABELS = ("calm", "angry", "sad")
METADATA = ModelMetadata(
    labels=LABELS, frontend=FrontendConfig(n_mels=8), window=WindowPolicy(20, 5)
)
INPUT = TensorSpec("log_mel", (1, 20, 8), "int8", scale=0.05, zero_point=-3)
OUTPUT = TensorSpec("probs", (1, 3), "int8", scale=1 / 256, zero_point=-128)


def export(path, **changes):
    path.write_bytes(b"not really a flatbuffer, but hashed like one" * 10)
    args = dict(format="tflite", quantization="int8", input=INPUT, output=OUTPUT, exporter="test 1")
    return write_manifest(path, METADATA, **{**args, **changes})


@pytest.fixture
def model(tmp_path):
    path = tmp_path / "model.tflite"
    export(path)
    return path


def test_round_trip(model):
    manifest = manifest_path(model)
    assert manifest.name == "model.tflite.json"
    data = json.loads(manifest.read_text())
    assert data["labels"] == list(LABELS) and data["window"] == {"frames": 20, "hop_frames": 5}
    assert data["frontend"]["n_mels"] == 8
    section = data["artifact"]
    assert section["sha256"] == hashlib.sha256(model.read_bytes()).hexdigest()
    assert section["size_bytes"] == model.stat().st_size
    assert section["input"] == {
        "name": "log_mel",
        "shape": [1, 20, 8],
        "dtype": "int8",
        "scale": 0.05,
        "zero_point": -3,
    }
    assert section["version"] == 2 and len(section["manifest_sha256"]) == 64
    artifact = load_artifact(model)
    assert artifact.model_path == model and artifact.labels == LABELS
    assert artifact.metadata == METADATA and artifact.frames == 20
    info = artifact.artifact_info
    assert info.input == INPUT and info.output == OUTPUT
    assert info.format == "tflite" and info.quantization == "int8"
    assert info.manifest_sha256 == manifest_digest(METADATA, info)
    # B8: the manifest given as the model is refused for what it is.
    with pytest.raises(ArtifactError, match=r"this is a manifest, not a model; pass the model"):
        load_artifact(manifest)
    assert manifest.stat().st_mode & 0o777 == FILE_MODE
    assert sorted(p.name for p in model.parent.iterdir()) == ["model.tflite", manifest.name]


def test_missing_manifest_or_model(model):
    manifest_path(model).unlink()
    with pytest.raises(ArtifactError, match=r"no manifest model\.tflite\.json"):
        load_artifact(model)
    with pytest.raises(ArtifactError, match="model file not found"):
        load_artifact(model.with_name("other.tflite"))


def test_tampered_model_is_refused(model):
    data = bytearray(model.read_bytes())
    data[7] ^= 0xFF  # same size, different content
    model.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match=r"sha256 .*tampered"):
        load_artifact(model)
    assert load_artifact(model, verify_hash=False).artifact_info.sha256  # explicit opt-out only


def test_truncated_model_is_refused(model):
    model.write_bytes(model.read_bytes()[:-1])
    with pytest.raises(ArtifactError, match="replaced or truncated"):
        load_artifact(model)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["artifact"].update(version=99), "version 99 is not supported"),
        (lambda d: d.pop("artifact"), 'no "artifact" section'),
        (lambda d: d["artifact"].pop("sha256"), r"lacks \['sha256'\]"),
        (lambda d: d["artifact"].update(format="tfjs"), "format 'tfjs'"),
        (lambda d: d["artifact"].update(quantization="int4"), "quantization 'int4'"),
        (lambda d: d.update(labels=["calm", "angry"]), "outputs 3 classes but .* 2 labels"),
        (lambda d: d["window"].update(frames=30), r"input shape \[1, 20, 8\] does not match"),
        (lambda d: d["frontend"].update(n_mels=13), r"expected \[1, 20, 13\]"),
        (lambda d: d.pop("frontend"), "frontend"),
        (lambda d: d.update(format_version=7), "format_version 7"),
        (lambda d: d["artifact"]["input"].update(scale=None), "no valid scale/zero_point"),
        (lambda d: d["artifact"]["output"].pop("dtype"), "name, shape and dtype"),
    ],
)
def test_inconsistent_manifest_is_refused(model, change, message):
    edit_manifest(model, change, reseal=True)
    with pytest.raises(ArtifactError, match=message):
        load_artifact(model)


def reverse_labels(d):
    d["labels"].reverse()


@pytest.mark.parametrize(
    "change",
    [
        reverse_labels,  # B6: silently mislabelled output
        lambda d: d["frontend"].update(sample_rate=8000),
        lambda d: d["frontend"].update(fmax=4000.0),
        lambda d: d["frontend"].update(preemphasis=0.5),
        lambda d: d["window"].update(hop_frames=7),
        lambda d: d["artifact"]["input"].update(scale=0.5),
        lambda d: d["artifact"].update(quantization="dynamic"),
        lambda d: d["artifact"].update(sha256="0" * 64),
        lambda d: d["artifact"].update(manifest_sha256="0" * 64),
    ],
)
def test_edited_manifest_is_refused_as_modified(model, change):
    edit_manifest(model, change)
    with pytest.raises(ArtifactError, match="the manifest was modified after export"):
        load_artifact(model)


def test_free_form_fields_may_change(model):
    edit_manifest(model, lambda d: d.update(info={"note": "tested on device 7"}))
    edit_manifest(model, lambda d: d["artifact"].update(exporter="x", parity={"ok": 1}))
    assert load_artifact(model).metadata.info == {"note": "tested on device 7"}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["frontend"].update(n_fft=10**9), "n_fft must be <= 16384"),  # B7
        (lambda d: d["frontend"].update(sample_rate=10**7), "sample_rate must be <= 384000"),
        (lambda d: d["frontend"].update(n_mels=10**6), "n_mels must be <= 512"),
        (lambda d: d["frontend"].update(hop_length=0), "hop_length must be >= 1"),
        (lambda d: d["frontend"].update(power=1e9), "power must be <= 4"),
        (lambda d: d["window"].update(frames=10**9), "window frames must be in 1..60000"),
        (lambda d: d["window"].update(frames=20.5), "window frames must be an integer"),
        (lambda d: d["artifact"]["input"].update(shape=[1, 10**9, 8]), r"must be integers in"),
        (lambda d: d["artifact"].update(size_bytes=-1), "size_bytes must be an integer >= 0"),
    ],
)
def test_out_of_range_manifest_values_are_refused_before_allocation(model, change, message):
    edit_manifest(model, change)
    tracemalloc.start()
    try:
        with pytest.raises(ArtifactError, match=message):
            load_artifact(model)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20


def test_version_1_manifest_is_refused_with_the_reason(model):
    edit_manifest(model, lambda d: d["artifact"].update(version=1))
    with pytest.raises(ArtifactError, match=r"version 1 has no manifest_sha256.*re-export"):
        load_artifact(model)


SHIPPED = (
    Path(__file__).resolve().parents[1] / "edge_runtime" / "models" / "dyser-multi-int8.tflite"
)
SHIPPED_STREAM = SHIPPED.with_name("dyser-multi-stream-int8.tflite")


def test_shipped_manifest_is_sealed_and_edits_are_refused(tmp_path):
    copy = tmp_path / SHIPPED.name
    shutil.copy(SHIPPED, copy)
    shutil.copy(manifest_path(SHIPPED), manifest_path(copy))
    assert load_artifact(copy).artifact_info.version == 2
    edit_manifest(
        copy, lambda d: d["frontend"]["mean"].__setitem__(0, d["frontend"]["mean"][0] + 5)
    )
    with pytest.raises(ArtifactError, match="modified after export"):
        load_artifact(copy)


def test_shipped_stream_model_matches_the_single_clip_model_but_adapts():
    if not SHIPPED_STREAM.exists():
        pytest.skip(f"{SHIPPED_STREAM} is not there (scripts/build_default_model.sh builds it)")
    stream, single = load_artifact(SHIPPED_STREAM), load_artifact(SHIPPED)
    assert stream.artifact_info.quantization == "int8" and stream.artifact_info.parity["passed"]
    config = stream.metadata.frontend
    assert config.normalization == "stream" and config.stream_prior_frames == STREAM_PRIOR_FRAMES
    assert len(config.mean) == len(config.std) == config.n_features
    # The same 9 common labels, in the same order, and the same features and window.
    assert len(stream.labels) == 9 and stream.labels == single.labels
    assert config.unnormalized() == single.metadata.frontend.unnormalized()
    assert stream.metadata.window == single.metadata.window
    pytest.importorskip("ai_edge_litert")
    from edge_runtime.recognizer import EmotionRecognizer

    recognizer = EmotionRecognizer(stream, engine="litert", speech_gate=None)
    rng = np.random.default_rng(0)
    t = np.arange(3 * config.sample_rate) / config.sample_rate
    signal = 0.3 * np.sin(2 * np.pi * 180 * t) + rng.normal(0, 0.01, len(t))
    prediction = recognizer.predict_samples(signal.astype(np.float32), config.sample_rate)
    assert prediction.label in stream.labels
    assert sum(prediction.probabilities.values()) == pytest.approx(1.0, abs=0.02)
    assert recognizer.stream.count > recognizer.stream.prior_frames  # the signal was heard


def test_unreadable_manifest(model):
    manifest_path(model).write_text("{not json")
    with pytest.raises(ArtifactError, match="unreadable manifest"):
        load_artifact(model)


def test_write_refuses_inconsistent_artifacts(tmp_path):
    path = tmp_path / "m.onnx"
    with pytest.raises(ArtifactError, match="outputs 4 classes"):
        export(path, output=TensorSpec("probs", (1, 4), "float32"))
    with pytest.raises(ArtifactError, match="does not match"):
        export(path, input=TensorSpec("x", (1, 21, 8), "float32"))
    assert not manifest_path(path).exists()


def test_quantize_round_trip_and_saturation():
    x = np.linspace(-8, 8, 161, dtype=np.float32)
    q = quantize(x, INPUT)
    assert q.dtype == np.int8 and q.min() == -128 and q.max() == 127  # saturates
    inside = (x > (-128 + 3) * 0.05) & (x < (127 + 3) * 0.05)
    assert np.abs(dequantize(q, INPUT)[inside] - x[inside]).max() <= 0.025 + 1e-6
    assert dequantize(np.array([-128, 127], np.int8), OUTPUT).tolist() == [0.0, 255 / 256]
    floats = TensorSpec("f", (1, 3), "float32")
    assert quantize(x, floats).dtype == np.float32 and np.array_equal(dequantize(x, floats), x)


def test_engine_choice_is_checked(model):
    with pytest.raises(EngineError, match="is a tflite model; engine 'onnxruntime'"):
        open_engine(model, engine="onnxruntime")
    with pytest.raises(EngineError, match="engine must be one of"):
        open_engine(model, engine="tensorrt")
    with pytest.raises(EngineError, match="threads must be >= 1"):
        open_engine(model, threads=0)


def test_tampered_model_never_reaches_an_interpreter(model):
    model.write_bytes(b"x" * model.stat().st_size)
    with pytest.raises(ArtifactError, match="tampered"):
        open_engine(model)


def test_corrupt_model_with_valid_manifest_gives_engine_error(model):
    pytest.importorskip("ai_edge_litert")
    with pytest.raises(EngineError, match="LiteRT cannot load it"):
        open_engine(model)


def test_missing_interpreters_are_explained(model, tmp_path, monkeypatch):
    for name in (
        "ai_edge_litert",
        "ai_edge_litert.interpreter",
        "tflite_runtime",
        "tflite_runtime.interpreter",
        "onnxruntime",
    ):
        monkeypatch.setitem(sys.modules, name, None)  # makes `import name` fail
    with pytest.raises(EngineError, match="pip install ai-edge-litert"):
        open_engine(model)
    onnx_model = tmp_path / "m.onnx"
    export(onnx_model, format="onnx")
    with pytest.raises(EngineError, match="pip install onnxruntime"):
        open_engine(onnx_model)


PROBE = """
import json, sys
before = set(sys.modules)
import edge_runtime.artifact, edge_runtime.engines
new = sorted(set(sys.modules) - before)
allowed = set(sys.stdlib_module_names) | {"numpy", "edge_runtime"}
print(json.dumps({"new": new, "foreign": [m for m in new if m.split(".")[0] not in allowed]}))
"""


def test_artifact_and_engines_import_only_numpy_and_stdlib():
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, env=env
    )
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["foreign"] == [], f"edge_runtime imported {report['foreign']}"
    assert "edge_runtime.engines" in report["new"]
