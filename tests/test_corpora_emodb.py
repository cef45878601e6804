"""The EmoDB loader on a small fixture tree with its real naming scheme, checksums, and the
real corpus where present."""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from pathlib import Path

import pytest
from corpus_fixtures import _wav

from keras_dyconv.corpora import (
    CorpusError,
    load_corpus,
    load_emodb,
    verify_checksums,
)

EMODB = Path("/work/shared/datasets/emodb")


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
