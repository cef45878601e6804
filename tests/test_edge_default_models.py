"""The shipped model each `python -m edge_runtime` command runs when none is given: `predict`
and `info` the single-clip model (`DEFAULT_MODEL`), `stream` the stream model
(`DEFAULT_STREAM_MODEL`), or, when that file is missing, the single-clip model with a note
on stderr. The shipped files are replaced by a tiny numpy model here; tests/test_artifact.py
checks the shipped files themselves."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from edge_fixtures import TINY_LABELS, pcm16_wav, run_main, tiny_numpy_model

import edge_runtime.__main__ as cli
from edge_runtime import recognizer


@pytest.fixture
def tiny(tmp_path) -> tuple[Path, bytes, Path]:
    """(a tiny model, 1.5 s of PCM16 for stdin, the same audio as a WAV file)."""
    rng = np.random.default_rng(0)
    samples = 0.3 * np.sin(np.arange(24000) * 0.07) + rng.normal(0, 0.01, 24000)
    pcm = (samples * 32767).astype("<i2").tobytes()
    return tiny_numpy_model(tmp_path), pcm, pcm16_wav(tmp_path / "clip.wav", samples)


def shipped(monkeypatch, single: Path, stream: Path) -> None:
    monkeypatch.setattr(cli, "DEFAULT_MODEL", single)
    monkeypatch.setattr(cli, "DEFAULT_STREAM_MODEL", stream)


def stream(capsys, monkeypatch, pcm: bytes) -> tuple[int, list[dict], str]:
    argv = ["stream", "--json", "--no-speech-gate", "--hop", "0.25"]
    status, out, err = run_main(argv, capsys, stdin=pcm, monkeypatch=monkeypatch)
    return status, [json.loads(line) for line in out.splitlines()], err


def test_the_stream_model_sits_beside_the_single_clip_model():
    assert recognizer.DEFAULT_STREAM_MODEL.parent == recognizer.DEFAULT_MODEL.parent
    assert recognizer.DEFAULT_STREAM_MODEL.name == "dyser-multi-stream-int8.tflite"
    assert (cli.DEFAULT_MODEL, cli.DEFAULT_STREAM_MODEL) == (
        recognizer.DEFAULT_MODEL,
        recognizer.DEFAULT_STREAM_MODEL,
    )


def test_stream_without_a_model_runs_the_stream_model(tiny, tmp_path, capsys, monkeypatch):
    model, pcm, clip = tiny
    missing = tmp_path / "single-clip.tflite"
    shipped(monkeypatch, single=missing, stream=model)
    status, decisions, err = stream(capsys, monkeypatch, pcm)
    assert status == 0 and err == ""
    assert len(decisions) == 5 and {d["label"] for d in decisions} <= set(TINY_LABELS)
    # predict and info keep the single-clip model (missing here, so they refuse).
    for argv in (["predict", str(clip), "--no-speech-gate"], ["info"]):
        status, out, err = run_main(argv, capsys)
        assert status == 2 and out == ""
        assert "model file not found" in err and str(missing) in err


def test_stream_falls_back_to_the_single_clip_model(tiny, tmp_path, capsys, monkeypatch):
    model, pcm, _ = tiny
    deleted = tmp_path / "dyser-multi-stream-int8.tflite"
    shipped(monkeypatch, single=model, stream=deleted)
    status, decisions, err = stream(capsys, monkeypatch, pcm)
    assert status == 0 and len(decisions) == 5
    assert err == (
        f"note: no stream model at {deleted}; using the single-clip model {model}, which "
        "does not adapt to the voice it hears\n"
    )
    # A model given on the command line is used as it is, without a note.
    status, given, err = run_main(
        ["stream", str(model), "--json", "--no-speech-gate", "--hop", "0.25"],
        capsys,
        stdin=pcm,
        monkeypatch=monkeypatch,
    )
    assert status == 0 and err == "" and [json.loads(x) for x in given.splitlines()] == decisions
    # Neither shipped model: the note, then the usage error for the missing model.
    shipped(monkeypatch, single=tmp_path / "gone.tflite", stream=deleted)
    status, decisions, err = stream(capsys, monkeypatch, pcm)
    assert status == 2 and decisions == []
    assert err.startswith("note: no stream model") and "model file not found" in err
