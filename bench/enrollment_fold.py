"""One fold of a pooled stream run rebuilt for `bench_enrollment.py` to rescore, and how
its conditions are scored.

`RebuiltFold.build` rebuilds a fold's final model from its checkpoints (`fold_model`) and
loads its test features, speakers, each speaker's own statistics (the reference) and the
seeded per-speaker stream orders: what both the normalisation conditions
(`bench_enrollment.run_fold`) and the stream-prior candidates
(`enrollment_priors.prior_fold`) rescore with. `scores`, `random_mean` and `error_means`
summarise the pooled folds per corpus.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from enrollment_statistics import (
    Statistics,
    enrollment_statistics,
    running_statistics,
    statistics_error,
)

from edge_runtime.config import FrontendConfig
from edge_runtime.windows import WindowPolicy
from keras_dyconv.normalization import FeatureSource, load_features, stream_order


def fold_model(results: dict[str, Any], checkpoints: Path, record: dict[str, Any]):
    """The fold's final model: the run's architecture (`build_dycnn_bilstm` with the
    recipe's `model_kwargs`, checked against results.json) with the weights of its best
    validation epoch (`best_epoch` is 0-based, the epoch files 1-based)."""
    from keras_dyconv.checkpoints import EPOCH_WEIGHTS
    from keras_dyconv.models import build_dycnn_bilstm, model_arguments
    from keras_dyconv.recipes import Recipe, model_kwargs

    recipe = Recipe(**results["recipe"])
    config = FrontendConfig.from_dict(results["frontend"])
    kwargs = model_kwargs(recipe, config, len(results["labels"]))
    if json.loads(json.dumps(model_arguments(**kwargs))) != results["architecture"]["arguments"]:
        raise ValueError("the rebuilt model's arguments differ from results.json's")
    model = build_dycnn_bilstm(**kwargs)
    if record["averaged_epochs"] != [record["best_epoch"]] or record.get("refit_epochs"):
        raise ValueError(f"{record['fold']}: averaged or refit weights are not rebuilt here")
    folder = checkpoints / record["fold"] / f"seed{record['seed']}"
    model.load_weights(folder / EPOCH_WEIGHTS.format(epoch=record["best_epoch"] + 1))
    return model


def predict_normalized(model, arrays: Sequence[np.ndarray], policy: WindowPolicy) -> np.ndarray:
    """Utterance probabilities of features already normalised (`predict_utterances` with
    normalization "none": the same windows, batches and aggregation as the run's test)."""
    from keras_dyconv.feeding import predict_utterances

    return predict_utterances(model, arrays, FrontendConfig(normalization="none"), policy)


def normalized_by(sources: Sequence[FeatureSource], stats: Statistics) -> list[np.ndarray]:
    """Each utterance's features minus its mean, over its std (float32, as
    `keras_dyconv.normalization.iter_normalized` applies a speaker's statistics)."""
    return [
        (np.asarray(load_features(s), np.float32) - mean) / std
        for s, (mean, std) in zip(sources, stats, strict=True)
    ]


@dataclasses.dataclass
class RebuiltFold:
    """A fold's final model and test utterances (index `k` as `test`), ready to rescore.

    Attributes:
        fold: the fold's name.
        config, policy: the run's frontend config and window policy.
        model: the fold's final model (`fold_model`).
        train, train_speakers: the training utterances' features and speakers (the priors).
        test: the fold's test utterances (indices into the run's utterances).
        sources: their (frames, n_features) features, in memory (the enrollments read each
            utterance many times).
        speakers: their speakers.
        reference: each one's speaker statistics over all the speaker's test utterances.
        orders: `--orders` seeded random stream orders (`stream_order`, seed `seed`).
        seed: the seed of the orders and of every enrollment's order.
    """

    fold: str
    config: FrontendConfig
    policy: WindowPolicy
    model: Any
    train: list[FeatureSource]
    train_speakers: list[str]
    test: list[int]
    sources: list[np.ndarray]
    speakers: list[str]
    reference: Statistics
    orders: list[np.ndarray]
    seed: int

    @classmethod
    def build(
        cls,
        results: dict[str, Any],
        checkpoints: Path,
        record: dict[str, Any],
        fold,
        utts,
        feats: Sequence[FeatureSource],
        args: argparse.Namespace,
    ) -> RebuiltFold:
        """The fold `record` of the run `results` (its checkpoints in `checkpoints`), `fold`
        its rebuilt `keras_dyconv.folds` fold over `utts` / `feats`; `args.orders` random
        orders seeded with `args.seed`."""
        from keras_dyconv.normalization import speaker_statistics

        test = list(fold.test)
        sources = [np.array(load_features(feats[i])) for i in test]
        speakers = [utts[i].speaker for i in test]
        by_speaker = speaker_statistics(sources, speakers)
        rng = np.random.default_rng(args.seed)
        return cls(
            fold=record["fold"],
            config=FrontendConfig.from_dict(results["frontend"]),
            policy=WindowPolicy.from_dict(results["window"]),
            model=fold_model(results, checkpoints, record),
            train=[feats[i] for i in fold.train],
            train_speakers=[utts[i].speaker for i in fold.train],
            test=test,
            sources=sources,
            speakers=speakers,
            reference=[by_speaker[s] for s in speakers],
            orders=[stream_order(speakers, rng) for _ in range(args.orders)],
            seed=args.seed,
        )

    @property
    def frame_rate(self) -> float:
        """Feature frames per second."""
        return self.config.sample_rate / self.config.hop_length

    @property
    def identity(self) -> np.ndarray:
        """The corpus order: the test utterances as listed."""
        return np.arange(len(self.test))

    def predict(self, stats: Statistics) -> np.ndarray:
        """(n, C) utterance probabilities, each utterance normalised by its `stats`."""
        return predict_normalized(self.model, normalized_by(self.sources, stats), self.policy)

    def independent(self, prior: FrontendConfig) -> Statistics:
        """Each utterance its own stream from the training `prior`: a voice the device has
        never heard (what the "independent" condition normalises with)."""
        identity = self.identity
        return running_statistics(self.sources, list(map(str, identity)), identity, prior)

    def enroll(
        self,
        frames: int,
        prior: FrontendConfig | None = None,
        pool: np.ndarray | None = None,
        fallback: Statistics | None = None,
    ) -> tuple[Statistics, list[int]]:
        """`enrollment_statistics` of `frames` frames, in the orders of a fresh generator
        seeded with `seed` (the same orders for every enrollment)."""
        rng = np.random.default_rng(self.seed)
        return enrollment_statistics(
            self.sources, self.speakers, frames, rng, prior, pool=pool, fallback=fallback
        )

    def errors(self, used: dict[str, Statistics]) -> dict[str, np.ndarray]:
        """Each condition's `statistics_error` against the speaker reference."""
        return {name: statistics_error(stats, self.reference) for name, stats in used.items()}

    def release(self) -> None:
        """Free the model's Keras state before the next fold's."""
        import keras

        keras.backend.clear_session()


def scores(
    probabilities: np.ndarray, true: Sequence[str], labels: Sequence[str], corpus: str
) -> dict[str, Any]:
    """WA and UA (%) in the common and the corpus's own label set (`score_both`)."""
    from keras_dyconv.labels import score_both

    both = score_both(probabilities, labels, true, corpus)
    return {
        space: {"n": s["n"], "wa": 100 * s["wa"], "ua": 100 * s["ua"]} for space, s in both.items()
    }


def random_mean(conditions: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The mean over the random orders (conditions "online_random<k>") of each of their
    `scores`: the "online_random" condition."""
    randoms = [c for c in conditions if re.fullmatch(r"online_random\d+", c)]
    return {
        space: {
            m: float(np.mean([conditions[c][space][m] for c in randoms])) for m in ("n", "wa", "ua")
        }
        for space in ("common", "own")
    }


def error_means(errors: dict[str, np.ndarray], mine: np.ndarray) -> dict[str, Any]:
    """Per condition, the mean of its (n, 2) `statistics_error` over the utterances `mine`."""
    return {
        c: {"mean_in_std": float(e[mine, 0].mean()), "log_std_ratio": float(e[mine, 1].mean())}
        for c, e in errors.items()
    }
