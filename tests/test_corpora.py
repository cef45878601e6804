"""Corpus loaders on small fixture trees with each corpus's real naming scheme."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import keras_dyconv
from keras_dyconv.corpora import (
    CASIA_EMOTIONS,
    CASIA_SPEAKER_ALIASES,
    CASIA_SPEAKERS,
    CORPORA,
    RAVDESS_EMOTIONS,
    CorpusError,
    Utterance,
    casia_speaker,
    is_audio_file,
    load_casia,
    load_corpus,
    load_emodb,
    load_folders,
    load_iemocap,
    load_manifest,
    load_ravdess,
    verify_checksums,
    write_manifest,
)

EMODB = Path("/work/shared/datasets/emodb")


def _wav(path: Path, seconds: float = 0.05, sr: int = 16000, freq: float = 220.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(round(seconds * sr)) / sr
    sf.write(path, 0.3 * np.sin(2 * np.pi * freq * t), sr, subtype="PCM_16")
    return path


# ----------------------------------------------------------------------------------- EmoDB


@pytest.fixture
def emodb(tmp_path: Path) -> Path:
    for i, name in enumerate(["16a05Nc", "03a01Fa", "08b02Wb", "03a01Wa", "13b10Ea"]):
        _wav(tmp_path / "wav" / f"{name}.wav", freq=200.0 + 10 * i)
    (tmp_path / "wav" / "._03a01Fa.wav").write_bytes(b"macOS resource fork")
    (tmp_path / "wav" / "notes.txt").write_text("not audio")
    return tmp_path


def test_emodb_parses_names_sorted(emodb: Path) -> None:
    utts = load_emodb(emodb)
    assert [u.path.name for u in utts] == [
        "03a01Fa.wav",
        "03a01Wa.wav",
        "08b02Wb.wav",
        "13b10Ea.wav",
        "16a05Nc.wav",
    ]
    first = utts[0]
    assert (first.label, first.speaker, first.gender, first.text) == (
        "happiness",
        "03",
        "male",
        "a01",
    )
    assert first.extra == {"emotion_code": "F", "version": "a"}
    assert [u.label for u in utts] == ["happiness", "anger", "anger", "disgust", "neutral"]
    assert [u.gender for u in utts] == ["male", "male", "female", "female", "female"]
    assert load_corpus("emodb", emodb) == utts
    assert len({hash(u) for u in utts}) == 5  # hashable although extra is a dict


@pytest.mark.parametrize(
    ("name", "expected"), [("03a01Xa", "emotion"), ("99a01Fa", "speaker"), ("hello", "03a01Fa")]
)
def test_emodb_bad_name(emodb: Path, name: str, expected: str) -> None:
    _wav(emodb / "wav" / f"{name}.wav")
    with pytest.raises(CorpusError, match=re.escape(name)) as err:
        load_emodb(emodb)
    assert expected in str(err.value)


def test_emodb_layout_errors(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match=r"wav.*expected EmoDB's 'wav' folder, found nothing"):
        load_emodb(tmp_path)
    (tmp_path / "wav").mkdir()
    with pytest.raises(CorpusError, match="found none"):
        load_emodb(tmp_path)


def _write_sums(root: Path) -> None:
    lines = [
        f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.name}"
        for p in sorted((root / "wav").glob("[0-9]*.wav"))
    ]
    (root / "SHA256SUMS").write_text("\n".join(lines) + "\n")


def test_verify_checksums(emodb: Path) -> None:
    _write_sums(emodb)
    assert verify_checksums(emodb) == 5
    # Corrupt one file, delete another, add an unlisted one: all three are reported.
    _wav(emodb / "wav" / "03a01Fa.wav", freq=999.0)
    (emodb / "wav" / "16a05Nc.wav").unlink()
    _wav(emodb / "wav" / "09a01Ta.wav")
    with pytest.raises(CorpusError) as err:
        verify_checksums(emodb)
    msg = str(err.value)
    assert "3 file(s)" in msg
    assert "mismatch: 03a01Fa.wav" in msg
    assert "missing: 16a05Nc.wav" in msg
    assert "unlisted: wav/09a01Ta.wav" in msg


def test_verify_checksums_bad_list(emodb: Path) -> None:
    with pytest.raises(CorpusError, match="SHA256SUMS"):
        verify_checksums(emodb)
    (emodb / "SHA256SUMS").write_text("not a checksum line\n")
    with pytest.raises(CorpusError, match=r"SHA256SUMS:1: expected"):
        verify_checksums(emodb)


@pytest.mark.slow
@pytest.mark.skipif(not (EMODB / "wav").is_dir(), reason="EmoDB not at /work/shared/datasets")
def test_real_emodb() -> None:
    utts = load_emodb(EMODB)
    assert len(utts) == 535
    codes = Counter(u.extra["emotion_code"] for u in utts)
    assert codes == {"W": 127, "L": 81, "E": 46, "A": 69, "F": 71, "T": 62, "N": 79}
    speakers = Counter(u.speaker for u in utts)
    assert speakers == {
        "03": 49, "08": 58, "09": 43, "10": 38, "11": 55,
        "12": 35, "13": 61, "14": 69, "15": 56, "16": 71,
    }  # fmt: skip
    assert Counter(u.gender for u in utts) == {"male": 49 + 38 + 55 + 35 + 56, "female": 302}
    assert verify_checksums(EMODB) == 535


# ----------------------------------------------------------------------------------- CASIA


# The folder names of the copy as commonly circulated (and in /work/shared/datasets/casia).
CASIA_FOLDERS = {"liuchanhg": "liuchang", "wangzhe": "wangzhe", "zhaoquanyin": "zhaoquanyin",
                 "ZhaoZuoxiang": "ZhaoZuoxiang"}  # fmt: skip


@pytest.fixture
def casia(tmp_path: Path) -> Path:
    """CASIA as circulated: ``liuchanhg``, label files beside the audio, a GBK transcript."""
    for folder in CASIA_FOLDERS:
        for emotion in CASIA_EMOTIONS:
            for stem in ("201", "202"):
                _wav(tmp_path / folder / emotion / f"{stem}.wav")
                for suffix in (".lab", ".tag", ".peak"):
                    (tmp_path / folder / emotion / f"{stem}{suffix}").write_bytes(b"0 1 x\n")
    (tmp_path / "相同的文本201--250.txt").write_bytes("201 文本".encode("gbk"))
    return tmp_path


def test_casia(casia: Path) -> None:
    utts = load_casia(casia)
    assert len(utts) == 4 * 6 * 2
    assert {u.path.suffix for u in utts} == {".wav"}
    assert {u.path.parts[-3] for u in utts if u.speaker == "liuchang"} == {"liuchanhg"}
    assert Counter(u.label for u in utts) == dict.fromkeys(CASIA_EMOTIONS, 8)
    assert Counter(u.speaker for u in utts) == dict.fromkeys(CASIA_SPEAKERS, 12)
    by_speaker = {u.speaker: u.gender for u in utts}
    assert by_speaker == {
        "liuchang": "female",
        "wangzhe": "male",
        "zhaoquanyin": "female",
        "ZhaoZuoxiang": "male",
    }
    assert {u.text for u in utts} == {"201", "202"}
    assert utts == sorted(utts, key=lambda u: str(u.path))


@pytest.mark.parametrize(
    "spelling",
    ["liuchang", "liuchanhg", "LiuChang", "Chang.Liu"],
)
def test_casia_speaker_spellings(casia: Path, spelling: str) -> None:
    (casia / "liuchanhg").rename(casia / spelling)
    (casia / "ZhaoZuoxiang").rename(casia / "zhaozuoxiang")  # case does not matter
    utts = load_casia(casia)
    assert Counter(u.speaker for u in utts) == dict.fromkeys(CASIA_SPEAKERS, 12)
    assert {u.path.parts[-3] for u in utts if u.speaker == "liuchang"} == {spelling}
    assert casia_speaker("Zuoxiang.Zhao") == "ZhaoZuoxiang" and casia_speaker("liu") is None
    assert set(CASIA_SPEAKER_ALIASES.values()) <= set(CASIA_SPEAKERS)


def test_casia_layout_errors(casia: Path) -> None:
    (casia / "someone").mkdir()
    with pytest.raises(CorpusError, match=r"unexpected \['someone'\]"):
        load_casia(casia)
    (casia / "someone").rmdir()
    (casia / "liuchang").mkdir()  # the same speaker under two spellings
    with pytest.raises(CorpusError, match=r"one folder per CASIA speaker.*liuchanhg"):
        load_casia(casia)
    (casia / "liuchang").rmdir()
    (casia / "liuchanhg").rename(casia / "liuchan")
    with pytest.raises(CorpusError, match=r"missing \['liuchang'\], unexpected \['liuchan'\]"):
        load_casia(casia)
    (casia / "liuchan").rename(casia / "liuchanhg")
    for f in (casia / "wangzhe" / "sad").iterdir():
        if f.suffix == ".wav":
            f.unlink()  # the .lab/.tag/.peak files left are not audio
    with pytest.raises(CorpusError, match=r"wangzhe/sad: expected audio files \(\.wav/\.flac\)"):
        load_casia(casia)
    for f in (casia / "wangzhe" / "sad").iterdir():
        f.unlink()
    (casia / "wangzhe" / "sad").rmdir()
    with pytest.raises(CorpusError, match=r"wangzhe: expected emotion folders .* found"):
        load_casia(casia)


CASIA = Path("/work/shared/datasets/casia")


@pytest.mark.slow
@pytest.mark.skipif(not CASIA.is_dir(), reason="CASIA not at /work/shared/datasets")
def test_real_casia() -> None:
    """The circulated copy, as is ("liuchanhg"), against its README: 4 speakers x 6
    emotions x 50 texts (201-250) = 1200; 300 per speaker, 200 per emotion."""
    utts = load_casia(CASIA)
    assert len(utts) == 1200
    assert Counter(u.speaker for u in utts) == dict.fromkeys(CASIA_SPEAKERS, 300)
    assert Counter(u.label for u in utts) == dict.fromkeys(CASIA_EMOTIONS, 200)
    assert Counter(u.gender for u in utts) == {"female": 600, "male": 600}
    assert Counter(u.text for u in utts) == {str(t): 24 for t in range(201, 251)}
    assert {u.path.suffix for u in utts} == {".wav"}
    assert verify_checksums(CASIA) == 1200


# --------------------------------------------------------------------------------- IEMOCAP

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


# --------------------------------------------------------------------------------- RAVDESS


@pytest.fixture
def ravdess(tmp_path: Path) -> Path:
    for name in ["03-01-05-01-02-01-01", "03-01-01-01-01-02-01", "03-01-08-02-01-01-02"]:
        _wav(tmp_path / f"Actor_{name[-2:]}" / f"{name}.wav")
    return tmp_path


def test_ravdess(ravdess: Path) -> None:
    utts = load_ravdess(ravdess)
    got = [(u.path.stem, u.label, u.speaker, u.gender, u.text, u.extra) for u in utts]
    assert got == [
        ("03-01-01-01-01-02-01", "neutral", "01", "male", "01", {"intensity": "normal",
                                                                  "repetition": "02"}),
        ("03-01-05-01-02-01-01", "angry", "01", "male", "02", {"intensity": "normal",
                                                                "repetition": "01"}),
        ("03-01-08-02-01-01-02", "surprised", "02", "female", "01", {"intensity": "strong",
                                                                      "repetition": "01"}),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("folder", "name", "expected"),
    [
        ("Actor_01", "03-02-05-01-02-01-01", "vocal channel 01"),  # song
        ("Actor_01", "01-01-05-01-02-01-01", "modality 03"),  # audio-video
        ("Actor_01", "03-01-09-01-02-01-01", "emotion code"),
        ("Actor_01", "03-01-05-01-02-01-03", "actor 01"),
        ("Actor_01", "03-01-05", "a name like"),
    ],
)
def test_ravdess_bad_codes(ravdess: Path, folder: str, name: str, expected: str) -> None:
    _wav(ravdess / folder / f"{name}.wav")
    with pytest.raises(CorpusError, match=re.escape(name)) as err:
        load_ravdess(ravdess)
    assert expected in str(err.value)


def test_ravdess_layout_errors(ravdess: Path) -> None:
    (ravdess / "Audio_Song_Actors").mkdir()
    with pytest.raises(CorpusError, match="expected only folders Actor_01"):
        load_ravdess(ravdess)


RAVDESS = Path("/work/shared/datasets/ravdess")


@pytest.mark.slow
@pytest.mark.skipif(not RAVDESS.is_dir(), reason="RAVDESS not at /work/shared/datasets")
def test_real_ravdess() -> None:
    """The shared 16 kHz FLAC copy against its README: 24 actors x 60 = 1440; 192 per
    emotion, 96 neutral (no strong intensity); odd actors male; the audio reads at 16 kHz."""
    from edge_runtime import FrontendConfig
    from keras_dyconv.features import load_audio

    utts = load_ravdess(RAVDESS)
    assert len(utts) == 1440
    assert {u.path.suffix for u in utts} == {".flac"}
    assert Counter(u.speaker for u in utts) == {f"{a:02d}": 60 for a in range(1, 25)}
    emotions = set(RAVDESS_EMOTIONS.values()) - {"neutral"}
    assert Counter(u.label for u in utts) == {**dict.fromkeys(emotions, 192), "neutral": 96}
    assert Counter(u.extra["intensity"] for u in utts if u.label == "neutral") == {"normal": 96}
    genders = {u.speaker: u.gender for u in utts}
    assert Counter(genders.values()) == {"female": 12, "male": 12}
    assert all(g == ("male" if int(s) % 2 else "female") for s, g in genders.items())
    assert Counter(u.text for u in utts) == {"01": 720, "02": 720}
    samples, sr = sf.read(utts[0].path)
    assert sr == 16000 and samples.ndim == 1
    assert load_audio(utts[0].path, FrontendConfig()).shape == samples.shape
    assert verify_checksums(RAVDESS) == 1440


def test_audio_files_are_wav_and_flac() -> None:
    assert [is_audio_file(n) for n in ("a.wav", "b.FLAC", "c.flac", "d.lab", "e.peak", "f")] == [
        True, True, True, False, False, False,
    ]  # fmt: skip


def test_ravdess_flac_through_training_path(tmp_path: Path) -> None:
    """A FLAC copy (as the shared 16 kHz RAVDESS) loads, and reads to the same samples and
    features as the WAV it was made from: FLAC is lossless."""
    from edge_runtime import FrontendConfig
    from keras_dyconv.features import extract_corpus, load_audio

    name = "03-01-05-01-02-01-01"
    wav = _wav(tmp_path / "wav" / f"{name}.wav", seconds=0.4, freq=310.0)
    samples, sr = sf.read(wav, dtype="int16")
    flac = tmp_path / "flac" / "Actor_01" / f"{name}.flac"
    flac.parent.mkdir(parents=True)
    sf.write(flac, samples, sr, format="FLAC", subtype="PCM_16")
    (utt,) = load_ravdess(tmp_path / "flac")
    assert (utt.path, utt.label, utt.speaker) == (flac, "angry", "01")
    config = FrontendConfig()
    np.testing.assert_array_equal(load_audio(utt.path, config), load_audio(wav, config))
    from_flac, from_wav = extract_corpus([utt.path, wav], config, progress=False)
    assert from_flac.shape[0] > 0
    np.testing.assert_array_equal(from_flac, from_wav)
    # The folder-per-label layout takes FLAC too.
    (tmp_path / "flac" / "Actor_01").rename(tmp_path / "flac" / "angry")
    assert [u.path.suffix for u in load_folders(tmp_path / "flac")] == [".flac"]


# ------------------------------------------------------------------------ folder per label


@pytest.fixture
def folders(tmp_path: Path) -> Path:
    for label, stems in {"angry": ["spk1_a", "spk2_b"], "calm": ["spk1_c"]}.items():
        for stem in stems:
            _wav(tmp_path / "corpus" / label / f"{stem}.wav")
    return tmp_path / "corpus"


def test_folders_speaker_rules(folders: Path) -> None:
    utts = load_folders(folders)
    assert [(u.label, u.speaker) for u in utts] == [
        ("angry", "unknown"),
        ("angry", "unknown"),
        ("calm", "unknown"),
    ]
    assert [u.speaker for u in load_folders(folders, speaker=r"spk(\d)")] == ["1", "2", "1"]
    named = load_folders(folders, speaker=r"(?P<speaker>spk\d)_(\w)")
    assert [u.speaker for u in named] == ["spk1", "spk2", "spk1"]
    assert [u.speaker for u in load_folders(folders, speaker=lambda p: p.stem[-1])] == [
        "a",
        "b",
        "c",
    ]
    with pytest.raises(CorpusError, match=r"spk1_a.*does not match"):
        load_folders(folders, speaker=r"^talker\d")


def test_folders_layout_errors(folders: Path, tmp_path: Path) -> None:
    (folders / "sad").mkdir()
    with pytest.raises(CorpusError, match=r"sad: expected audio files .* for label 'sad'"):
        load_folders(folders)
    (tmp_path / "empty").mkdir()
    with pytest.raises(CorpusError, match="one folder per label"):
        load_folders(tmp_path / "empty")


# -------------------------------------------------------------------------------- manifest


def test_manifest(tmp_path: Path) -> None:
    a = _wav(tmp_path / "audio" / "a.wav")
    b = _wav(tmp_path / "elsewhere" / "b.wav")
    (tmp_path / "m.csv").write_text(
        f"path,label,speaker,gender,session,take\naudio/a.wav,happy,s1,F,,1\n{b},sad,,male,S2,2\n"
    )
    utts = load_manifest(tmp_path / "m.csv")
    assert utts == [
        Utterance(a, "happy", "s1", "female", None, None, {"take": "1"}),
        Utterance(b, "sad", "unknown", "male", None, "S2", {"take": "2"}),
    ]
    # Round trip through write_manifest, and a folder holding manifest.csv.
    write_manifest(utts, tmp_path / "manifest.csv")
    assert "audio/a.wav" in (tmp_path / "manifest.csv").read_text()
    assert load_corpus("manifest", tmp_path) == utts


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("file,label\na.wav,x\n", r"m\.csv:1: expected a header with columns path,label"),
        ("path,label\na.wav,x\nmissing.wav,y\n", r"m\.csv:3: audio file .*missing\.wav"),
        ("path,label,speaker\na.wav,x\n", r"m\.csv:2: expected 3 columns"),
        ("path,label\na.wav,x\na.wav,y\n", r"m\.csv:3: a\.wav already listed at .*m\.csv:2"),
        ("path,label\na.wav,\n", r"m\.csv:2: empty path or label"),
        ("path,label,gender\na.wav,x,other\n", r"m\.csv:2: gender must be"),
        ("path,label\n", "at least one utterance"),
    ],
)
def test_manifest_errors(tmp_path: Path, content: str, expected: str) -> None:
    _wav(tmp_path / "a.wav")
    (tmp_path / "m.csv").write_text(content)
    with pytest.raises(CorpusError, match=expected):
        load_manifest(tmp_path / "m.csv")


def test_registry(tmp_path: Path) -> None:
    assert set(CORPORA) == {"emodb", "casia", "iemocap", "ravdess", "folders", "manifest"}
    with pytest.raises(CorpusError, match="unknown corpus 'timit'"):
        load_corpus("timit", tmp_path)
    with pytest.raises(CorpusError, match=r"manifest\.csv: expected a CSV manifest"):
        load_corpus("manifest", tmp_path)


def test_data_modules_are_backend_free() -> None:
    """corpora, synthetic, protocols, metrics and labels import no keras, backend or scipy. The
    package's own __init__ (which imports keras for the layers) is bypassed with a stub."""
    script = (
        "import sys, types\n"
        f"pkg = types.ModuleType('keras_dyconv'); pkg.__path__ = {list(keras_dyconv.__path__)!r}\n"
        "sys.modules['keras_dyconv'] = pkg\n"
        "import keras_dyconv.corpora, keras_dyconv.synthetic, keras_dyconv.protocols\n"
        "import keras_dyconv.metrics, keras_dyconv.labels\n"
        "heavy = {'keras', 'tensorflow', 'jax', 'torch', 'scipy', 'librosa', 'sklearn'}\n"
        "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
