"""The IEMOCAP loader on small fixture sessions with its real transcript format."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import soundfile as sf
from corpus_fixtures import _wav

from keras_dyconv.corpora import (
    CorpusError,
    load_iemocap,
)

_HEADER = "% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]\n\n"


def _iemocap_session(root: Path, n: int, turns: list[tuple[str, str]], wav: bool = True):
    """Write SessionN with one EmoEvaluation file per dialog and (optionally) the wavs."""
    dialogs: dict[str, list[str]] = {}
    for i, (utt, code) in enumerate(turns):
        dialog = utt.rsplit("_", 1)[0]
        line = f"[{i + 1.5:.4f} - {i + 2.5:.4f}]\t{utt}\t{code}\t[2.5000, 3.0000, 3.5000]"
        # Real files follow each turn with the annotators' votes, which are not labels.
        dialogs.setdefault(dialog, []).append(f"{line}\nC-E2:\tNeutral;\t()\nA-E3:\tval 3;\n")
        if wav:
            _wav(root / f"Session{n}" / "sentences" / "wav" / dialog / f"{utt}.wav")
    eval_dir = root / f"Session{n}" / "dialog" / "EmoEvaluation"
    (eval_dir / "Categorical").mkdir(parents=True, exist_ok=True)
    for dialog, blocks in dialogs.items():
        (eval_dir / f"{dialog}.txt").write_text(_HEADER + "\n".join(blocks))
    (eval_dir / "._junk.txt").write_bytes(b"\x00\x05\x16\x07\xff\xfe resource fork")


SESSION1 = [
    ("Ses01F_impro01_F000", "neu"),
    ("Ses01F_impro01_M000", "exc"),
    ("Ses01F_impro01_F001", "hap"),
    ("Ses01F_impro01_M001", "fru"),
    ("Ses01F_impro01_F002", "xxx"),
    ("Ses01F_script01_1b_M003", "ang"),
]
SESSION2 = [("Ses02M_impro02_F000", "sad"), ("Ses02M_impro02_M001", "oth")]


@pytest.fixture
def iemocap(tmp_path: Path) -> Path:
    _iemocap_session(tmp_path, 1, SESSION1)
    _iemocap_session(tmp_path, 2, SESSION2)
    return tmp_path


def test_iemocap_four_classes(iemocap: Path) -> None:
    utts = load_iemocap(iemocap, sessions=(1, 2))
    got = {u.path.stem: (u.label, u.speaker, u.gender, u.session) for u in utts}
    assert got == {
        "Ses01F_impro01_F000": ("neutral", "Ses01F", "female", "Ses01"),
        "Ses01F_impro01_M000": ("happy", "Ses01M", "male", "Ses01"),  # excited merged
        "Ses01F_impro01_F001": ("happy", "Ses01F", "female", "Ses01"),
        "Ses01F_script01_1b_M003": ("angry", "Ses01M", "male", "Ses01"),
        "Ses02M_impro02_F000": ("sad", "Ses02F", "female", "Ses02"),
    }  # fru, xxx and oth are not among the 4 classes
    angry = next(u for u in utts if u.label == "angry")
    assert angry.path == (
        iemocap / "Session1/sentences/wav/Ses01F_script01_1b/Ses01F_script01_1b_M003.wav"
    )
    assert angry.extra == {"code": "ang", "start_s": 6.5, "end_s": 7.5, "vad": (2.5, 3.0, 3.5)}
    assert utts == sorted(utts, key=lambda u: str(u.path))


def test_iemocap_all_and_explicit_classes(iemocap: Path) -> None:
    labels = Counter(u.label for u in load_iemocap(iemocap, classes="all", sessions=(1, 2)))
    assert labels == {
        "neutral": 1,
        "happy": 2,
        "frustrated": 1,
        "xxx": 1,
        "angry": 1,
        "sad": 1,
        "other": 1,
    }
    unmerged = load_iemocap(iemocap, classes="all", merge_excited=False, sessions=(1,))
    assert Counter(u.label for u in unmerged)["excited"] == 1
    chosen = load_iemocap(iemocap, classes=["neutral", "frustrated"], sessions=(1, 2))
    assert sorted(u.label for u in chosen) == ["frustrated", "neutral"]
    with pytest.raises(ValueError, match="unknown IEMOCAP classes"):
        load_iemocap(iemocap, classes=["bliss"], sessions=(1,))
    with pytest.raises(ValueError, match="classes must be"):
        load_iemocap(iemocap, classes="5", sessions=(1,))


def test_iemocap_missing_wav_raises_or_warns(iemocap: Path) -> None:
    wav = iemocap / "Session2/sentences/wav/Ses02M_impro02/Ses02M_impro02_F000.wav"
    wav.unlink()
    with pytest.raises(CorpusError, match=r"1 labelled utterance\(s\) have no audio.*F000\.wav"):
        load_iemocap(iemocap, sessions=(1, 2))
    with pytest.warns(UserWarning, match=r"1 labelled utterance\(s\) have no audio"):
        utts = load_iemocap(iemocap, sessions=(1, 2), missing="warn")
    assert len(utts) == 4
    # A missing wav of an excluded class (oth) is not needed in 4-class mode.
    (wav.parent / "Ses02M_impro02_M001.wav").unlink()
    _wav(wav)
    assert len(load_iemocap(iemocap, sessions=(1, 2))) == 5
    # A FLAC copy of an utterance is found in place of its WAV.
    samples, sr = sf.read(wav, dtype="int16")
    wav.unlink()
    sf.write(wav.with_suffix(".flac"), samples, sr, format="FLAC", subtype="PCM_16")
    flac = [u.path for u in load_iemocap(iemocap, sessions=(1, 2)) if u.path.suffix == ".flac"]
    assert flac == [wav.with_suffix(".flac")]


def test_iemocap_layout_errors(iemocap: Path, tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match=r"Session3: expected IEMOCAP's Session3 folder"):
        load_iemocap(iemocap)  # default: all five sessions
    label_file = iemocap / "Session2/dialog/EmoEvaluation/Ses02M_impro02.txt"
    label_file.write_text(_HEADER + "[1.0 - 2.0]\tSes02M_impro02_F000\tneu\n")
    with pytest.raises(CorpusError, match=r"Ses02M_impro02\.txt:3: expected"):
        load_iemocap(iemocap, sessions=(1, 2))
    label_file.write_text(_HEADER + "[1.0 - 2.0]\tSes01F_impro02_F000\tneu\t[1, 2, 3]\n")
    with pytest.raises(CorpusError, match="not from Ses02"):
        load_iemocap(iemocap, sessions=(1, 2))
    label_file.write_text(_HEADER + "[1.0 - 2.0]\tSes02M_impro02_F000\tjoy\t[1, 2, 3]\n")
    with pytest.raises(CorpusError, match="unknown label 'joy'"):
        load_iemocap(iemocap, sessions=(1, 2))
