"""Corpus loaders on small fixture trees: the folder-per-label loader, CSV manifests, the corpus
registry, and the data modules' imports. Each corpus's own loader, with its real naming
scheme, is in test_corpora_<corpus>.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from corpus_fixtures import _wav

import keras_dyconv
from keras_dyconv.corpora import (
    CORPORA,
    CorpusError,
    Utterance,
    load_corpus,
    load_folders,
    load_manifest,
    write_manifest,
)

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
        (
            "path,label\na.wav,x\nmissing.wav,y\n",
            r"m\.csv:3: expected an audio file at .*missing\.wav, found nothing",
        ),
        ("path,label\na.wav,x\n.,y\n", r"m\.csv:3: expected an audio file at .*, found a folder"),
        (
            "path,label,label\na.wav,x,y\n",
            r"m\.csv:1: expected each column once, found label repeated",
        ),
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


def test_manifest_encoding(tmp_path: Path) -> None:
    """UTF-8 with a spreadsheet's byte-order mark reads; other bytes name the line."""
    a = _wav(tmp_path / "a.wav")
    (tmp_path / "m.csv").write_bytes("\ufeffpath,label,speaker\na.wav,x,j\u00fcrgen\n".encode())
    assert load_manifest(tmp_path / "m.csv") == [Utterance(a, "x", "j\u00fcrgen")]
    (tmp_path / "m.csv").write_bytes("path,label,speaker\na.wav,x,j\u00fcrgen\n".encode("latin-1"))
    with pytest.raises(CorpusError, match=r"m\.csv:2: expected UTF-8 text, found byte 0xfc"):
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
