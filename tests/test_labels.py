"""The common label space: every corpus's labels map, one-to-one, to known common names."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from keras_dyconv.corpora import (
    CASIA_EMOTIONS,
    EMODB_EMOTIONS,
    IEMOCAP_FOUR_CLASSES,
    IEMOCAP_LABELS,
    RAVDESS_EMOTIONS,
    Utterance,
)
from keras_dyconv.labels import (
    COMMON_LABELS,
    CORPUS_LABELS,
    UNMAPPED_LABELS,
    class_mask,
    common_label,
    corpus_classes,
    mapping_record,
    original_label,
    score_both,
    to_common,
)

# Every label each loader can produce (IEMOCAP: with and without merge_excited).
LOADER_LABELS = {
    "emodb": set(EMODB_EMOTIONS.values()),
    "casia": set(CASIA_EMOTIONS),
    "ravdess": set(RAVDESS_EMOTIONS.values()),
    "iemocap": set(IEMOCAP_LABELS.values()),
}
DOCS = Path(__file__).resolve().parents[1] / "docs" / "concepts" / "labels.md"


@pytest.mark.parametrize("corpus", sorted(LOADER_LABELS))
def test_every_label_maps_one_to_one(corpus: str) -> None:
    table = CORPUS_LABELS[corpus]
    unmapped = set(UNMAPPED_LABELS.get(corpus, {}))
    assert set(table) | unmapped == LOADER_LABELS[corpus]  # every label, and no other
    assert not set(table) & unmapped
    assert set(table.values()) <= set(COMMON_LABELS)  # no unknown common names
    assert len(set(table.values())) == len(table)  # one-to-one: the original is recoverable
    for label in table:
        assert original_label(corpus, common_label(corpus, label)) == label
    for label in unmapped:
        with pytest.raises(ValueError, match=f"{corpus} label '{label}' has no common name"):
            common_label(corpus, label)


def test_common_names() -> None:
    assert set(CORPUS_LABELS) == set(LOADER_LABELS)
    used = {c for table in CORPUS_LABELS.values() for c in table.values()}
    assert used == set(COMMON_LABELS)
    assert list(COMMON_LABELS) == sorted(COMMON_LABELS)
    # EmoDB's names are the common ones: a model trained on EmoDB keeps valid labels.
    assert all(k == v for k, v in CORPUS_LABELS["emodb"].items())
    assert common_label("casia", "angry") == common_label("ravdess", "angry") == "anger"
    assert common_label("ravdess", "fearful") == common_label("iemocap", "fearful") == "fear"
    assert common_label("casia", "surprise") == common_label("ravdess", "surprised")
    with pytest.raises(ValueError, match=r"casia has no label 'calm'; expected one of"):
        common_label("casia", "calm")
    with pytest.raises(ValueError, match="no label mapping for corpus 'timit'"):
        common_label("timit", "angry")
    with pytest.raises(ValueError, match=r"casia has no class 'boredom'"):
        original_label("casia", "boredom")


def _utts(corpus_labels: list[str], **extra) -> list[Utterance]:
    return [
        Utterance(Path(f"/c/{i}.wav"), label, f"s{i % 2}", extra=dict(extra))
        for i, label in enumerate(corpus_labels)
    ]


def test_to_common() -> None:
    utts = _utts(["happy", "angry", "surprise"])
    common = to_common(utts, "casia")
    assert [u.label for u in common] == ["happiness", "anger", "surprise"]
    assert [u.path for u in common] == [u.path for u in utts]
    assert [u.extra for u in common] == [
        {"corpus": "casia", "original_label": x} for x in ("happy", "angry", "surprise")
    ]
    assert [u.label for u in utts] == ["happy", "angry", "surprise"]  # inputs untouched
    # The corpus from each utterance's extra (e.g. a manifest column).
    mixed = [*_utts(["calm"], corpus="ravdess"), *_utts(["boredom"], corpus="emodb")]
    assert [u.label for u in to_common(mixed)] == ["calm", "boredom"]
    for args, message in [
        ((common, "casia"), r"/c/0\.wav: already in the common label space"),
        ((utts,), r"/c/0\.wav: no corpus given"),
        ((_utts(["angry"], corpus="ravdess"), "casia"), r"extra\['corpus'\] is 'ravdess'"),
        ((_utts(["calm"]), "casia"), r"/c/0\.wav: casia has no label 'calm'"),
        ((_utts(["xxx"]), "iemocap"), "the annotators did not agree"),
    ]:
        with pytest.raises(ValueError, match=message):
            to_common(*args)


def test_corpus_classes_and_mask() -> None:
    assert corpus_classes("casia") == (
        "anger", "fear", "happiness", "neutral", "sadness", "surprise",
    )  # fmt: skip
    assert corpus_classes("ravdess") == (
        "anger", "calm", "disgust", "fear", "happiness", "neutral", "sadness", "surprise",
    )  # fmt: skip
    assert corpus_classes("iemocap", IEMOCAP_FOUR_CLASSES) == (
        "anger", "happiness", "neutral", "sadness",
    )  # fmt: skip
    space = ["anger", "boredom", "calm", "happiness", "sadness"]
    assert class_mask("casia", space).tolist() == [True, False, False, True, True]
    assert class_mask("emodb", space).tolist() == [True, True, False, True, True]
    assert class_mask("iemocap", space, ["sad"]).tolist() == [False, False, False, False, True]
    with pytest.raises(ValueError, match=r"not in COMMON_LABELS: \['angry'\]"):
        class_mask("casia", ["angry"])


def test_score_both() -> None:
    space = ["anger", "boredom", "fear", "happiness", "neutral", "sadness", "surprise"]
    true = ["angry", "happy", "sad", "surprise"]
    p = np.full((4, len(space)), 0.01)
    p[0, 0] = 0.9  # anger: right in both
    p[1, [1, 3]] = 0.6, 0.3  # boredom first (CASIA has none), happiness second
    p[2, 5] = 0.9  # sadness: right
    p[3, 2] = 0.9  # fear for surprise: wrong in both
    scores = score_both(p, space, true, "casia")
    assert scores["common"]["labels"] == space and scores["common"]["wa"] == 0.5
    assert scores["own"]["labels"] == ["angry", "fear", "happy", "neutral", "sad", "surprise"]
    assert scores["own"]["wa"] == 0.75
    assert scores["own"]["per_class"]["happy"]["recall"] == 1.0
    assert scores["common"]["per_class"]["happiness"]["recall"] == 0.0
    with pytest.raises(ValueError, match=r"true classes \['calm'\] are not in the label space"):
        score_both(np.ones((1, len(space))), space, ["calm"], "ravdess")
    with pytest.raises(ValueError, match=r"shape \(n, 7\) with n = 4"):
        score_both(p[:3], space, true, "casia")


def test_mapping_record() -> None:
    record = json.loads(json.dumps(mapping_record(["casia", "emodb", "casia"])))
    assert record["common_labels"] == list(COMMON_LABELS)
    assert sorted(record["corpora"]) == ["casia", "emodb"]
    assert record["corpora"]["casia"]["mapping"]["angry"] == "anger"
    assert record["corpora"]["emodb"]["classes"] == sorted(EMODB_EMOTIONS.values())


def test_docs_table_is_the_mapping() -> None:
    """docs/concepts/labels.md's table lists exactly CORPUS_LABELS (one row per common
    label, one column per corpus, "—" where a corpus lacks the class)."""
    rows = [
        [cell.strip().strip("`") for cell in line.strip().strip("|").split("|")]
        for line in DOCS.read_text(encoding="utf-8").splitlines()
        if line.startswith("| `")
    ]
    header = ["common", "emodb", "casia", "ravdess", "iemocap"]
    documented = {
        corpus: {cells[i]: cells[0] for cells in rows if cells[i] != "—"}
        for i, corpus in enumerate(header)
        if i
    }
    assert [r[0] for r in rows] == list(COMMON_LABELS)
    assert documented == CORPUS_LABELS
