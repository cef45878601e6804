"""Training, evaluation protocol guards, run folders and the dyser-train / dyser-eval CLIs."""

from __future__ import annotations

import dataclasses
import itertools
import json
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from click.testing import CliRunner

from edge_runtime.config import FrontendConfig, dataset_statistics, with_dataset_stats
from edge_runtime.features import StreamStatistics, normalize
from edge_runtime.windows import WindowPolicy
from keras_dyconv.callbacks import EpochSnapshots, dynamic_conv_layers
from keras_dyconv.checkpoints import (
    EPOCH_LOGS,
    EpochBackup,
    checkpoint_callbacks,
    read_epoch_logs,
)
from keras_dyconv.cli import evaluate, train
from keras_dyconv.corpora import load_manifest
from keras_dyconv.experiment import ProtocolSpec, run_experiment
from keras_dyconv.features import extract_corpus
from keras_dyconv.feeding import WindowSequence, predict_utterances
from keras_dyconv.folds import UnknownFoldError, chosen_folds, make_folds
from keras_dyconv.levers import chosen_recipe, lever_option, recipe_levers
from keras_dyconv.modelio import load_model
from keras_dyconv.normalization import normalize_utterances, online_statistics
from keras_dyconv.recipes import MODEL_RECIPE_ARGUMENTS, RECIPES, Recipe, field_docs, get_recipe
from keras_dyconv.results import merge_results, score_folds
from keras_dyconv.synthetic import write_corpus
from keras_dyconv.training import train_model

EMOTIONS = ("anger", "neutral", "sadness")
TINY = Recipe(
    name="tiny",
    epochs=3,
    batch_size=8,
    learning_rate=3e-3,
    temperature=(10.0, 1.0, 2),
    patience=None,
    min_epochs=0,
    model={"conv_filters": (4,), "lstm_units": 8, "attention_units": 8},
)
POLICY = WindowPolicy(frames=100, hop_frames=50)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synthetic")
    return write_corpus(
        root / "corpus",
        n_speakers=4,
        utterances_per_emotion_per_speaker=3,
        emotions=EMOTIONS,
        duration=(1.0, 1.6),
        seed=1,
    )


def synthetic_features(n: int, seed: int = 0) -> tuple[list[np.ndarray], np.ndarray]:
    """Class 1 has more energy in the upper mel bands: learnable in a few steps."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    feats = []
    for label in labels:
        f = rng.normal(size=(int(rng.integers(60, 160)), 16)).astype(np.float32)
        f[:, 8:] += 2.0 * label
        feats.append(f)
    return feats, labels


def test_window_sequence_batches_are_normalised_windows():
    feats, labels = synthetic_features(10)
    mean, std = dataset_statistics(feats)
    config = FrontendConfig(n_mels=16, normalization="dataset", mean=mean, std=std)
    seq = WindowSequence(
        feats,
        labels,
        2,
        config,
        frames=100,
        batch_size=4,
        seed=0,
        spec_augment=(1, 10, 1, 3),
        class_weights=np.array([1.0, 2.0]),
    )
    assert len(seq) == 3
    x, y, w = seq[0]
    assert x.shape == (4, 100, 16) and x.dtype == np.float32
    assert y.shape == (4, 2) and np.allclose(y.sum(axis=1), 1)
    np.testing.assert_array_equal(w, np.where(y[:, 1] == 1, 2.0, 1.0))
    x_all = np.concatenate([seq[i][0] for i in range(len(seq))])
    assert abs(float(x_all.mean())) < 0.3  # normalised with the dataset statistics
    mixed = WindowSequence(feats, labels, 2, config, 100, 4, seed=0, mixup_alpha=0.4)
    _, y_mix = mixed[0]
    assert np.allclose(y_mix.sum(axis=1), 1) and ((y_mix > 0) & (y_mix < 1)).any()


def test_train_model_learns_and_records_normalisation(tmp_path):
    feats, labels = synthetic_features(40)
    originals = [f.copy() for f in feats]
    result = train_model(
        feats[:30],
        labels[:30],
        ["low", "high"],
        FrontendConfig(n_mels=16),
        TINY.with_overrides(epochs=6),
        POLICY,
        val_sources=feats[30:35],
        val_labels=labels[30:35],
        seed=0,
        verbose=0,
    )
    assert result.config.normalization == "dataset" and len(result.config.mean) == 16
    assert result.history["loss"][-1] < result.history["loss"][0]
    assert len(result.history["val_ua"]) == result.epochs_run == 6
    probs = predict_utterances(result.model, feats[35:], result.config, POLICY)
    assert (probs.argmax(axis=1) == labels[35:]).mean() >= 0.8
    # Windows are normalised copies: the stored features are reused every epoch.
    for before, after in zip(originals, feats, strict=True):
        np.testing.assert_array_equal(before, after)


def test_train_model_refuses_a_window_shorter_than_the_time_pooling():
    feats, labels = synthetic_features(8)
    deep = TINY.with_overrides(model={**TINY.model, "conv_filters": (4, 4)})  # time 2 x 4
    with pytest.raises(ValueError, match=r"window \(6 frames\).*time pooling \(8x\)"):
        train_model(
            feats,
            labels,
            ["low", "high"],
            FrontendConfig(n_mels=16),
            deep,
            WindowPolicy(frames=6, hop_frames=6),
            seed=0,
            verbose=0,
        )


def test_resume_after_interruption(tmp_path):
    feats, labels = synthetic_features(20)

    class Interrupt(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise KeyboardInterrupt

    ckpt = tmp_path / "ckpt"
    recipe = TINY.with_overrides(epochs=4)
    kwargs = dict(val_sources=feats[16:], val_labels=labels[16:], seed=0, verbose=0)
    args = (feats[:16], labels[:16], ["a", "b"], FrontendConfig(n_mels=16), recipe, POLICY)
    original_fit = keras.Model.fit

    def fit_with_interrupt(self, *args, callbacks=(), **kwargs):
        return original_fit(self, *args, callbacks=[*callbacks, Interrupt()], **kwargs)

    keras.Model.fit = fit_with_interrupt
    try:
        with pytest.raises(KeyboardInterrupt):
            train_model(*args, checkpoint_dir=ckpt, **kwargs)
    finally:
        keras.Model.fit = original_fit
    assert sorted(p.name for p in ckpt.glob("epoch-*.weights.h5")) == [
        "epoch-001.weights.h5",
        "epoch-002.weights.h5",
    ]
    before = read_epoch_logs(ckpt / EPOCH_LOGS)["val_ua"]
    assert len(before) == 2
    resumed = train_model(*args, checkpoint_dir=ckpt, **kwargs)
    assert (ckpt / "epoch-004.weights.h5").exists()
    # The resumed fit reports and chooses among all four epochs, not the two it ran.
    assert resumed.epochs_run == 4 and len(resumed.history["loss"]) == 4
    assert resumed.history["val_ua"][:2] == pytest.approx(before)
    assert resumed.best_epoch == int(np.argmax(resumed.history["val_ua"]))


@pytest.mark.skipif(sys.platform == "win32", reason="no fcntl locks on Windows")
def test_two_fits_cannot_share_a_checkpoint_folder(tmp_path):
    import fcntl

    feats, labels = synthetic_features(8)
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    args = (feats, labels, ["a", "b"], FrontendConfig(n_mels=16), TINY, POLICY)
    with open(ckpt / ".lock", "w") as other_run:  # another process training in this folder
        fcntl.flock(other_run, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(RuntimeError, match=r"ckpt is in use by another training"):
            train_model(*args, checkpoint_dir=ckpt, seed=0, verbose=0)
    assert not list(ckpt.glob("epoch-*"))  # refused before writing anything
    # Once the other run has stopped (or died: the OS drops its lock), the fit goes ahead.
    train_model(*args, checkpoint_dir=ckpt, seed=0, verbose=0)
    assert list(ckpt.glob("epoch-*.weights.h5"))


def test_validation_selection_takes_back_the_epochs_before_a_resume(tmp_path):
    """The best epochs of a resumed fit may lie before the interruption: their weights come
    back from the epoch checkpoints."""
    from keras_dyconv.callbacks import ValidationSelection
    from keras_dyconv.checkpoints import EPOCH_WEIGHTS

    feats, labels = synthetic_features(4)
    model = keras.Sequential([keras.Input((100, 16)), keras.layers.Dense(2)])
    snapshots = []
    for epoch in (1, 2):
        model.set_weights([np.full_like(w, epoch) for w in model.get_weights()])
        model.save_weights(tmp_path / EPOCH_WEIGHTS.format(epoch=epoch))
        snapshots.append(model.get_weights())
    # The logs of 3 epochs (the 3rd not backed up: the fit resumes at epoch index 2).
    (tmp_path / EPOCH_LOGS).write_text("epoch,loss,val_ua\n0,1.0,0.75\n1,0.9,0.5\n2,0.8,0.9\n")
    current = [np.full_like(w, 7) for w in model.get_weights()]
    for average, expected in ((1, 1.0), (2, 1.5)):
        model.set_weights(current)
        selection = ValidationSelection(
            feats,
            labels,
            FrontendConfig(n_mels=16),
            POLICY,
            None,
            0,
            average=average,
            checkpoint_dir=tmp_path,
        )
        selection.set_model(model)
        selection.on_epoch_begin(2)  # Keras resumes at epoch index 2
        assert selection.history == [0.75, 0.5] and selection.kept_epochs == [0, 1][:average]
        assert all((w == 7).all() for w in model.get_weights())  # training goes on from here
        selection.restore_best()
        assert all(np.allclose(w, expected) for w in model.get_weights())
    (tmp_path / EPOCH_WEIGHTS.format(epoch=1)).unlink()
    selection = ValidationSelection(
        feats, labels, FrontendConfig(n_mels=16), POLICY, None, 0, checkpoint_dir=tmp_path
    )
    selection.set_model(model)
    with pytest.raises(FileNotFoundError, match=r"epoch-001\.weights\.h5.*validation epoch 1"):
        selection.on_epoch_begin(2)


def test_read_epoch_logs_keeps_the_last_fit_of_each_epoch(tmp_path):
    log = tmp_path / "history.csv"
    log.write_text(
        "epoch,loss,val_loss\n"
        "0,1.0,NA\n1,0.9,NA\n2,0.8,NA\n3,0.7,NA\n"  # an earlier, longer fit
        "0,2.0,NA\n1,1.5,NA\n"  # a new fit, interrupted after logging epoch 1
        "1,1.4,NA\n2,1.2,NA\n"  # ... resumed at epoch 1
    )
    assert read_epoch_logs(log) == {"loss": [2.0, 1.4, 1.2]}


def test_model_selection_never_sees_the_test_fold(corpus, tmp_path):
    """The trap of choosing the best epoch on the test fold: relabelling the test speaker's
    utterances must not change anything but the scores."""
    utts = load_manifest(corpus)
    config = FrontendConfig(top_db=None)
    spec = ProtocolSpec("loso", val_speakers=1)
    kwargs = dict(policy=POLICY, max_folds=1, verbose=0, log=lambda _: None)
    honest = run_experiment(utts, tmp_path / "a", config, TINY, spec, **kwargs)
    test_speaker = honest["folds"][0]["test_speakers"][0]
    rotate = {"anger": "neutral", "neutral": "sadness", "sadness": "anger"}
    relabelled = [
        type(u)(
            u.path, rotate[u.label] if u.speaker == test_speaker else u.label, u.speaker, u.gender
        )
        for u in utts
    ]
    other = run_experiment(relabelled, tmp_path / "b", config, TINY, spec, **kwargs)
    a, b = honest["folds"][0], other["folds"][0]
    assert a["best_epoch"] == b["best_epoch"]
    assert [p["predicted"] for p in a["predictions"]] == [p["predicted"] for p in b["predictions"]]
    assert a["test_speakers"] == b["test_speakers"] and test_speaker not in a["val_speakers"]


def test_run_folder_and_reloaded_model(corpus, tmp_path):
    utts = load_manifest(corpus)
    out = tmp_path / "run"
    results = run_experiment(
        utts,
        out,
        FrontendConfig(top_db=None),
        TINY,
        ProtocolSpec("loso", val_speakers=1),
        seeds=(0, 1),
        policy=POLICY,
        max_folds=2,
        save_models=True,
        verbose=0,
        log=lambda _: None,
    )
    on_disk = json.loads((out / "results.json").read_text())
    assert on_disk["protocol"]["speaker_independent"] is True
    assert len(on_disk["folds"]) == 4 and set(on_disk["per_seed"]) == {"0", "1"}
    # Two seeds: the seed ensemble (mean class probabilities per fold) is scored too.
    assert 0 <= on_disk["ensemble"]["pooled"]["wa"] <= 1
    assert "pooled_speaker_norm" not in on_disk  # only for normalization "stream"
    # One corpus: its own labels, none of the multi-corpus keys.
    assert on_disk["labels"] == list(EMOTIONS)
    assert not {"corpora", "label_mapping", "corpus_scores", "target_corpus"} & set(on_disk)
    assert "corpus" not in on_disk["folds"][0]["predictions"][0]
    lo, hi = on_disk["pooled_ci95"]["wa"]
    assert 0 <= lo <= on_disk["pooled"]["wa"] <= hi <= 1
    # Runs over disjoint fold subsets merge into the same pooled result.
    names = sorted({r["fold"] for r in on_disk["folds"]})
    parts = [
        {**on_disk, "folds": [r for r in on_disk["folds"] if r["fold"] == name]} for name in names
    ]
    merged = merge_results(parts)
    assert merged["pooled"] == on_disk["pooled"] and merged["per_seed"] == on_disk["per_seed"]
    # The first 2 of 4 folds ran (--max-folds): the run, and the merge of its parts, say so.
    partial = {"folds_run": names, "n_folds": 4, "only_folds": None, "max_folds": 2}
    assert on_disk["protocol"]["partial"] == partial
    assert merged["protocol"]["partial"] == {**partial, "max_folds": None}
    with pytest.raises(ValueError, match="overlap"):
        merge_results([on_disk, on_disk])
    # A run recorded before a recipe field existed merges with one that has its default ...
    older = {**parts[0], "recipe": {k: v for k, v in parts[0]["recipe"].items() if k != "distill"}}
    assert merge_results([older, *parts[1:]])["pooled"] == on_disk["pooled"]
    # ... but not with a run of a different recipe.
    changed = {**parts[0], "recipe": {**parts[0]["recipe"], "epochs": 99}}
    with pytest.raises(ValueError, match="recipe"):
        merge_results([changed, *parts[1:]])
    # The resolved architecture is recorded (a changed default cannot make it ambiguous).
    arch = on_disk["architecture"]
    assert arch["arguments"]["conv_filters"] == [4] and arch["arguments"]["pool_size"] == [[4, 2]]
    assert arch["arguments"]["n_mels"] == 64 and arch["arguments"]["num_classes"] == 3
    arguments = {**arch["arguments"], "lstm_units": 16}
    with pytest.raises(ValueError, match="architecture"):
        merge_results([{**parts[0], "architecture": {**arch, "arguments": arguments}}, *parts[1:]])
    # Results recorded before the architecture was merge with newer ones, which carry it.
    unrecorded = {k: v for k, v in parts[0].items() if k != "architecture"}
    assert merge_results([unrecorded, *parts[1:]])["architecture"] == arch
    assert (out / "confusion_matrix.png").stat().st_size > 1000
    assert (out / "training_curves.png").stat().st_size > 1000
    fold = results["folds"][0]
    model, metadata = load_model(out / "folds" / fold["fold"] / "model.keras")
    assert metadata.labels == EMOTIONS and model.output_shape == (None, len(EMOTIONS))
    assert model.count_params() == arch["params"]
    assert metadata.frontend.normalization == "dataset" and metadata.window == POLICY
    # dyser-eval on the test speaker reproduces the fold's score from the saved model alone
    # (its features memory-mapped from a cache).
    runner = CliRunner()
    cli = runner.invoke(
        evaluate,
        [
            str(out / "folds" / fold["fold"] / "model.keras"),
            "--corpus",
            "manifest",
            "--data",
            str(corpus),
            "--speakers",
            fold["test_speakers"][0],
            "--cache",
            str(out / "eval-cache"),
            "--json",
        ],
    )
    assert cli.exit_code == 0, cli.output
    assert json.loads(cli.stdout)["wa"] == pytest.approx(fold["metrics"]["wa"])


def test_dyser_train_cli(corpus, tmp_path):
    runner = CliRunner()
    out = tmp_path / "cli-run"
    result = runner.invoke(
        train,
        [
            "--corpus",
            "manifest",
            "--data",
            str(corpus),
            "--out",
            str(out),
            "--recipe",
            "fast",
            "--epochs",
            "1",
            "--window",
            "1.0",
            "--max-folds",
            "1",
            "--val-speakers",
            "1",
            "--temperature",
            "5",
            "1",
            "0",
            "--model",
            '{"num_kernels": 2, "lstm_units": 16}',
            "--save-models",
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.output
    run = json.loads((out / "results.json").read_text())
    assert run["recipe"]["epochs"] == 1 and run["recipe"]["temperature"] == [5.0, 1.0, 0]
    # --model is merged into the fast recipe's architecture, and the model is built with it.
    arguments = run["architecture"]["arguments"]
    assert arguments["num_kernels"] == 2 and arguments["lstm_units"] == 16
    assert arguments["conv_filters"] == [8, 16]
    model, _ = load_model(out / "folds" / run["folds"][0]["fold"] / "model.keras")
    convs = list(dynamic_conv_layers(model))
    assert convs and all(c.num_kernels == 2 for c in convs)
    # Epoch 0 already runs at END: no annealing with 0 epochs.
    assert all(float(keras.ops.convert_to_numpy(c.temperature)) == 1.0 for c in convs)
    args = ["--corpus", "manifest", "--data", str(corpus), "--out", str(out)]
    for bad_args, message in [
        (["--model", "num_kernels=8"], "not JSON"),
        (["--model", "[8]"], "JSON object"),
        (["--model", '{"n_mels": 40}'], "'n_mels' cannot be set here"),
        (["--model", '{"num_kernel": 8}'], "num_kernels"),
        (["--model", '{"conv_filters": 16}'], '{"conv_filters": 16}: '),
        (["--temperature", "0", "1", "10"], "start > 0"),
    ]:
        bad = runner.invoke(train, [*args, *bad_args])
        assert bad.exit_code == 2 and message in bad.output, (bad_args, bad.output)
        assert f"Invalid value for {bad_args[0]}:" in bad.output
    bad = runner.invoke(train, ["--corpus", "emodb", "--data", str(tmp_path), "--out", str(out)])
    assert bad.exit_code == 2 and "wav" in bad.output
    unknown = runner.invoke(train, [*args, "--recipe", "magic"])
    assert unknown.exit_code == 2 and "default" in unknown.output


def test_dyser_train_only_folds(corpus, tmp_path):
    names = [f.name for f in make_folds(load_manifest(corpus), ProtocolSpec("loso"))]
    assert names == [f"loso-{s}" for s in sorted({u.speaker for u in load_manifest(corpus)})]
    runner = CliRunner()
    args = ["--corpus", "manifest", "--data", str(corpus), "--recipe", "fast", "--epochs", "1"]
    args += ["--window", "1.0", "--val-speakers", "1", "--quiet", "--out", str(tmp_path / "run")]
    # Comma-separated and repeated; run in the protocol's order, each once.
    chosen = ["--only-folds", f"{names[3]},{names[1]}", "--only-folds", names[3]]
    result = runner.invoke(train, [*args, *chosen])
    assert result.exit_code == 0, result.output
    assert f"partial run: folds {names[1]}, {names[3]} of the protocol's 4" in result.output
    run = json.loads((tmp_path / "run" / "results.json").read_text())
    assert [r["fold"] for r in run["folds"]] == [names[1], names[3]]
    assert run["protocol"]["partial"] == {
        "folds_run": [names[1], names[3]],
        "n_folds": 4,
        "only_folds": [names[3], names[1]],
        "max_folds": None,
    }
    # Every fold named: not partial.
    every, subset = chosen_folds(load_manifest(corpus), ProtocolSpec("loso"), names[::-1], 9)
    assert [f.name for f in every] == names and subset is None
    # An unknown name is a usage error that lists the folds, before any feature is made.
    bad = runner.invoke(train, [*args[:-1], str(tmp_path / "bad"), "--only-folds", "loso-99"])
    assert bad.exit_code == 2, bad.output
    assert "Invalid value for --only-folds" in bad.output and "no fold named loso-99" in bad.output
    assert ", ".join(names) in bad.output.replace("\n", " ").replace("  ", " ")
    assert not (tmp_path / "bad" / "results.json").exists()
    empty = runner.invoke(train, [*args, "--only-folds", ","])
    assert empty.exit_code == 2 and "no fold name given" in empty.output
    with pytest.raises(UnknownFoldError, match="no folds"):
        run_experiment(
            load_manifest(corpus),
            tmp_path / "all",
            FrontendConfig(),
            TINY,
            ProtocolSpec("all"),
            only_folds=[names[0]],
            log=lambda _: None,
        )


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


def test_stream_normalization_and_augmentation_through_the_cli(corpus, tmp_path):
    out = tmp_path / "stream-run"
    args = ["--corpus", "manifest", "--data", str(corpus), "--out", str(out), "--recipe", "fast"]
    result = CliRunner().invoke(
        train,
        [
            *args,
            "--epochs",
            "2",
            "--window",
            "1.0",
            "--max-folds",
            "1",
            "--val-speakers",
            "1",
            "--normalization",
            "stream",
            "--stream-training",
            "online",
            "--vtlp",
            "0.1",
            "--speed",
            "0.1",
            "--noise-snr",
            "5",
            "20",
            "--reverb-rt60",
            "0.3",
            "0.8",
            "--average-checkpoints",
            "2",
            "--refit",
            "--save-models",
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.output
    run = json.loads((out / "results.json").read_text())
    recipe = Recipe(**run["recipe"])  # the recorded recipe reads back
    assert recipe.normalization == "stream" and recipe.stream_training == "online"
    assert recipe.augmentation.snr_db == (5.0, 20.0) and recipe.augmentation.rt60_s == (0.3, 0.8)
    fold = run["folds"][0]
    assert len(fold["averaged_epochs"]) == 2 and "metrics_speaker_norm" in fold
    assert fold["refit_epochs"] == max(fold["averaged_epochs"]) + 1 and recipe.refit
    assert 0 <= run["pooled_speaker_norm"]["wa"] <= 1 and 0 <= run["pooled_independent"]["wa"] <= 1
    _, metadata = load_model(out / "folds" / fold["fold"] / "model.keras")
    assert metadata.frontend.normalization == "stream"
    # dyser-eval treats each speaker as one stream, as the run did.
    cli = CliRunner().invoke(
        evaluate,
        [
            str(out / "folds" / fold["fold"] / "model.keras"),
            *args[:4],
            "--speakers",
            fold["test_speakers"][0],
            "--json",
        ],
    )
    assert cli.exit_code == 0, cli.output
    assert json.loads(cli.stdout)["wa"] == pytest.approx(fold["metrics"]["wa"])
    bad = CliRunner().invoke(train, [*args, "--vtlp", "0.7"])
    assert bad.exit_code == 2 and "vtlp" in bad.output


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


def test_streamed_features_checkpoints_and_resume(corpus, tmp_path):
    utts = load_manifest(corpus)
    config = FrontendConfig()
    cache = tmp_path / "cache"
    paths = extract_corpus(
        [u.path for u in utts[:5]], config, cache_dir=cache, as_paths=True, progress=False
    )
    arrays = extract_corpus([u.path for u in utts[:5]], config, progress=False)
    for path, array in zip(paths, arrays, strict=True):
        assert path.suffix == ".npy" and path.parent.parent == cache
        np.testing.assert_array_equal(np.load(path, mmap_mode="r"), array)
    with pytest.raises(ValueError, match="cache_dir"):
        extract_corpus([utts[0].path], config, as_paths=True)

    messages: list[str] = []
    kwargs = dict(
        policy=POLICY,
        max_folds=1,
        verbose=0,
        cache_dir=cache,  # features memory-mapped from the cache
        checkpoint_dir=tmp_path / "ckpt",
        log=messages.append,
    )
    spec = ProtocolSpec("loso", val_speakers=1)
    first = run_experiment(utts, tmp_path / "a", config, TINY, spec, **kwargs)
    fold = first["folds"][0]["fold"]
    assert len(list((tmp_path / "ckpt" / fold / "seed0").glob("epoch-*.weights.h5"))) == 3
    # Running the same experiment again reads the finished fold back instead of training.
    again = run_experiment(utts, tmp_path / "b", config, TINY, spec, **kwargs)
    assert any("read back" in m for m in messages)
    assert again["folds"] == first["folds"] and again["pooled"] == first["pooled"]


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


def test_every_recipe_lever_is_a_dyser_train_option(corpus, tmp_path):
    """Each option generated from a field sets that field (the run is refused before
    training: a frontend with statistics)."""
    options = {p.name: p for p in train.params}
    for owner, f, _ in recipe_levers():
        assert f.name in options and lever_option(f.name) in options[f.name].opts
        assert options[f.name].help.lower().startswith(field_docs(owner)[f.name][:20].lower())
    config = FrontendConfig(top_db=None)
    levers = {
        "optimizer": "rmsprop",
        "cosine_decay": True,
        "min_epochs": 3,
        "spec_augment": (1, 2, 3, 4),
        "gain_db": 2.0,
        "model": '{"num_kernels": 2}',
    }
    recipe = chosen_recipe("fast", levers, config)
    assert (recipe.optimizer, recipe.cosine_decay, recipe.min_epochs) == ("rmsprop", True, 3)
    assert recipe.spec_augment == (1, 2, 3, 4) and recipe.augmentation.gain_db == 2.0
    assert recipe.model == {**get_recipe("fast").model, "num_kernels": 2}
    runner = CliRunner()
    args = ["--corpus", "manifest", "--data", str(corpus), "--out", str(tmp_path / "x")]
    for bad_args, message in [
        (["--optimizer", "sgd"], "'sgd' is not one of"),
        (["--gain-db", "-1"], "gain_db must be >= 0"),
        (["--average-checkpoints", "0"], "average_checkpoints must be >= 1"),
        (["--recipe", "magic"], "unknown recipe"),
    ]:
        bad = runner.invoke(train, [*args, *bad_args])
        assert bad.exit_code == 2 and message in bad.output, (bad_args, bad.output)
        assert "Invalid value for" in bad.output and bad_args[0] in bad.output, bad.output


class Killed(BaseException):
    """Stands for a SIGKILL: nothing in the fit catches it and no cleanup runs."""


@pytest.mark.parametrize("torn", ["epoch-002.weights.h5", ".state-002.weights.h5.tmp-"])
def test_a_kill_during_a_checkpoint_write_resumes_from_the_last_complete_epoch(
    tmp_path, monkeypatch, torn
):
    """The run is killed while it writes epoch 2's weights (`ModelCheckpoint`) or its
    backup (`EpochBackup`), leaving half a file: the next run resumes after epoch 1."""
    feats, labels = synthetic_features(20)
    ckpt = tmp_path / "ckpt"
    args = (feats[:16], labels[:16], ["a", "b"], FrontendConfig(n_mels=16), TINY, POLICY)
    kwargs = dict(val_sources=feats[16:], val_labels=labels[16:], seed=0, verbose=0)
    save_weights = keras.Model.save_weights
    written = []

    def torn_write(self, filepath, *args, **kwargs):
        save_weights(self, filepath, *args, **kwargs)
        written.append(Path(filepath).name)
        if Path(filepath).name.startswith(torn):  # epoch 2's weights or backup
            data = Path(filepath).read_bytes()
            Path(filepath).write_bytes(data[: len(data) // 2])
            raise Killed

    monkeypatch.setattr(keras.Model, "save_weights", torn_write)
    with pytest.raises(Killed):
        train_model(*args, checkpoint_dir=ckpt, **kwargs)
    monkeypatch.setattr(keras.Model, "save_weights", save_weights)
    assert sorted(p.name for p in (ckpt / "backup").glob("state-*")) == ["state-001.weights.h5"]
    resumed = train_model(*args, checkpoint_dir=ckpt, **kwargs)
    # Epoch index 1 was logged before the kill, then run again: the resume began after the
    # last complete epoch, and the history has each of the 3 epochs once.
    logged = [line.split(",")[0] for line in (ckpt / EPOCH_LOGS).read_text().splitlines()[1:]]
    assert logged == ["0", "1", "1", "2"]
    assert resumed.epochs_run == 3 and len(resumed.history["val_ua"]) == 3
    assert not (ckpt / "backup").exists() or not list((ckpt / "backup").iterdir())


def test_a_torn_log_line_is_dropped_before_the_logs_are_appended_to(tmp_path):
    log = tmp_path / EPOCH_LOGS
    log.write_text("epoch,loss,val_ua\n0,1.0,0.5\n1,0.9")  # killed while appending epoch 1
    checkpoint_callbacks(tmp_path)
    assert log.read_text() == "epoch,loss,val_ua\n0,1.0,0.5\n"
    assert read_epoch_logs(log) == {"loss": [1.0], "val_ua": [0.5]}


def test_protocol_all_checkpoints_and_resumes(corpus, tmp_path):
    """`--checkpoints` with `--protocol all` checkpoints the one fit (it used to be ignored)."""
    ckpt = tmp_path / "ckpt"
    args = ["--corpus", "manifest", "--data", str(corpus), "--out", str(tmp_path / "all")]
    args += ["--protocol", "all", "--recipe", "fast", "--epochs", "2", "--window", "1.0"]
    args += ["--val-speakers", "1", "--quiet", "--checkpoints", str(ckpt)]
    result = CliRunner().invoke(train, args)
    assert result.exit_code == 0, result.output
    assert read_epoch_logs(ckpt / "all" / "seed0" / EPOCH_LOGS)["val_ua"]
    assert sorted(p.name for p in (ckpt / "all" / "seed0").glob("epoch-*")) == [
        "epoch-001.weights.h5",
        "epoch-002.weights.h5",
    ]
    assert (tmp_path / "all" / "model.keras").exists()


def test_epoch_backup_resumes_a_backup_that_keras_wrote(tmp_path):
    """A run interrupted before `EpochBackup` replaced `keras.callbacks.BackupAndRestore`
    resumes from the files Keras left, which the next epoch's own state then replaces."""
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.compile(optimizer="adam", loss="mse")
    model.optimizer.build(model.trainable_variables)
    backup = tmp_path / "backup"
    backup.mkdir()
    model.set_weights([np.full_like(w, 3) for w in model.get_weights()])
    model.save_weights(backup / "latest.weights.h5")
    (backup / "training_metadata.json").write_text('{"epoch": 2, "batch": 0}')
    model.set_weights([np.zeros_like(w) for w in model.get_weights()])
    # A state write that a SIGKILL cut short (its process is gone) is swept on resume.
    (backup / ".state-003.weights.h5.tmp-999999999-x1y2.weights.h5").write_bytes(b"half")
    callback = EpochBackup(backup)
    callback.set_model(model)
    callback.on_train_begin()
    assert model._initial_epoch == 2 and all((w == 3).all() for w in model.get_weights())
    assert sorted(p.name for p in backup.iterdir()) == [
        "latest.weights.h5",
        "training_metadata.json",
    ]
    callback.on_epoch_end(2)
    assert sorted(p.name for p in backup.iterdir()) == ["state-003.weights.h5"]
    callback.on_train_end()  # a finished fit leaves no state to resume from
    assert not list(backup.iterdir())
