"""dyser-eval across label sets: a model's classes and a corpus's labels meet in the common
label space (issue 23, point 3)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from test_multicorpus import _own_corpus

from edge_runtime.config import FrontendConfig
from edge_runtime.metadata import ModelMetadata
from edge_runtime.windows import WindowPolicy
from keras_dyconv.cli import evaluate
from keras_dyconv.corpora import Utterance, load_manifest
from keras_dyconv.evaluation import label_key, match_labels, score
from keras_dyconv.features import extract_corpus
from keras_dyconv.feeding import predict_utterances
from keras_dyconv.metrics import summarize
from keras_dyconv.modelio import load_model, save_model
from keras_dyconv.models import build_dycnn_bilstm

ROOT = Path(__file__).resolve().parents[1]


def _utts(corpus: str | None, labels: list[str]) -> list[Utterance]:
    return [Utterance(f"/{corpus}/{k}.wav", x, f"s{k % 2}") for k, x in enumerate(labels)]


EMODB = ["anger", "sadness", "boredom", "neutral"]


def test_label_keys_are_common_names_where_there_are_any():
    assert label_key("angry", "casia") == label_key("angry") == "anger"
    assert label_key("fearful") == "fear" and label_key("boredom", "casia") == "boredom"
    assert label_key("pos") == "pos"  # no common name: matched by its own name


def test_an_emodb_model_scored_on_casia_by_hand():
    """Model classes anger, boredom, happiness, neutral (EmoDB's names) on CASIA's labels."""
    model = ["anger", "boredom", "happiness", "neutral"]
    utts = _utts("casia", ["angry", "surprise", "happy", "angry", "sad", "neutral", "surprise"])
    match = match_labels(model, utts, "casia")
    assert match.scored == [0, 2, 3, 5] and match.y.tolist() == [0, 2, 0, 3]
    # Stated, not silently dropped: CASIA classes the model cannot output, and the model's
    # classes CASIA does not have.
    assert match.not_in_model == {"sadness": 1, "surprise": 2}
    assert match.not_in_corpus == ["boredom"]
    probs = np.array(
        [
            [0.6, 0.1, 0.2, 0.1],  # angry -> anger: right
            [0.1, 0.5, 0.3, 0.1],  # happy -> boredom: wrong in common; own: happiness
            [0.2, 0.6, 0.1, 0.1],  # angry -> boredom: wrong in common; own: anger
            [0.1, 0.1, 0.7, 0.1],  # neutral -> happiness: wrong in both
        ]
    )
    report = score(match, probs)
    assert report["labels"] == model and report["n"] == 4
    assert report["wa"] == pytest.approx(1 / 4)
    assert report["confusion"][0] == [1, 1, 0, 0]  # anger: once right, once boredom
    assert report["skipped_unknown_labels"] == 3
    own = report["own"]
    assert own["labels"] == ["angry", "happy", "neutral"]  # CASIA's names, shared classes
    assert own["wa"] == pytest.approx(3 / 4) and own["ua"] == pytest.approx((1 + 1 + 0) / 3)
    assert own["confusion"] == [[2, 0, 0], [0, 1, 0], [0, 1, 0]]


def test_a_model_with_a_corpus_s_own_names_on_another_corpus():
    """Trained on CASIA (its own names), scored on EmoDB: both map to common names."""
    match = match_labels(["angry", "happy", "neutral", "sad"], _utts("emodb", EMODB), "emodb")
    assert match.space == ["anger", "happiness", "neutral", "sadness"]
    assert match.not_in_model == {"boredom": 1} and match.not_in_corpus == []
    report = score(match, np.eye(4)[[0, 3, 2]])  # anger, sadness, neutral, all right
    # Its own labels: EmoDB's classes the model has (EmoDB has happiness, unseen here).
    assert report["wa"] == 1.0 and report["own"]["labels"] == match.space


def test_labels_without_common_names_match_by_name():
    match = match_labels(["neg", "pos"], _utts(None, ["pos", "neg", "meh", "pos"]), None)
    assert match.scored == [0, 1, 3] and match.not_in_model == {"meh": 1}
    report = score(match, np.array([[0.2, 0.8], [0.3, 0.7], [0.9, 0.1]]))
    assert report["wa"] == pytest.approx(1 / 3) and "own" not in report
    assert report == {
        **summarize([1, 0, 1], [1, 1, 0], ["neg", "pos"]),
        "skipped_unknown_labels": 1,
        "not_in_model": {"meh": 1},
        "not_in_corpus": [],
    }
    with pytest.raises(ValueError, match="twice"):
        match_labels(["anger", "angry"], [], None)


@pytest.fixture(scope="module")
def emodb_model(tmp_path_factory) -> Path:
    """An (untrained) tiny model with EmoDB class names, saved with its metadata."""
    config = FrontendConfig(top_db=None)
    labels = ("anger", "boredom", "neutral", "sadness")
    model = build_dycnn_bilstm(
        num_classes=len(labels), n_mels=config.n_mels, conv_filters=(4,), lstm_units=8,
        attention_units=8,
    )  # fmt: skip
    metadata = ModelMetadata(labels=labels, frontend=config, window=WindowPolicy(100, 50))
    return save_model(model, tmp_path_factory.mktemp("eval-model") / "emodb.keras", metadata)


def test_dyser_eval_scores_another_corpus_on_the_shared_classes(emodb_model, tmp_path):
    manifest = _own_corpus(tmp_path, "casia", ("anger", "happiness", "neutral"), 2, seed=3)
    args = [str(emodb_model), "--corpus", "manifest", "--data", str(manifest)]
    result = CliRunner().invoke(evaluate, [*args, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["corpus"] == "casia" and report["n"] == 8  # 2 speakers x 2 x 2 classes
    assert report["not_in_model"] == {"happiness": 4} and report["not_in_corpus"] == ["boredom"]
    assert report["labels"] == report["model_labels"] == ["anger", "boredom", "neutral", "sadness"]
    assert report["own"]["labels"] == ["angry", "neutral", "sad"]
    # The same numbers by hand, from the model's own predictions of the shared utterances.
    model, metadata = load_model(emodb_model)
    shared = [u for u in load_manifest(manifest) if u.label != "happy"]
    feats = extract_corpus([u.path for u in shared], metadata.frontend)
    probs = predict_utterances(model, feats, metadata.frontend, metadata.window)
    own_truth = np.array([["angry", "neutral"].index(u.label) for u in shared])
    assert report["wa"] == pytest.approx(np.mean(probs.argmax(1) == 2 * own_truth))
    own_pred = probs[:, [0, 2, 3]].argmax(1)  # over CASIA's classes: anger, neutral, sadness
    assert report["own"]["wa"] == pytest.approx(np.mean(own_pred == own_truth))
    text = CliRunner().invoke(evaluate, args)
    assert text.exit_code == 0, text.output
    assert "8 utterances (4 skipped)" in text.output and "casia's own labels" in text.output
    assert "cannot output: happiness (4)" in text.output and "lacks" in text.output
    only_happy = manifest.parent / "happy.csv"
    lines = manifest.read_text().splitlines()
    only_happy.write_text("\n".join([lines[0], *[x for x in lines[1:] if ",happy," in x]]) + "\n")
    bad = CliRunner().invoke(evaluate, [*args[:3], "--data", str(only_happy)])
    assert bad.exit_code == 2 and "no utterances with labels the model knows" in bad.output


def test_dyser_eval_names_speakers_the_corpus_lacks(emodb_model, tmp_path):
    manifest = _own_corpus(tmp_path, "emodb", ("anger", "neutral"), 2, seed=4)
    speakers = sorted({u.speaker for u in load_manifest(manifest)})
    args = [str(emodb_model), "--corpus", "manifest", "--data", str(manifest), "--speakers"]
    for given, got in [(f"{speakers[0]},nobody", "['nobody']"), (",", "','")]:
        bad = CliRunner().invoke(evaluate, [*args, given])
        assert bad.exit_code == 2, bad.output
        expected = f"--speakers: expected speakers of {manifest} ({', '.join(speakers)}), got {got}"
        assert expected in " ".join(bad.output.split()), bad.output
