"""Training on several corpora: the masked loss, leave-one-corpus-out, target-corpus folds
with extra training corpora, and what results.json and the model record of it."""

from __future__ import annotations

import csv
import dataclasses
import json
import math

import keras
import numpy as np
import pytest
from click.testing import CliRunner
from tiny_training import POLICY
from tiny_training import TINY as TRAINING_TINY

from edge_runtime.config import FrontendConfig
from keras_dyconv import training
from keras_dyconv.cli import train
from keras_dyconv.corpora import Utterance, load_manifest
from keras_dyconv.experiment import ProtocolSpec, run_experiment
from keras_dyconv.feeding import WindowSequence, corpus_weights
from keras_dyconv.labels import original_label
from keras_dyconv.losses import MaskedCrossEntropy, masked_accuracy, with_mask
from keras_dyconv.modelio import load_model
from keras_dyconv.multicorpus import multi_corpus
from keras_dyconv.protocols import (
    Fold,
    LeakageError,
    add_training,
    assert_no_leak,
    leave_one_corpus_out,
    namespace_speakers,
)
from keras_dyconv.synthetic import write_corpus
from keras_dyconv.training import train_model

# tiny_training's tiny recipe and window policy, one epoch shorter.
TINY = TRAINING_TINY.with_overrides(epochs=2)


def spy_losses(monkeypatch) -> list:
    """The loss of every model `keras_dyconv.training` compiles from now on (in order)."""
    losses = []
    compiled = training._compiled_model

    def spy(*args, **kwargs):
        model = compiled(*args, **kwargs)
        losses.append(model.loss)
        return model

    monkeypatch.setattr(training, "_compiled_model", spy)
    return losses


def spy_sequences(monkeypatch) -> list:
    """Every `WindowSequence` that `keras_dyconv.training` makes from now on (in order)."""
    sequences = []

    class Spy(training.WindowSequence):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            sequences.append(self)

    monkeypatch.setattr(training, "WindowSequence", Spy)
    return sequences


def _loss(y_true, y_pred, **kwargs) -> np.ndarray:
    loss = MaskedCrossEntropy(reduction=None, **kwargs)
    return keras.ops.convert_to_numpy(
        loss(keras.ops.convert_to_tensor(y_true), keras.ops.convert_to_tensor(y_pred))
    )


@pytest.mark.backends
def test_masked_cross_entropy_renormalises_over_the_corpus_classes():
    p = np.array([[0.5, 0.3, 0.2], [0.1, 0.6, 0.3]], np.float32)
    onehot = np.array([[1, 0, 0], [0, 0, 1]], np.float32)
    masks = np.array([[1, 0, 1], [0, 1, 1]], np.float32)
    # -log(p_y / sum_{c in C} p_c), by hand: 0.5 / (0.5 + 0.2) and 0.3 / (0.6 + 0.3).
    expected = [-math.log(0.5 / 0.7), -math.log(0.3 / 0.9)]
    np.testing.assert_allclose(_loss(with_mask(onehot, masks), p), expected, rtol=1e-5)
    # An all-ones mask is the plain categorical cross-entropy.
    full = _loss(with_mask(onehot, np.ones_like(masks)), p)
    np.testing.assert_allclose(full, [-math.log(0.5), -math.log(0.3)], rtol=1e-5)
    # Label smoothing spreads over the corpus's 2 classes only: targets (0.9, 0, 0.1).
    smoothed = _loss(with_mask(onehot[:1], masks[:1]), p[:1], label_smoothing=0.2)
    by_hand = -(0.9 * math.log(0.5 / 0.7) + 0.1 * math.log(0.2 / 0.7))
    np.testing.assert_allclose(smoothed, [by_hand], rtol=1e-5)
    # The accuracy takes the arg-max over the corpus's classes: sample 2 predicts class 1,
    # right for its corpus; sample 1's best allowed class is 0 (0.3 at class 1 is masked).
    acc = masked_accuracy(keras.ops.convert_to_tensor(with_mask(onehot, masks)), p)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(acc), [1.0, 0.0])


@pytest.mark.backends
def test_a_class_the_corpus_lacks_is_not_taught_as_a_negative():
    """With a softmax output, the masked loss does not depend on a masked class's logit
    (so its gradient there is 0); the plain cross-entropy pushes that logit down."""
    y_true = with_mask(np.array([[1, 0, 0]]), np.array([[1, 1, 0]]))
    losses = []
    for z2 in (-3.0, 0.0, 4.0):
        p = keras.ops.softmax(keras.ops.convert_to_tensor([[1.0, 0.5, z2]]))
        losses.append(float(_loss(y_true, p)[0]))
    np.testing.assert_allclose(losses, losses[0], rtol=1e-5)
    np.testing.assert_allclose(losses[0], -math.log(math.exp(1) / (math.exp(1) + math.exp(0.5))))
    with pytest.raises(ValueError, match="shape"):
        with_mask(np.ones((2, 3)), np.ones((2, 4)))


def _utts(corpus: str, speakers: list[str], n: int = 2) -> list[Utterance]:
    return [
        Utterance(f"/{corpus}/{s}_{k}.wav", "anger", s, extra={"corpus": corpus})
        for s in speakers
        for k in range(n)
    ]


def test_leave_one_corpus_out_folds_and_leak_checks():
    utts = [
        *namespace_speakers(_utts("emodb", ["03", "08"]), "emodb"),
        *namespace_speakers(_utts("ravdess", ["03", "04", "05"]), "ravdess"),
    ]
    assert utts[0].speaker == "emodb/03" and utts[4].speaker == "ravdess/03"
    folds = list(leave_one_corpus_out(utts))
    assert [f.name for f in folds] == ["corpus-emodb", "corpus-ravdess"]
    assert folds[0].test.tolist() == [0, 1, 2, 3] and folds[0].train.tolist() == [4, 5, 6, 7, 8, 9]
    assert folds[0].val.size == 0 and folds[0].group == "corpus"
    for fold in folds:
        assert_no_leak(fold, utts)
    # Validation speakers come from the training corpora only.
    (first, second) = leave_one_corpus_out(utts, val_speakers=1)
    assert {utts[i].extra["corpus"] for i in first.val} == {"ravdess"} and first.val.size == 2
    assert {utts[i].extra["corpus"] for i in second.val} == {"emodb"}
    # A test corpus in training is a leak even when its speakers are renamed.
    renamed = [*utts[:4], *[u for u in utts[4:]]]
    renamed[5] = Utterance("/x.wav", "anger", "other", extra={"corpus": "emodb"})
    with pytest.raises(LeakageError, match="test corpora"):
        assert_no_leak(folds[0], renamed)
    with pytest.raises(ValueError, match="namespace"):
        list(leave_one_corpus_out([*_utts("emodb", ["03"]), *_utts("ravdess", ["03"])]))
    with pytest.raises(ValueError, match="two corpora"):
        list(leave_one_corpus_out(_utts("emodb", ["03", "08"])))


# ------------------------------------------------------------------ training on two corpora
EMODB_EMOTIONS = ("anger", "boredom", "neutral", "sadness")
RAVDESS_EMOTIONS = ("anger", "happiness", "neutral")


def _own_corpus(root, corpus: str, emotions, n_speakers: int, seed: int):
    """A synthetic corpus as a manifest in `corpus`'s own label names, with a corpus column."""
    manifest = write_corpus(
        root / corpus,
        n_speakers=n_speakers,
        utterances_per_emotion_per_speaker=2,
        emotions=emotions,
        duration=(1.0, 1.4),
        seed=seed,
    )
    with open(manifest, newline="") as f:
        rows = list(csv.DictReader(f))
    with open(manifest, "w", newline="") as f:
        writer = csv.DictWriter(f, [*rows[0], "corpus"])
        writer.writeheader()
        for row in rows:
            writer.writerow(
                {**row, "label": original_label(corpus, row["label"]), "corpus": corpus}
            )
    return manifest


@pytest.fixture(scope="module")
def two_corpora(tmp_path_factory):
    root = tmp_path_factory.mktemp("two-corpora")
    return {
        "emodb": _own_corpus(root, "emodb", EMODB_EMOTIONS, 4, seed=1),
        "ravdess": _own_corpus(root, "ravdess", RAVDESS_EMOTIONS, 3, seed=2),
    }


def test_corpus_weights_balance_corpora_and_classes():
    corpora = ["t", "t", "t", "e", "e", "x"]
    # Shares: t 1, e and x 0.25 each; within a corpus, each class an equal part; mean 1.
    weights = corpus_weights(corpora, [0, 0, 1, 0, 1, 0], "t", extra_weight=0.5)
    np.testing.assert_allclose(weights, [1, 1, 2, 0.5, 0.5, 1])
    # No target (leave-one-corpus-out): every corpus weighs the same.
    np.testing.assert_allclose(
        corpus_weights(["a", "a", "b"], [0, 0, 1], None, 0.5), [0.75, 0.75, 1.5]
    )


def test_window_sequence_carries_masks_and_weights():
    feats = [np.zeros((50, 4), np.float32) for _ in range(3)]
    masks = np.array([[1, 1, 0], [1, 1, 0], [0, 1, 1]], bool)
    config = FrontendConfig(n_mels=4, normalization="none")
    data = WindowSequence(
        feats, [0, 1, 2], 3, config, 20, 3, sample_weights=np.array([1.0, 2.0, 3.0]), masks=masks
    )
    x, y, w = data[0]
    assert x.shape == (3, 20, 4) and y.shape == (3, 6)
    order = data.order
    np.testing.assert_array_equal(y[:, 3:], masks[order])
    np.testing.assert_array_equal(y[:, :3].argmax(axis=1), order)
    np.testing.assert_allclose(w, np.array([1.0, 2.0, 3.0])[order])
    with pytest.raises(ValueError, match="masks"):
        WindowSequence(feats, [0, 1, 2], 3, config, 20, 3, masks=masks[:2])


def test_extra_corpora_train_every_fold_never_validate_or_test(two_corpora, tmp_path, monkeypatch):
    losses = spy_losses(monkeypatch)
    corpora = {name: load_manifest(path) for name, path in two_corpora.items()}
    utts, extra = multi_corpus(corpora, "emodb")
    assert {u.speaker.split("/")[0] for u in extra} == {"ravdess"} and len(extra) == 18
    assert utts[0].speaker == corpora["emodb"][0].speaker and utts[0].label in EMODB_EMOTIONS
    out = tmp_path / "run"
    results = run_experiment(
        utts,
        out,
        FrontendConfig(top_db=None),
        TINY,
        ProtocolSpec("loso", val_speakers=1),
        policy=POLICY,
        max_folds=1,
        save_models=True,
        verbose=0,
        log=lambda _: None,
        extra=extra,
    )
    assert all(isinstance(loss, MaskedCrossEntropy) for loss in losses) and len(losses) == 1
    on_disk = json.loads((out / "results.json").read_text())
    assert on_disk["labels"] == ["anger", "boredom", "happiness", "neutral", "sadness"]
    assert on_disk["target_corpus"] == "emodb"
    assert on_disk["corpora"] == {
        "emodb": {"role": "target", "utterances": 32, "speakers": 4},
        "ravdess": {"role": "extra training", "utterances": 18, "speakers": 3},
    }
    assert set(on_disk["label_mapping"]["corpora"]) == {"emodb", "ravdess"}
    assert on_disk["label_mapping"]["corpora"]["ravdess"]["mapping"]["angry"] == "anger"
    emodb_speakers = {u.speaker for u in utts}
    for fold in on_disk["folds"]:
        # 3 EmoDB speakers minus 1 for validation train, plus every RAVDESS utterance.
        assert fold["n_train"] == 2 * 8 + 18 and fold["n_val"] == 8
        assert set(fold["test_speakers"]) | set(fold["val_speakers"]) <= emodb_speakers
        assert {p["corpus"] for p in fold["predictions"]} == {"emodb"}
        assert all(p["original_label"] == p["label"] for p in fold["predictions"])
        assert all(len(p["probabilities"]) == 5 for p in fold["predictions"])
    # Scored in EmoDB's own label set (its classes the model has) and in the common one.
    (scores,) = on_disk["corpus_scores"].values()
    assert scores["own"]["labels"] == ["anger", "boredom", "happiness", "neutral", "sadness"]
    assert scores["common"]["n"] == scores["own"]["n"] == on_disk["pooled"]["n"] == 8
    assert results["corpus_scores"] == on_disk["corpus_scores"]
    # The model speaks the common labels and carries the mapping.
    model, metadata = load_model(out / "folds" / on_disk["folds"][0]["fold"] / "model.keras")
    assert list(metadata.labels) == on_disk["labels"] and model.output_shape == (None, 5)
    assert metadata.info["label_mapping"] == on_disk["label_mapping"]
    assert metadata.info["target_corpus"] == "emodb"


def test_add_training_refuses_extra_utterances_in_validation_or_test():
    fold = Fold("f", np.array([0, 1]), np.array([2]), np.array([3]), True)
    assert add_training(fold, [5, 4]).train.tolist() == [0, 1, 4, 5]
    for bad in ([2], [3], [1]):
        with pytest.raises(LeakageError, match="extra training"):
            add_training(fold, bad)


def test_dyser_train_with_two_corpora_and_loco(two_corpora, tmp_path):
    runner = CliRunner()
    pairs = ["--corpus", "manifest", "--data", str(two_corpora["emodb"])]
    pairs += ["--corpus", "manifest", "--data", str(two_corpora["ravdess"])]
    tiny = ["--recipe", "fast", "--epochs", "1", "--window", "1.0", "--max-folds", "1"]
    tiny += ["--model", '{"conv_filters": [4], "lstm_units": 8, "attention_units": 8}', "--quiet"]
    out = tmp_path / "target-ravdess"
    result = runner.invoke(
        train, [*pairs, "--target", "ravdess", "--val-speakers", "1", "--out", str(out), *tiny]
    )
    assert result.exit_code == 0, result.output
    run = json.loads((out / "results.json").read_text())
    assert run["target_corpus"] == "ravdess" and run["corpora"]["emodb"]["role"] == "extra training"
    (fold,) = run["folds"]
    assert fold["n_train"] == 6 + 32 and list(run["corpus_scores"]) == ["ravdess"]
    # RAVDESS scored in its own names.
    assert run["corpus_scores"]["ravdess"]["own"]["labels"] == ["angry", "happy", "neutral", "sad"]

    out = tmp_path / "loco"
    result = runner.invoke(train, [*pairs, "--protocol", "loco", "--out", str(out), *tiny])
    assert result.exit_code == 0, result.output
    run = json.loads((out / "results.json").read_text())
    # The classes both corpora have; tested on EmoDB, trained on RAVDESS ("auto"
    # validation: 1 of its 3 speakers).
    assert run["labels"] == ["anger", "neutral"] and run["target_corpus"] is None
    (fold,) = run["folds"]
    assert fold["fold"] == "corpus-emodb" and fold["n_train"] == 8 and fold["n_val"] == 4
    assert run["corpora"]["ravdess"]["role"] == "loco"

    for bad_args, message in [
        ([*pairs[:4], "--data", str(two_corpora["ravdess"])], "in pairs"),
        ([*pairs, "--target", "casia"], "'casia' is not one of"),
        ([*pairs[:4], *pairs[:4]], "given twice"),
        ([*pairs[:4], "--target", "emodb"], "needs several corpora"),
        (
            [*pairs[:4], "--corpus", "folders", "--data", str(two_corpora["emodb"].parent)],
            "'corpus' column",
        ),
    ]:
        bad = runner.invoke(train, [*bad_args, "--out", str(tmp_path / "bad")])
        assert bad.exit_code == 2 and message in bad.output, (bad_args, bad.output)


def test_corpus_statistics_normalise_each_corpus_by_its_own(monkeypatch):
    rng = np.random.default_rng(0)
    # The extra corpus "x" is recorded 5 units louder in every band.
    feats = [
        rng.normal(size=(120, 16)).astype(np.float32) + (5.0 if k >= 6 else 0.0) for k in range(12)
    ]
    labels, corpora = np.arange(12) % 2, ["t"] * 6 + ["x"] * 6
    sequences = spy_sequences(monkeypatch)
    recipe = dataclasses.replace(TINY, epochs=1, corpus_statistics=True)
    args = (feats, labels, ["a", "b"], FrontendConfig(n_mels=16), recipe, POLICY)
    result = train_model(*args, verbose=0, train_corpora=corpora, target_corpus="t")
    # The model keeps the target's statistics; each corpus trained with its own.
    np.testing.assert_allclose(result.config.mean, np.concatenate(feats[:6]).mean(0), atol=1e-4)
    (mean_t, _), (mean_x, _) = sequences[0].statistics[0][0], sequences[0].statistics[6][0]
    np.testing.assert_allclose(mean_t, result.config.mean, atol=1e-6)
    np.testing.assert_allclose(mean_x, np.concatenate(feats[6:]).mean(0), atol=1e-4)
    with pytest.raises(ValueError, match="target corpus"):
        train_model(*args, verbose=0, train_corpora=corpora)
    with pytest.raises(ValueError, match='needs normalization "dataset"'):
        dataclasses.replace(recipe, normalization="gain")


def test_protocol_all_with_an_extra_corpus(two_corpora, tmp_path):
    corpora = {name: load_manifest(path) for name, path in two_corpora.items()}
    utts, extra = multi_corpus(corpora, "ravdess")
    out = tmp_path / "all"
    results = run_experiment(
        utts,
        out,
        FrontendConfig(top_db=None),
        dataclasses.replace(TINY, epochs=1),
        ProtocolSpec("all", val_speakers=1),
        policy=POLICY,
        verbose=0,
        log=lambda _: None,
        extra=extra,
    )
    # Validation: one RAVDESS speaker; training: the other two and every EmoDB utterance.
    assert len(results["val_speakers"]) == 1 and "/" not in results["val_speakers"][0]
    assert results["corpora"]["emodb"]["role"] == "extra training"
    with pytest.raises(ValueError, match="not of the target corpus 'emodb'"):
        run_experiment(
            utts, out, FrontendConfig(), TINY, ProtocolSpec(), extra=extra, target="emodb"
        )
    with pytest.raises(ValueError, match="multi_corpus first"):
        run_experiment(corpora["emodb"], out, FrontendConfig(), TINY, ProtocolSpec(), extra=extra)
    _, metadata = load_model(out / "model.keras")
    assert (
        list(metadata.labels)
        == results["labels"]
        == json.loads((out / "results.json").read_text())["labels"]
    )
    assert metadata.info["label_mapping"]["corpora"]["ravdess"]["mapping"]["happy"] == "happiness"
