"""dyser-export end to end on a tiny model trained here on synthetic audio with a learnable signal.

The audio: three classes of harmonic tones in separate frequency bands (plus noise), written
as WAV files, turned into features by the edge frontend, and used to train a small
DyCNN-BiLSTM for real. Every format and quantization mode is then exported through the CLI
and checked: builtin-only TFLite ops (listed by the ai-edge-litert interpreter),
`onnx.checker`, parity with the Keras model through the edge_runtime engines, manifests.
The twin is tested in test_export_twin.py, failures and command-line manners in
test_export_cli.py, plain Keras models and atomic output files in test_export_files.py.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import keras
import numpy as np
import onnx
import pytest
from export_fixtures import run_cli
from tone_corpus import LABELS, POLICY, RAW_CONFIG, tiny_model, windows_of

from edge_runtime.artifact import load_artifact, manifest_path
from edge_runtime.engines import open_engine
from edge_runtime.features import Frontend
from edge_runtime.metadata import ModelMetadata
from edge_runtime.normalization import with_dataset_stats
from export import pipeline
from export.calibration import extract_windows, list_audio
from export.tflite import non_builtin_ops, tflite_ops
from keras_dyconv.modelio import save_model

# ----------------------------------------------------------------- every format and mode

CASES = {
    # id: (format, CLI quantize arguments, uses the held-out manifest)
    "tflite-none": ("tflite", ["--quantize", "none"], True),
    "tflite-float16": ("tflite", ["--quantize", "float16"], True),
    "tflite-dynamic": ("tflite", ["--quantize", "dynamic"], True),
    "tflite-int8": ("tflite", ["--quantize"], True),  # the bare flag means int8
    "onnx-none": ("onnx", ["--quantize", "none"], True),
    "onnx-float16": ("onnx", ["--quantize", "float16"], True),
    "onnx-dynamic": ("onnx", ["--quantize", "dynamic"], True),
    "onnx-int8": ("onnx", ["--quantize", "int8"], False),  # folder + automatic split
}


@pytest.mark.parametrize("case", list(CASES))
def test_export_every_format_and_mode(trained, cli_exports, case):
    fmt, quantize_args, with_holdout = CASES[case]
    mode = quantize_args[1] if len(quantize_args) > 1 else "int8"
    if with_holdout:  # the session's export (conftest `cli_exports`), shared with other tests
        code, report, stderr = cli_exports(fmt, mode)
    else:
        data = ["--calibration", trained.train.parent]  # a folder of WAVs: no labels
        code, report, stderr = run_cli(trained.model_path, "--format", fmt, *quantize_args, *data)
    assert code == 0, stderr
    out = trained.root / f"tiny{'' if mode == 'none' else '.' + mode}.{fmt}"
    assert Path(report["output"]) == out and out.is_file() and manifest_path(out).is_file()
    assert report["quantization"] == mode and report["passed"]
    parity = report["parity"]
    assert parity["agreement"] >= pipeline.DEFAULT_MIN_AGREEMENT[mode]
    assert parity["size_bytes"] == out.stat().st_size and parity["latency_ms"] > 0
    assert "agreement" in stderr and "PASS" in stderr  # the human summary table

    artifact = load_artifact(out)
    assert artifact.artifact_info.quantization == mode and artifact.artifact_info.parity["passed"]
    assert artifact.labels == LABELS and artifact.frames == POLICY.frames
    if with_holdout:  # labelled held-out audio: accuracy of both, the export within 5 points
        assert parity["heldout"] == "held-out" and parity["windows"] == len(trained.x_held)
        assert parity["export_accuracy"] >= parity["keras_accuracy"] - 0.05
        assert parity["keras_accuracy"] > 0.9
        # The engine reproduces the report: same top-1 as Keras on the held-out windows.
        probs = open_engine(artifact).predict(trained.x_held)
        keras_top1 = trained.model.predict(trained.x_held, verbose=0).argmax(1)
        assert np.mean(probs.argmax(1) == keras_top1) == pytest.approx(parity["agreement"])
        np.testing.assert_allclose(probs.sum(axis=1), 1, atol=0.02)
    else:
        assert parity["heldout"] == "held-out calibration" and parity["keras_accuracy"] is None

    if fmt == "tflite":
        ops = tflite_ops(out)
        assert non_builtin_ops(ops) == [] and not any(op.startswith("Flex") for op in ops)
        assert ops.count("UNIDIRECTIONAL_SEQUENCE_LSTM") == 2  # fused, both directions
        spec_in = artifact.artifact_info.input
        if mode == "int8":  # int8 tensors in and out, their quantization recorded
            assert spec_in.dtype == artifact.artifact_info.output.dtype == "int8"
            assert spec_in.scale > 0 and artifact.artifact_info.output.scale > 0
        else:
            assert spec_in.dtype == "float32" and spec_in.scale is None
    else:
        model = onnx.load(out)
        onnx.checker.check_model(model, full_check=True)
        ops = [node.op_type for node in model.graph.node]
        expected = {
            "none": "LSTM",
            "float16": "Cast",
            "dynamic": "DynamicQuantizeLSTM",
            "int8": "QuantizeLinear",
        }[mode]
        assert expected in ops


def test_log_mel_with_deltas_as_channels_exports_and_runs(trained, tmp_path):
    # Frontend feature "logmel_deltas": 3 values per band, read by the model as 3 input
    # channels; the int8 export and the edge engine see the same (1, frames, 48) windows.
    raw = dataclasses.replace(RAW_CONFIG, feature="logmel_deltas")
    frontend = Frontend(raw)
    feats = [frontend.wav_features(p) for p in sorted(trained.train.parent.glob("*.wav"))]
    config = with_dataset_stats(raw, feats)
    x, y = windows_of(trained.train, config)
    assert x.shape[1:] == (POLICY.frames, 3 * RAW_CONFIG.n_mels)
    keras.utils.set_random_seed(0)
    model = tiny_model(input_channels=3)
    assert model.get_layer("dyconv1").input.shape[-1] == 3
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=16, epochs=30, verbose=0)
    path = save_model(model, tmp_path / "deltas.keras", ModelMetadata(LABELS, config, POLICY))
    args = ["--calibration", trained.train, "--holdout", trained.heldout]
    code, report, stderr = run_cli(path, "--format", "tflite", "--quantize", *args)
    assert code == 0, stderr
    assert report["passed"] and report["parity"]["keras_accuracy"] > 0.9
    artifact = load_artifact(report["output"])
    assert artifact.artifact_info.input.shape == (1, POLICY.frames, 48)
    x_held, _ = windows_of(trained.heldout, config)
    top1 = open_engine(artifact).predict(x_held).argmax(1)
    assert np.mean(top1 == model.predict(x_held, verbose=0).argmax(1)) >= 0.98


def test_window_option_sets_frames_everywhere(trained, tmp_path):
    out = tmp_path / "w.onnx"
    code, report, stderr = run_cli(
        trained.model_path, "--format", "onnx", "--window", "0.4", "--out", out
    )
    assert code == 0, stderr
    artifact = load_artifact(out)
    assert report["frames"] == 40 == artifact.frames == artifact.metadata.window.frames
    assert artifact.artifact_info.input.shape == (1, 40, RAW_CONFIG.n_mels)
    assert report["parity"]["heldout"] == "synthetic"  # no audio given: synthetic windows


def test_calibration_gains_shift_the_log_mel_by_their_decibels(trained):
    items = list_audio(trained.train, LABELS)[:3]
    plain = extract_windows(items, trained.metadata, POLICY, origin="c", progress=False)
    louder = extract_windows(
        items, trained.metadata, POLICY, origin="c", gains_db=(6.0, -6.0), progress=False
    )
    shift_db = (louder.windows - plain.windows) * np.asarray(trained.metadata.frontend.std)
    expected = np.where(louder.utterance == 1, -6.0, 6.0)[:, None, None]  # cycled per utterance
    np.testing.assert_allclose(shift_db, np.broadcast_to(expected, shift_db.shape), atol=1e-3)


# --------------------------------------------------------------------- engine behaviour


def test_litert_engine_resets_lstm_state_between_windows(trained, cli_exports):
    code, report, stderr = cli_exports("tflite", "none")
    assert code == 0, stderr
    out = report["output"]
    engine = open_engine(out)
    a, b = trained.x_held[:1], trained.x_held[-1:]
    first = engine.predict(a)
    engine.predict(b)
    np.testing.assert_array_equal(engine.predict(a), first)
    np.testing.assert_array_equal(engine.predict(np.concatenate([b, a]))[1], first[0])
    with pytest.raises(ValueError, match=r"expected windows of shape \(n, 32, 16\)"):
        engine.predict(trained.x_held[:, :20])
