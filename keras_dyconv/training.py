"""Training and evaluation of DyCNN-BiLSTM emotion models on labelled utterances.

The pieces, in the order `dyser-train` uses them:

* `Recipe`: optimiser, schedule, epochs, augmentation and model selection, by name
  (`RECIPES`: "default", "paper", "fast").
* `WindowSequence`: a `keras.utils.PyDataset` that feeds random fixed-length windows of
  each utterance's features, normalised with the training data's statistics. Features can
  be in-memory arrays or `.npy` files (memory-mapped), so corpora larger than memory train.
* `train_model`: fits one model; early stopping and checkpoint choice use the validation
  utterances only (never the test fold), scored exactly as the test is: mean class
  probabilities over each utterance's windows, unweighted accuracy.
* `predict_utterances`: the evaluation and edge policy, windows every hop + tail,
  probabilities averaged per utterance (`edge_runtime.windows`).
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import inspect
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np

from edge_runtime.config import (
    STATISTICS_NORMALIZATIONS,
    FrontendConfig,
    dataset_statistics,
    with_dataset_stats,
)
from edge_runtime.features import StreamStatistics, normalize
from edge_runtime.windows import WindowPolicy, aggregate, random_window, split_windows
from keras_dyconv.augment import Augmentation, augment_window, mel_band_centres
from keras_dyconv.callbacks import TemperatureAnnealing
from keras_dyconv.metrics import unweighted_accuracy
from keras_dyconv.models import build_dycnn_bilstm, time_reduction

FeatureSource = np.ndarray | str | os.PathLike
#: Recipe.stream_training: whole-speaker statistics, or simulated running statistics.
STREAM_TRAINING = ("speaker", "online")
#: Random orderings of each training speaker's utterances that `online_statistics` streams.
STREAM_ORDERINGS = 7
#: Files a checkpointed fit writes in its checkpoint folder: the weights after each epoch
#: (1-based, Keras's `ModelCheckpoint` naming) and the logs of every epoch, validation UA
#: included (`keras.callbacks.CSVLogger`): what a resumed fit needs to carry on as if it had
#: never stopped.
EPOCH_WEIGHTS = "epoch-{epoch:03d}.weights.h5"
EPOCH_LOGS = "history.csv"


#: The `build_dycnn_bilstm` arguments `Recipe.model` may set (the architecture). The others
#: are not the recipe's: the data sets the classes and feature sizes, `Recipe.temperature`
#: the attention temperature, and the fit builds for any window length and batch.
MODEL_RECIPE_ARGUMENTS = tuple(
    name
    for name in inspect.signature(build_dycnn_bilstm).parameters
    if name
    not in (
        "num_classes",
        "n_mels",
        "input_channels",
        "temperature",
        "frames",
        "batch_size",
        "name",
        "labels",
        "frontend",
    )
)


@dataclass(frozen=True)
class Recipe:
    """How to train: optimiser, schedule, regularisation, augmentation, model selection.

    Attributes:
        name: recipe name (recorded in results).
        epochs: maximum epochs (an epoch = one random window per training utterance).
        iterations: if set, overrides `epochs` with ceil(iterations / steps per epoch).
        batch_size: windows per step.
        optimizer: "adam", "adamw" or "rmsprop".
        learning_rate: peak learning rate.
        weight_decay: decoupled weight decay (adamw) or L2-free 0.
        cosine_decay: cosine-decay the learning rate to 0 over the run.
        label_smoothing: cross-entropy label smoothing.
        class_weighting: weight classes by inverse frequency in the training data.
        temperature: (start, end, epochs) of the attention temperature annealing.
        patience: stop after this many epochs without a better validation UA (None: never).
        min_epochs: do not stop before this many epochs.
        spec_augment: (time masks, max time width in frames, freq masks, max freq width in
            bands) per training window; masked cells are set to the normalised mean, 0.
        mixup_alpha: Beta(alpha, alpha) mixup of windows and labels (0 = off).
        augmentation: log-mel-domain VTLP, speed, noise and gain perturbation
            (`keras_dyconv.augment.Augmentation`).
        normalization: feature normalization with training-set statistics: "dataset",
            "gain" (utterance level removed first) or "stream" (online CMVN: the model is
            trained on each training speaker normalised by their own statistics and run with
            running statistics of the stream it hears; see `normalize_utterances`).
        stream_training: which statistics normalise a training window for normalization
            "stream": "speaker" (all of its speaker's audio) or "online" (the running
            statistics a device would have at a random point of its speaker's stream, as
            `online_statistics` draws them; the model learns the cold start too).
        average_checkpoints: average the weights of this many best validation epochs
            (1 = keep the best epoch only).
        refit: after the validation speakers have chosen the epoch (or the epochs to
            average), train again from scratch (same seed) on the training *and*
            validation speakers for that many epochs, and return that model: every
            training speaker is learnt from, and the test fold still chooses nothing.
            Costs about twice the training time.
        distill: train this many teacher models first (same recipe, other seeds), then the
            returned model on targets that mix each window's label with the teachers' mean
            class probabilities for that window (`DISTILL_WEIGHT`): knowledge distillation
            of a seed ensemble into the one model the edge runs. 0 = off; costs
            `distill` extra trainings.
        model: architecture: keyword arguments for `build_dycnn_bilstm`, any of
            `MODEL_RECIPE_ARGUMENTS` (e.g. num_kernels, conv_filters, pool_size).
    """

    name: str = "default"
    epochs: int = 45
    iterations: int | None = None
    batch_size: int = 32
    optimizer: str = "adamw"
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    cosine_decay: bool = False
    label_smoothing: float = 0.0
    class_weighting: bool = False
    temperature: tuple[float, float, int] = (30.0, 1.0, 10)
    patience: int | None = 12
    min_epochs: int = 20
    spec_augment: tuple[int, int, int, int] = (0, 0, 0, 0)
    mixup_alpha: float = 0.0
    augmentation: Augmentation = field(default_factory=Augmentation)
    normalization: str = "dataset"
    stream_training: str = "speaker"
    average_checkpoints: int = 1
    refit: bool = False
    distill: int = 0
    model: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.augmentation, dict):  # read back from results.json
            ranges = {  # JSON lists back to (low, high)
                k: tuple(v) if v is not None else None
                for k, v in self.augmentation.items()
                if k in ("snr_db", "rt60_s", "drr_db")
            }
            augmentation = Augmentation(**{**self.augmentation, **ranges})
            object.__setattr__(self, "augmentation", augmentation)
        if self.normalization not in STATISTICS_NORMALIZATIONS:
            raise ValueError(
                f"Recipe.normalization must be one of {STATISTICS_NORMALIZATIONS}, "
                f"got {self.normalization!r}"
            )
        if self.stream_training not in STREAM_TRAINING:
            raise ValueError(
                f"Recipe.stream_training must be one of {STREAM_TRAINING}, "
                f"got {self.stream_training!r}"
            )
        if self.average_checkpoints < 1:
            raise ValueError(f"average_checkpoints must be >= 1, got {self.average_checkpoints}")
        if self.distill < 0 or self.distill == 1:
            raise ValueError(f"distill must be 0 (off) or >= 2 teachers, got {self.distill}")
        start, end, anneal_epochs = self.temperature
        if start <= 0 or end <= 0 or anneal_epochs < 0:
            raise ValueError(
                "temperature must be (start > 0, end > 0, epochs >= 0), "
                f"got {tuple(self.temperature)}"
            )
        unknown = sorted(set(self.model) - set(MODEL_RECIPE_ARGUMENTS))
        if unknown:
            raise ValueError(
                f"Recipe.model: {', '.join(map(repr, unknown))} cannot be set here; "
                f"build_dycnn_bilstm arguments a recipe may set: "
                f"{', '.join(MODEL_RECIPE_ARGUMENTS)}"
            )

    def with_overrides(self, **overrides: Any) -> Recipe:
        """A copy with the given fields replaced (None values are ignored)."""
        return dataclasses.replace(self, **{k: v for k, v in overrides.items() if v is not None})

    def to_dict(self) -> dict[str, Any]:
        """The recipe as a JSON-serialisable dict (recorded in results.json)."""
        return dataclasses.asdict(self)


#: Weight of the teachers' mean class probabilities in a distilled model's targets (the
#: rest is the one-hot label): the teachers' agreement and doubt both reach the student.
DISTILL_WEIGHT = 0.5

RECIPES: dict[str, Recipe] = {
    # Our default: AdamW, temperature annealing 30 -> 1 (Chen et al.), early stopping on the
    # validation speakers' UA. See docs/benchmarks.md for how it compares.
    "default": Recipe(),
    # The seed paper's settings: RMSProp, lr 0.01, batch 200, 1000 iterations, plain
    # cross-entropy, no early stopping.
    "paper": Recipe(
        name="paper",
        iterations=1000,
        batch_size=200,
        optimizer="rmsprop",
        learning_rate=0.01,
        weight_decay=0.0,
        patience=None,
        min_epochs=0,
    ),
    # A few epochs of a narrower model: smoke tests and the README demo.
    "fast": Recipe(
        name="fast",
        epochs=12,
        batch_size=16,
        learning_rate=3e-3,
        temperature=(30.0, 1.0, 4),
        patience=None,
        min_epochs=0,
        model={"conv_filters": (8, 16), "lstm_units": 24, "attention_units": 24},
    ),
}


def get_recipe(name: str) -> Recipe:
    """The recipe called `name`, with a clear error listing the known ones."""
    try:
        return RECIPES[name]
    except KeyError:
        raise ValueError(f"unknown recipe {name!r}; choose one of {sorted(RECIPES)}") from None


# ----------------------------------------------------------------------------- statistics
def load_features(source: FeatureSource) -> np.ndarray:
    """(frames, n_features) float32 features from an array or a `.npy` file (memory-mapped)."""
    if isinstance(source, np.ndarray):
        return source
    return np.load(source, mmap_mode="r", allow_pickle=False)


def normalized(features: np.ndarray, config: FrontendConfig) -> np.ndarray:
    """A normalised float32 copy of `features` (edge_runtime's `normalize` works in place,
    and training must never change the stored features: they are reused every epoch)."""
    return normalize(np.array(features, dtype=np.float32), config)


def speaker_statistics(
    sources: Sequence[FeatureSource], speakers: Sequence[str]
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per-feature (mean, std) float32 of each speaker over all their utterances."""
    if len(sources) != len(speakers):
        raise ValueError(f"{len(sources)} feature sources but {len(speakers)} speakers")
    stats = {}
    for speaker in dict.fromkeys(speakers):
        mine = [s for s, who in zip(sources, speakers, strict=True) if who == speaker]
        mean, std = dataset_statistics(load_features(s) for s in mine)
        stats[speaker] = (np.float32(mean), np.float32(std))
    return stats


def online_statistics(
    sources: Sequence[FeatureSource],
    speakers: Sequence[str],
    config: FrontendConfig,
    orderings: int = STREAM_ORDERINGS,
    seed: int = 0,
) -> list[list[tuple[np.ndarray, np.ndarray]]]:
    """Running statistics a device could have when it hears each utterance, several per
    utterance: (mean, std) float32 lists, one list per utterance.

    Each speaker's utterances are streamed through `StreamStatistics` in `orderings`
    random orders; the statistics right after an utterance (itself included, as at test
    time) are one draw for it, so its draws sit at random points of its speaker's stream.
    One more draw is a fresh stream (the training prior plus the utterance alone): the
    cold start of a voice the device has never heard.
    """
    if len(sources) != len(speakers):
        raise ValueError(f"{len(sources)} feature sources but {len(speakers)} speakers")
    rng = np.random.default_rng(seed)
    draws: list[list[tuple[np.ndarray, np.ndarray]]] = [[] for _ in sources]
    stream = StreamStatistics(config)

    def draw(i: int) -> None:
        stream.update(load_features(sources[i]))
        draws[i].append((np.float32(stream.mean), np.float32(stream.std)))

    for i in range(len(sources)):
        stream.reset()
        draw(i)
    owners = np.asarray(speakers)
    for speaker in dict.fromkeys(speakers):
        mine = np.flatnonzero(owners == speaker)
        for _ in range(orderings):
            stream.reset()
            for i in rng.permutation(mine):
                draw(int(i))
    return draws


ADAPTATIONS = ("online", "independent", "speaker")


def normalize_utterances(
    sources: Sequence[FeatureSource],
    config: FrontendConfig,
    speakers: Sequence[str] | None = None,
    adapt: str = "online",
) -> list[np.ndarray]:
    """Normalised float32 copies of utterance features, as the deployed model would see them.

    For normalization "stream" the utterances of each speaker are one stream, in the order
    given: with `adapt="online"` each is normalised by the running statistics of its
    speaker's audio so far, itself included (`StreamStatistics`, what a device can do);
    with `adapt="independent"` each utterance starts a fresh stream (the training prior
    plus itself: no adaptation across utterances, `speakers` not needed); with
    `adapt="speaker"` by the statistics of all the speaker's utterances (transductive when
    used on test speakers: a reference only, or for training speakers). Other
    normalizations ignore `speakers` and `adapt`.
    """
    if adapt not in ADAPTATIONS:
        raise ValueError(f"adapt must be one of {ADAPTATIONS}, got {adapt!r}")
    if config.normalization != "stream" or adapt == "independent":
        return [normalized(load_features(s), config) for s in sources]
    if speakers is None:
        raise ValueError('normalization "stream" needs the speaker of every utterance')
    out = []
    if adapt == "speaker":
        stats = speaker_statistics(sources, speakers)
        for source, speaker in zip(sources, speakers, strict=True):
            mean, std = stats[speaker]
            out.append((np.asarray(load_features(source), np.float32) - mean) / std)
        return out
    streams: dict[str, StreamStatistics] = {}
    for source, speaker in zip(sources, speakers, strict=True):
        stream = streams.setdefault(speaker, StreamStatistics(config))
        out.append(normalize(np.array(load_features(source), np.float32), config, stream))
    return out


# ----------------------------------------------------------------------------- data feeding
class WindowSequence(keras.utils.PyDataset):
    """Random fixed-length training windows, one per utterance per epoch.

    Args:
        sources: per-utterance raw features (arrays or `.npy` paths), computed with the
            frontend config *without* normalisation; `config` normalises them.
        labels: class index per utterance.
        num_classes: number of classes (one-hot targets, needed for mixup/smoothing).
        config: frontend config whose normalisation (e.g. dataset statistics) is applied.
        frames: window length in frames.
        batch_size: windows per batch.
        seed: seed of the window positions, shuffling and augmentation.
        spec_augment: (time masks, max width, freq masks, max width); masked cells are set
            to 0, the normalised mean.
        mixup_alpha: mixup Beta parameter (0 disables).
        class_weights: per-class loss weights (class weighting), or None.
        augmentation: log-mel perturbations applied to each raw window before normalisation.
        statistics: per utterance, one or more (mean, std) to normalise with instead of
            `config`, one drawn at random for each window (normalization "stream": the
            speaker's own statistics, or `online_statistics` draws).
        teachers: models whose mean class probabilities for each window are mixed into its
            target (weight `DISTILL_WEIGHT`): knowledge distillation.
    """

    def __init__(
        self,
        sources: Sequence[FeatureSource],
        labels: Sequence[int],
        num_classes: int,
        config: FrontendConfig,
        frames: int,
        batch_size: int,
        seed: int = 0,
        spec_augment: tuple[int, int, int, int] = (0, 0, 0, 0),
        mixup_alpha: float = 0.0,
        class_weights: np.ndarray | None = None,
        augmentation: Augmentation | None = None,
        statistics: Sequence[Sequence[tuple[np.ndarray, np.ndarray]]] | None = None,
        teachers: Sequence[keras.Model] = (),
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        if len(sources) != len(labels):
            raise ValueError(f"{len(sources)} feature sources but {len(labels)} labels")
        if not len(sources):
            raise ValueError("no training utterances")
        self.augmentation = augmentation or Augmentation()
        if self.augmentation.active and config.feature != "logmel":
            raise ValueError(
                f"augmentation works on log-mel features, not feature={config.feature!r}"
            )
        if statistics is None and config.normalization == "stream":
            raise ValueError('normalization "stream" trains with per-speaker `statistics`')
        if statistics is not None and len(statistics) != len(sources):
            raise ValueError(f"{len(sources)} feature sources but {len(statistics)} statistics")
        self.statistics = statistics
        self.teachers = list(teachers)
        self.centres = mel_band_centres(config)
        self.sources = list(sources)
        self.labels = np.asarray(labels, dtype=np.int64)
        self.num_classes = num_classes
        self.config = config
        self.frames = frames
        self.batch_size = batch_size
        self.spec_augment = spec_augment
        self.mixup_alpha = mixup_alpha
        self.class_weights = class_weights
        self.rng = np.random.default_rng(seed)
        self.order = self.rng.permutation(len(self.sources))

    def __len__(self) -> int:
        return math.ceil(len(self.sources) / self.batch_size)

    def on_epoch_end(self) -> None:
        self.order = self.rng.permutation(len(self.sources))

    def __getitem__(self, index: int):
        batch = self.order[index * self.batch_size : (index + 1) * self.batch_size]
        rng = np.random.default_rng(self.rng.integers(1 << 62) + index)
        x = np.stack([self._window(i, rng) for i in batch]).astype(np.float32)
        y = np.eye(self.num_classes, dtype=np.float32)[self.labels[batch]]
        x = self._spec_augment(x, rng)
        if self.teachers:
            soft = np.mean(
                [keras.ops.convert_to_numpy(t(x, training=False)) for t in self.teachers], axis=0
            )
            y = ((1 - DISTILL_WEIGHT) * y + DISTILL_WEIGHT * soft).astype(np.float32)
        if self.mixup_alpha > 0 and len(batch) > 1:
            lam = rng.beta(self.mixup_alpha, self.mixup_alpha, size=(len(batch), 1))
            perm = rng.permutation(len(batch))
            x = (lam[:, :, None] * x + (1 - lam[:, :, None]) * x[perm]).astype(np.float32)
            y = (lam * y + (1 - lam) * y[perm]).astype(np.float32)
        if self.class_weights is not None:
            return x, y, self.class_weights[self.labels[batch]].astype(np.float32)
        return x, y

    def _window(self, i: int, rng: np.random.Generator) -> np.ndarray:
        """A random, possibly perturbed, normalised window of utterance `i`."""
        raw = load_features(self.sources[i])
        if self.augmentation.active:
            window = augment_window(
                raw,
                self.frames,
                self.augmentation,
                self.centres,
                rng,
                random_window,
                hop_s=self.config.hop_length / self.config.sample_rate,
            )
        else:
            window = np.array(random_window(raw, self.frames, rng), dtype=np.float32)
        if self.statistics is None:
            return normalize(window, self.config)
        choices = self.statistics[i]
        # A single choice draws nothing, so whole-speaker runs keep their random stream.
        mean, std = choices[int(rng.integers(len(choices)))] if len(choices) > 1 else choices[0]
        return (window - mean) / std

    def _spec_augment(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        time_masks, time_width, freq_masks, freq_width = self.spec_augment
        for sample in x:
            for _ in range(time_masks):
                w = int(rng.integers(0, time_width + 1))
                t0 = int(rng.integers(0, max(1, sample.shape[0] - w)))
                sample[t0 : t0 + w] = 0.0
            for _ in range(freq_masks):
                w = int(rng.integers(0, freq_width + 1))
                f0 = int(rng.integers(0, max(1, sample.shape[1] - w)))
                sample[:, f0 : f0 + w] = 0.0
        return x


# ----------------------------------------------------------------------------- prediction
def utterance_windows(
    sources: Sequence[FeatureSource],
    config: FrontendConfig,
    policy: WindowPolicy,
    speakers: Sequence[str] | None = None,
    adapt: str = "online",
) -> tuple[np.ndarray, np.ndarray]:
    """All evaluation windows of all utterances, (n_windows, frames, F), and their owners
    (normalised by `normalize_utterances`)."""
    windows, owners = [], []
    for i, feats in enumerate(normalize_utterances(sources, config, speakers, adapt)):
        w = split_windows(feats, policy)
        windows.append(w.astype(np.float32))
        owners.append(np.full(len(w), i))
    return np.concatenate(windows), np.concatenate(owners)


def predict_utterances(
    model: keras.Model,
    sources: Sequence[FeatureSource],
    config: FrontendConfig,
    policy: WindowPolicy,
    batch_size: int = 64,
    speakers: Sequence[str] | None = None,
    adapt: str = "online",
) -> np.ndarray:
    """Utterance-level class probabilities (n_utterances, C): mean over each one's windows.

    `speakers` (and `adapt`) are needed for normalization "stream": each speaker's
    utterances form one stream, in the order given (see `normalize_utterances`).
    """
    windows, owners = utterance_windows(sources, config, policy, speakers, adapt)
    probs = np.asarray(model.predict(windows, batch_size=batch_size, verbose=0))
    return np.stack([aggregate(probs[owners == i]) for i in range(len(sources))])


def model_kwargs(recipe: Recipe, config: FrontendConfig, num_classes: int) -> dict[str, Any]:
    """The `build_dycnn_bilstm` arguments a fit with `recipe` on `config`'s features uses."""
    return {
        "num_classes": num_classes,
        "n_mels": config.n_features // config.channels,
        "input_channels": config.channels,
        "temperature": recipe.temperature[0],
        **recipe.model,
    }


class ValidationSelection(keras.callbacks.Callback):
    """Score the validation utterances every epoch (UA of utterance-level predictions),
    keep the best weights, stop after `patience` epochs without improvement.

    With `average` > 1 the weights of the `average` best epochs are kept and
    `restore_best` puts their mean back (checkpoint averaging: less dependent on one
    lucky epoch of a small validation set). The validation set is carved out of the
    training data (e.g. held-out training speakers); the test fold is never seen here.

    With `checkpoint_dir` (the folder where the fit saves its `EPOCH_WEIGHTS` and its
    `EPOCH_LOGS`, which hold the "val_ua" this callback adds to the logs), a fit resumed
    after an interruption still chooses among all its epochs: the scores of earlier epochs
    come back from the logs, their kept weights from their checkpoints.
    """

    def __init__(
        self,
        sources: Sequence[FeatureSource],
        labels: Sequence[int],
        config: FrontendConfig,
        policy: WindowPolicy,
        patience: int | None,
        min_epochs: int,
        speakers: Sequence[str] | None = None,
        average: int = 1,
        checkpoint_dir: str | os.PathLike | None = None,
    ):
        super().__init__()
        self.checkpoint_dir = None if checkpoint_dir is None else Path(checkpoint_dir)
        self.windows, self.owners = utterance_windows(sources, config, policy, speakers)
        self.labels = np.asarray(labels)
        self.patience, self.min_epochs, self.average = patience, min_epochs, average
        # (UA, epoch, weights) of the best epochs, best first; ties keep the earlier epoch.
        self.kept: list[tuple[float, int, list[np.ndarray]]] = []
        self.history: list[float] = []

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        if epoch and not self.history and self.checkpoint_dir is not None:
            self._resume(epoch)

    def _resume(self, epoch: int) -> None:
        """Take back the scores and kept weights of the `epoch` epochs run before a resume."""
        path = self.checkpoint_dir / EPOCH_LOGS
        if not path.exists():
            return
        scores = read_epoch_logs(path).get("val_ua", [])[:epoch]
        # Best first, ties to the earlier epoch: the order `on_epoch_end` keeps.
        best = sorted(range(len(scores)), key=lambda e: (-scores[e], e))[: self.average]
        current, kept = self.model.get_weights(), []
        for e in best:
            weights = self.checkpoint_dir / EPOCH_WEIGHTS.format(epoch=e + 1)
            if not weights.exists():
                raise FileNotFoundError(
                    f"cannot resume: {weights}, the weights of validation epoch {e + 1} (one "
                    f"of the best so far), is missing; delete {self.checkpoint_dir} to start over"
                )
            self.model.load_weights(weights)
            kept.append((scores[e], e, self.model.get_weights()))
        self.model.set_weights(current)
        self.kept, self.history = kept, scores

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        probs = np.asarray(self.model.predict(self.windows, batch_size=64, verbose=0))
        utt = np.stack([aggregate(probs[self.owners == i]) for i in range(len(self.labels))])
        ua = unweighted_accuracy(self.labels, utt.argmax(axis=1))
        self.history.append(ua)
        if logs is not None:
            logs["val_ua"] = ua
        if len(self.kept) < self.average or ua > self.kept[-1][0]:
            self.kept = sorted(
                [*self.kept, (ua, epoch, self.model.get_weights())], key=lambda k: -k[0]
            )[: self.average]
        if self.best_epoch != epoch and (
            self.patience is not None
            and epoch + 1 >= self.min_epochs
            and epoch - self.best_epoch >= self.patience
        ):
            self.model.stop_training = True

    @property
    def best_ua(self) -> float:
        """Best validation UA so far (-1 before the first epoch)."""
        return self.kept[0][0] if self.kept else -1.0

    @property
    def best_epoch(self) -> int:
        """Epoch of the best validation UA so far (-1 before the first epoch)."""
        return self.kept[0][1] if self.kept else -1

    @property
    def kept_epochs(self) -> list[int]:
        """Epochs whose weights `restore_best` uses (best first)."""
        return [epoch for _, epoch, _ in self.kept]

    def restore_best(self) -> None:
        """Put the weights of the best validation epoch (or the mean of the `average` best)
        back into the model."""
        if not self.kept:
            return
        self.model.set_weights(mean_weights([weights for _, _, weights in self.kept]))


@contextlib.contextmanager
def exclusive_folder(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock on a checkpoint folder for the duration of a fit.

    Two fits writing the same epoch checkpoints and logs corrupt each other's resume (HDF5
    lock errors, logs interleaved). The operating system drops the lock when the process
    dies, so a killed run never leaves a stale lock. Windows has no `fcntl`: no lock there.

    Raises:
        RuntimeError: another process holds the lock.
    """
    try:
        import fcntl
    except ImportError:  # Windows
        yield
        return
    with open(folder / ".lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
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


class EpochSnapshots(keras.callbacks.Callback):
    """Keep the weights after the given epochs (0-based); `restore_mean` puts their mean
    back (the refit of `Recipe.refit` averages the epochs the validation chose)."""

    def __init__(self, epochs: Sequence[int]):
        super().__init__()
        self.epochs = set(int(e) for e in epochs)
        self.snapshots: list[list[np.ndarray]] = []

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if epoch in self.epochs:
            self.snapshots.append(self.model.get_weights())

    def restore_mean(self) -> None:
        """Set the model's weights to the mean of the snapshots taken (if any)."""
        if self.snapshots:
            self.model.set_weights(mean_weights(self.snapshots))


def mean_weights(snapshots: Sequence[Sequence[np.ndarray]]) -> list[np.ndarray]:
    """Element-wise mean of several `get_weights()` lists (checkpoint averaging)."""
    return [
        np.mean(np.stack(ws), axis=0).astype(ws[0].dtype) for ws in zip(*snapshots, strict=True)
    ]


@dataclass
class TrainResult:
    """A fitted model and what happened during training.

    `history`, `best_epoch` and `averaged_epochs` describe the run scored on the validation
    speakers; `refit_epochs` > 0 says the returned model was then refit for that many epochs
    on the training and validation speakers together (`Recipe.refit`).
    """

    model: keras.Model
    config: FrontendConfig
    history: dict[str, list[float]]
    best_epoch: int | None
    epochs_run: int
    averaged_epochs: list[int] = field(default_factory=list)
    refit_epochs: int = 0


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
            resumes from it (`keras.callbacks.BackupAndRestore`) as if it had not stopped:
            the history and the choice of the best validation epoch cover every epoch. The
            teachers of `recipe.distill` and the refit of `recipe.refit` are not checkpointed
            (an interrupted run retrains them).
        verbose: Keras progress-bar verbosity.
        train_speakers: speaker per training utterance (needed for normalization "stream":
            each training speaker is normalised by their own statistics, or by simulated
            running statistics of their stream: `Recipe.stream_training`).
        val_speakers: speaker per validation utterance ("stream": each validation
            speaker is one stream, normalised online as the test will be).
    """
    policy = policy or WindowPolicy()
    teachers = []
    if recipe.distill:
        for j in range(recipe.distill):
            teacher = train_model(
                train_sources,
                train_labels,
                labels,
                config,
                dataclasses.replace(recipe, distill=0),
                policy,
                val_sources,
                val_labels,
                seed=1000 * (seed + 1) + j,
                verbose=verbose,
                train_speakers=train_speakers,
                val_speakers=val_speakers,
            )
            teachers.append(teacher.model)
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
    )
    if not (recipe.refit and len(val_sources) and result.best_epoch is not None):
        return result
    # Refit on training + validation speakers for the epochs the validation chose: the
    # returned model has seen every training speaker, and its epochs were still chosen
    # without the test fold.
    kept = result.averaged_epochs  # the best epoch first, then any averaged with it
    refit = _fit(
        dataclasses.replace(recipe, average_checkpoints=1),
        config,
        policy,
        [*train_sources, *val_sources],
        [*train_labels, *val_labels],
        len(labels),
        train_speakers=None if train_speakers is None else [*train_speakers, *(val_speakers or ())],
        seed=seed,
        verbose=verbose,
        teachers=teachers,
        epochs=max(kept) + 1,
        snapshot_epochs=kept,
    )
    return dataclasses.replace(
        refit,
        history=result.history,
        best_epoch=result.best_epoch,
        epochs_run=result.epochs_run,
        averaged_epochs=result.averaged_epochs,
        refit_epochs=refit.epochs_run,
    )


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
) -> TrainResult:
    """One `model.fit` of `train_model` (see there); `epochs` overrides the recipe's, and
    the returned model averages the weights of `snapshot_epochs` (0-based) if given."""
    keras.utils.set_random_seed(seed)
    config = with_dataset_stats(
        config, (load_features(s) for s in train_sources), recipe.normalization
    )
    statistics = None
    if recipe.normalization == "stream":
        if train_speakers is None or (len(val_sources) and val_speakers is None):
            raise ValueError('normalization "stream" needs train_speakers and val_speakers')
        if recipe.stream_training == "online":
            statistics = online_statistics(train_sources, train_speakers, config, seed=seed)
        else:
            by_speaker = speaker_statistics(train_sources, train_speakers)
            statistics = [[by_speaker[s]] for s in train_speakers]
    labels_arr = np.asarray(train_labels)
    class_weights = None
    if recipe.class_weighting:
        counts = np.bincount(labels_arr, minlength=num_classes).astype(np.float64)
        class_weights = np.where(
            counts > 0, len(labels_arr) / (num_classes * np.maximum(counts, 1)), 0
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
        class_weights=class_weights,
        augmentation=recipe.augmentation,
        statistics=statistics,
        teachers=teachers,
    )
    if epochs is None:
        epochs = recipe.epochs
        if recipe.iterations:
            epochs = math.ceil(recipe.iterations / len(data))
    model = build_dycnn_bilstm(**model_kwargs(recipe, config, num_classes))
    if policy.frames < time_reduction(model):
        raise ValueError(
            f"the window ({policy.frames} frames) is shorter than the model's time pooling "
            f"({time_reduction(model)}x): use a longer window or pool time less"
        )
    model.compile(
        optimizer=_optimizer(recipe, epochs * len(data)),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=recipe.label_smoothing),
        metrics=["categorical_accuracy"],
    )
    start, end, anneal_epochs = recipe.temperature
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
    snapshots = None
    if snapshot_epochs:
        snapshots = EpochSnapshots(snapshot_epochs)
        callbacks.append(snapshots)
    folder_lock = contextlib.nullcontext()
    if checkpoint_dir is not None:
        checkpoint_dir = Path(checkpoint_dir)
        checkpoint_dir.mkdir(parents=True, exist_ok=True)
        folder_lock = exclusive_folder(checkpoint_dir)
        # The backup marks an epoch done, so it comes after the epoch's logs (val_ua included:
        # the selection comes earlier in the list) and weights.
        callbacks += [
            keras.callbacks.CSVLogger(str(checkpoint_dir / EPOCH_LOGS), append=True),
            keras.callbacks.ModelCheckpoint(
                str(checkpoint_dir / EPOCH_WEIGHTS), save_weights_only=True
            ),
            keras.callbacks.BackupAndRestore(str(checkpoint_dir / "backup")),
        ]
    with folder_lock:
        history = model.fit(data, epochs=epochs, callbacks=callbacks, verbose=verbose)
        if checkpoint_dir is None:
            record = {k: [float(v) for v in vals] for k, vals in history.history.items()}
        else:  # History holds only the epochs since a resume; the logs hold them all
            record = read_epoch_logs(checkpoint_dir / EPOCH_LOGS)
        best_epoch, averaged = None, []
        if selection is not None:
            selection.restore_best()  # may read epoch checkpoints
            best_epoch, averaged = selection.best_epoch, selection.kept_epochs
    if snapshots is not None:
        snapshots.restore_mean()
    return TrainResult(model, config, record, best_epoch, len(record.get("loss", [])), averaged)
