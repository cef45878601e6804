"""The checkpoint folder of a fit: epoch weights, epoch logs, the resume state, the lock.

A checkpointed fit (`keras_dyconv.training.train_model` with `checkpoint_dir`) writes, in
its folder:

    epoch-001.weights.h5 ...    the weights after each epoch (`EPOCH_WEIGHTS`)
    history.csv                 the logs of every epoch, validation UA included (`EPOCH_LOGS`)
    backup/state-003.weights.h5 the weights and optimizer state after the last complete epoch
                                (`EpochBackup`; the number is the epochs done)
    .lock                       held while a fit runs (`exclusive_folder`)

Every write that a resume depends on survives a kill at any moment: the state is written
to a temporary file, flushed to disk and renamed into place (`edge_runtime.files.
atomic_output`), so the folder always holds the last complete epoch; a torn last line of
the logs is dropped before the logs are appended to.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import keras

from edge_runtime.files import atomic_output, sweep_stale_temporaries

#: Files a checkpointed fit writes in its checkpoint folder: the weights after each epoch
#: (1-based, Keras's `ModelCheckpoint` naming) and the logs of every epoch, validation UA
#: included (`keras.callbacks.CSVLogger`): what a resumed fit needs to carry on as if it had
#: never stopped.
EPOCH_WEIGHTS = "epoch-{epoch:03d}.weights.h5"
EPOCH_LOGS = "history.csv"


@contextlib.contextmanager
def exclusive_lock(
    path: Path, *, wait: bool, on_wait: Callable[[], None] | None = None
) -> Iterator[None]:
    """Hold an exclusive lock (`fcntl.flock`) on the file `path` (created if missing) for
    the duration of the block.

    The operating system drops the lock when its holder's process dies, so a killed
    process never leaves a stale lock: the next one gets it. A lock is per open file, so
    two threads of one process exclude each other too. Windows has no `fcntl`: no lock
    there.

    Args:
        path: the lock file (its folder must exist); it stays after the block.
        wait: whether to wait for another holder to let go (True), or to raise.
        on_wait: called once before waiting, when the lock is held elsewhere (e.g. to say
            what the process waits for).

    Raises:
        BlockingIOError: `wait` is False and another holder has the lock.
    """
    try:
        import fcntl
    except ImportError:  # Windows
        yield
        return
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not wait:
                raise
            if on_wait is not None:
                on_wait()
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield


@contextlib.contextmanager
def exclusive_folder(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock on a checkpoint folder for the duration of a fit
    (`exclusive_lock` on its ``.lock`` file, without waiting).

    Two fits writing the same epoch checkpoints and logs corrupt each other's resume (HDF5
    lock errors, logs interleaved). A killed run never leaves a stale lock.

    Raises:
        RuntimeError: another process holds the lock.
    """
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(exclusive_lock(folder / ".lock", wait=False))
        except BlockingIOError:
            raise RuntimeError(
                f"checkpoint folder {folder} is in use by another training; wait for it to "
                "finish or stop it (two runs resuming from the same checkpoints corrupt them)"
            ) from None
        yield


def read_epoch_logs(path: str | os.PathLike) -> dict[str, list[float]]:
    """Per-epoch logs written by `keras.callbacks.CSVLogger(append=True)` over one fit and
    its resumes, as `History.history` holds them.

    An epoch logged twice (run again on resume, or by a later fit in the same folder) counts
    with its last values; epochs past the last one logged are left over from an earlier,
    longer fit and dropped. Columns CSVLogger fills with "NA" (validation logs the fit did
    not have) are dropped.
    """
    rows: dict[int, dict[str, str]] = {}
    last = -1
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            last = int(row.pop("epoch"))
            rows[last] = row
    epochs = [rows[e] for e in sorted(rows) if e <= last]
    keys = [k for k in (epochs[0] if epochs else ()) if epochs[-1][k] != "NA"]
    return {k: [float(row[k]) for row in epochs] for k in keys}


#: The resume state in the backup folder: "state-<epochs done>.weights.h5".
STATE_FILE = "state-{epochs:03d}.weights.h5"
STATE_PATTERN = re.compile(r"^state-(\d{3,})\.weights\.h5$")


class EpochBackup(keras.callbacks.Callback):
    """Back up the model and optimizer after every epoch; resume from the last backup.

    What `keras.callbacks.BackupAndRestore` does, written so that a kill at any moment
    leaves a run that resumes from the last complete epoch: the state is written to a
    temporary file, flushed to disk and renamed over (`edge_runtime.files.atomic_output`
    with `fsync`), and the number of epochs done is part of the file's name, so weights
    and epoch count are one write.
    Keras's callback overwrites `latest.weights.h5` in place and records the epoch in a
    second file: a kill during that write leaves a truncated file that every later resume
    fails to open.

    It marks an epoch done, so it must come after the callbacks that write that epoch's
    logs and weights. A run that finishes deletes its backup (a new fit in the same folder
    starts over, as with Keras's callback).

    Args:
        backup_dir: folder of the backup (created on the first epoch).
    """

    def __init__(self, backup_dir: str | os.PathLike):
        super().__init__()
        self.backup_dir = Path(backup_dir)

    def states(self) -> list[tuple[int, Path]]:
        """(epochs done, path) of the complete states in the folder, oldest first."""
        if not self.backup_dir.is_dir():
            return []
        found = [(STATE_PATTERN.match(p.name), p) for p in self.backup_dir.iterdir()]
        return sorted((int(m.group(1)), p) for m, p in found if m)

    def on_train_begin(self, logs: dict | None = None) -> None:
        sweep_stale_temporaries(self.backup_dir)  # writes a kill cut short
        states = self.states() or self._keras_backup()
        if not states:
            return
        epochs, path = states[-1]
        optimizer = self.model.optimizer
        if optimizer is not None and not optimizer.built:  # its state is in the file too
            optimizer.build(self.model.trainable_variables)
        try:
            self.model.load_weights(path)
        except (OSError, ValueError) as err:
            raise RuntimeError(
                f"cannot resume from {path}: {err}; delete {self.backup_dir} to restart "
                "this fit from its first epoch"
            ) from err
        self.model._initial_epoch = epochs  # what Keras's own BackupAndRestore sets

    def _keras_backup(self) -> list[tuple[int, Path]]:
        """The state `keras.callbacks.BackupAndRestore` left (runs started before this
        callback replaced it), as `states` lists them."""
        weights = self.backup_dir / "latest.weights.h5"
        metadata = self.backup_dir / "training_metadata.json"
        if not (weights.exists() and metadata.exists()):
            return []
        return [(int(json.loads(metadata.read_text())["epoch"]), weights)]

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.backup_dir.mkdir(parents=True, exist_ok=True)
        state = self.backup_dir / STATE_FILE.format(epochs=epoch + 1)
        older = self.states()
        with atomic_output(state, fsync=True) as tmp:  # on disk before it counts as done
            self.model.save_weights(tmp, overwrite=True)
        for _, path in older:
            if path != state:
                path.unlink()
        self._remove_keras_backup()

    def on_train_end(self, logs: dict | None = None) -> None:
        for _, path in self.states():
            path.unlink()
        self._remove_keras_backup()

    def _remove_keras_backup(self) -> None:
        for name in ("latest.weights.h5", "training_metadata.json"):
            (self.backup_dir / name).unlink(missing_ok=True)


def drop_torn_line(path: str | os.PathLike) -> None:
    """Cut a file back to its last complete line (a kill during an append leaves a torn
    last line, which the next append would glue to its first row)."""
    path = Path(path)
    if not path.exists():
        return
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    if end < len(data):
        with open(path, "rb+") as handle:
            handle.truncate(end)


def checkpoint_callbacks(folder: Path) -> list[keras.callbacks.Callback]:
    """The callbacks that write a checkpoint folder, in the order they must run at the end
    of an epoch: the logs (a validation callback earlier in the list adds "val_ua" to
    them), the epoch's weights, then the backup that marks the epoch done."""
    drop_torn_line(folder / EPOCH_LOGS)
    return [
        keras.callbacks.CSVLogger(str(folder / EPOCH_LOGS), append=True),
        keras.callbacks.ModelCheckpoint(str(folder / EPOCH_WEIGHTS), save_weights_only=True),
        EpochBackup(folder / "backup"),
    ]
