"""Pretrain once on the extra corpora, then fine-tune per fold (`Recipe.pretrain_extra`).

A multi-corpus run (`keras_dyconv.experiment.run_experiment` with extra corpora) by default
adds every extra corpus to every fold's training data: each fold then trains on thousands
of utterances. With `Recipe.pretrain_extra` it instead trains ONE model per seed on the
extra corpora alone (`pretrain`) and starts every fold from its weights, fine-tuning on
the target corpus's training speakers only (validation and model selection on the
target's validation speakers, as without pretraining). The extra corpora are not part of
the fine-tune: the cost of a fold is that of a single-corpus fold.

Design:

* The model is the run's own (`Recipe.model`, the common label space of every corpus), so
  the whole model carries over, output layer included: the masked loss
  (`keras_dyconv.losses.MaskedCrossEntropy`) never taught a class the extra corpora lack
  (e.g. EmoDB's boredom) as a negative, so its output unit starts from its initial weights
  and the target's fine-tune learns it. The fine-tune keeps the attention temperature at
  the end value of `Recipe.temperature` (`keras_dyconv.training.train_model`'s
  `init_weights`); the frontend statistics of each fold are its target training data's.
* Validation of the pretraining: for each extra corpus, the speakers its first
  leave-one-speaker-out fold holds out for validation (the run's ``val_speakers`` rule, as
  protocol "all" chooses them); extra corpora weigh the same (no target among them).
* The pretrained model is saved as ``<out>/pretrained/seed<seed>-<key>/`` (weights and
  ``record.json``). `pretraining_key` hashes everything that shapes it (recipe, frontend,
  window, labels, seed, validation rule, the extra utterances): a run with the same key
  reuses it (on resume and across folds, or processes of `only_folds`), a different
  recipe or corpus never does. Its training checkpoints (with a checkpoint folder) resume
  like a fold's. Processes started at once on the same run folder (``dyser-train
  --only-folds`` with different folds) pretrain it once: the first holds a lock on the
  folder's ``.lock`` file while it trains, the others wait for it and read the model back
  (`made_once`; a killed holder lets go of the lock, and the next one trains it).
* `assert_not_pretrained`: no fold's test or validation speaker, nor test file, was in the
  pretraining (checked per fold, like `keras_dyconv.protocols.assert_no_leak`).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from edge_runtime.files import atomic_output
from keras_dyconv.checkpoints import exclusive_lock
from keras_dyconv.protocols import Fold, LeakageError, ValSpeakers, leave_one_speaker_out
from keras_dyconv.results import write_json
from keras_dyconv.training import train_model

if TYPE_CHECKING:
    from keras_dyconv.corpora import Utterance
    from keras_dyconv.experiment_run import ExperimentRun

#: Sub-folder of a run folder holding its pretrained models.
PRETRAINED_DIR = "pretrained"
#: The files of a pretrained model's folder: its weights, its record (written last: a
#: folder with both holds a complete model) and the lock held while it is trained.
WEIGHTS_FILE, RECORD_FILE, LOCK_FILE = "model.weights.h5", "record.json", ".lock"
T = TypeVar("T")

#: What `results.json` says the fine-tune of each fold is.
FINE_TUNE = (
    "every fold starts from the pretrained model of its seed (all weights, output layer "
    "included) and fine-tunes on the target corpus's training speakers only, selecting on "
    "its validation speakers; attention temperature at the recipe's end value"
)


@dataclass(frozen=True)
class Pretrained:
    """A model pretrained on the extra corpora: its weights file and its record.

    `record` (JSON-ready): key, seed, corpora, the training and validation speakers, the
    numbers of utterances, best epoch, epochs run, wall time of the training ("seconds")
    and whether this run read it back ("reused"); `paths` are its utterances' audio files.
    """

    weights: Path
    record: dict[str, Any]
    paths: frozenset[str]

    @property
    def speakers(self) -> set[str]:
        """Every speaker the pretraining saw (training and validation)."""
        return {*self.record["train_speakers"], *self.record["val_speakers"]}


def pretraining_key(
    run: ExperimentRun, extra: Sequence[int], seed: int, val_speakers: ValSpeakers
) -> str:
    """A hash (16 hex digits) of everything that shapes the pretrained model of `seed`:
    the recipe, frontend, window, labels, validation rule and the extra utterances
    (path, label, speaker, corpus), in order."""
    described = {
        "recipe": run.recipe.to_dict(),
        "frontend": run.config.to_dict(),
        "window": run.policy.to_dict(),
        "labels": list(run.labels),
        "seed": seed,
        "val_speakers": val_speakers,
        "utterances": [
            [
                str(run.utts[i].path),
                run.labels[run.y[i]],
                run.utts[i].speaker,
                run.utts[i].extra["corpus"],
            ]
            for i in extra
        ],
    }
    text = json.dumps(described, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def pretraining_split(
    utts: Sequence[Utterance], extra: Sequence[int], val_speakers: ValSpeakers
) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) indices into `utts` of the pretraining on the utterances at `extra`:
    per corpus, validation = the speakers its first leave-one-speaker-out fold holds out
    under `val_speakers` (none for a one-speaker corpus), training = the rest."""
    extra = np.asarray(extra, dtype=np.int64)
    corpus_of = np.array([utts[i].extra["corpus"] for i in extra])
    val: list[int] = []
    for corpus in dict.fromkeys(corpus_of.tolist()):
        mine = extra[corpus_of == corpus]
        if len({utts[i].speaker for i in mine}) < 2:
            continue
        first = next(leave_one_speaker_out([utts[i] for i in mine], val_speakers=val_speakers))
        val.extend(mine[first.val].tolist())
    val_arr = np.sort(np.asarray(val, dtype=np.int64))
    return np.setdiff1d(extra, val_arr), val_arr


def pretrain(
    run: ExperimentRun, extra: Sequence[int], seed: int, val_speakers: ValSpeakers
) -> Pretrained:
    """The model of `seed` pretrained on the extra utterances at `extra` (indices into
    `run.utts`): read back from the run folder when one with the same `pretraining_key`
    is there, trained (and saved) otherwise."""
    key = pretraining_key(run, extra, seed, val_speakers)
    folder = run.out / PRETRAINED_DIR / f"seed{seed}-{key}"
    folder.mkdir(parents=True, exist_ok=True)
    return made_once(
        folder / LOCK_FILE,
        lambda: _read_back(run, folder, seed),
        lambda: _pretrain(run, extra, seed, val_speakers, key, folder),
        lambda: run.log(
            f"pretrained model of seed {seed}: another process is training it, waiting for "
            f"it ({folder})"
        ),
    )


def made_once(
    lock: Path,
    read: Callable[[], T | None],
    make: Callable[[], T],
    on_wait: Callable[[], None] | None = None,
) -> T:
    """What `read` returns, or, when it returns None, what `make` makes: under an exclusive
    lock on the file `lock` (`keras_dyconv.checkpoints.exclusive_lock`), so that of the
    processes (or threads) that ask at once, one makes it and the others wait for it and
    read it back. A holder that dies lets go of the lock: the next one reads what it left
    (None if it was killed before it finished) and makes it if needed. `on_wait` is called
    once when another holder has the lock."""
    with exclusive_lock(lock, wait=True, on_wait=on_wait):
        found = read()
        return make() if found is None else found


def _read_back(run: ExperimentRun, folder: Path, seed: int) -> Pretrained | None:
    """The pretrained model saved in `folder`, None when there is none (yet)."""
    weights, record_path = folder / WEIGHTS_FILE, folder / RECORD_FILE
    if not (weights.exists() and record_path.exists()):
        return None
    saved = json.loads(record_path.read_text())
    paths = frozenset(saved.pop("paths"))
    run.log(f"pretrained model of seed {seed} read back from {folder}")
    return Pretrained(weights, {**saved, "reused": True}, paths)


def _pretrain(
    run: ExperimentRun,
    extra: Sequence[int],
    seed: int,
    val_speakers: ValSpeakers,
    key: str,
    folder: Path,
) -> Pretrained:
    """Train the model of `seed` on the extra utterances at `extra` and save it in
    `folder` (weights first, then the record that makes it complete)."""
    weights, record_path = folder / WEIGHTS_FILE, folder / RECORD_FILE
    train, val = pretraining_split(run.utts, extra, val_speakers)
    run.log(
        f"pretraining seed {seed} on the extra corpora: train {len(train)}, val {len(val)} "
        f"-> {folder}"
    )
    t0 = time.time()
    feats = [run.feats[i] for i in train]
    val_feats = [run.feats[i] for i in val]
    result = train_model(
        feats,
        run.y[train],
        run.labels,
        run.config,
        run.recipe,
        run.policy,
        val_sources=val_feats,
        val_labels=run.y[val],
        seed=seed,
        checkpoint_dir=None
        if run.checkpoint_dir is None
        else run.checkpoint_dir / PRETRAINED_DIR / f"seed{seed}-{key}",
        verbose=run.verbose,
        train_speakers=[run.utts[i].speaker for i in train],
        val_speakers=[run.utts[i].speaker for i in val],
        train_corpora=run.corpora(train),
        val_corpora=run.corpora(val),
        target_corpus=None,  # the extra corpora weigh the same
    )
    seconds = round(time.time() - t0, 1)
    record = {
        "key": key,
        "seed": seed,
        "corpora": sorted(set(run.corpora(extra))),
        "n_train": len(train),
        "n_val": len(val),
        "train_speakers": sorted({run.utts[i].speaker for i in train}),
        "val_speakers": sorted({run.utts[i].speaker for i in val}),
        "best_epoch": result.best_epoch,
        "epochs_run": result.epochs_run,
        **run.neutral_record(result),
        "seconds": seconds,
        "weights": str(weights.relative_to(run.out)),
    }
    paths = frozenset(os.path.normpath(str(run.utts[i].path)) for i in extra)
    with atomic_output(weights) as tmp:  # never half-written
        result.model.save_weights(tmp, overwrite=True)
    write_json(record_path, {**record, "paths": sorted(paths)})
    run.log(
        f"  pretrained in {seconds:.0f} s (best epoch {result.best_epoch}, {result.epochs_run} run)"
    )
    return Pretrained(weights, {**record, "reused": False}, paths)


def assert_not_pretrained(fold: Fold, utts: Sequence[Utterance], pretrained: Pretrained) -> None:
    """Raise `LeakageError` when a test or validation speaker of `fold`, or one of its
    test files, was in `pretrained`'s training or validation data."""
    speakers = {utts[i].speaker for i in (*fold.test, *fold.val)}
    shared = speakers & pretrained.speakers
    if shared:
        raise LeakageError(
            f"{fold.name}: speakers {sorted(shared)} of its test/validation part were in the "
            f"pretraining ({pretrained.weights})"
        )
    files = {os.path.normpath(str(utts[i].path)) for i in fold.test} & pretrained.paths
    if files:
        raise LeakageError(
            f"{fold.name}: test files {sorted(files)[:3]} were in the pretraining "
            f"({pretrained.weights})"
        )


def pretrain_seeds(
    run: ExperimentRun,
    extra: Sequence[int],
    seeds: Sequence[int],
    val_speakers: ValSpeakers,
    log: Callable[[str], None],
) -> dict[int, Pretrained]:
    """`pretrain` for each seed (empty, with a message, when there is nothing to pretrain
    on: no extra corpora)."""
    if not len(extra):
        log(
            "pretrain_extra: no extra training corpora (one corpus, protocol loco, or every "
            "corpus pooled with target 'all'): "
            "nothing to pretrain on, every fold trains from scratch"
        )
        return {}
    return {seed: pretrain(run, extra, seed, val_speakers) for seed in seeds}


def pretraining_record(pretrained: dict[int, Pretrained]) -> dict[str, Any]:
    """What results.json records of the pretraining: how folds fine-tune, and per seed the
    pretrained model's record (speakers, wall time, reused or not)."""
    return {
        "fine_tune": FINE_TUNE,
        "seeds": {str(seed): p.record for seed, p in pretrained.items()},
    }
