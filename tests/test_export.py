"""dyser-export end to end on a tiny model trained here on synthetic audio with a learnable signal.

The audio: three classes of harmonic tones in separate frequency bands (plus noise), written
as WAV files, turned into features by the edge frontend, and used to train a small
DyCNN-BiLSTM for real. Every format and quantization mode is then exported through the CLI
and checked: builtin-only TFLite ops (listed by the ai-edge-litert interpreter),
`onnx.checker`, parity with the Keras model through the edge_runtime engines, manifests.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from tone_corpus import LABELS, POLICY, RAW_CONFIG, tiny_model, windows_of

import edge_runtime.files as edge_files
from edge_runtime.artifact import load_artifact, manifest_path
from edge_runtime.config import with_dataset_stats
from edge_runtime.engines import open_engine
from edge_runtime.features import Frontend
from edge_runtime.metadata import MetadataError, ModelMetadata
from edge_runtime.numpy_engine import NumpyModel
from edge_runtime.recognizer import EmotionRecognizer
from export import pipeline
from export.calibration import extract_windows, list_audio
from export.cli import main
from export.numpy_graph import numpy_graph_bytes
from export.tflite import explain_failure, non_builtin_ops, tflite_ops
from export.twin import TwinError, build_twin
from keras_dyconv import modelio
from keras_dyconv.layers import DynamicConv2D
from keras_dyconv.modelio import save_model


def run_cli(*args: str) -> tuple[int, dict, str]:
    result = CliRunner().invoke(main, [*map(str, args), "--json", "--latency-runs", "5"])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, json.loads(result.stdout or "{}"), result.stderr


# --------------------------------------------------------------------------------- the twin


def bias_lstm_model() -> keras.Model:
    """A chain the default factory never builds: biased dynamic convs (one with BatchNorm
    folded; one static, K=1, activated before its BatchNorm, which must not fold), a plain
    LSTM."""
    inputs = keras.Input((None, 16))
    x = keras.layers.Reshape((-1, 16, 1))(inputs)
    x = DynamicConv2D(4, 3, padding="same", use_bias=True, num_kernels=3, temperature=4.0)(x)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.MaxPooling2D((2, 2))(x)
    x = DynamicConv2D(4, (3, 1), strides=(1, 2), activation="relu", use_bias=True, num_kernels=1)(x)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.Reshape((-1, 4 * 4))(x)
    x = keras.layers.LSTM(6)(x)
    x = keras.layers.Dense(5, activation="relu")(x)
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))


def randomize_statistics(model: keras.Model, rng: np.random.Generator) -> None:
    """Non-trivial BatchNorm statistics and biases, so folding is really exercised."""
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.gamma.shape[0]
            layer.set_weights(
                [
                    rng.uniform(0.5, 2, n),
                    rng.normal(0, 0.3, n),
                    rng.normal(0, 0.3, n),
                    rng.uniform(0.2, 3, n),
                ]
            )
        if isinstance(layer, DynamicConv2D) and layer.use_bias:
            layer.bias.assign(rng.normal(0, 0.5, layer.bias.shape))


@pytest.mark.parametrize("fold", [True, False], ids=["folded-bn", "separate-bn"])
def test_twin_matches_keras_model(trained, fold):
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, (4, POLICY.frames, RAW_CONFIG.n_mels)).astype(np.float32)
    twin = build_twin(trained.model, POLICY.frames, fold_batchnorm=fold)
    got = np.concatenate([twin(w[None], training=False).numpy() for w in x])
    np.testing.assert_allclose(got, trained.model(x, training=False).numpy(), atol=1e-5)
    names = {layer.name for layer in twin.layers}
    assert "dyconv1" in names and ("bn1" in names) != fold


def test_twin_and_numpy_graph_match_biased_conv_static_conv_and_plain_lstm(tmp_path):
    keras.utils.set_random_seed(1)
    model = bias_lstm_model()
    randomize_statistics(model, np.random.default_rng(1))
    x = np.random.default_rng(2).normal(0, 1, (3, 20, 16)).astype(np.float32)
    expected = model(x, training=False).numpy()
    twin = build_twin(model, 20)
    got = np.concatenate([twin(w[None], training=False).numpy() for w in x])
    np.testing.assert_allclose(got, expected, atol=1e-5)
    path = tmp_path / "model.npz"
    path.write_bytes(numpy_graph_bytes(twin))
    np.testing.assert_allclose(NumpyModel(path)(x), expected, atol=1e-5)


def test_twin_names_the_layer_it_does_not_know():
    inputs = keras.Input((None, 16))
    x = keras.layers.LayerNormalization(name="my_layernorm")(inputs)
    x = keras.layers.LSTM(4)(x)
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(x))
    with pytest.raises(TwinError, match=r"'my_layernorm' \(LayerNormalization\)"):
        build_twin(model, 10)


def test_twin_refuses_a_window_the_model_cannot_take(trained):
    fixed = tiny_model(frames=32)
    with pytest.raises(TwinError, match="fixed input of 32 frames"):
        build_twin(fixed, 40)


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
def test_export_every_format_and_mode(trained, case):
    fmt, quantize_args, with_holdout = CASES[case]
    mode = quantize_args[1] if len(quantize_args) > 1 else "int8"
    data = (
        ["--calibration", trained.train, "--holdout", trained.heldout]
        if with_holdout
        else [
            "--calibration",
            trained.train.parent,  # a folder of WAVs: no labels
        ]
    )
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


def test_litert_engine_resets_lstm_state_between_windows(trained, tmp_path):
    out = tmp_path / "m.tflite"
    code, _, stderr = run_cli(trained.model_path, "--out", out, "--holdout", trained.heldout)
    assert code == 0, stderr
    engine = open_engine(out)
    a, b = trained.x_held[:1], trained.x_held[-1:]
    first = engine.predict(a)
    engine.predict(b)
    np.testing.assert_array_equal(engine.predict(a), first)
    np.testing.assert_array_equal(engine.predict(np.concatenate([b, a]))[1], first[0])
    with pytest.raises(ValueError, match=r"expected windows of shape \(n, 32, 16\)"):
        engine.predict(trained.x_held[:, :20])


# ---------------------------------------------------------------------- failure handling


def test_int8_without_calibration_is_a_usage_error(trained, tmp_path):
    out = tmp_path / "q.tflite"
    code, report, stderr = run_cli(trained.model_path, "--quantize", "--out", out)
    assert code == 2 and "--calibration" in stderr and report["exit_code"] == 2
    assert list(tmp_path.iterdir()) == []


def test_unusable_calibration_audio_is_reported(trained, tmp_path):
    wav = next(trained.train.parent.glob("*.wav"))
    manifest = tmp_path / "labels.csv"
    manifest.write_text(f"path,label\n{wav},angry\n")
    code, _, stderr = run_cli(trained.model_path, "--calibration", manifest)
    assert code == 4 and "['angry'] are not among the model's labels" in stderr
    manifest.write_text(f"path,label\n{wav.with_name('missing.wav')},low\n")
    code, _, stderr = run_cli(trained.model_path, "--calibration", manifest)
    assert code == 4 and "missing.wav" in stderr
    (tmp_path / "broken.wav").write_bytes(b"RIFF....WAVEjunk")
    code, _, stderr = run_cli(trained.model_path, "--holdout", tmp_path)
    assert code == 4 and "broken.wav" in stderr


def test_failed_conversion_leaves_previous_output_untouched(trained, tmp_path):
    inputs = keras.Input((None, RAW_CONFIG.n_mels))
    x = keras.layers.Conv1D(4, 3, name="plain_conv1d")(inputs)
    x = keras.layers.LSTM(4)(x)
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))
    model_path = save_model(model, tmp_path / "conv1d.keras", trained.metadata)
    out = tmp_path / "deployed.tflite"
    out.write_bytes(b"previous model")
    manifest_path(out).write_text("{}")
    before = sorted(tmp_path.iterdir())
    code, report, stderr = run_cli(model_path, "--out", out)
    assert code == 3 and "plain_conv1d" in stderr and "plain_conv1d" in report["error"]
    assert out.read_bytes() == b"previous model" and manifest_path(out).read_text() == "{}"
    assert sorted(tmp_path.iterdir()) == before  # no temporary files left behind


def test_converter_errors_name_the_layer_and_op():
    err = RuntimeError(
        "loc(\"dycnn/dyconv2/conv\"): 'tf.FancyOp' op is neither a custom op nor a flex op"
    )
    message = str(explain_failure(err, ["dyconv1", "dyconv2", "bilstm"], "TFLite conversion"))
    assert "at layer(s) dyconv2" in message and "tf.FancyOp" in message
    assert "dyconv1" not in message and "bilstm" not in message


def test_parity_below_threshold_exits_1_and_says_so(trained, tmp_path, monkeypatch):
    real_open = pipeline.open_engine

    class Scrambled:  # a broken export: probabilities rolled by one class
        def __init__(self, artifact, threads):
            self.engine = real_open(artifact, threads=threads)
            self.name = "scrambled"

        def predict(self, windows):
            return np.roll(self.engine.predict(windows), 1, axis=1)

    monkeypatch.setattr(pipeline, "open_engine", Scrambled)
    out = tmp_path / "bad.onnx"
    code, report, stderr = run_cli(
        trained.model_path, "--format", "onnx", "--holdout", trained.heldout, "--out", out
    )
    assert code == 1 and not report["passed"] and "below the minimum" in stderr
    assert report["parity"]["agreement"] < 0.5
    assert load_artifact(out).artifact_info.parity["passed"] is False


def test_min_agreement_override(trained, tmp_path):
    code, report, _ = run_cli(
        trained.model_path,
        "--format",
        "onnx",
        "--min-agreement",
        "50",
        "--holdout",
        trained.heldout,
        "--out",
        tmp_path / "m.onnx",
    )
    assert code == 0 and report["parity"]["min_agreement"] == 0.5
    code, _, stderr = run_cli(trained.model_path, "--min-agreement", "101")
    assert code == 2 and "101" in stderr


def test_help_reads_like_a_manual():
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    text = result.output
    for needle in (
        "QUANTIZATION MODES",
        "none",
        "float16",
        "dynamic",
        "int8",
        "EXIT STATUS",
        "parity",
        "--calibration",
        "--window",
        "--min-agreement",
        "EXAMPLES",
    ):
        assert needle in text
    for code in range(6):  # every exit status is documented
        assert re.search(rf"^\s+{code}  \w", text, re.M)


# ------------------------------------------------------------ a Keras user's normal path


def test_plain_model_save_of_a_factory_model_exports(trained, tmp_path):
    """build_dycnn_bilstm(labels=, frontend=) -> fit -> model.save(): no dyser.json needed."""
    config = trained.metadata.frontend  # with its dataset normalisation statistics
    model = tiny_model(num_classes=None, n_mels=None, labels=LABELS, frontend=config)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(trained.x_held[:4], trained.y_held[:4], epochs=1, verbose=0)
    path = tmp_path / "m.keras"
    model.save(path)  # plain Keras saving
    wav = next(trained.heldout.parent.glob("*.wav"))
    for fmt in ("tflite", "onnx"):
        out = tmp_path / f"m.{fmt}"
        code, _, stderr = run_cli(path, "--format", fmt, "--window", "0.32", "--out", out)
        assert code == 0, stderr
        artifact = load_artifact(out)
        assert artifact.labels == LABELS and artifact.metadata.frontend == config
        probs = open_engine(artifact).predict(trained.x_held[:3])
        np.testing.assert_allclose(probs, model.predict(trained.x_held[:3], verbose=0), atol=1e-4)
        # The fixture's clips are tones: not speech, so the gate is off to get a label.
        prediction = EmotionRecognizer(out, speech_gate=None).predict_file(wav)
        assert prediction.label in LABELS


def test_a_bare_model_names_the_options_that_supply_what_it_lacks(trained, tmp_path):
    model = tiny_model()  # built with neither labels nor frontend
    path = tmp_path / "bare.keras"
    model.save(path)
    code, report, stderr = run_cli(path, "--format", "numpy", "--out", tmp_path / "b.npz")
    assert code == 2 and "--labels" in stderr and "--frontend" in stderr
    assert "does not record its labels and its frontend" in report["error"]
    frontend = tmp_path / "frontend.json"
    frontend.write_text(trained.metadata.frontend.to_json())
    out = tmp_path / "b.npz"
    code, _, stderr = run_cli(
        path, "--format", "numpy", "--labels", ",".join(LABELS), "--frontend", frontend,
        "--window", "0.32", "--out", out,
    )  # fmt: skip
    assert code == 0, stderr
    assert load_artifact(out).labels == LABELS
    # A label list that contradicts what a model records is refused, not silently used.
    code, _, stderr = run_cli(
        trained.model_path, "--labels", "a,b,c", "--out", tmp_path / "x.tflite"
    )
    assert code == 4 and "records its labels" in stderr


def test_read_metadata_of_plain_keras_files(trained, tmp_path):
    config = trained.metadata.frontend
    labelled = tmp_path / "labelled.keras"
    tiny_model(num_classes=None, labels=LABELS).save(labelled)  # labels, no frontend
    with pytest.raises(modelio.IncompleteMetadata, match="without frontend=") as missing:
        modelio.read_metadata(labelled)
    assert missing.value.missing == ("frontend",)
    metadata = modelio.read_metadata(labelled, frontend=config)
    assert metadata.labels == LABELS and metadata.frontend == config
    with pytest.raises(MetadataError, match="records its labels"):
        modelio.read_metadata(labelled, labels=("a", "b", "c"), frontend=config)
    foreign = tmp_path / "foreign.keras"
    bias_lstm_model().save(foreign)  # not from the factory: no ModelInfo layer
    with pytest.raises(modelio.IncompleteMetadata, match="not built by build_dycnn_bilstm"):
        modelio.read_metadata(foreign, labels=LABELS)
    # save_model records the metadata in the layer too: the in-memory model carries it.
    model = tiny_model()
    save_model(model, tmp_path / "saved.keras", trained.metadata)
    model.save(tmp_path / "resaved.keras")
    assert modelio.read_metadata(tmp_path / "resaved.keras") == dataclasses.replace(
        trained.metadata, info={}
    )


# ---------------------------------------------------------- writes that survive any kill


def dead_pid() -> int:
    """The pid of a process that has ended."""
    process = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                             capture_output=True, text=True, check=True)  # fmt: skip
    return int(process.stdout)


def test_temporaries_of_a_killed_export_are_removed_by_the_next(trained, tmp_path):
    out = tmp_path / "deployed.npz"
    stale = tmp_path / f".deployed.npz.tmp-{dead_pid()}-k1ll3d00.npz"
    stale_manifest = manifest_path(stale)
    live = tmp_path / f".deployed.npz.tmp-{os.getpid()}-running.npz"  # a running export's
    unrelated = tmp_path / ".deployed.npz.backup"
    for path in (stale, stale_manifest, live, unrelated):
        path.write_bytes(b"partial")
    code, _, stderr = run_cli(trained.model_path, "--format", "numpy", "--out", out)
    assert code == 0, stderr
    assert not stale.exists() and not stale_manifest.exists()
    assert live.exists() and unrelated.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [out.name, manifest_path(out).name, live.name, unrelated.name]
    )


def test_atomic_output_replaces_whole_or_not_at_all(tmp_path):
    target = tmp_path / "model.tflite"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), edge_files.atomic_output(target) as tmp:
        assert tmp.parent == tmp_path and tmp.suffix == ".tflite"
        assert tmp.name.startswith(f".model.tflite.tmp-{os.getpid()}-")
        tmp.write_bytes(b"half")
        raise RuntimeError("killed mid-write")
    assert target.read_bytes() == b"old" and list(tmp_path.iterdir()) == [target]
    edge_files.atomic_write(target, "new")
    assert target.read_text() == "new" and list(tmp_path.iterdir()) == [target]
    assert target.stat().st_mode & 0o777 == edge_files.FILE_MODE
    assert edge_files.file_sha256(target) == hashlib.sha256(b"new").hexdigest()
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        edge_files.check_writable_folder(target)


def test_atomic_output_with_fsync_flushes_before_the_rename(tmp_path, monkeypatch):
    target = tmp_path / "state-001.weights.h5"
    synced = []
    real_fsync = os.fsync

    def spy(fd):
        # The file flushed is the temporary one, complete, and the target not there yet.
        synced.append((os.fstat(fd).st_ino, target.exists()))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", spy)
    edge_files.atomic_write(target, b"no flush")
    assert synced == []  # the default: no fsync
    target.unlink()
    with edge_files.atomic_output(target, fsync=True) as tmp:
        tmp.write_bytes(b"state")
    assert target.read_bytes() == b"state" and list(tmp_path.iterdir()) == [target]
    ((inode, existed),) = synced
    assert inode == target.stat().st_ino and existed is False  # the file that became target
    assert tmp.name.endswith(".weights.h5")


def test_an_unwritable_output_folder_fails_before_the_model_is_loaded(
    trained, tmp_path, monkeypatch
):
    """A folder where no file can be created is refused before loading or converting.

    As root, permission bits do not stop writes, so there the file system's refusal is
    simulated where the probe creates its file (edge_runtime.files uses tempfile.mkstemp);
    as another user the folder is really made read-only.
    """
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    if os.geteuid() == 0:
        real = edge_files.tempfile.mkstemp

        def refuse(*args, dir=None, **kwargs):
            if Path(dir) == folder:
                raise PermissionError(errno.EACCES, "Permission denied", str(folder))
            return real(*args, dir=dir, **kwargs)

        monkeypatch.setattr(edge_files.tempfile, "mkstemp", refuse)

    def never(*args, **kwargs):
        raise AssertionError("the model was loaded before the output folder was checked")

    monkeypatch.setattr(modelio, "load_model", never)
    code, report, stderr = run_cli(trained.model_path, "--out", folder / "m.tflite")
    folder.chmod(0o755)
    assert code == 4 and "cannot write in folder" in stderr and str(folder) in stderr
    assert "Permission denied" in report["error"] and list(folder.iterdir()) == []
    code, _, stderr = run_cli(trained.model_path, "--out", tmp_path / "missing" / "m.tflite")
    assert code == 2 and "does not exist" in stderr


# ------------------------------------------------------------------ command-line manners


def test_export_help_takes_h_and_imports_no_tensorflow():
    assert CliRunner().invoke(main, ["-h"]).exit_code == 0
    probe = (
        "import sys; from click.testing import CliRunner; from export.cli import main; "
        "r = CliRunner().invoke(main, ['--help']); assert r.exit_code == 0, r.output; "
        "print(sorted(m for m in ('tensorflow', 'keras', 'tf_keras', 'onnx') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]", result.stdout


def test_native_stderr_is_dropped_and_python_stderr_kept():
    """TensorFlow's and LiteRT's C++ logs go to fd 2; Python's stderr must survive."""
    probe = (
        "import os, sys\n"
        "from edge_runtime.engines import quiet_native_stderr\n"
        "with quiet_native_stderr():\n"
        "    os.write(2, b'native noise\\n')\n"
        "    print('ours', file=sys.stderr)\n"
        "with quiet_native_stderr(enabled=False):\n"
        "    os.write(2, b'verbose native\\n')\n"
        "os.write(2, b'after\\n')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stderr.splitlines() == ["ours", "verbose native", "after"]


def test_the_litert_engine_prints_no_delegate_notice(trained, tmp_path):
    out = tmp_path / "q.tflite"
    code, _, stderr = run_cli(trained.model_path, "--out", out)
    assert code == 0, stderr
    wav = next(trained.heldout.parent.glob("*.wav"))
    result = subprocess.run(
        [sys.executable, "-m", "edge_runtime", "predict", out, wav, "--no-speech-gate"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "XNNPACK" not in result.stderr and "INFO" not in result.stderr


def test_demo_exit_status_says_whether_its_checks_held(monkeypatch):
    from export import demo

    for passed, code in ((True, 0), (False, 1)):
        monkeypatch.setattr(demo, "_run", lambda *args, passed=passed: passed)
        assert CliRunner().invoke(demo.main, ["--epochs", "1"]).exit_code == code
    assert CliRunner().invoke(demo.main, ["-h"]).exit_code == 0


def test_demo_check_fails_only_when_agreement_is_significantly_low():
    from export.demo import wilson_upper

    assert wilson_upper(41 / 42, 42) > 0.98  # one flipped window of 42: not evidence
    assert wilson_upper(60 / 70, 70) < 0.98  # ten of 70: clearly below 98%
    assert wilson_upper(1.0, 0) == 1.0 and wilson_upper(1.0, 10) == 1.0
    assert abs(wilson_upper(0.5, 100) - 0.5962) < 1e-3  # the textbook 50 of 100: [0.404, 0.596]


def test_every_command_line_takes_h():
    """-h is --help for every program of pyproject.toml and for python -m edge_runtime."""
    import tomllib

    scripts = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())
    for name, target in scripts["project"]["scripts"].items():
        module, attr = target.split(":")
        entry = getattr(__import__(module, fromlist=[attr]), attr)
        if hasattr(entry, "main") and hasattr(entry, "params"):  # a click command
            result = CliRunner().invoke(entry, ["-h"])
            assert result.exit_code == 0 and "Usage:" in result.output, name
        else:
            with pytest.raises(SystemExit) as exit_info:
                entry(["-h"])
            assert exit_info.value.code == 0, name
    result = subprocess.run(
        [sys.executable, "-m", "edge_runtime", "-h"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and "usage:" in result.stdout
