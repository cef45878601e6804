"""The RAVDESS loader on a small fixture tree with its real file-name codes, FLAC audio through
the training path, and the real corpus where present."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from corpus_fixtures import _wav

from keras_dyconv.corpora import (
    RAVDESS_EMOTIONS,
    CorpusError,
    is_audio_file,
    load_folders,
    load_ravdess,
    verify_checksums,
)


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
