"""Evaluation protocols, and the leak guards that catch the known traps of SER evaluation."""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from keras_dyconv.corpora import Utterance
from keras_dyconv.protocols import (
    Fold,
    LeakageError,
    assert_no_leak,
    assert_test_partition,
    fixed_split,
    leave_one_speaker_out,
    speaker_group_kfold,
    stratified_kfold,
)

LABELS = ("angry", "happy", "sad")


def _corpus(speakers: dict[str, str | None], per_label: int = 4, sessions=None) -> list:
    """Utterances of the given speakers (name -> gender), `per_label` per label each."""
    return [
        Utterance(
            path=Path(f"/corpus/{s}/{label}_{k}.wav"),
            label=label,
            speaker=s,
            gender=g,
            session=sessions[s] if sessions else None,
        )
        for s, g in speakers.items()
        for label in LABELS
        for k in range(per_label)
    ]


SPEAKERS = {"f1": "female", "m1": "male", "f2": "female", "m2": "male", "f3": "female",
            "m3": "male"}  # fmt: skip


def _speakers(utts, idx) -> set[str]:
    return {utts[i].speaker for i in idx}


def test_loso_folds() -> None:
    utts = _corpus(SPEAKERS)
    folds = list(leave_one_speaker_out(utts))
    assert [f.name for f in folds] == [f"loso-{s}" for s in sorted(SPEAKERS)]
    assert_test_partition(folds, len(utts))
    for fold in folds:
        assert fold.speaker_independent
        test = _speakers(utts, fold.test)
        assert len(test) == 1
        assert not test & (_speakers(utts, fold.train) | _speakers(utts, fold.val))
        assert not set(fold.val) & set(fold.test)
        assert len(fold.train) + len(fold.val) + len(fold.test) == len(utts)
        assert_no_leak(fold, utts)
    # Validation: the test speaker's successor in its gender and the other gender's speaker
    # of the same rank, so every speaker validates equally often (twice here).
    val = {f.name: sorted(_speakers(utts, f.val)) for f in folds}
    assert val == {
        "loso-f1": ["f2", "m1"],
        "loso-f2": ["f3", "m2"],
        "loso-f3": ["f1", "m3"],
        "loso-m1": ["f1", "m2"],
        "loso-m2": ["f2", "m3"],
        "loso-m3": ["f3", "m1"],
    }
    assert Counter(s for v in val.values() for s in v) == dict.fromkeys(SPEAKERS, 2)
    again = list(leave_one_speaker_out(utts))
    assert all(np.array_equal(a.val, b.val) for a, b in zip(folds, again, strict=True))


def test_loso_validation_options() -> None:
    utts = _corpus(SPEAKERS)
    no_val = next(leave_one_speaker_out(utts, val_speakers=0))
    assert no_val.val.size == 0 and len(no_val.train) == len(utts) - 12
    one = next(leave_one_speaker_out(utts, val_speakers=1))  # test f1: the next speaker, f2
    assert _speakers(utts, one.val) == {"f2"}
    anonymous = _corpus(dict.fromkeys(SPEAKERS))  # genders unknown: the next two speakers
    assert _speakers(anonymous, next(leave_one_speaker_out(anonymous)).val) == {"f2", "f3"}
    with pytest.raises(ValueError, match="need at least 6 training speakers"):
        next(leave_one_speaker_out(utts, val_speakers=5))
    unknown = _corpus({"unknown": None})
    with pytest.raises(ValueError, match="speaker 'unknown'"):
        next(leave_one_speaker_out(unknown))
    mixed = [*utts, dataclasses.replace(utts[0], path=Path("/x.wav"), gender="male")]
    with pytest.raises(ValueError, match="speaker 'f1' has genders"):
        next(leave_one_speaker_out(mixed))


def test_speaker_group_kfold() -> None:
    speakers = {**SPEAKERS, "f4": "female"}
    utts = _corpus(speakers)
    folds = list(speaker_group_kfold(utts, k=3))
    assert len(folds) == 3
    assert_test_partition(folds, len(utts))
    assert sorted(len(f.test) for f in folds) == [24, 24, 36]  # 7 speakers in 3 folds
    for fold in folds:
        assert_no_leak(fold, utts)
        assert not _speakers(utts, fold.test) & _speakers(utts, fold.train)
    with pytest.raises(ValueError, match=r"k must be in \[2, 7\]"):
        list(speaker_group_kfold(utts, k=8))


def test_session_folds() -> None:
    # IEMOCAP-like: five sessions of one female and one male speaker each.
    speakers = {f"Ses0{n}{g}": ("female" if g == "F" else "male") for n in range(1, 6)
                for g in "FM"}  # fmt: skip
    sessions = {s: s[:5] for s in speakers}
    utts = _corpus(speakers, sessions=sessions)
    folds = list(speaker_group_kfold(utts, k=5, group="session"))
    assert [f.name for f in folds] == [f"session-Ses0{n}" for n in range(1, 6)]
    assert_test_partition(folds, len(utts))
    for fold in folds:
        assert fold.group == "session"
        test_sessions = {utts[i].session for i in fold.test}
        assert len(test_sessions) == 1
        assert not test_sessions & {utts[i].session for i in [*fold.train, *fold.val]}
        assert {utts[i].gender for i in fold.val} == {"female", "male"}
        assert_no_leak(fold, utts)
    moved = [dataclasses.replace(u, session="Ses02") if u.path.name == "sad_0.wav" else u
             for u in utts]  # fmt: skip
    with pytest.raises(ValueError, match="speakers appear in several sessions"):
        list(speaker_group_kfold(moved, k=5, group="session"))
    with pytest.raises(ValueError, match="needs sessions"):
        list(speaker_group_kfold(_corpus(SPEAKERS), k=2, group="session"))


def test_stratified_kfold_is_speaker_dependent() -> None:
    utts = _corpus(SPEAKERS, per_label=5)  # 30 per label
    folds = list(stratified_kfold(utts, k=5, seed=1))
    assert_test_partition(folds, len(utts))
    labels = np.array([u.label for u in utts])
    for fold in folds:
        assert not fold.speaker_independent
        assert Counter(labels[fold.test]) == dict.fromkeys(LABELS, 6)  # stratified
        assert Counter(labels[fold.val]) == dict.fromkeys(LABELS, 2)  # 10% of 24 per class
        assert not set(fold.val) & (set(fold.test) | set(fold.train))
        assert_no_leak(fold, utts)  # passes: speakers may be shared when declared so
        # ... and the same fold claimed speaker-independent is caught.
        with pytest.raises(LeakageError, match=r"speakers \[.*\] are in both train and val"):
            assert_no_leak(dataclasses.replace(fold, speaker_independent=True), utts)
    same = list(stratified_kfold(utts, k=5, seed=1))
    other = list(stratified_kfold(utts, k=5, seed=2))
    assert all(np.array_equal(a.test, b.test) for a, b in zip(folds, same, strict=True))
    assert not all(np.array_equal(a.test, b.test) for a, b in zip(folds, other, strict=True))
    with pytest.raises(ValueError, match="smallest class size"):
        list(stratified_kfold(utts, k=31))
    assert next(stratified_kfold(utts, k=5, val_fraction=0.0)).val.size == 0


def test_assert_no_leak_catches() -> None:
    utts = _corpus(SPEAKERS)
    fold = next(leave_one_speaker_out(utts))
    test_speaker_in_val = dataclasses.replace(fold, val=np.concatenate([fold.val, fold.test[:1]]))
    with pytest.raises(LeakageError, match="share utterances"):
        assert_no_leak(test_speaker_in_val, utts)
    # The same audio file under two indices, one in train and one in test.
    dup = [*utts, utts[int(fold.test[0])]]
    with pytest.raises(LeakageError, match="share audio files"):
        assert_no_leak(dataclasses.replace(fold, train=np.append(fold.train, len(utts))), dup)
    # A training utterance that is in fact the test speaker's (its speaker id is f1).
    renamed = [*utts[:-1], dataclasses.replace(utts[-1], speaker=utts[int(fold.test[0])].speaker)]
    assert len(utts) - 1 in fold.train
    with pytest.raises(LeakageError, match=r"speakers \['f1'\] are in both"):
        assert_no_leak(fold, renamed)
    with pytest.raises(LeakageError, match="outside"):
        assert_no_leak(dataclasses.replace(fold, test=np.array([len(utts)])), utts)
    with pytest.raises(LeakageError, match="repeats"):
        assert_no_leak(dataclasses.replace(fold, test=np.array([0, 0])), utts)
    with pytest.raises(LeakageError, match="must not be empty"):
        assert_no_leak(dataclasses.replace(fold, train=np.array([], dtype=int)), utts)
    sessions = [dataclasses.replace(u, session="S1") for u in utts]
    with pytest.raises(LeakageError, match="test sessions"):
        assert_no_leak(dataclasses.replace(fold, group="session"), sessions)


def test_assert_test_partition_catches() -> None:
    def fold(test) -> Fold:
        return Fold("f", np.array([0]), np.array([], dtype=int), np.array(test), False)

    assert_test_partition([fold([0, 2]), fold([1, 3])], 4)
    with pytest.raises(LeakageError, match=r"1 never tested \(e\.g\. \[3\]\)"):
        assert_test_partition([fold([0, 2]), fold([1])], 4)
    with pytest.raises(LeakageError, match=r"1 tested more than once \(e\.g\. \[2\]\)"):
        assert_test_partition([fold([0, 2]), fold([1, 2, 3])], 4)
    with pytest.raises(LeakageError, match="1 indices out of range"):
        assert_test_partition([fold([0, 1, 2, 3, 4])], 4)


def test_fixed_split(tmp_path: Path) -> None:
    speakers = {"a": "female", "b": "male", "c": "female"}
    utts = [dataclasses.replace(u, path=tmp_path / u.path.relative_to("/corpus"))
            for u in _corpus(speakers, per_label=1)]  # fmt: skip
    split = {"a": "train", "b": "val", "c": "test"}
    rows = [f"{u.path.relative_to(tmp_path)},{split[u.speaker]}" for u in utts]
    (tmp_path / "split.csv").write_text("path,split\n" + "\n".join(rows) + "\n")
    (fold,) = fixed_split(utts, tmp_path / "split.csv")
    assert fold.name == "fixed-split" and fold.speaker_independent
    assert _speakers(utts, fold.train) == {"a"} and _speakers(utts, fold.test) == {"c"}
    assert _speakers(utts, fold.val) == {"b"}
    assert_no_leak(fold, utts)
    # Speaker a's first utterance in test: no longer speaker-independent.
    (tmp_path / "mixed.csv").write_text(
        "path,split\n" + "\n".join([rows[0].replace("train", "test"), *rows[1:]]) + "\n"
    )
    assert not next(fixed_split(utts, tmp_path / "mixed.csv")).speaker_independent
    for content, expected in [
        ("\n".join(rows[1:]), r"1 utterance\(s\) are not listed"),
        ("\n".join([*rows, "a/nowhere.wav,test"]), r"bad\.csv:11: a/nowhere\.wav is not one"),
        ("\n".join([*rows, rows[0]]), r"bad\.csv:11: .* listed twice"),
        ("\n".join([rows[0].replace("train", "dev"), *rows[1:]]), "split must be train, val"),
    ]:
        (tmp_path / "bad.csv").write_text("path,split\n" + content + "\n")
        with pytest.raises(ValueError, match=expected):
            next(fixed_split(utts, tmp_path / "bad.csv"))
