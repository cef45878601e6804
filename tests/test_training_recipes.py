"""Recipes and their levers: seed ensembles, online and per-speaker normalisation, checkpoint
averaging, refit, epoch snapshots, distillation, and the lever table in the docs."""

from __future__ import annotations

import dataclasses
import itertools
import json
from pathlib import Path

import keras
import numpy as np
import pytest
from tiny_training import POLICY, TINY, synthetic_features

from edge_runtime.config import STREAM_PRIOR_FRAMES, FrontendConfig
from edge_runtime.normalization import (
    StreamStatistics,
    dataset_statistics,
    normalize,
    with_dataset_stats,
    within_speaker_statistics,
)
from keras_dyconv.callbacks import EpochSnapshots
from keras_dyconv.feeding import WindowSequence
from keras_dyconv.normalization import normalize_utterances, online_statistics, stream_order
from keras_dyconv.recipes import MODEL_RECIPE_ARGUMENTS, RECIPES, Recipe, field_docs, get_recipe
from keras_dyconv.results import (
    CORPUS_ORDER,
    ONLINE_ORDER,
    corpus_scores,
    merge_results,
    online_order,
    online_order_text,
    score_folds,
)
from keras_dyconv.training import train_model


def test_ensemble_scores_the_mean_probabilities_of_the_seeds():
    labels = ["a", "b"]

    def record(seed, probs):
        return {
            "fold": "f1",
            "seed": seed,
            "predictions": [
                {"label": t, "predicted": labels[int(np.argmax(p))], "probabilities": p}
                for t, p in zip(["a", "b", "b"], probs, strict=True)
            ],
        }

    # Seed 0 gets utterance 2 wrong, seed 1 utterance 1; their mean gets all three right.
    records = [
        record(0, [[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]),
        record(1, [[0.6, 0.4], [0.55, 0.45], [0.1, 0.9]]),
    ]
    scores = score_folds(records, labels)
    assert scores["pooled"]["wa"] == pytest.approx(4 / 6)
    assert scores["ensemble"]["pooled"]["wa"] == 1.0


def test_corpus_scores_score_each_corpus_by_the_seed_ensemble_too():
    labels = ["anger", "calm", "neutral", "sadness"]  # EmoDB lacks calm

    def record(seed, probs):
        return {
            "fold": "f1",
            "seed": seed,
            "predictions": [
                {
                    "path": f"emodb/{t}/{i}.wav",
                    "corpus": "emodb",
                    "label": t,
                    "original_label": t,
                    "predicted": labels[int(np.argmax(p))],
                    "probabilities": p,
                }
                for i, (t, p) in enumerate(zip(["anger", "neutral", "sadness"], probs, strict=True))
            ],
        }

    # Seed 0 says sadness for the neutral utterance, seed 1 neutral for the anger one (and
    # calm, not EmoDB's, ties neutral: "calm" in the common labels, "neutral" in EmoDB's);
    # their mean gets all three right in both.
    seed0 = record(0, [[0.9, 0, 0.1, 0], [0, 0, 0.4, 0.6], [0, 0, 0.2, 0.8]])
    seed1 = record(1, [[0.4, 0, 0.6, 0], [0, 0.5, 0.5, 0], [0, 0, 0.3, 0.7]])
    scores = corpus_scores([seed0, seed1], labels)["emodb"]
    assert scores["own"]["n"] == 6 and scores["own"]["ua"] == pytest.approx(4 / 6)
    ensemble = scores["ensemble"]
    assert ensemble["own"]["n"] == 3 and ensemble["own"]["labels"] == [
        "anger",
        "neutral",
        "sadness",
    ]
    assert ensemble["own"]["ua"] == ensemble["common"]["wa"] == 1.0
    assert ensemble["own"]["ci95"]["ua"] == [1.0, 1.0]
    assert "ensemble" not in corpus_scores([seed0], labels)["emodb"]  # one seed

    # Merging the seeds' runs scores their ensemble.
    def part(record):
        return {
            "protocol": {"name": "loso", "speaker_independent": True},
            "labels": labels,
            "timings": {"total_s": 1.0},
            "folds": [record],
            "corpus_scores": corpus_scores([record], labels),
        }

    merged = merge_results([part(seed0), part(seed1)])
    assert merged["corpus_scores"]["emodb"]["ensemble"] == ensemble
    # Seeds whose fold tested other utterances have no ensemble.
    seed1["predictions"].reverse()
    with pytest.raises(ValueError, match="fold 'f1': its seeds tested other utterances"):
        corpus_scores([seed0, seed1], labels)


def test_a_stream_run_scores_and_names_its_online_orders():
    labels = ["a", "b"]
    predictions = [  # the headline right on all three, the corpus order on one
        {"label": t, "predicted": t, "predicted_corpus_order": c, "probabilities": [0.5, 0.5]}
        for t, c in (("a", "a"), ("b", "a"), ("b", "a"))
    ]
    scores = score_folds([{"fold": "f1", "seed": 0, "predictions": predictions}], labels)
    assert scores["pooled"]["wa"] == 1.0
    assert scores["pooled_corpus_order"]["wa"] == pytest.approx(1 / 3)
    assert "pooled_corpus_order_ci95" in scores and "pooled_independent" not in scores
    stream = {"recipe": {"normalization": "stream"}}
    assert online_order(stream) == CORPUS_ORDER  # written before the order was recorded
    assert online_order({**stream, "online_order": ONLINE_ORDER}) == ONLINE_ORDER
    assert online_order({"recipe": {"normalization": "dataset"}}) is None  # no stream
    assert online_order_text(CORPUS_ORDER) == "in corpus order"
    with pytest.raises(ValueError, match="unknown online order 'backwards'"):
        online_order_text("backwards")


def test_normalize_utterances_online_and_per_speaker():
    feats, _ = synthetic_features(6)
    feats = [f + (10.0 if i % 2 else -10.0) for i, f in enumerate(feats)]  # two loud/quiet
    speakers = ["s1" if i % 2 else "s2" for i in range(6)]
    config = with_dataset_stats(FrontendConfig(n_mels=16), feats, "stream")
    online = normalize_utterances(feats, config, speakers)
    # The first utterance of each speaker sees the training prior plus itself ...
    first = normalize(feats[0].copy(), config, StreamStatistics(config))
    np.testing.assert_allclose(online[0], first, atol=1e-5)
    # ... the later ones the running statistics of that speaker only.
    s2 = StreamStatistics(config)
    for i in (0, 2, 4):
        expected = normalize(feats[i].copy(), config, s2)
    np.testing.assert_allclose(online[4], expected, atol=1e-5)
    # Without adaptation every utterance is a fresh stream (and speakers are not needed).
    cold = normalize_utterances(feats, config, adapt="independent")
    np.testing.assert_allclose(cold[4], normalize(feats[4].copy(), config), atol=1e-5)
    full = normalize_utterances(feats, config, speakers, adapt="speaker")
    s1 = np.concatenate([full[i] for i in (1, 3, 5)])
    np.testing.assert_allclose(s1.mean(axis=0), 0, atol=1e-4)
    np.testing.assert_allclose(s1.std(axis=0), 1, atol=1e-4)
    with pytest.raises(ValueError, match="speaker of every utterance"):
        normalize_utterances(feats, config)
    with pytest.raises(ValueError, match="adapt must be one of"):
        normalize_utterances(feats, config, speakers, adapt="oracle")


def test_stream_order_shuffles_each_speaker_within_their_positions_reproducibly():
    speakers = ["a", "b", "a", "a", "c", "b", "a", "b", "a"]
    order = stream_order(speakers, np.random.default_rng(3))
    assert sorted(order.tolist()) == list(range(len(speakers)))
    assert [speakers[i] for i in order] == speakers  # every speaker keeps their positions
    for who in "abc":  # a permutation of each speaker's own utterances
        mine = [i for i, s in enumerate(speakers) if s == who]
        assert sorted(order[mine].tolist()) == mine
    again = stream_order(speakers, np.random.default_rng(3))
    np.testing.assert_array_equal(order, again)  # the seed fixes it
    assert not np.array_equal(order, np.arange(9))  # shuffled
    other = stream_order(speakers, np.random.default_rng(4))
    assert not np.array_equal(order, other)  # another seed, another order
    np.testing.assert_array_equal(stream_order(speakers, None), np.arange(9))  # as given
    assert stream_order([], np.random.default_rng(0)).tolist() == []


def test_online_statistics_are_running_statistics_of_the_speakers_own_stream():
    feats, _ = synthetic_features(8)
    feats = [f + (10.0 if i % 2 else -10.0) for i, f in enumerate(feats)]  # two loud/quiet
    speakers = ["s1" if i % 2 else "s2" for i in range(8)]
    config = with_dataset_stats(FrontendConfig(n_mels=16), feats, "stream")
    draws = online_statistics(feats, speakers, config, orderings=6, seed=3)
    assert [len(d) for d in draws] == [7] * 8
    # The first draw is a fresh stream: the training prior plus the utterance alone.
    fresh = StreamStatistics(config)
    fresh.update(feats[4])
    np.testing.assert_allclose(draws[4][0][0], fresh.mean, rtol=1e-6)
    np.testing.assert_allclose(draws[4][0][1], fresh.std, rtol=1e-6)
    # Every other draw is the stream after some of the speaker's utterances, this one last:
    # one of the running statistics of the orders that end with it.
    mine = [0, 2, 4, 6]
    possible = []
    for r in range(1, 5):
        for order in itertools.permutations([i for i in mine if i != 4], r - 1):
            stream = StreamStatistics(config)
            for i in (*order, 4):
                stream.update(feats[i])
            possible.append(stream.mean)
    for mean, std in draws[4][1:]:
        assert min(np.abs(mean - p).max() for p in possible) < 1e-4
        assert mean.dtype == np.float32 and std.dtype == np.float32
    # The orders differ (random points of the stream), and another seed draws others.
    assert len({round(float(m[0]), 4) for m, _ in draws[4]}) > 2
    other = online_statistics(feats, speakers, config, orderings=6, seed=4)
    assert any(not np.allclose(a[0], b[0]) for a, b in zip(draws[4][1:], other[4][1:], strict=True))
    with pytest.raises(ValueError, match="speakers"):
        online_statistics(feats, speakers[:3], config)
    # WindowSequence normalises each window with one of its utterance's draws, at random.
    ones, zeros = np.ones(16, np.float32), np.zeros(16, np.float32)
    data = WindowSequence(
        [np.full((40, 16), 3.0, np.float32)],
        [0],
        2,
        config,
        frames=20,
        batch_size=1,
        statistics=[[(zeros, ones), (ones, ones)]],
    )
    seen = {float(data[0][0][0, 0, 0]) for _ in range(20)}
    assert seen == {3.0, 2.0}


def fit_with_validation(feats: list[np.ndarray], labels: np.ndarray, recipe: Recipe):
    """`train_model` on the first 30 utterances, selecting on the rest."""
    return train_model(
        feats[:30],
        labels[:30],
        ["low", "high"],
        FrontendConfig(n_mels=16),
        recipe,
        POLICY,
        val_sources=feats[30:],
        val_labels=labels[30:],
        verbose=0,
    )


def test_checkpoint_averaging_keeps_the_best_epochs():
    feats, labels = synthetic_features(40)
    recipe = TINY.with_overrides(epochs=5, average_checkpoints=3)
    result = fit_with_validation(feats, labels, recipe)
    val_ua = result.history["val_ua"]
    assert len(result.averaged_epochs) == 3 and result.averaged_epochs[0] == result.best_epoch
    assert min(val_ua[e] for e in result.averaged_epochs) >= sorted(val_ua)[-3]
    with pytest.raises(ValueError, match="average_checkpoints"):
        TINY.with_overrides(average_checkpoints=0)


def test_refit_trains_again_on_training_and_validation_speakers():
    feats, labels = synthetic_features(40)
    recipe = TINY.with_overrides(epochs=4, average_checkpoints=2, refit=True)
    result = fit_with_validation(feats, labels, recipe)
    # The validation run chose the epochs; the refit ran up to the last of them ...
    assert len(result.history["val_ua"]) == result.epochs_run == 4
    assert result.refit_epochs == max(result.averaged_epochs) + 1
    # ... on all 40 utterances: its normalisation statistics are those of train + val.
    mean, _ = dataset_statistics(feats)
    np.testing.assert_allclose(result.config.mean, mean, rtol=1e-5)
    plain = fit_with_validation(feats, labels, TINY)
    assert plain.refit_epochs == 0 and not np.allclose(plain.config.mean, mean, rtol=1e-5)


def test_epoch_snapshots_average_the_chosen_epochs():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.compile("sgd", "mse")
    every: list[list[np.ndarray]] = []
    record = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: every.append(model.get_weights())
    )
    snapshots = EpochSnapshots([0, 2])
    x = np.random.default_rng(0).normal(size=(16, 4)).astype(np.float32)
    model.fit(x, x[:, :2] * 3, epochs=4, verbose=0, callbacks=[snapshots, record])
    snapshots.restore_mean()
    for got, first, third in zip(model.get_weights(), every[0], every[2], strict=True):
        np.testing.assert_allclose(got, (first + third) / 2, rtol=1e-6)
    assert not np.allclose(every[0][0], every[2][0])  # the epochs really differ


def test_distillation_trains_teachers_and_soft_targets(monkeypatch):
    feats, labels = synthetic_features(24)
    config = with_dataset_stats(FrontendConfig(n_mels=16), feats)
    teacher = keras.Sequential([keras.Input((100, 16)), keras.layers.GlobalAveragePooling1D()])
    teacher.add(keras.layers.Dense(2, activation="softmax"))
    seq = WindowSequence(feats, labels, 2, config, 100, 8, teachers=[teacher, teacher])
    x, y = seq[0]
    expected = 0.5 * np.eye(2)[labels[seq.order[:8]]] + 0.5 * np.asarray(teacher(x))
    np.testing.assert_allclose(y, expected, atol=1e-5)
    seeds = []
    original = train_model

    def spy(*args, **kwargs):
        seeds.append((kwargs.get("seed"), args[4].distill))
        return original(*args, **kwargs)

    monkeypatch.setattr("keras_dyconv.training.train_model", spy)
    result = spy(
        feats[:20],
        labels[:20],
        ["low", "high"],
        FrontendConfig(n_mels=16),
        TINY.with_overrides(epochs=2, distill=2),
        POLICY,
        val_sources=feats[20:],
        val_labels=labels[20:],
        seed=3,
        verbose=0,
    )
    # Two teachers with their own seeds (not distilled themselves), then the student.
    assert seeds == [(3, 2), (4000, 0), (4001, 0)]
    assert result.epochs_run == 2 and result.model.output_shape == (None, 2)
    with pytest.raises(ValueError, match="distill"):
        TINY.with_overrides(distill=1)


def test_recipes():
    paper = get_recipe("paper")
    assert (paper.optimizer, paper.learning_rate, paper.batch_size, paper.iterations) == (
        "rmsprop",
        0.01,
        200,
        1000,
    )
    with pytest.raises(ValueError, match="default"):
        get_recipe("nope")
    # A recipe sets the architecture; the data, the temperature schedule and the fit set the rest.
    assert {"num_kernels", "conv_filters", "pool_size", "lstm_units"} <= set(MODEL_RECIPE_ARGUMENTS)
    for name in ("num_classes", "n_mels", "input_channels", "temperature", "frames"):
        with pytest.raises(ValueError, match=f"'{name}' cannot be set here"):
            Recipe(model={name: 1})
    for bad in [(-1.0, 1.0, 10), (30.0, 0.0, 10), (30.0, 1.0, -1)]:
        with pytest.raises(ValueError, match="temperature"):
            Recipe(temperature=bad)
    assert Recipe(**Recipe(temperature=(1.0, 1.0, 0)).to_dict()).temperature[2] == 0


def _literal(value) -> str:
    """A Python literal of a recipe value as the lever table shows it (strings and keys in
    double quotes, nested options objects as dicts)."""
    if dataclasses.is_dataclass(value):
        value = dataclasses.asdict(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)}: {_literal(v)}" for k, v in value.items()) + "}"
    if isinstance(value, tuple):
        return "(" + ", ".join(map(_literal, value)) + ("," if len(value) == 1 else "") + ")"
    return repr(value)


def lever_table() -> str:
    """The lever table of docs/tutorials/train.md, generated from the `Recipe` fields, their
    documentation (`field_docs`) and `RECIPES`."""
    docs = field_docs(Recipe)
    lines = [
        "| field | " + " | ".join(RECIPES) + " | meaning |",
        "|---|" + "---|" * len(RECIPES) + "---|",
    ]
    for f in dataclasses.fields(Recipe):
        values = [f"`{_literal(getattr(r, f.name))}`" for r in RECIPES.values()]
        lines.append(f"| `{f.name}` | " + " | ".join(values) + f" | {docs[f.name]} |")
    return "\n".join(lines)


def test_lever_table_is_generated_from_the_recipe():
    """Adding a lever means a `Recipe` field and its line in the docstring: the tutorial's
    table must be what they generate (paste the expected table below when this fails)."""
    text = (Path(__file__).parent.parent / "docs" / "tutorials" / "train.md").read_text()
    marker = "<!-- test: fields keras_dyconv.recipes.Recipe values=keras_dyconv.recipes.RECIPES -->"
    documented = text.split(marker + "\n", 1)[1].split("\n\n", 1)[0]
    assert documented == lever_table(), "\n" + lever_table()


@pytest.mark.parametrize("stream_training", ["speaker", "online"])
def test_a_stream_fit_keeps_the_within_speaker_prior_that_trains_and_deploys(stream_training):
    feats, labels = synthetic_features(12)
    speakers = [f"s{i % 3}" for i in range(12)]
    for i, f in enumerate(feats):
        f += 5.0 * (i % 3)  # speakers far apart: the pooled std is far wider
    recipe = TINY.with_overrides(epochs=1, normalization="stream", stream_training=stream_training)
    result = train_model(
        feats,
        labels,
        ["low", "high"],
        FrontendConfig(n_mels=16),
        recipe,
        POLICY,
        train_speakers=speakers,
        verbose=0,
    )
    config = result.config
    assert (config.mean, config.std) == within_speaker_statistics(feats, speakers)
    assert config.stream_prior_frames == STREAM_PRIOR_FRAMES
    assert max(config.std) < 0.5 * min(dataset_statistics(feats)[1])
    # The saved config round-trips with its prior: the device starts where training did.
    assert FrontendConfig.from_dict(config.to_dict()) == config
