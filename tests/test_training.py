"""Training on windowed features (train_model): normalisation, resuming after an interruption
or a kill, checkpoint locks and logs. Corpus runs and the CLIs are in test_training_runs.py,
recipes and their levers in test_training_recipes.py."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from tiny_training import POLICY, TINY, synthetic_features

from edge_runtime.config import FrontendConfig
from edge_runtime.normalization import dataset_statistics
from edge_runtime.windows import WindowPolicy
from keras_dyconv.checkpoints import (
    EPOCH_LOGS,
    EpochBackup,
    checkpoint_callbacks,
    read_epoch_logs,
)
from keras_dyconv.feeding import WindowSequence, predict_utterances
from keras_dyconv.training import train_model


def test_window_sequence_batches_are_normalised_windows():
    feats, labels = synthetic_features(10)
    mean, std = dataset_statistics(feats)
    config = FrontendConfig(n_mels=16, normalization="dataset", mean=mean, std=std)
    seq = WindowSequence(
        feats,
        labels,
        2,
        config,
        frames=100,
        batch_size=4,
        seed=0,
        spec_augment=(1, 10, 1, 3),
        class_weights=np.array([1.0, 2.0]),
    )
    assert len(seq) == 3
    x, y, w = seq[0]
    assert x.shape == (4, 100, 16) and x.dtype == np.float32
    assert y.shape == (4, 2) and np.allclose(y.sum(axis=1), 1)
    np.testing.assert_array_equal(w, np.where(y[:, 1] == 1, 2.0, 1.0))
    x_all = np.concatenate([seq[i][0] for i in range(len(seq))])
    assert abs(float(x_all.mean())) < 0.3  # normalised with the dataset statistics
    mixed = WindowSequence(feats, labels, 2, config, 100, 4, seed=0, mixup_alpha=0.4)
    _, y_mix = mixed[0]
    assert np.allclose(y_mix.sum(axis=1), 1) and ((y_mix > 0) & (y_mix < 1)).any()


def test_train_model_learns_and_records_normalisation(tmp_path):
    feats, labels = synthetic_features(40)
    originals = [f.copy() for f in feats]
    result = train_model(
        feats[:30],
        labels[:30],
        ["low", "high"],
        FrontendConfig(n_mels=16),
        TINY.with_overrides(epochs=6),
        POLICY,
        val_sources=feats[30:35],
        val_labels=labels[30:35],
        seed=0,
        verbose=0,
    )
    assert result.config.normalization == "dataset" and len(result.config.mean) == 16
    assert result.history["loss"][-1] < result.history["loss"][0]
    assert len(result.history["val_ua"]) == result.epochs_run == 6
    probs = predict_utterances(result.model, feats[35:], result.config, POLICY)
    assert (probs.argmax(axis=1) == labels[35:]).mean() >= 0.8
    # Windows are normalised copies: the stored features are reused every epoch.
    for before, after in zip(originals, feats, strict=True):
        np.testing.assert_array_equal(before, after)


def test_train_model_refuses_a_window_shorter_than_the_time_pooling():
    feats, labels = synthetic_features(8)
    deep = TINY.with_overrides(model={**TINY.model, "conv_filters": (4, 4)})  # time 2 x 4
    with pytest.raises(ValueError, match=r"window \(6 frames\).*time pooling \(8x\)"):
        train_model(
            feats,
            labels,
            ["low", "high"],
            FrontendConfig(n_mels=16),
            deep,
            WindowPolicy(frames=6, hop_frames=6),
            seed=0,
            verbose=0,
        )


def test_resume_after_interruption(tmp_path):
    feats, labels = synthetic_features(20)

    class Interrupt(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise KeyboardInterrupt

    ckpt = tmp_path / "ckpt"
    recipe = TINY.with_overrides(epochs=4)
    kwargs = dict(val_sources=feats[16:], val_labels=labels[16:], seed=0, verbose=0)
    args = (feats[:16], labels[:16], ["a", "b"], FrontendConfig(n_mels=16), recipe, POLICY)
    original_fit = keras.Model.fit

    def fit_with_interrupt(self, *args, callbacks=(), **kwargs):
        return original_fit(self, *args, callbacks=[*callbacks, Interrupt()], **kwargs)

    keras.Model.fit = fit_with_interrupt
    try:
        with pytest.raises(KeyboardInterrupt):
            train_model(*args, checkpoint_dir=ckpt, **kwargs)
    finally:
        keras.Model.fit = original_fit
    assert sorted(p.name for p in ckpt.glob("epoch-*.weights.h5")) == [
        "epoch-001.weights.h5",
        "epoch-002.weights.h5",
    ]
    before = read_epoch_logs(ckpt / EPOCH_LOGS)["val_ua"]
    assert len(before) == 2
    resumed = train_model(*args, checkpoint_dir=ckpt, **kwargs)
    assert (ckpt / "epoch-004.weights.h5").exists()
    # The resumed fit reports and chooses among all four epochs, not the two it ran.
    assert resumed.epochs_run == 4 and len(resumed.history["loss"]) == 4
    assert resumed.history["val_ua"][:2] == pytest.approx(before)
    assert resumed.best_epoch == int(np.argmax(resumed.history["val_ua"]))


@pytest.mark.skipif(sys.platform == "win32", reason="no fcntl locks on Windows")
def test_two_fits_cannot_share_a_checkpoint_folder(tmp_path):
    import fcntl

    feats, labels = synthetic_features(8)
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    args = (feats, labels, ["a", "b"], FrontendConfig(n_mels=16), TINY, POLICY)
    with open(ckpt / ".lock", "w") as other_run:  # another process training in this folder
        fcntl.flock(other_run, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(RuntimeError, match=r"ckpt is in use by another training"):
            train_model(*args, checkpoint_dir=ckpt, seed=0, verbose=0)
    assert not list(ckpt.glob("epoch-*"))  # refused before writing anything
    # Once the other run has stopped (or died: the OS drops its lock), the fit goes ahead.
    train_model(*args, checkpoint_dir=ckpt, seed=0, verbose=0)
    assert list(ckpt.glob("epoch-*.weights.h5"))


def test_validation_selection_takes_back_the_epochs_before_a_resume(tmp_path):
    """The best epochs of a resumed fit may lie before the interruption: their weights come
    back from the epoch checkpoints."""
    from keras_dyconv.callbacks import ValidationSelection
    from keras_dyconv.checkpoints import EPOCH_WEIGHTS

    feats, labels = synthetic_features(4)
    model = keras.Sequential([keras.Input((100, 16)), keras.layers.Dense(2)])
    snapshots = []
    for epoch in (1, 2):
        model.set_weights([np.full_like(w, epoch) for w in model.get_weights()])
        model.save_weights(tmp_path / EPOCH_WEIGHTS.format(epoch=epoch))
        snapshots.append(model.get_weights())
    # The logs of 3 epochs (the 3rd not backed up: the fit resumes at epoch index 2).
    (tmp_path / EPOCH_LOGS).write_text("epoch,loss,val_ua\n0,1.0,0.75\n1,0.9,0.5\n2,0.8,0.9\n")
    current = [np.full_like(w, 7) for w in model.get_weights()]
    for average, expected in ((1, 1.0), (2, 1.5)):
        model.set_weights(current)
        selection = ValidationSelection(
            feats,
            labels,
            FrontendConfig(n_mels=16),
            POLICY,
            None,
            0,
            average=average,
            checkpoint_dir=tmp_path,
        )
        selection.set_model(model)
        selection.on_epoch_begin(2)  # Keras resumes at epoch index 2
        assert selection.history == [0.75, 0.5] and selection.kept_epochs == [0, 1][:average]
        assert all((w == 7).all() for w in model.get_weights())  # training goes on from here
        selection.restore_best()
        assert all(np.allclose(w, expected) for w in model.get_weights())
    (tmp_path / EPOCH_WEIGHTS.format(epoch=1)).unlink()
    selection = ValidationSelection(
        feats, labels, FrontendConfig(n_mels=16), POLICY, None, 0, checkpoint_dir=tmp_path
    )
    selection.set_model(model)
    with pytest.raises(FileNotFoundError, match=r"epoch-001\.weights\.h5.*validation epoch 1"):
        selection.on_epoch_begin(2)


def test_validation_selection_hears_a_stream_models_speakers_in_random_order():
    """A stream model is selected on what it is scored on: each validation speaker's
    utterances heard in a seeded random order (`keras_dyconv.scoring`), labels permuted
    with them; other normalizations keep the order given."""
    from keras_dyconv.callbacks import VALIDATION_ORDER_SEED, ValidationSelection
    from keras_dyconv.normalization import stream_order

    feats, labels = synthetic_features(12)
    speakers = ["a"] * 6 + ["b"] * 6
    stream = FrontendConfig(n_mels=16, normalization="stream", mean=(0,) * 16, std=(1,) * 16)
    selection = ValidationSelection(feats, labels, stream, POLICY, None, 0, speakers=speakers)
    order = stream_order(speakers, np.random.default_rng(VALIDATION_ORDER_SEED))
    assert not np.array_equal(order, np.arange(12))
    assert selection.speakers == [speakers[k] for k in order]
    assert all(s is feats[k] for s, k in zip(selection.sources, order, strict=True))
    np.testing.assert_array_equal(selection.labels, np.asarray(labels)[order])
    dataset = dataclasses.replace(stream, normalization="dataset")
    kept = ValidationSelection(feats, labels, dataset, POLICY, None, 0, speakers=speakers)
    assert kept.speakers == speakers and all(
        s is f for s, f in zip(kept.sources, feats, strict=True)
    )


def test_read_epoch_logs_keeps_the_last_fit_of_each_epoch(tmp_path):
    log = tmp_path / "history.csv"
    log.write_text(
        "epoch,loss,val_loss\n"
        "0,1.0,NA\n1,0.9,NA\n2,0.8,NA\n3,0.7,NA\n"  # an earlier, longer fit
        "0,2.0,NA\n1,1.5,NA\n"  # a new fit, interrupted after logging epoch 1
        "1,1.4,NA\n2,1.2,NA\n"  # ... resumed at epoch 1
    )
    assert read_epoch_logs(log) == {"loss": [2.0, 1.4, 1.2]}


class Killed(BaseException):
    """Stands for a SIGKILL: nothing in the fit catches it and no cleanup runs."""


@pytest.mark.parametrize("torn", ["epoch-002.weights.h5", ".state-002.weights.h5.tmp-"])
def test_a_kill_during_a_checkpoint_write_resumes_from_the_last_complete_epoch(
    tmp_path, monkeypatch, torn
):
    """The run is killed while it writes epoch 2's weights (`ModelCheckpoint`) or its
    backup (`EpochBackup`), leaving half a file: the next run resumes after epoch 1."""
    feats, labels = synthetic_features(20)
    ckpt = tmp_path / "ckpt"
    args = (feats[:16], labels[:16], ["a", "b"], FrontendConfig(n_mels=16), TINY, POLICY)
    kwargs = dict(val_sources=feats[16:], val_labels=labels[16:], seed=0, verbose=0)
    save_weights = keras.Model.save_weights
    written = []

    def torn_write(self, filepath, *args, **kwargs):
        save_weights(self, filepath, *args, **kwargs)
        written.append(Path(filepath).name)
        if Path(filepath).name.startswith(torn):  # epoch 2's weights or backup
            data = Path(filepath).read_bytes()
            Path(filepath).write_bytes(data[: len(data) // 2])
            raise Killed

    monkeypatch.setattr(keras.Model, "save_weights", torn_write)
    with pytest.raises(Killed):
        train_model(*args, checkpoint_dir=ckpt, **kwargs)
    monkeypatch.setattr(keras.Model, "save_weights", save_weights)
    assert sorted(p.name for p in (ckpt / "backup").glob("state-*")) == ["state-001.weights.h5"]
    resumed = train_model(*args, checkpoint_dir=ckpt, **kwargs)
    # Epoch index 1 was logged before the kill, then run again: the resume began after the
    # last complete epoch, and the history has each of the 3 epochs once.
    logged = [line.split(",")[0] for line in (ckpt / EPOCH_LOGS).read_text().splitlines()[1:]]
    assert logged == ["0", "1", "1", "2"]
    assert resumed.epochs_run == 3 and len(resumed.history["val_ua"]) == 3
    assert not (ckpt / "backup").exists() or not list((ckpt / "backup").iterdir())


def test_a_torn_log_line_is_dropped_before_the_logs_are_appended_to(tmp_path):
    log = tmp_path / EPOCH_LOGS
    log.write_text("epoch,loss,val_ua\n0,1.0,0.5\n1,0.9")  # killed while appending epoch 1
    checkpoint_callbacks(tmp_path)
    assert log.read_text() == "epoch,loss,val_ua\n0,1.0,0.5\n"
    assert read_epoch_logs(log) == {"loss": [1.0], "val_ua": [0.5]}


def test_epoch_backup_resumes_a_backup_that_keras_wrote(tmp_path):
    """A run interrupted before `EpochBackup` replaced `keras.callbacks.BackupAndRestore`
    resumes from the files Keras left, which the next epoch's own state then replaces."""
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.compile(optimizer="adam", loss="mse")
    model.optimizer.build(model.trainable_variables)
    backup = tmp_path / "backup"
    backup.mkdir()
    model.set_weights([np.full_like(w, 3) for w in model.get_weights()])
    model.save_weights(backup / "latest.weights.h5")
    (backup / "training_metadata.json").write_text('{"epoch": 2, "batch": 0}')
    model.set_weights([np.zeros_like(w) for w in model.get_weights()])
    # A state write that a SIGKILL cut short (its process is gone) is swept on resume.
    (backup / ".state-003.weights.h5.tmp-999999999-x1y2.weights.h5").write_bytes(b"half")
    callback = EpochBackup(backup)
    callback.set_model(model)
    callback.on_train_begin()
    assert model._initial_epoch == 2 and all((w == 3).all() for w in model.get_weights())
    assert sorted(p.name for p in backup.iterdir()) == [
        "latest.weights.h5",
        "training_metadata.json",
    ]
    callback.on_epoch_end(2)
    assert sorted(p.name for p in backup.iterdir()) == ["state-003.weights.h5"]
    callback.on_train_end()  # a finished fit leaves no state to resume from
    assert not list(backup.iterdir())
