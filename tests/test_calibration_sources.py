"""Calibration audio from several sources and from FLAC (a pooled model's corpora)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner
from edge_fixtures import pcm16_wav

from edge_runtime.config import FrontendConfig
from edge_runtime.metadata import ModelMetadata
from edge_runtime.windows import WindowPolicy
from export.calibration import CalibrationError, extract_windows, list_audio, list_sources
from export.cli import main as export_main

METADATA = ModelMetadata(
    labels=("anger", "neutral"),
    frontend=FrontendConfig(n_mels=16, normalization="none"),
    window=WindowPolicy(frames=40, hop_frames=20),
)


def _tone(seconds: float = 0.8, f0: float = 220.0) -> np.ndarray:
    t = np.arange(int(16000 * seconds)) / 16000
    return (0.3 * np.sin(2 * np.pi * f0 * t)).astype(np.float32)


def test_calibration_reads_flac_as_the_same_samples_as_wav(tmp_path: Path):
    pcm = np.round(_tone() * 32767).astype(np.int16)
    wav, flac = tmp_path / "wav" / "a.wav", tmp_path / "flac" / "a.flac"
    wav.parent.mkdir()
    flac.parent.mkdir()
    pcm16_wav(wav, pcm / 32767)
    sf.write(flac, pcm, 16000, subtype="PCM_16")
    (from_wav,) = list_audio(wav.parent, METADATA.labels)
    (from_flac,) = list_audio(flac.parent, METADATA.labels)
    a = extract_windows([from_wav], METADATA, METADATA.window, origin="c", progress=False)
    b = extract_windows([from_flac], METADATA, METADATA.window, origin="c", progress=False)
    np.testing.assert_allclose(a.windows, b.windows, atol=1e-4)
    broken = tmp_path / "flac" / "b.flac"
    broken.write_bytes(b"fLaC not really")
    with pytest.raises(CalibrationError, match=r"b\.flac: cannot read audio"):
        extract_windows(
            list_audio(flac.parent, METADATA.labels), METADATA, METADATA.window, origin="c"
        )
    (tmp_path / "wav" / "b.wav").write_bytes(b"RIFF....WAVEjunk")
    with pytest.raises(CalibrationError, match=r"b\.wav: cannot read audio"):
        extract_windows(
            list_audio(wav.parent, METADATA.labels), METADATA, METADATA.window, origin="c"
        )


def test_several_calibration_sources_are_joined_in_order(tmp_path: Path):
    for corpus, n in (("emodb", 2), ("ravdess", 3)):
        (tmp_path / corpus).mkdir()
        for k in range(n):
            pcm16_wav(tmp_path / corpus / f"{corpus}{k}.wav", _tone(f0=200 + 10 * k))
    items = list_sources([tmp_path / "ravdess", tmp_path / "emodb"], METADATA.labels)
    assert [i.path.name for i in items] == [
        "ravdess0.wav",
        "ravdess1.wav",
        "ravdess2.wav",
        "emodb0.wav",
        "emodb1.wav",
    ]
    assert list_sources(tmp_path / "emodb", METADATA.labels) == items[3:]
    with pytest.raises(CalibrationError, match="no audio source"):
        list_sources([], METADATA.labels)
    (tmp_path / "empty").mkdir()
    with pytest.raises(CalibrationError, match=r"empty: no audio files \(.wav/.flac\)"):
        list_sources([tmp_path / "emodb", tmp_path / "empty"], METADATA.labels)
    # dyser-export takes --calibration more than once.
    (option,) = [p for p in export_main.params if p.name == "calibration"]
    assert option.multiple
    result = CliRunner().invoke(export_main, ["--help"])
    assert result.exit_code == 0 and "repeat to join several" in " ".join(result.output.split())
