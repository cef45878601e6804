"""What every fold of one `keras_dyconv.experiment.run_experiment` shares: its utterances,
their features and class indices, the settings, and where its output goes
(`ExperimentRun`), with the training call every fold, the protocol "all" model and
`keras_dyconv.pretraining` make through it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge_runtime.config import FrontendConfig
from edge_runtime.windows import WindowPolicy
from keras_dyconv.corpora import Utterance
from keras_dyconv.multicorpus import POOLED, corpus_record
from keras_dyconv.normalization import FeatureSource, neutral_class, neutral_reference
from keras_dyconv.recipes import Recipe
from keras_dyconv.training import TrainResult, train_model

__all__ = ["ExperimentRun"]


@dataclass(frozen=True)
class ExperimentRun:
    """What every fold of one `run_experiment` shares."""

    utts: Sequence[Utterance]
    feats: Sequence[FeatureSource]
    #: Class index of every utterance, into `labels`.
    y: np.ndarray
    labels: list[str]
    config: FrontendConfig
    recipe: Recipe
    policy: WindowPolicy
    out: Path
    checkpoint_dir: Path | None
    verbose: int | str
    log: Callable[[str], None]
    #: Several corpora: the target corpus (None for "loco", `POOLED` for all) and the
    #: number of utterances of the protocol's own corpus (or corpora), which come first in
    #: `utts`; the rest are extra training corpora. None: one corpus, its own labels.
    target: str | None = None
    n_protocol: int | None = None

    @property
    def multi(self) -> bool:
        """Whether several corpora train (common labels, masked loss)."""
        return self.n_protocol is not None

    @property
    def pooled(self) -> bool:
        """Whether every corpus is trained and tested (target `POOLED`): folds on their
        union, validation speakers within each corpus, every corpus weighing the same."""
        return self.target == POOLED

    def corpora(self, indices: Sequence[int]) -> list[str] | None:
        """The corpus of each utterance at `indices` (None for a single-corpus run)."""
        return [self.utts[i].extra["corpus"] for i in indices] if self.multi else None

    def corpus_record(self) -> dict[str, Any]:
        """`keras_dyconv.multicorpus.corpus_record` of the run's corpora (several only)."""
        extra_role = "pretraining" if self.recipe.pretrain_extra else "extra training"
        return corpus_record(self.utts, self.target, self.n_protocol, extra_role)

    @property
    def neutral(self) -> int | None:
        """For `Recipe.stream_training` "neutral" (normalization "stream"): the index of the
        class whose utterances give a speaker's statistics (`neutral_class`, a ValueError
        when the labels have none); None for other recipes."""
        return neutral_class(self.labels) if self.recipe.neutral_referenced else None

    def speaker_reference(self, indices: Sequence[int]) -> tuple[np.ndarray | None, list[str]]:
        """Which of the utterances at `indices` give their speaker's statistics in the
        transductive reference (adapt "speaker": the `counted` of `predict_utterances`), and
        the speakers without a neutral utterance, who fall back to all of theirs: for a
        "neutral" model the `neutral_reference` of their labels (what enrolling from neutral
        speech gives; chosen by the test labels, so a reference only); (None, []) else."""
        neutral = self.neutral
        if neutral is None:
            return None, []
        return neutral_reference(self.y[indices] == neutral, self.part(indices)[2])

    def neutral_record(self, result: TrainResult, test: Sequence[int] = ()) -> dict[str, Any]:
        """For a "neutral" model, logged and recorded: the speakers without any neutral
        utterance whose statistics came from all their audio (sorted), in training ("train",
        `TrainResult.neutral_fallback_speakers`) and in the speaker reference of the test
        utterances at `test` ("test"); {} for other recipes."""
        if self.neutral is None:
            return {}
        fallback = {"train": sorted(result.neutral_fallback_speakers)}
        if len(test):
            fallback["test"] = sorted(self.speaker_reference(test)[1])
        for part, speakers in fallback.items():
            if speakers:
                self.log(
                    f"  {len(speakers)} {part} speaker(s) without a neutral utterance, "
                    f"normalised by all their audio: {', '.join(speakers)}"
                )
        return {"neutral_fallback_speakers": fallback}

    def part(self, indices: Sequence[int]) -> tuple[list[FeatureSource], np.ndarray, list[str]]:
        """Features, class indices and speakers of the utterances at `indices`."""
        return (
            [self.feats[i] for i in indices],
            self.y[indices],
            [self.utts[i].speaker for i in indices],
        )

    def train(self, train: Sequence[int], val: Sequence[int], seed: int, **kwargs) -> TrainResult:
        """`train_model` on the utterances at `train`, selecting on those at `val`."""
        train_feats, train_y, train_speakers = self.part(train)
        val_feats, val_y, val_speakers = self.part(val)
        if self.multi:
            kwargs.update(
                train_corpora=self.corpora(train),
                val_corpora=self.corpora(val),
                target_corpus=None if self.pooled else self.target,
            )
        return train_model(
            train_feats,
            train_y,
            self.labels,
            self.config,
            self.recipe,
            self.policy,
            val_sources=val_feats,
            val_labels=val_y,
            seed=seed,
            verbose=self.verbose,
            train_speakers=train_speakers,
            val_speakers=val_speakers,
            **kwargs,
        )
