"""dyser-export's files: a plain `model.save()` Keras model exports (or names the options it
needs), and outputs are written atomically, surviving a killed export."""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from export_fixtures import bias_lstm_model, run_cli
from tone_corpus import LABELS, tiny_model

import edge_runtime.files as edge_files
from edge_runtime.artifact import load_artifact, manifest_path
from edge_runtime.engines import open_engine
from edge_runtime.metadata import MetadataError
from edge_runtime.recognizer import EmotionRecognizer
from keras_dyconv import modelio
from keras_dyconv.modelio import save_model

# ------------------------------------------------------------ a Keras user's normal path


# The model and its metadata are read before any conversion (export.pipeline._load_model):
# ONNX checks that path in the default run; TFLite conversion of the factory model is
# checked there by test_export.py (a TFLite conversion costs ~20 s).
@pytest.mark.parametrize("fmt", [pytest.param("tflite", marks=pytest.mark.slow), "onnx"])
def test_plain_model_save_of_a_factory_model_exports(trained, tmp_path, fmt):
    """build_dycnn_bilstm(labels=, frontend=) -> fit -> model.save(): no dyser.json needed."""
    config = trained.metadata.frontend  # with its dataset normalisation statistics
    model = tiny_model(num_classes=None, n_mels=None, labels=LABELS, frontend=config)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(trained.x_held[:4], trained.y_held[:4], epochs=1, verbose=0)
    path = tmp_path / "m.keras"
    model.save(path)  # plain Keras saving
    wav = next(trained.heldout.parent.glob("*.wav"))
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
