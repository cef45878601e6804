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
    auto_val_speakers,
    fixed_split,
    leave_one_speaker_out,
    parse_val_speakers,
    speaker_group_kfold,
    stratified_kfold,
    validation_rule,
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
    folds = list(leave_one_speaker_out(utts, val_speakers=2))
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
    again = list(leave_one_speaker_out(utts, val_speakers=2))
    assert all(np.array_equal(a.val, b.val) for a, b in zip(folds, again, strict=True))


def test_loso_validation_options() -> None:
    utts = _corpus(SPEAKERS)
    no_val = next(leave_one_speaker_out(utts, val_speakers=0))
    assert no_val.val.size == 0 and len(no_val.train) == len(utts) - 12
    one = next(leave_one_speaker_out(utts, val_speakers=1))  # test f1: the next speaker, f2
    assert _speakers(utts, one.val) == {"f2"}
    anonymous = _corpus(dict.fromkeys(SPEAKERS))  # genders unknown: the next two speakers
    two = next(leave_one_speaker_out(anonymous, val_speakers="2"))
    assert _speakers(anonymous, two.val) == {"f2", "f3"}
    assert two.val_rule["rule"] == "fixed" and two.val_rule["train_speakers"] == 3
    auto = next(leave_one_speaker_out(utts))  # 5 training candidates: 1 validates
    assert _speakers(utts, auto.val) == {"f2"} and auto.val_rule["rule"] == "auto"
    # Validation never takes more speakers than training keeps.
    for n, left in ((3, 2), (5, 0)):
        with pytest.raises(ValueError, match=rf"loso-f1: {n} validation .* leave {left} to"):
            next(leave_one_speaker_out(utts, val_speakers=n))
    for bad in ("two", -1, True, 1.5):
        with pytest.raises(ValueError, match="val_speakers must be 'auto' or a number"):
            next(leave_one_speaker_out(utts, val_speakers=bad))
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
        assert Counter(utts[i].gender for i in fold.test)["male"] == 12  # 3 males, 3 folds
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
        assert fold.val_rule["rule"] == "stratified-fraction"
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
    assert fold.val_rule["rule"] == "split-file" and fold.val_rule["val_speakers"] == 1
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


# ------------------------------------------------- validation speakers from 4 to 24 speakers


def _speakers_of(n: int, genders: bool = True) -> dict[str, str | None]:
    """n speakers "01".."nn", odd male and even female (as RAVDESS), or genders unknown."""
    return {
        f"{i:02d}": ("male" if i % 2 else "female") if genders else None for i in range(1, n + 1)
    }


def test_auto_val_speakers_rule() -> None:
    got = {n: auto_val_speakers(n) for n in (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 13, 19, 20, 23)}
    assert got == {0: 0, 1: 0, 2: 1, 3: 1, 4: 1, 5: 1, 6: 1, 7: 1, 8: 2, 9: 2, 12: 2, 13: 3,
                   19: 4, 20: 4, 23: 5}  # fmt: skip
    for n in range(200):
        v = auto_val_speakers(n)
        assert v <= n - v and (v >= 1 or n < 2)
    rule = validation_rule(9)
    assert rule["rule"] == "auto" and (rule["val_speakers"], rule["train_speakers"]) == (2, 7)
    assert "round(0.2 x 9 training speakers)" in rule["description"]
    assert validation_rule(9, 3)["description"] == "fixed: 3 for validation, 6 for training"
    assert parse_val_speakers(" Auto ") == "auto" and parse_val_speakers("0") == 0


@pytest.mark.parametrize(
    ("n_speakers", "protocol", "k", "n_val", "n_train"),
    [
        (4, "loso", None, 1, 2),  # CASIA: 3 candidates, 1 validates, 2 train (not 2 and 1)
        (4, "group", 2, 1, 1),
        (10, "loso", None, 2, 7),  # EmoDB, IEMOCAP (speaker = session + gender)
        (10, "group", 5, 2, 6),
        (24, "loso", None, 5, 18),
        (24, "group", 6, 4, 16),  # RAVDESS's 6 folds of 4 actors
    ],
)
def test_auto_validation_from_4_to_24_speakers(n_speakers, protocol, k, n_val, n_train) -> None:
    utts = _corpus(_speakers_of(n_speakers), per_label=2)
    if protocol == "loso":
        folds = list(leave_one_speaker_out(utts))
    else:
        folds = list(speaker_group_kfold(utts, k))
    assert_test_partition(folds, len(utts))
    for fold in folds:
        assert_no_leak(fold, utts)
        val, train = _speakers(utts, fold.val), _speakers(utts, fold.train)
        assert (len(val), len(train)) == (n_val, n_train)
        assert len(val) <= len(train)
        assert fold.val_rule == {
            "rule": "auto",
            "candidates": n_val + n_train,
            "val_speakers": n_val,
            "train_speakers": n_train,
            "description": fold.val_rule["description"],
        }
        if n_val % 2 == 0:  # genders known: validation is balanced too
            assert Counter(utts[i].gender for i in fold.val) == {
                "female": 6 * n_val // 2,
                "male": 6 * n_val // 2,
            }
    # An explicit count still works, and is refused when training would keep fewer.
    if n_speakers == 4:
        with pytest.raises(ValueError, match=r"2 validation .* 3 training speakers .* leave 1"):
            next(leave_one_speaker_out(utts, val_speakers=2))
        assert len(_speakers(utts, next(leave_one_speaker_out(utts, val_speakers=0)).train)) == 3


def test_group_kfold_balances_gender() -> None:
    """24 actors of 60 utterances in 6 folds: 2 female + 2 male actors per fold, every time
    (filling folds in sorted order would put actors 01/07/13/19, all male, together)."""
    utts = [
        Utterance(Path(f"/r/Actor_{s}/{j}.wav"), LABELS[j % 3], s, g)
        for s, g in _speakers_of(24).items()
        for j in range(60)
    ]
    folds = list(speaker_group_kfold(utts, k=6))
    members = [sorted(_speakers(utts, f.test)) for f in folds]
    assert members == [
        ["01", "08", "13", "20"],
        ["02", "07", "14", "19"],
        ["03", "10", "15", "22"],
        ["04", "09", "16", "21"],
        ["05", "12", "17", "24"],
        ["06", "11", "18", "23"],
    ]
    again = [sorted(_speakers(utts, f.test)) for f in speaker_group_kfold(utts, k=6)]
    assert again == members
    # Unequal sizes (EmoDB's 35..71 per speaker): gender counts still differ by at most 1
    # per fold, and the sizes stay balanced.
    sizes = {"03": 49, "08": 58, "09": 43, "10": 38, "11": 55, "12": 35, "13": 61, "14": 69,
             "15": 56, "16": 71}  # fmt: skip
    gender = {s: "male" if s in ("03", "10", "11", "12", "15") else "female" for s in sizes}
    emodb = [
        Utterance(Path(f"/e/{s}_{j}.wav"), LABELS[j % 3], s, gender[s])
        for s, n in sizes.items()
        for j in range(n)
    ]
    for k in (2, 3, 5):
        folds = list(speaker_group_kfold(emodb, k=k))
        assert_test_partition(folds, len(emodb))
        for g in ("female", "male"):
            counts = [sum(gender[s] == g for s in _speakers(emodb, f.test)) for f in folds]
            assert max(counts) - min(counts) <= 1, (k, g, counts)
        load = [len(f.test) for f in folds]
        assert max(load) - min(load) <= 71, (k, load)
    # Genders unknown: folds are balanced by size alone, as before.
    anonymous = [dataclasses.replace(u, gender=None) for u in utts]
    plain = [sorted(_speakers(anonymous, f.test)) for f in speaker_group_kfold(anonymous, k=6)]
    assert plain[0] == ["01", "07", "13", "19"]


RAVDESS = Path("/work/shared/datasets/ravdess")


@pytest.mark.slow
@pytest.mark.skipif(not RAVDESS.is_dir(), reason="RAVDESS not at /work/shared/datasets")
def test_real_ravdess_six_folds() -> None:
    from keras_dyconv.corpora import load_ravdess

    utts = load_ravdess(RAVDESS)
    folds = list(speaker_group_kfold(utts, k=6))
    assert_test_partition(folds, len(utts))
    for fold in folds:
        assert_no_leak(fold, utts)
        assert len(fold.test) == 240
        for part, n in ((fold.test, 4), (fold.val, 4), (fold.train, 16)):
            genders = {utts[i].speaker: utts[i].gender for i in part}
            assert Counter(genders.values()) == {"female": n // 2, "male": n // 2}
        assert fold.val_rule["rule"] == "auto" and fold.val_rule["val_speakers"] == 4


def test_cli_val_speakers_defaults_to_auto(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from keras_dyconv.cli import train

    (option,) = [p for p in train.params if p.name == "val_speakers"]
    assert option.default == "auto"
    args = ["--corpus", "manifest", "--data", str(tmp_path), "--out", str(tmp_path / "out")]
    bad = CliRunner().invoke(train, [*args, "--val-speakers", "two"])
    assert bad.exit_code == 2 and "Invalid value for '--val-speakers'" in bad.output
    assert "val_speakers must be 'auto' or a number >= 0, got 'two'" in bad.output


def test_experiment_folds_default_to_auto() -> None:
    """`dyser-train`'s folds (ProtocolSpec's default) use the auto rule and say so."""
    from keras_dyconv.experiment import ProtocolSpec, make_folds

    utts = _corpus(_speakers_of(4))
    folds = make_folds(utts, ProtocolSpec("loso"))
    assert [len(_speakers(utts, f.val)) for f in folds] == [1, 1, 1, 1]
    assert all(f.val_rule["rule"] == "auto" and f.val_rule["train_speakers"] == 2 for f in folds)
    with pytest.raises(ValueError, match="would leave 1 to train on"):
        make_folds(utts, ProtocolSpec("loso", val_speakers=2))
