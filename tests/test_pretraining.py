"""Pretrain once on the extra corpora, fine-tune per fold (`Recipe.pretrain_extra`)."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import keras
import numpy as np
import pytest
from click.testing import CliRunner
from test_multicorpus import EMODB_EMOTIONS, RAVDESS_EMOTIONS, TINY, _own_corpus
from tiny_training import POLICY

from edge_runtime.config import FrontendConfig
from keras_dyconv import experiment, experiment_run, pretraining
from keras_dyconv.checkpoints import exclusive_lock
from keras_dyconv.cli import train
from keras_dyconv.corpora import load_manifest
from keras_dyconv.experiment import ProtocolSpec, multi_corpus, run_experiment
from keras_dyconv.features import extract_corpus
from keras_dyconv.modelio import load_model
from keras_dyconv.pretraining import Pretrained, assert_not_pretrained, made_once, pretrain_seeds
from keras_dyconv.protocols import LeakageError
from keras_dyconv.recipes import get_recipe
from keras_dyconv.training import train_model

PRETRAIN = dataclasses.replace(TINY, epochs=1, pretrain_extra=True)


@pytest.fixture(scope="module")
def manifests(tmp_path_factory):
    root = tmp_path_factory.mktemp("pretrain-corpora")
    return {
        "emodb": _own_corpus(root, "emodb", EMODB_EMOTIONS, 3, seed=1),
        "ravdess": _own_corpus(root, "ravdess", RAVDESS_EMOTIONS, 3, seed=2),
    }


@pytest.fixture(scope="module")
def corpora(manifests):
    return multi_corpus({name: load_manifest(p) for name, p in manifests.items()}, "emodb")


def _run(corpora, out, recipe, **kwargs):
    utts, extra = corpora
    return run_experiment(
        utts,
        out,
        FrontendConfig(top_db=None),
        recipe,
        ProtocolSpec("loso", val_speakers=1),
        policy=POLICY,
        verbose=0,
        log=lambda _: None,
        extra=extra,
        **kwargs,
    )


def test_pretrained_once_reused_by_every_fold_and_on_resume(corpora, tmp_path, monkeypatch):
    pretrainings, fold_inits = [], []
    real_pretrain, real_train = pretraining.train_model, experiment_run.train_model

    def count_pretraining(*args, **kwargs):
        pretrainings.append(kwargs["train_speakers"])
        return real_pretrain(*args, **kwargs)

    def spy_fold(*args, **kwargs):
        fold_inits.append(kwargs.get("init_weights"))
        return real_train(*args, **kwargs)

    monkeypatch.setattr(pretraining, "train_model", count_pretraining)
    monkeypatch.setattr(experiment_run, "train_model", spy_fold)
    out = tmp_path / "run"
    results = _run(corpora, out, PRETRAIN, max_folds=1)
    # One pretraining, on RAVDESS only (2 training speakers, 1 validation speaker).
    assert len(pretrainings) == 1 and {s.split("/")[0] for s in pretrainings[0]} == {"ravdess"}
    record = json.loads((out / "results.json").read_text())
    assert record == json.loads(json.dumps(results))
    (seed0,) = record["pretraining"]["seeds"].values()
    assert seed0["reused"] is False and seed0["seconds"] > 0 and seed0["corpora"] == ["ravdess"]
    assert len(seed0["train_speakers"]) == 2
    assert all(s.startswith("ravdess/") for s in seed0["train_speakers"] + seed0["val_speakers"])
    assert len(seed0["val_speakers"]) == 1 and seed0["n_train"] + seed0["n_val"] == 18
    assert record["recipe"]["pretrain_extra"] is True
    assert record["corpora"]["ravdess"]["role"] == "pretraining"
    weights = out / seed0["weights"]
    assert weights.exists() and fold_inits == [weights]
    emodb = {u.speaker for u in corpora[0]}
    for fold in record["folds"]:
        # Fine-tuned on the target only: 3 EmoDB speakers - 1 test - 1 validation.
        assert fold["n_train"] == 8 and fold["n_val"] == 8
        assert set(fold["test_speakers"]) <= emodb
        assert not set(fold["test_speakers"]) & set(seed0["train_speakers"] + seed0["val_speakers"])

    # Another fold, run later into the same folder: the pretrained model is read back.
    second = [f"loso-{s}" for s in sorted(emodb)][1]
    again = _run(corpora, out, PRETRAIN, only_folds=[second])
    assert len(pretrainings) == 1 and fold_inits[-1] == weights
    assert again["pretraining"]["seeds"]["0"]["reused"] is True
    assert again["pretraining"]["seeds"]["0"]["key"] == seed0["key"]

    # A different recipe is never fine-tuned from a stale model: pretrained anew, new key.
    other = _run(corpora, out, dataclasses.replace(PRETRAIN, learning_rate=1e-3), max_folds=1)
    assert len(pretrainings) == 2
    assert other["pretraining"]["seeds"]["0"]["key"] != seed0["key"]
    assert len(list((out / "pretrained").iterdir())) == 2


def test_fine_tune_starts_from_the_pretrained_weights(tmp_path):
    rng = np.random.default_rng(0)
    feats = [rng.normal(size=(150, 64)).astype(np.float32) for _ in range(6)]
    labels, config = np.arange(6) % 2, FrontendConfig()
    first = train_model(feats, labels, ["a", "b"], config, TINY, POLICY, verbose=0)
    path = tmp_path / "first.weights.h5"
    first.model.save_weights(path)
    # A learning rate of ~0: the fine-tuned model is the pretrained one, at temperature 1.
    still = dataclasses.replace(TINY, epochs=1, learning_rate=1e-12, weight_decay=0.0)
    tuned = train_model(
        feats, labels, ["a", "b"], config, still, POLICY, verbose=0, init_weights=path
    )
    fresh = train_model(feats, labels, ["a", "b"], config, still, POLICY, verbose=0, seed=5)
    trainable = [v.name for v in first.model.trainable_variables]
    for a, b, v in zip(
        first.model.get_weights(), tuned.model.get_weights(), first.model.weights, strict=True
    ):
        if v.name in trainable:
            np.testing.assert_allclose(a, b, atol=1e-5)
    assert not all(
        np.allclose(a, c)
        for a, c in zip(first.model.get_weights(), fresh.model.get_weights(), strict=True)
    )
    temperatures = [
        float(keras.ops.convert_to_numpy(v)) for v in tuned.model.weights if "temperature" in v.name
    ]
    assert temperatures and all(t == 1.0 for t in temperatures)


def test_a_test_speaker_in_the_pretraining_is_a_leak(corpora, tmp_path, monkeypatch):
    utts, _ = corpora
    target_speaker = sorted({u.speaker for u in utts})[0]

    def leaky(run, extra, seeds, val_speakers, log):
        record = {"key": "0" * 16, "train_speakers": [target_speaker], "val_speakers": []}
        return {0: Pretrained(tmp_path / "x.weights.h5", record, frozenset())}

    monkeypatch.setattr(experiment, "pretrain_seeds", leaky)
    with pytest.raises(LeakageError, match=f"speakers \\['{target_speaker}'\\].*pretraining"):
        _run(corpora, tmp_path / "leak", PRETRAIN, max_folds=1)
    # The same for a test file under another speaker name.
    folds = experiment.make_folds(utts, ProtocolSpec("loso", val_speakers=1))
    path = str(utts[folds[0].test[0]].path)
    renamed = Pretrained(tmp_path / "x.weights.h5", leaky(0, 0, 0, 0, 0)[0].record, frozenset())
    renamed = dataclasses.replace(
        renamed, record={**renamed.record, "train_speakers": ["ravdess/9"]}, paths=frozenset([path])
    )
    with pytest.raises(LeakageError, match="test files"):
        assert_not_pretrained(folds[0], utts, renamed)


def test_nothing_to_pretrain_without_extra_corpora():
    messages = []
    assert pretrain_seeds(None, np.arange(0), [0, 1], "auto", messages.append) == {}  # type: ignore[arg-type]
    assert "nothing to pretrain" in messages[0] and "loco" in messages[0]


@pytest.mark.skipif(sys.platform == "win32", reason="no fcntl locks on Windows")
def test_processes_started_at_once_pretrain_once(tmp_path):
    """Two fold processes of one run ask for the same pretrained model at once: one trains
    it, the other waits for it and reads it back (here threads, each with its own lock)."""
    lock, saved = tmp_path / ".lock", tmp_path / "weights"
    made, waited = [], []
    start = threading.Barrier(3)

    def read():
        return saved.read_text() if saved.exists() else None

    def make():
        made.append(threading.get_ident())
        deadline = time.monotonic() + 20  # training, while the others ask and wait
        while len(waited) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        saved.write_text("pretrained")
        return "trained"

    def fold_process(_):
        start.wait()
        return made_once(lock, read, make, lambda: waited.append(threading.get_ident()))

    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(fold_process, range(3)))
    assert len(made) == 1 and sorted(results) == ["pretrained", "pretrained", "trained"]
    assert len(waited) == 2 and made[0] not in waited
    # Later: read back without waiting or training.
    assert made_once(lock, read, make, lambda: waited.append(0)) == "pretrained"
    assert len(made) == 1 and len(waited) == 2


@pytest.mark.skipif(sys.platform == "win32", reason="no fcntl locks on Windows")
def test_a_killed_pretraining_leaves_no_stale_lock(tmp_path):
    """A process killed while it pretrains (SIGKILL: no cleanup) lets go of the lock: the
    next one is not kept waiting, and trains the model itself."""
    lock = tmp_path / ".lock"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path\n"
            "from keras_dyconv.checkpoints import exclusive_lock\n"
            "with exclusive_lock(Path(sys.argv[1]), wait=True):\n"
            "    print('held', flush=True); time.sleep(120)",
            str(lock),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])},
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(BlockingIOError), exclusive_lock(lock, wait=False):
            pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    found = []
    waiter = threading.Thread(target=lambda: found.append(made_once(lock, lambda: None, lambda: 7)))
    waiter.start()
    waiter.join(timeout=30)
    assert not waiter.is_alive() and found == [7]


def test_corpus_statistics_with_pretraining_refused_fine_tune_keeps_target_statistics(
    manifests, tmp_path
):
    """The fine-tune of --pretrain-extra trains on the target alone, with the target's
    statistics: --corpus-statistics could only change the pretraining, which has no target
    whose statistics its model keeps. The two together are a usage error, before any
    feature is made."""
    with pytest.raises(ValueError, match="corpus_statistics and pretrain_extra exclude"):
        get_recipe("fast").with_overrides(corpus_statistics=True, pretrain_extra=True)
    runner = CliRunner()
    args = ["--corpus", "manifest", "--data", str(manifests["emodb"])]
    args += ["--corpus", "manifest", "--data", str(manifests["ravdess"]), "--recipe", "fast"]
    args += ["--epochs", "1", "--window", "1.0", "--val-speakers", "1", "--quiet"]
    args += ["--model", '{"conv_filters": [4], "lstm_units": 8, "attention_units": 8}']
    bad = runner.invoke(
        train, [*args, "--corpus-statistics", "--pretrain-extra", "--out", str(tmp_path / "x")]
    )
    assert bad.exit_code == 2 and "exclude each other" in bad.output, bad.output
    assert not (tmp_path / "x" / "results.json").exists()
    # --pretrain-extra alone: the fold's model normalises as its target training data does.
    out = tmp_path / "run"
    ok = runner.invoke(
        train, [*args, "--pretrain-extra", "--max-folds", "1", "--save-models", "--out", str(out)]
    )
    assert ok.exit_code == 0, ok.output
    run = json.loads((out / "results.json").read_text())
    (fold,) = run["folds"]
    held_out = {*fold["test_speakers"], *fold["val_speakers"]}
    target = [u for u in load_manifest(manifests["emodb"]) if u.speaker not in held_out]
    assert len(target) == fold["n_train"] == 8
    feats = np.concatenate(extract_corpus([u.path for u in target], FrontendConfig()))
    _, metadata = load_model(out / "folds" / fold["fold"] / "model.keras")
    np.testing.assert_allclose(metadata.frontend.mean, feats.mean(axis=0), rtol=1e-4, atol=1e-4)


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="no fcntl locks on Windows")
def test_two_fold_processes_on_one_run_folder_share_one_pretraining(manifests, tmp_path):
    """Two `dyser-train --only-folds` processes started at once on the same --out and
    --checkpoints: one pretrains, the other waits and reads the model back; a last run of
    every fold then reads both folds and the model back, trains the third fold alone, and
    writes the whole result."""
    emodb = sorted({u.speaker for u in load_manifest(manifests["emodb"])})
    args = ["--corpus", "manifest", "--data", str(manifests["emodb"])]
    args += ["--corpus", "manifest", "--data", str(manifests["ravdess"]), "--recipe", "fast"]
    args += ["--epochs", "1", "--window", "1.0", "--val-speakers", "1", "--quiet"]
    args += ["--model", '{"conv_filters": [4], "lstm_units": 8, "attention_units": 8}']
    args += ["--pretrain-extra", "--out", str(tmp_path / "run")]
    args += ["--checkpoints", str(tmp_path / "ckpt")]
    code = "import sys; from keras_dyconv.cli import train; train(sys.argv[1:])"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", code, *args, "--only-folds", f"loso-{speaker}"],
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for speaker in emodb[:2]
    ]
    logs = [p.communicate(timeout=600)[1] for p in processes]
    assert [p.returncode for p in processes] == [0, 0], logs
    trained = [log for log in logs if "pretraining seed 0 on the extra corpora" in log]
    waited = [log for log in logs if "another process is training it, waiting" in log]
    assert len(trained) == 1 and len(waited) == 1 and waited[0] is not trained[0]
    assert "read back" in waited[0]
    result = CliRunner().invoke(
        train, [*args, "--only-folds", ",".join(f"loso-{s}" for s in emodb)]
    )
    assert result.exit_code == 0, result.output
    assert "pretraining seed 0" not in result.output
    assert result.output.count("finished in an earlier run, read back") == 2
    run = json.loads((tmp_path / "run" / "results.json").read_text())
    assert [r["fold"] for r in run["folds"]] == [f"loso-{s}" for s in emodb]
    assert "partial" not in run["protocol"] and run["pretraining"]["seeds"]["0"]["reused"]
