"""The CASIA loader on a small fixture tree with its real naming scheme and speaker spellings,
and the real corpus where present."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from corpus_fixtures import _wav

from keras_dyconv.corpora import (
    CASIA_EMOTIONS,
    CASIA_SPEAKER_ALIASES,
    CASIA_SPEAKERS,
    CorpusError,
    casia_speaker,
    load_casia,
    verify_checksums,
)

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
