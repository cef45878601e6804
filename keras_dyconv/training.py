"""Fitting a DyCNN-BiLSTM emotion model on labelled utterances: `train_model`.

Early stopping and checkpoint choice use the validation utterances only (never the test
fold), scored exactly as the test is: mean class probabilities over each utterance's
windows, unweighted accuracy. The other concerns of a fit have their own modules:

* `keras_dyconv.recipes`: `Recipe`, the levers of a fit, and the named `RECIPES`.
* `keras_dyconv.normalization`: training-set and per-speaker normalisation statistics.
* `keras_dyconv.feeding`: the training windows (`WindowSequence`) and the evaluation
  windows and predictions (`predict_utterances`).
* `keras_dyconv.callbacks`: model selection on the validation speakers.
* `keras_dyconv.checkpoints`: the checkpoint folder a fit resumes from.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np

from edge_runtime.config import FrontendConfig
from edge_runtime.normalization import with_dataset_stats
from edge_runtime.windows import WindowPolicy
from keras_dyconv.callbacks import EpochSnapshots, TemperatureAnnealing, ValidationSelection
from keras_dyconv.checkpoints import (
    EPOCH_LOGS,
    checkpoint_callbacks,
    exclusive_folder,
    read_epoch_logs,
)
from keras_dyconv.distribute import DivisibleBatches, data_parallel_scope
from keras_dyconv.feeding import WindowSequence, class_weights, corpus_weights
from keras_dyconv.losses import MaskedCrossEntropy, masked_accuracy
from keras_dyconv.models import build_dycnn_bilstm, time_reduction
from keras_dyconv.multicorpus import Corpora
from keras_dyconv.normalization import (
    FeatureSource,
    Statistics,
    load_features,
    neutral_class,
    neutral_reference,
    stream_training_statistics,
)
from keras_dyconv.recipes import Recipe, model_kwargs


@dataclass
class TrainResult:
    """A fitted model and what happened during training.

    `history`, `best_epoch` and `averaged_epochs` describe the run scored on the validation
    speakers; `refit_epochs` > 0 says the returned model was then refit for that many epochs
    on the training and validation speakers together (`Recipe.refit`).
    `neutral_fallback_speakers` (`Recipe.stream_training` "neutral"): the speakers the
    returned model trained on who have no neutral utterance, normalised (and counted in the
    stored stream prior) by the statistics of all their audio instead.
    """

    model: keras.Model
    config: FrontendConfig
    history: dict[str, list[float]]
    best_epoch: int | None
    epochs_run: int
    averaged_epochs: list[int] = field(default_factory=list)
    refit_epochs: int = 0
    neutral_fallback_speakers: list[str] = field(default_factory=list)


def _optimizer(recipe: Recipe, total_steps: int) -> keras.optimizers.Optimizer:
    lr: Any = recipe.learning_rate
    if recipe.cosine_decay:
        lr = keras.optimizers.schedules.CosineDecay(recipe.learning_rate, max(total_steps, 1))
    if recipe.optimizer == "adam":
        return keras.optimizers.Adam(lr)
    if recipe.optimizer == "adamw":
        return keras.optimizers.AdamW(lr, weight_decay=recipe.weight_decay)
    if recipe.optimizer == "rmsprop":
        return keras.optimizers.RMSprop(lr)
    raise ValueError(f"unknown optimizer {recipe.optimizer!r}: adam, adamw or rmsprop")


def train_model(
    train_sources: Sequence[FeatureSource],
    train_labels: Sequence[int],
    labels: Sequence[str],
    config: FrontendConfig,
    recipe: Recipe,
    policy: WindowPolicy | None = None,
    val_sources: Sequence[FeatureSource] = (),
    val_labels: Sequence[int] = (),
    seed: int = 0,
    checkpoint_dir: str | os.PathLike | None = None,
    verbose: int | str = "auto",
    train_speakers: Sequence[str] | None = None,
    val_speakers: Sequence[str] | None = None,
    train_corpora: Sequence[str] | None = None,
    val_corpora: Sequence[str] | None = None,
    target_corpus: str | None = None,
    init_weights: str | os.PathLike | None = None,
) -> TrainResult:
    """Fit a DyCNN-BiLSTM on one training set.

    Args:
        train_sources: raw (unnormalised) features per training utterance.
        train_labels: class index (into `labels`) per training utterance.
        labels: class names.
        config: the frontend config the features were computed with (normalization "none");
            the returned config adds the training set's normalisation statistics.
        recipe: the training recipe.
        policy: window policy (default `WindowPolicy()`: 3 s windows, 1 s hop).
        val_sources: raw features of the validation utterances (early stopping and
            checkpoint selection); without them the last epoch is kept.
        val_labels: class index per validation utterance.
        seed: seeds Keras, window sampling and augmentation.
        checkpoint_dir: if given, a checkpoint is written every epoch and an interrupted run
            resumes from it (`keras_dyconv.checkpoints`) as if it had not stopped:
            the history and the choice of the best validation epoch cover every epoch. The
            teachers of `recipe.distill` and the refit of `recipe.refit` are not checkpointed
            (an interrupted run retrains them).
        verbose: Keras progress-bar verbosity.
        train_speakers: speaker per training utterance (needed for normalization "stream":
            each training speaker is normalised by their own statistics, those of their
            neutral utterances (`labels` must then have a class "neutral"), or simulated
            running statistics of their stream: `Recipe.stream_training`).
        val_speakers: speaker per validation utterance ("stream": each validation
            speaker is one stream, normalised online as the test will be).
        train_corpora: corpus per training utterance, for training on several corpora
            (`labels` then the common names of `keras_dyconv.labels`): the loss of an
            utterance covers only the classes its corpus has in the training data
            (`keras_dyconv.losses.MaskedCrossEntropy`), and corpora and their classes are
            balanced (`keras_dyconv.feeding.corpus_weights`, `Recipe.extra_corpora_weight`).
            None: one corpus, plain cross-entropy.
        val_corpora: corpus per validation utterance (used when `recipe.refit` trains on
            them); default: `target_corpus`.
        target_corpus: the corpus the protocol tests on (its weight 1, the others'
            `Recipe.extra_corpora_weight`); None: every corpus weighs the same.
        init_weights: a `.weights.h5` file of the same model (recipe, features, classes) to
            start from instead of a fresh initialisation: a fine-tune (`Recipe.pretrain_extra`,
            `keras_dyconv.pretraining`); the attention temperature then stays at the end
            value of `recipe.temperature` (the pretrained kernels' attention is already
            sharp). The refit and the teachers start from it too.
    """
    policy = policy or WindowPolicy()
    neutral = None  # the class whose utterances give a speaker's statistics, if not all
    if recipe.neutral_referenced:
        neutral = neutral_class(labels)  # refused before any teacher trains
    teachers = _teachers(
        recipe,
        config,
        policy,
        train_sources,
        train_labels,
        labels,
        val_sources=val_sources,
        val_labels=val_labels,
        seed=seed,
        verbose=verbose,
        train_speakers=train_speakers,
        val_speakers=val_speakers,
        train_corpora=train_corpora,
        val_corpora=val_corpora,
        target_corpus=target_corpus,
        init_weights=init_weights,
    )
    corpora = Corpora.of_fit(target_corpus, train_corpora, len(train_sources))
    result = _fit(
        recipe,
        config,
        policy,
        train_sources,
        train_labels,
        len(labels),
        train_speakers=train_speakers,
        val_sources=val_sources,
        val_labels=val_labels,
        val_speakers=val_speakers,
        seed=seed,
        checkpoint_dir=checkpoint_dir,
        verbose=verbose,
        teachers=teachers,
        corpora=corpora,
        init_weights=init_weights,
        neutral=neutral,
    )
    if not (recipe.refit and len(val_sources) and result.best_epoch is not None):
        return result
    return _refit(
        result,
        recipe,
        config,
        policy,
        sources=[*train_sources, *val_sources],
        labels=[*train_labels, *val_labels],
        speakers=None if train_speakers is None else [*train_speakers, *(val_speakers or ())],
        corpora=None if corpora is None else corpora.plus(val_corpora, len(val_sources)),
        num_classes=len(labels),
        seed=seed,
        verbose=verbose,
        teachers=teachers,
        init_weights=init_weights,
        neutral=neutral,
    )


def _refit(
    result: TrainResult,
    recipe: Recipe,
    config: FrontendConfig,
    policy: WindowPolicy,
    *,
    sources: Sequence[FeatureSource],
    labels: Sequence[int],
    speakers: Sequence[str] | None,
    corpora: Corpora | None,
    num_classes: int,
    seed: int,
    verbose: int | str,
    teachers: Sequence[keras.Model],
    init_weights: str | os.PathLike | None,
    neutral: int | None,
) -> TrainResult:
    """`Recipe.refit`: `result` (the fit scored on the validation speakers) with its model
    refit on training + validation speakers (`sources`, `labels`, `speakers`, `corpora`:
    both, in that order) for the epochs the validation chose. The returned model has seen
    every training speaker, and its epochs were still chosen without the test fold."""
    refit = _fit(
        dataclasses.replace(recipe, average_checkpoints=1),
        config,
        policy,
        sources,
        labels,
        num_classes,
        train_speakers=speakers,
        seed=seed,
        verbose=verbose,
        teachers=teachers,
        epochs=max(result.averaged_epochs) + 1,
        snapshot_epochs=result.averaged_epochs,  # the best epoch, then any averaged with it
        corpora=corpora,
        init_weights=init_weights,
        neutral=neutral,
    )
    return dataclasses.replace(
        result,
        model=refit.model,
        config=refit.config,
        refit_epochs=refit.epochs_run,
        neutral_fallback_speakers=refit.neutral_fallback_speakers,
    )


def _teachers(
    recipe: Recipe,
    config: FrontendConfig,
    policy: WindowPolicy,
    train_sources: Sequence[FeatureSource],
    train_labels: Sequence[int],
    labels: Sequence[str],
    *,
    seed: int,
    **kwargs: Any,
) -> list[keras.Model]:
    """The `recipe.distill` teacher models of a distilled fit: the same recipe undistilled,
    each with its own seed (`kwargs`: the validation data, verbosity and speakers)."""
    return [
        train_model(
            train_sources,
            train_labels,
            labels,
            config,
            dataclasses.replace(recipe, distill=0),
            policy,
            seed=1000 * (seed + 1) + j,
            **kwargs,
        ).model
        for j in range(recipe.distill)
    ]


def _fit(
    recipe: Recipe,
    config: FrontendConfig,
    policy: WindowPolicy,
    train_sources: Sequence[FeatureSource],
    train_labels: Sequence[int],
    num_classes: int,
    *,
    train_speakers: Sequence[str] | None,
    val_sources: Sequence[FeatureSource] = (),
    val_labels: Sequence[int] = (),
    val_speakers: Sequence[str] | None = None,
    seed: int,
    checkpoint_dir: str | os.PathLike | None = None,
    verbose: int | str,
    teachers: Sequence[keras.Model],
    epochs: int | None = None,
    snapshot_epochs: Sequence[int] = (),
    corpora: Corpora | None = None,
    init_weights: str | os.PathLike | None = None,
    neutral: int | None = None,
) -> TrainResult:
    """One `model.fit` of `train_model` (see there); `epochs` overrides the recipe's, the
    returned model averages the weights of `snapshot_epochs` (0-based) if given, with
    `corpora` the loss is masked per corpus and the corpora and classes balanced, with
    `init_weights` the fit starts from those weights, and with `neutral` (a class index)
    each speaker's statistics and the stream prior come from their utterances of that
    class (`keras_dyconv.normalization.neutral_reference`)."""
    keras.utils.set_random_seed(seed)
    labels_arr = np.asarray(train_labels)
    stream = recipe.normalization == "stream" and train_speakers is not None
    counted, fallback = None, []
    if neutral is not None and stream:
        counted, fallback = neutral_reference(labels_arr == neutral, train_speakers)  # type: ignore[arg-type]
    by_corpus = None
    if corpora is not None and recipe.corpus_statistics:
        by_corpus = corpora.statistics(train_sources, config)
        # The model normalises as its target corpus's training data was.
        mean, std = by_corpus[corpora.target]  # type: ignore[index]
        config = dataclasses.replace(config, normalization="dataset", mean=mean, std=std)
    else:
        # "stream": the within-speaker statistics of the training speakers are the prior
        # (for "neutral", of the utterances that give their statistics).
        kept = range(len(train_sources)) if counted is None else np.flatnonzero(counted)
        config = with_dataset_stats(
            config,
            (load_features(train_sources[i]) for i in kept),
            recipe.normalization,
            speakers=[train_speakers[i] for i in kept] if stream else None,  # type: ignore[index]
        )
    if recipe.normalization == "stream" and (
        train_speakers is None or (len(val_sources) and val_speakers is None)
    ):
        raise ValueError('normalization "stream" needs train_speakers and val_speakers')
    statistics: Statistics | None = None  # None: `config` normalises
    if by_corpus is not None:
        statistics = [[by_corpus[c]] for c in corpora.names]  # type: ignore[union-attr]
    elif stream:
        statistics = stream_training_statistics(
            recipe.stream_training, config, train_sources, train_speakers, seed, counted
        )
    data = WindowSequence(
        train_sources,
        labels_arr,
        num_classes,
        config,
        policy.frames,
        recipe.batch_size,
        seed=seed,
        spec_augment=recipe.spec_augment,
        mixup_alpha=recipe.mixup_alpha,
        class_weights=class_weights(labels_arr, num_classes) if recipe.class_weighting else None,
        augmentation=recipe.augmentation,
        statistics=statistics,
        teachers=teachers,
        sample_weights=None
        if corpora is None
        else corpus_weights(corpora.names, labels_arr, corpora.target, recipe.extra_corpora_weight),
        masks=None if corpora is None else corpora.masks(labels_arr, num_classes),
    )
    if epochs is None:
        epochs = recipe.epochs
        if recipe.iterations:
            epochs = math.ceil(recipe.iterations / len(data))
    with data_parallel_scope(recipe.data_parallel, recipe.batch_size) as shards:
        result = _fit_model(
            recipe,
            config,
            policy,
            data
            if shards == 1
            else DivisibleBatches(data, shards, len(train_sources), recipe.batch_size),
            num_classes,
            epochs,
            val_sources=val_sources,
            val_labels=val_labels,
            val_speakers=val_speakers,
            checkpoint_dir=checkpoint_dir,
            verbose=verbose,
            snapshot_epochs=snapshot_epochs,
            masked=corpora is not None,
            init_weights=init_weights,
        )
    return dataclasses.replace(result, neutral_fallback_speakers=fallback)


def _fit_model(
    recipe: Recipe,
    config: FrontendConfig,
    policy: WindowPolicy,
    data: keras.utils.PyDataset,
    num_classes: int,
    epochs: int,
    *,
    val_sources: Sequence[FeatureSource],
    val_labels: Sequence[int],
    val_speakers: Sequence[str] | None,
    checkpoint_dir: str | os.PathLike | None,
    verbose: int | str,
    snapshot_epochs: Sequence[int],
    masked: bool,
    init_weights: str | os.PathLike | None = None,
) -> TrainResult:
    """Build, compile and fit the model of `_fit` on the training batches `data` (inside
    the data-parallel scope when `Recipe.data_parallel`)."""
    model = _compiled_model(
        recipe, config, policy, num_classes, total_steps=epochs * len(data), masked=masked
    )
    start, end, anneal_epochs = recipe.temperature
    if init_weights is not None:
        with warnings.catch_warnings():  # the pretraining's optimizer state: not wanted
            warnings.filterwarnings("ignore", "Skipping variable loading for optimizer")
            model.load_weights(init_weights)
        start = end  # a fine-tune: the pretrained attention stays sharp
    callbacks: list[keras.callbacks.Callback] = [TemperatureAnnealing(start, end, anneal_epochs)]
    selection = None
    if len(val_sources):
        selection = ValidationSelection(
            val_sources,
            val_labels,
            config,
            policy,
            recipe.patience,
            recipe.min_epochs,
            speakers=val_speakers,
            average=recipe.average_checkpoints,
            checkpoint_dir=checkpoint_dir,
        )
        callbacks.append(selection)
    snapshots = EpochSnapshots(snapshot_epochs) if snapshot_epochs else None
    callbacks += [snapshots] if snapshots is not None else []
    folder = None if checkpoint_dir is None else Path(checkpoint_dir)
    with _checkpoint_folder(folder, callbacks):
        history = model.fit(data, epochs=epochs, callbacks=callbacks, verbose=verbose)
        if folder is None:
            record = {k: [float(v) for v in vals] for k, vals in history.history.items()}
        else:  # History holds only the epochs since a resume; the logs hold them all
            record = read_epoch_logs(folder / EPOCH_LOGS)
        best_epoch, averaged = None, []
        if selection is not None:
            selection.restore_best()  # may read epoch checkpoints
            best_epoch, averaged = selection.best_epoch, selection.kept_epochs
    if snapshots is not None:
        snapshots.restore_mean()
    return TrainResult(model, config, record, best_epoch, len(record.get("loss", [])), averaged)


def _compiled_model(
    recipe: Recipe,
    config: FrontendConfig,
    policy: WindowPolicy,
    num_classes: int,
    total_steps: int,
    masked: bool = False,
) -> keras.Model:
    """The recipe's model for `config`'s features, compiled with its optimiser and loss
    (`masked`: `MaskedCrossEntropy`, targets carrying each utterance's class mask)."""
    model = build_dycnn_bilstm(**model_kwargs(recipe, config, num_classes))
    if policy.frames < time_reduction(model):
        raise ValueError(
            f"the window ({policy.frames} frames) is shorter than the model's time pooling "
            f"({time_reduction(model)}x): use a longer window or pool time less"
        )
    if masked:
        loss: keras.losses.Loss = MaskedCrossEntropy(label_smoothing=recipe.label_smoothing)
        # The same history key as the unmasked fit's.
        accuracy: Any = keras.metrics.MeanMetricWrapper(
            masked_accuracy, name="categorical_accuracy"
        )
    else:
        loss = keras.losses.CategoricalCrossentropy(label_smoothing=recipe.label_smoothing)
        accuracy = "categorical_accuracy"
    model.compile(optimizer=_optimizer(recipe, total_steps), loss=loss, metrics=[accuracy])
    return model


@contextlib.contextmanager
def _checkpoint_folder(folder: Path | None, callbacks: list[keras.callbacks.Callback]):
    """Lock the checkpoint folder (if any) for the fit and append the callbacks that write
    it (`keras_dyconv.checkpoints`) to `callbacks`, after the validation's."""
    if folder is None:
        yield
        return
    folder.mkdir(parents=True, exist_ok=True)
    with exclusive_folder(folder):
        callbacks += checkpoint_callbacks(folder)
        yield
