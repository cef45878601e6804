"""Runs on a synthetic corpus: evaluation protocol guards, run folders, reloaded models and the
dyser-train / dyser-eval CLIs."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest
from click.testing import CliRunner
from tiny_training import POLICY, TINY

from edge_runtime.config import FrontendConfig
from keras_dyconv.callbacks import dynamic_conv_layers
from keras_dyconv.checkpoints import (
    EPOCH_LOGS,
    read_epoch_logs,
)
from keras_dyconv.cli import evaluate, train
from keras_dyconv.corpora import load_manifest
from keras_dyconv.experiment import ProtocolSpec, run_experiment
from keras_dyconv.features import extract_corpus
from keras_dyconv.feeding import predict_utterances
from keras_dyconv.folds import UnknownFoldError, chosen_folds, make_folds
from keras_dyconv.levers import chosen_recipe, lever_option, recipe_levers
from keras_dyconv.modelio import load_model
from keras_dyconv.normalization import stream_order
from keras_dyconv.recipes import Recipe, field_docs, get_recipe
from keras_dyconv.results import ONLINE_ORDER, merge_results
from keras_dyconv.scoring import predict_in_order
from keras_dyconv.synthetic import write_corpus

EMOTIONS = ("anger", "neutral", "sadness")


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
    model, metadata = load_model(out / "folds" / fold["fold"] / "model.keras")
    assert metadata.frontend.normalization == "stream"
    # The headline streams each test speaker in the random order of the training seed,
    # the corpus order is kept beside it.
    assert run["online_order"] == ONLINE_ORDER and "pooled_corpus_order" in run
    test = [u for u in load_manifest(corpus) if u.speaker in fold["test_speakers"]]
    saved = fold["predictions"]
    assert [p["path"] for p in saved] == [str(u.path) for u in test]
    feats = extract_corpus([u.path for u in test], metadata.frontend.unnormalized(), progress=False)
    speakers = [u.speaker for u in test]
    order = stream_order(speakers, np.random.default_rng(fold["seed"]))
    seeded = predict_in_order(model, feats, metadata.frontend, metadata.window, speakers, order)
    in_corpus = predict_utterances(
        model, feats, metadata.frontend, metadata.window, speakers=speakers
    )
    probabilities = np.array([p["probabilities"] for p in saved])
    np.testing.assert_allclose(probabilities, seeded, atol=1e-4)
    assert np.abs(probabilities - in_corpus).max() > 1e-3  # the order was not ignored
    labels = run["labels"]
    assert [p["predicted"] for p in saved] == [labels[k] for k in seeded.argmax(axis=1)]
    assert [p["predicted_corpus_order"] for p in saved] == [
        labels[k] for k in in_corpus.argmax(axis=1)
    ]
    assert fold["metrics_corpus_order"]["n"] == len(saved)
    older = {k: v for k, v in run.items() if k != "online_order"}  # a corpus-order headline
    with pytest.raises(ValueError, match="differ in order"):
        merge_results([run, older])
    # dyser-eval treats each speaker as one stream, as the run did (same seed, same order).
    model_path = str(out / "folds" / fold["fold"] / "model.keras")
    speaker = ["--speakers", fold["test_speakers"][0]]
    cli = CliRunner().invoke(evaluate, [model_path, *args[:4], *speaker, "--json"])
    assert cli.exit_code == 0, cli.output
    report = json.loads(cli.stdout)
    assert report["wa"] == pytest.approx(fold["metrics"]["wa"])
    assert report["online_order"] == "random per speaker, seed 0"
    cli = CliRunner().invoke(
        evaluate, [model_path, *args[:4], *speaker, "--stream-order", "corpus"]
    )
    assert cli.exit_code == 0, cli.output
    assert f"WA {fold['metrics_corpus_order']['wa']:.3f}" in cli.output
    assert "online, each speaker one stream: corpus order" in cli.output
    bad = CliRunner().invoke(train, [*args, "--vtlp", "0.7"])
    assert bad.exit_code == 2 and "vtlp" in bad.output
    # A fold finished before the random-order headline is not read back into a new run.
    ckpt = tmp_path / "ckpt"
    (ckpt / fold["fold"] / f"seed{fold['seed']}").mkdir(parents=True)
    before = {k: v for k, v in fold.items() if "corpus_order" not in k}
    (ckpt / fold["fold"] / f"seed{fold['seed']}" / "record.json").write_text(
        json.dumps({**before, "history": {}})
    )
    again = [*args[:4], "--out", str(tmp_path / "again"), *args[6:], "--checkpoints", str(ckpt)]
    same = ["--epochs", "2", "--window", "1.0", "--max-folds", "1", "--val-speakers", "1"]
    stream = ["--normalization", "stream", "--stream-training", "online", "--quiet"]
    stale = CliRunner().invoke(train, [*again, *same, *stream])
    assert stale.exit_code != 0 and "scored its stream model in corpus order" in stale.output


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
