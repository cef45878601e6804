"""Scoring a fold's fitted model on its test utterances, as `dyser-train` records it.

For normalization "stream" (online CMVN) each test speaker's utterances are one stream,
each normalised by the running statistics of the speaker's audio so far. The order of that
stream matters: CASIA and RAVDESS list a speaker's files emotion by emotion, and in that
order the running statistics drift towards the current emotion (on the same pooled models,
RAVDESS own UA 42.7 in corpus order against 51.5 over three random orders; CASIA 31.2
against 37.1). The headline online prediction ("predicted", "metrics", hence "pooled" and
"corpus_scores") therefore streams each test speaker's utterances in a random order seeded
by the fold's training seed (`keras_dyconv.normalization.stream_order`), what a device
hearing mixed emotions gets; the corpus order is kept as "predicted_corpus_order" /
"metrics_corpus_order". results.json says so in "online_order"
(`keras_dyconv.results.ONLINE_ORDER`); runs written before it scored the headline in
corpus order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from keras_dyconv.feeding import predict_utterances
from keras_dyconv.metrics import summarize
from keras_dyconv.normalization import FeatureSource, stream_order
from keras_dyconv.results import Prediction, Summary

if TYPE_CHECKING:
    import keras

    from edge_runtime.config import FrontendConfig
    from edge_runtime.windows import WindowPolicy
    from keras_dyconv.experiment_run import ExperimentRun
    from keras_dyconv.training import TrainResult

__all__ = ["predict_in_order", "score_test"]


def predict_in_order(
    model: keras.Model,
    sources: Sequence[FeatureSource],
    config: FrontendConfig,
    policy: WindowPolicy,
    speakers: Sequence[str],
    order: np.ndarray,
) -> np.ndarray:
    """Online utterance probabilities (`predict_utterances`, adapt "online") with the
    utterances heard in `order` (`stream_order`: position k streams utterance
    ``order[k]``): (n_utterances, C), row i that of ``sources[i]``."""
    probs = predict_utterances(
        model, [sources[k] for k in order], config, policy, speakers=[speakers[k] for k in order]
    )
    out = np.empty_like(probs)
    out[order] = probs
    return out


def score_test(
    run: ExperimentRun, result: TrainResult, test: Sequence[int], seed: int
) -> tuple[dict[str, Summary], list[Prediction]]:
    """Score the fitted model on the test utterances at `test`: the metrics and the
    predictions, as a fold record holds them.

    "metrics" and "predicted" (with "probabilities"): for normalization "stream", online
    with each test speaker's utterances in the random order of
    ``stream_order(speakers, np.random.default_rng(seed))``, `seed` the fold's training
    seed (results are in test order); also "_corpus_order" (online, in the order of
    `test`), "_independent" (each utterance a fresh stream) and "_speaker_norm" (each
    speaker's own statistics, transductive) metrics and predictions.
    """
    sources, y, speakers = run.part(test)
    stream = result.config.normalization == "stream"
    order = stream_order(speakers, np.random.default_rng(seed) if stream else None)
    probs = predict_in_order(result.model, sources, result.config, run.policy, speakers, order)
    # Class index per test utterance, by the suffix of the record keys that hold them.
    predicted = {"": probs.argmax(axis=1)}
    if stream:
        # Online in corpus order (emotion-blocked in CASIA and RAVDESS), without adaptation
        # (each utterance a fresh stream: what one file on a new device gets) and the
        # transductive reference (each test speaker's statistics over all their audio, or
        # their neutral audio for a "neutral" model, which a device cannot know in advance).
        counted = run.speaker_reference(test)[0]
        for adapt, key in (
            ("online", "_corpus_order"),
            ("independent", "_independent"),
            ("speaker", "_speaker_norm"),
        ):
            predicted[key] = predict_utterances(
                result.model,
                sources,
                result.config,
                run.policy,
                speakers=speakers,
                adapt=adapt,
                counted=counted,
            ).argmax(axis=1)
    metrics = {f"metrics{key}": summarize(y, pred, run.labels) for key, pred in predicted.items()}
    predictions: list[Prediction] = [
        {  # type: ignore[typeddict-item]
            "path": str(run.utts[i].path),
            "label": run.labels[run.y[i]],
            "predicted": run.labels[predicted[""][k]],
            "probabilities": [round(float(v), 5) for v in probs[k]],
            **{f"predicted{key}": run.labels[p[k]] for key, p in predicted.items() if key},
            **(
                {
                    "corpus": run.utts[i].extra["corpus"],
                    "original_label": run.utts[i].extra["original_label"],
                }
                if run.multi
                else {}
            ),
        }
        for k, i in enumerate(test)
    ]
    return metrics, predictions
