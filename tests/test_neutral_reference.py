"""Neutral-referenced stream normalisation (`Recipe.stream_training` "neutral"): each speaker
normalised by the statistics of their neutral utterances, in training, in the stored stream
prior and in a run's transductive reference."""

from __future__ import annotations

import json

import click
import numpy as np
import pytest
import test_training_runs
from click.testing import CliRunner
from tiny_training import POLICY, TINY

from edge_runtime.config import FrontendConfig
from edge_runtime.normalization import dataset_statistics, within_speaker_statistics
from keras_dyconv import normalization
from keras_dyconv.cli import train
from keras_dyconv.corpora import load_manifest
from keras_dyconv.experiment import ProtocolSpec, run_experiment
from keras_dyconv.features import extract_corpus
from keras_dyconv.feeding import predict_utterances
from keras_dyconv.levers import chosen_recipe
from keras_dyconv.modelio import load_model
from keras_dyconv.normalization import (
    neutral_class,
    neutral_reference,
    normalize_utterances,
    speaker_statistics,
    stream_training_statistics,
)
from keras_dyconv.recipes import Recipe
from keras_dyconv.training import train_model

LABELS = ["neutral", "anger"]
NEUTRAL = TINY.with_overrides(epochs=1, normalization="stream", stream_training="neutral")
#: The synthetic corpus of the training-run tests (4 speakers; anger, neutral, sadness).
corpus = test_training_runs.corpus


def speaker_corpus(seed: int = 0) -> tuple[list[np.ndarray], np.ndarray, list[str]]:
    """Three speakers, four utterances each (neutral, anger alternating), 16 features; the
    anger utterances are louder and wider than the neutral ones, each speaker has an offset;
    speaker "s2" has no neutral utterance."""
    rng = np.random.default_rng(seed)
    feats, labels, speakers = [], [], []
    for k, speaker in enumerate(["s0", "s1", "s2"]):
        for i in range(4):
            label = 1 if (i % 2 or speaker == "s2") else 0
            scale = 2.0 if label else 1.0
            frames = int(rng.integers(60, 120))
            f = rng.normal(5.0 * k + 3.0 * label, scale, size=(frames, 16)).astype(np.float32)
            f[:, 8:] += 2.0 * label
            feats.append(f)
            labels.append(label)
            speakers.append(speaker)
    return feats, np.array(labels), speakers


def test_statistics_come_from_the_speakers_own_neutral_utterances_only():
    feats, labels, speakers = speaker_corpus()
    counted, fallback = neutral_reference(labels == neutral_class(LABELS), speakers)
    assert fallback == ["s2"]  # no neutral utterance: all of their audio
    assert counted.tolist() == [*([True, False] * 4), *([True] * 4)]
    stats = speaker_statistics(feats, speakers, counted)
    for speaker in ("s0", "s1"):
        pairs = zip(feats, speakers, labels, strict=True)
        neutral = [f for f, who, label in pairs if who == speaker and label == 0]
        np.testing.assert_allclose(stats[speaker][0], dataset_statistics(neutral)[0], rtol=1e-6)
        np.testing.assert_allclose(stats[speaker][1], dataset_statistics(neutral)[1], rtol=1e-6)
        # Narrower and lower than the speaker's balanced statistics.
        balanced = speaker_statistics(feats, speakers)[speaker]
        assert (stats[speaker][1] < balanced[1]).all() and (stats[speaker][0] < balanced[0]).all()
    s2 = [f for f, who in zip(feats, speakers, strict=True) if who == "s2"]
    np.testing.assert_allclose(stats["s2"][0], dataset_statistics(s2)[0], rtol=1e-6)
    # Every training window of an utterance gets its speaker's neutral statistics.
    per_utterance = stream_training_statistics(
        "neutral", FrontendConfig(n_mels=16), feats, speakers, seed=0, counted=counted
    )
    for choices, speaker in zip(per_utterance, speakers, strict=True):
        assert len(choices) == 1
        np.testing.assert_array_equal(choices[0][0], stats[speaker][0])
        np.testing.assert_array_equal(choices[0][1], stats[speaker][1])
    # The transductive reference: the speaker's neutral frames are normalised to 0 mean.
    config = FrontendConfig(n_mels=16, normalization="stream", mean=(0.0,) * 16, std=(1.0,) * 16)
    normed = normalize_utterances(feats, config, speakers, adapt="speaker", counted=counted)
    s0_neutral = np.concatenate([normed[i] for i in (0, 2)])
    np.testing.assert_allclose(s0_neutral.mean(axis=0), 0, atol=1e-4)
    np.testing.assert_allclose(s0_neutral.std(axis=0), 1, atol=1e-4)
    assert normed[1].mean() > 2  # anger sits well above the speaker's neutral reference
    with pytest.raises(ValueError, match="'s2' has no utterance counted"):
        speaker_statistics(feats, speakers, labels == 0)
    with pytest.raises(ValueError, match="12 feature sources but 12 speakers and 3 counted"):
        speaker_statistics(feats, speakers, counted[:3])
    with pytest.raises(ValueError, match="3 neutral flags but 12 speakers"):
        neutral_reference(counted[:3], speakers)


def test_a_neutral_model_stores_the_neutral_within_speaker_prior():
    feats, labels, speakers = speaker_corpus()
    result = train_model(
        feats, labels, LABELS, FrontendConfig(n_mels=16), NEUTRAL, POLICY,
        train_speakers=speakers, verbose=0,
    )  # fmt: skip
    assert result.neutral_fallback_speakers == ["s2"]
    counted, _ = neutral_reference(labels == 0, speakers)
    used = np.flatnonzero(counted)
    expected = within_speaker_statistics([feats[i] for i in used], [speakers[i] for i in used])
    assert (result.config.mean, result.config.std) == expected
    balanced = within_speaker_statistics(feats, speakers)
    assert max(np.abs(np.subtract(expected[0], balanced[0]))) > 0.5  # a different prior
    assert FrontendConfig.from_dict(result.config.to_dict()) == result.config


def test_neutral_needs_a_neutral_class_and_stream_normalisation():
    feats, labels, speakers = speaker_corpus()
    with pytest.raises(ValueError, match="have no 'neutral' class"):
        train_model(
            feats, labels, ["calm", "anger"], FrontendConfig(n_mels=16), NEUTRAL, POLICY,
            train_speakers=speakers, verbose=0,
        )  # fmt: skip
    assert neutral_class(["anger", "neutral"]) == 1
    with pytest.raises(ValueError, match='"neutral" needs normalization "stream"'):
        Recipe(stream_training="neutral")
    with pytest.raises(ValueError, match="stream_training must be one of"):
        Recipe(normalization="stream", stream_training="calm")
    assert NEUTRAL.neutral_referenced and not TINY.neutral_referenced
    assert Recipe(**NEUTRAL.to_dict()) == NEUTRAL  # as results.json records it
    levers = {"normalization": "stream", "stream_training": "neutral"}
    chosen = chosen_recipe("default", levers, FrontendConfig())
    assert chosen.neutral_referenced
    with pytest.raises(click.BadParameter, match="needs normalization"):
        chosen_recipe("default", {"stream_training": "neutral"}, FrontendConfig())


def test_cli_refuses_neutral_without_a_neutral_class_or_stream(corpus, tmp_path):
    rows = corpus.read_text().splitlines()
    no_neutral = corpus.with_name("no-neutral.csv")  # its paths are relative to it
    no_neutral.write_text("\n".join(r for r in rows if ",neutral," not in r) + "\n")
    args = ["--corpus", "manifest", "--recipe", "fast", "--stream-training", "neutral"]
    out = tmp_path / "run"
    bad = CliRunner().invoke(train, [*args, "--data", str(corpus), "--out", str(out)])
    assert bad.exit_code == 2 and "needs normalization" in bad.output
    missing = CliRunner().invoke(
        train,
        [*args, "--normalization", "stream", "--data", str(no_neutral), "--out", str(out)],
    )
    assert missing.exit_code == 1, missing.output
    assert "no 'neutral' class" in missing.output
    assert not (out / "results.json").exists()


def test_a_neutral_run_records_its_fallbacks_and_its_neutral_reference(
    corpus, tmp_path, monkeypatch
):
    utts = load_manifest(corpus)
    speakers = sorted({u.speaker for u in utts})
    # Two of the training speakers never speak neutrally (the refit trains on all three).
    expected = speakers[2:]
    utts = [u for u in utts if not (u.speaker in expected and u.label == "neutral")]
    calls = []  # what every speaker's statistics were computed from

    def spy(sources, who, counted=None):
        calls.append((list(who), None if counted is None else np.asarray(counted).tolist()))
        return speaker_statistics(sources, who, counted)

    monkeypatch.setattr(normalization, "speaker_statistics", spy)
    config = FrontendConfig(top_db=None)
    messages: list[str] = []
    run = run_experiment(
        utts, tmp_path / "run", config, NEUTRAL.with_overrides(refit=True),
        ProtocolSpec("loso", val_speakers=1), policy=POLICY, max_folds=1, verbose=0,
        save_models=True, log=messages.append,
    )  # fmt: skip
    fold = run["folds"][0]
    assert fold["test_speakers"] == speakers[:1] and fold["refit_epochs"] == 1
    assert fold["neutral_fallback_speakers"] == {"train": expected, "test": []}
    assert any("without a neutral utterance" in m and expected[0] in m for m in messages)
    assert json.loads((tmp_path / "run" / "results.json").read_text())["folds"][0] == fold
    # The stored prior: the (refit) training speakers' neutral within-speaker statistics.
    model, metadata = load_model(tmp_path / "run" / "folds" / fold["fold"] / "model.keras")
    train_utts = [u for u in utts if u.speaker not in fold["test_speakers"]]
    train_feats = extract_corpus([u.path for u in train_utts], config, progress=False)
    used = [i for i, u in enumerate(train_utts) if u.label == "neutral" or u.speaker in expected]
    prior = within_speaker_statistics(
        [train_feats[i] for i in used], [train_utts[i].speaker for i in used]
    )
    np.testing.assert_allclose(metadata.frontend.mean, prior[0], rtol=1e-6)
    np.testing.assert_allclose(metadata.frontend.std, prior[1], rtol=1e-6)
    # predicted_speaker_norm: the test speaker normalised by their neutral utterances.
    test = [u for u in utts if u.speaker == speakers[0]]
    neutral = [u.label == "neutral" for u in test]
    assert ([u.speaker for u in test], neutral) in calls and any(neutral) and not all(neutral)
    probs = predict_utterances(
        model,
        extract_corpus([u.path for u in test], config, progress=False),
        metadata.frontend,
        metadata.window,
        speakers=[u.speaker for u in test],
        adapt="speaker",
        counted=neutral,
    )
    labels = run["labels"]
    assert [p["predicted_speaker_norm"] for p in fold["predictions"]] == [
        labels[k] for k in probs.argmax(axis=1)
    ]
    assert "pooled_speaker_norm" in run and Recipe(**run["recipe"]).neutral_referenced
