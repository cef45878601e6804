"""Training recipes: how `dyser-train` trains, as one frozen dataclass per named recipe.

`Recipe` holds the optimiser, schedule, regularisation, augmentation, normalisation, model
selection and architecture of a fit; `RECIPES` names the shipped ones ("default", "paper",
"fast") and `get_recipe` looks one up. The field documentation in `Recipe`'s docstring is
the one description of every lever: the `dyser-train` options and the lever table of the
training tutorial are generated from it (`field_docs`).
"""

from __future__ import annotations

import ast
import dataclasses
import importlib.util
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from edge_runtime.config import STATISTICS_NORMALIZATIONS, FrontendConfig
from keras_dyconv.augment import Augmentation

Optimizer = Literal["adam", "adamw", "rmsprop"]
#: Recipe.normalization: the `STATISTICS_NORMALIZATIONS` of the frontend.
Normalization = Literal["dataset", "gain", "stream"]
#: Recipe.stream_training: whole-speaker statistics, simulated running statistics, or the
#: statistics of the speaker's neutral speech.
StreamTraining = Literal["speaker", "online", "neutral"]
STREAM_TRAINING = typing.get_args(StreamTraining)


def _builder_parameters() -> list[str]:
    """The parameter names of `keras_dyconv.models.build_dycnn_bilstm`, read from its source
    rather than imported: the recipes, and the `dyser-train` options generated from them,
    load without starting Keras (`dyser-train --help` stays fast)."""
    spec = importlib.util.find_spec("keras_dyconv.models")
    tree = ast.parse(Path(spec.origin).read_text())
    (builder,) = (
        node
        for node in tree.body
        if isinstance(node, ast.FunctionDef) and node.name == "build_dycnn_bilstm"
    )
    arguments = builder.args
    return [a.arg for a in [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs]]


#: The `build_dycnn_bilstm` arguments `Recipe.model` may set (the architecture). The others
#: are not the recipe's: the data sets the classes and feature sizes, `Recipe.temperature`
#: the attention temperature, and the fit builds for any window length and batch.
MODEL_RECIPE_ARGUMENTS = tuple(
    name
    for name in _builder_parameters()
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
        temperature: (start, end, epochs): the attention softmax temperature of the dynamic
            convolutions starts at `start` and is lowered linearly to `end` over the first
            `epochs` epochs (Chen et al.: 30 1 10; 1 1 0 keeps it at 1 throughout).
        patience: stop after this many epochs without a better validation UA (None: never).
        min_epochs: do not stop before this many epochs.
        spec_augment: (time masks, max time width in frames, freq masks, max freq width in
            bands) per training window; masked cells are set to the normalised mean, 0.
        mixup_alpha: Beta(alpha, alpha) mixup of windows and labels (0 = off).
        augmentation: log-mel-domain VTLP, speed, noise, gain and reverberation perturbation
            (`keras_dyconv.augment.Augmentation`).
        normalization: feature normalization with training-set statistics: "dataset",
            "gain" (utterance level removed first) or "stream" (online CMVN: the model is
            trained on each training speaker normalised by their own statistics and run with
            running statistics of the stream it hears; see `keras_dyconv.normalization`).
        stream_training: which statistics normalise a training window for normalization
            "stream": "speaker" (all of its speaker's audio), "online" (the running
            statistics a device would have at a random point of its speaker's stream, as
            `keras_dyconv.normalization.online_statistics` draws them; the model learns the
            cold start too) or "neutral" (its speaker's utterances of the class "neutral"
            only, all of their audio for a speaker who has none, counted in results.json:
            neutral-referenced normalisation, for a device enrolled from calm speech; needs
            normalization "stream" and a "neutral" class; the stored stream prior is of the
            same neutral statistics, and the run's transductive reference
            `predicted_speaker_norm` normalises each test speaker by their neutral
            utterances, chosen by the test labels).
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
        extra_corpora_weight: with several training corpora (`dyser-train --corpus ...
            --corpus ...`): the loss weight of all extra corpora together, relative to the
            target corpus's training utterances; each extra corpus gets an equal share, and
            within every corpus the classes weigh equally. 0.5 keeps the target (whose
            speakers and recording conditions the test shares) the larger part of every
            gradient while the extra voices regularise: pooled at equal weight per
            utterance, RAVDESS + CASIA outweigh an EmoDB fold about 6:1 and cost an eGeMAPS+SVM
            10 UA points on EmoDB LOSO, while their total at about 1.2x and 0.3x the EmoDB
            fold's weight did not hurt (+0.1) and helped (+2.6); 0.5 lies between the two.
        corpus_statistics: with several training corpora and normalization "dataset":
            normalise each corpus's training windows with that corpus's own dataset
            statistics (recording chains and languages differ) instead of statistics pooled
            over all corpora; the model keeps the target corpus's, the ones its test data
            shares. Needs one target corpus (not leave-one-corpus-out nor `--target all`) and
            excludes pretrain_extra, whose fine-tune trains on the target alone (normalised
            by its own statistics either way).
        pretrain_extra: with extra training corpora (`dyser-train --corpus ... --target ...`):
            instead of adding the extra corpora to every fold's training data, train one
            model per seed on the extra corpora alone (validation: the speakers the first
            leave-one-speaker-out fold of each extra corpus holds out), saved in the run
            folder and reused by every fold and on resume, then fine-tune it on each fold's
            target training speakers only, with the usual validation on the target's
            validation speakers. The whole model, head included, carries over (the common
            label space: a class only the target has starts from its initial weights) and
            the fine-tune keeps the attention temperature at the schedule's end value. Cost:
            one extra-corpora training per seed plus target-sized folds, instead of every
            fold on all corpora (`keras_dyconv.pretraining`). Without extra corpora (one
            corpus, protocol "loco", or `--target all`) it changes nothing.
        model: architecture: keyword arguments for `build_dycnn_bilstm`, any of
            `MODEL_RECIPE_ARGUMENTS`, e.g. `{"num_kernels": 8}` (K kernels per dynamic
            convolution) or `{"conv_filters": [32, 64, 128]}` (channels per block; its length
            is the depth). The classes and feature sizes come from the data.
        data_parallel: train data-parallel over every device present (all GPUs of the
            machine, else its CPU devices) with Keras's distribution API
            (`keras.distribution.DataParallel`, JAX backend only: KERAS_BACKEND=jax):
            `batch_size` must be a multiple of the device count, each batch is split evenly
            between the devices; an epoch's last batch is cut to a multiple of it (see
            `keras_dyconv.distribute`).
    """

    name: str = "default"
    epochs: int = 45
    iterations: int | None = None
    batch_size: int = 32
    optimizer: Optimizer = "adamw"
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
    normalization: Normalization = "dataset"
    stream_training: StreamTraining = "speaker"
    average_checkpoints: int = 1
    refit: bool = False
    distill: int = 0
    extra_corpora_weight: float = 0.5
    corpus_statistics: bool = False
    pretrain_extra: bool = False
    model: dict[str, Any] = field(default_factory=dict)
    data_parallel: bool = False

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
        if self.optimizer not in typing.get_args(Optimizer):
            raise ValueError(
                f"Recipe.optimizer must be one of {typing.get_args(Optimizer)}, "
                f"got {self.optimizer!r}"
            )
        if self.stream_training not in STREAM_TRAINING:
            raise ValueError(
                f"Recipe.stream_training must be one of {STREAM_TRAINING}, "
                f"got {self.stream_training!r}"
            )
        if self.stream_training == "neutral" and self.normalization != "stream":
            raise ValueError(
                'stream_training "neutral" needs normalization "stream" '
                f"(got normalization {self.normalization!r})"
            )
        # Numeric ranges, checked when the recipe is made (dyser-train: while parsing), not
        # as a ZeroDivisionError deep inside the first fit.
        for name, low in (("epochs", 1), ("batch_size", 1), ("min_epochs", 0)):
            if getattr(self, name) < low:
                raise ValueError(f"{name} must be >= {low}, got {getattr(self, name)}")
        for name in ("iterations", "patience"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1 (or unset), got {getattr(self, name)}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")
        if not (self.weight_decay >= 0 and self.mixup_alpha >= 0):
            raise ValueError(
                f"weight_decay and mixup_alpha must be >= 0, got {self.weight_decay}, "
                f"{self.mixup_alpha}"
            )
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.average_checkpoints < 1:
            raise ValueError(f"average_checkpoints must be >= 1, got {self.average_checkpoints}")
        if self.distill < 0 or self.distill == 1:
            raise ValueError(f"distill must be 0 (off) or >= 2 teachers, got {self.distill}")
        if self.extra_corpora_weight < 0:
            raise ValueError(f"extra_corpora_weight must be >= 0, got {self.extra_corpora_weight}")
        if self.corpus_statistics and self.normalization != "dataset":
            raise ValueError(
                f'corpus_statistics needs normalization "dataset", got {self.normalization!r}'
            )
        if self.corpus_statistics and self.pretrain_extra:
            # Per-corpus statistics could only change the pretraining, which has no target
            # whose statistics its model keeps, and whose validation speakers span several
            # corpora under one normalisation: refused rather than half applied.
            raise ValueError(
                "corpus_statistics and pretrain_extra exclude each other: with pretrain_extra "
                "the fine-tune trains on the target corpus alone, normalised by its own "
                "statistics either way, and the pretraining on the extra corpora has no "
                "target whose statistics its model would keep; drop one of the two"
            )
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

    @property
    def neutral_referenced(self) -> bool:
        """Whether each speaker is normalised by the statistics of their neutral speech
        (normalization "stream" with stream_training "neutral")."""
        return self.normalization == "stream" and self.stream_training == "neutral"

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


def model_kwargs(recipe: Recipe, config: FrontendConfig, num_classes: int) -> dict[str, Any]:
    """The `build_dycnn_bilstm` arguments a fit with `recipe` on `config`'s features uses."""
    return {
        "num_classes": num_classes,
        "n_mels": config.n_features // config.channels,
        "input_channels": config.channels,
        "temperature": recipe.temperature[0],
        **recipe.model,
    }


def field_docs(cls: type) -> dict[str, str]:
    """Each field's description in the "Attributes:" section of a dataclass's docstring
    (`Recipe`, `keras_dyconv.augment.Augmentation`), continuation lines joined.

    Raises:
        ValueError: a field has no description (every lever is documented once, there).
    """
    docs: dict[str, str] = {}
    section = (cls.__doc__ or "").split("Attributes:", 1)[-1]
    for name, text in re.findall(r"^ {8}(\w+): (.*(?:\n {12}.*)*)", section, re.M):
        docs[name] = " ".join(line.strip() for line in text.splitlines())
    missing = [f.name for f in dataclasses.fields(cls) if f.name not in docs]
    if missing:
        raise ValueError(f"{cls.__name__} documents no {missing} in its Attributes section")
    return {f.name: docs[f.name] for f in dataclasses.fields(cls)}
