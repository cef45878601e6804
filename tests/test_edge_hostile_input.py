"""Hostile input to every `python -m edge_runtime` command (issue 22): bad options, files and
models are usage errors that name the file, never a traceback; long recordings and absurd
sample rates run in bounded memory or are refused before resampling.
"""

from __future__ import annotations

import json
import struct
import tracemalloc
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from edge_fixtures import edit_manifest, pcm16_wav, run_edge, run_main, tiny_numpy_model

from edge_runtime.recognizer import EmotionRecognizer


def raw_wav(fmt: bytes, data: bytes) -> bytes:
    body = b"WAVEfmt " + struct.pack("<I", len(fmt)) + fmt + b"data"
    body += struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> SimpleNamespace:
    """A tiny numpy model, a good clip, and the B-cases of issue 22 as files."""
    d = tmp_path_factory.mktemp("hostile")
    model = tiny_numpy_model(d)
    rng = np.random.default_rng(3)
    good = pcm16_wav(
        d / "good.wav", 0.3 * np.sin(np.arange(16000) * 0.07) + rng.normal(0, 0.01, 16000)
    )
    pcm = struct.pack("<HHIIHH", 1, 1, 16000, 32000, 2, 16)
    files = {
        "b1_rate_9999991.wav": raw_wav(
            struct.pack("<HHIIHH", 1, 1, 9_999_991, 0, 2, 16), bytes(40_000)
        ),
        "b2_rate_1.wav": raw_wav(struct.pack("<HHIIHH", 1, 1, 1, 2, 2, 16), bytes(4_000)),
        "b4_one_sample.wav": raw_wav(pcm, bytes(2)),
        "b4_float_1e30.wav": raw_wav(
            struct.pack("<HHIIHH", 3, 1, 16000, 64000, 4, 32), np.full(800, 1e30, "<f4").tobytes()
        ),
        "b4_float_nan.wav": raw_wav(
            struct.pack("<HHIIHH", 3, 1, 16000, 64000, 4, 32), np.full(800, np.nan, "<f4").tobytes()
        ),
        "clip.flac": b"fLaC\0\0\0\x22" + bytes(100),
        "clip.mp3": b"ID3\4\0\0\0\0\0\0" + bytes(100),
        "empty.wav": b"",
        "random.wav": rng.bytes(3000),
    }
    for name, raw in files.items():
        (d / name).write_bytes(raw)
    (d / "folder").mkdir()
    (d / "empty_folder").mkdir()
    for name in ("b.wav", "a.WAV"):
        (d / "folder" / name).write_bytes(good.read_bytes())
    (d / "folder" / "notes.txt").write_text("not audio")
    return SimpleNamespace(dir=d, model=model, good=good, bad=sorted(files))


def assert_clean(err: str, *expected: str) -> None:
    assert "Traceback" not in err and "Warning" not in err, err
    lines = [line for line in err.splitlines() if line.startswith(("error:", "python -m"))]
    assert lines, err
    for text in expected:
        assert text in err, (text, err)


BAD_OPTIONS = [
    ["stream", "--hop", "0"],  # B9
    ["stream", "--hop", "nan"],
    ["stream", "--hop", "1e9"],
    ["stream", "--hop", "0.00001"],
    ["stream", "--hop", "-1"],
    ["stream", "--smoothing", "1"],
    ["stream", "--smoothing", "-0.1"],
    ["stream", "--smoothing", "inf"],
    ["stream", "--rate", "-16000"],  # B10
    ["stream", "--rate", "0"],
    ["stream", "--rate", "16000.5"],
    ["stream", "--rate", "10000000"],
    ["stream", "--threads", "0"],
    ["stream", "--engine", "tensorrt"],
    ["predict", "--threads", "-3", "x.wav"],
    ["predict", "--threads", "1e9", "x.wav"],
    ["predict", "--max-seconds", "0", "x.wav"],
    ["predict", "--max-seconds", "nan", "x.wav"],
    ["predict", "--max-mib", "0", "x.wav"],
    ["predict"],
    ["info", "--bogus"],
    ["nonsense"],
    [],
]


@pytest.mark.parametrize("argv", BAD_OPTIONS, ids=" ".join)
def test_cli_bad_options_are_usage_errors(argv, capsys):
    status, out, err = run_main(argv, capsys)
    assert status == 2 and out == ""
    assert_clean(err)


def test_cli_bad_files_name_the_file(hostile, capsys):
    model = str(hostile.model)
    for name in hostile.bad:
        argv = ["predict", model, str(hostile.dir / name), "--no-speech-gate"]
        status, out, err = run_main(argv, capsys)
        assert status == 1 and out == "", name
        assert_clean(err, name)
        assert len(err.strip().splitlines()) == 1, err
    # With the speech gate on (the default), one sample is a clip without speech (B5).
    status, out, _ = run_main(["predict", model, str(hostile.dir / "b4_one_sample.wav")], capsys)
    assert status == 3 and "no speech" in out
    _, _, err = run_main(["predict", model, str(hostile.dir / "b1_rate_9999991.wav")], capsys)
    assert "sample rate 9999991 Hz not in 4000..384000" in err
    _, _, err = run_main(["predict", model, str(hostile.dir / "b4_float_1e30.wav")], capsys)
    assert "1e+30" in err
    _, _, err = run_main(["predict", model, str(hostile.dir / "clip.flac")], capsys)
    assert "this is FLAC audio, not a WAV file" in err
    # B3: an endless device is read up to the byte limit, then refused.
    status, _, err = run_main(["predict", model, "/dev/zero", "--max-mib", "1"], capsys)
    assert status == 1
    assert_clean(err, "/dev/zero: more than 1048576 bytes")
    # Limits are raised from the command line.
    long = pcm16_wav(hostile.dir / "long.wav", np.zeros(16000 * 3), 16000)
    status, _, err = run_main(["predict", model, str(long), "--max-seconds", "2"], capsys)
    assert status == 1 and "longer than the 2 s limit" in err
    # 3 s of zeros are accepted, then gated: no speech (exit 3).
    assert run_main(["predict", model, str(long), "--max-seconds", "3"], capsys)[0] == 3


def test_cli_bad_models_are_usage_errors(hostile, capsys, tmp_path):
    good, model = str(hostile.good), hostile.model
    manifest = f"{model}.json"
    # B8: the manifest in the model's place is refused for what it is, nothing is scored.
    for argv in (["predict", manifest, good], ["predict", "--model", manifest, good]):
        status, out, err = run_main(argv, capsys)
        assert status == 2 and out == ""
        assert_clean(err, f"this is a manifest, not a model; pass the model file {model}")
    status, _, err = run_main(["info", manifest], capsys)
    assert status == 2 and "this is a manifest" in err
    status, _, err = run_main(["stream", manifest], capsys, monkeypatch=None)
    assert status == 2 and "this is a manifest" in err
    # B6: an edited manifest is refused by every command.
    edited = tmp_path / "edited.npz"
    edited.write_bytes(model.read_bytes())
    Path(f"{edited}.json").write_bytes(Path(manifest).read_bytes())
    edit_manifest(edited, lambda d: d["labels"].reverse())
    for argv in (["predict", str(edited), good], ["info", str(edited)], ["stream", str(edited)]):
        status, out, err = run_main(argv, capsys)
        assert status == 2 and out == ""
        assert_clean(err, "the manifest was modified after export")
    for argv in (["predict", str(tmp_path / "none.npz"), good], ["info", str(tmp_path / "x.onnx")]):
        status, _, err = run_main(argv, capsys)
        assert status == 2
        assert_clean(err, "model file not found")


def test_cli_predict_accepts_a_folder(hostile, capsys):
    status, out, err = run_main(
        ["predict", str(hostile.model), str(hostile.dir / "folder"), "--json", "--no-speech-gate"],
        capsys,
    )
    assert status == 0, err
    files = [json.loads(line)["file"] for line in out.splitlines()]
    assert [Path(f).name for f in files] == ["a.WAV", "b.wav"]  # sorted, .wav only
    status, out, err = run_main(
        ["predict", str(hostile.model), str(hostile.dir / "empty_folder"), str(hostile.good)],
        capsys,
    )
    assert status == 1 and out.startswith(str(hostile.good))
    assert_clean(err, "empty_folder: no .wav files in this folder")


def test_cli_stream_random_bytes_and_bad_rate_pairs(hostile, capsys, monkeypatch):
    noise = np.random.default_rng(5).bytes(16000 * 2 * 2 + 1)
    for rate in ("4000", "44101", "384000"):
        status, _, err = run_main(
            ["stream", str(hostile.model), "--rate", rate, "--hop", "0.25", "--json"],
            capsys,
            stdin=noise,
            monkeypatch=monkeypatch,
        )
        assert status == 0 and "Traceback" not in err


def test_cli_help_documents_exit_codes_and_limits():
    from edge_runtime.__main__ import EXIT_CODES, build_parser

    def flat(text: str) -> str:
        return " ".join(text.split())

    parser = build_parser()
    assert EXIT_CODES in flat(parser.format_help())
    sub = parser._subparsers._group_actions[0].choices  # the subcommands' parsers
    for name in ("predict", "stream", "info"):
        assert EXIT_CODES in flat(sub[name].format_help())
    assert "4000..384000 Hz" in flat(sub["predict"].format_help())


@pytest.mark.parametrize(
    "argv",
    [
        ["stream", "--hop", "nan"],
        ["predict", "MODEL", "/dev/zero", "--max-mib", "1"],
        ["predict", "MODEL.json", "GOOD"],
    ],
)
def test_cli_subprocess_has_no_traceback(hostile, argv):
    argv = [a.replace("MODEL", str(hostile.model)).replace("GOOD", str(hostile.good)) for a in argv]
    result = run_edge(*argv)
    assert result.returncode in (1, 2)
    assert b"Traceback" not in result.stderr and result.stderr.startswith((b"error:", b"usage:"))


def test_long_recordings_run_in_bounded_memory(hostile, monkeypatch):
    """The frontend works through blocks of frames and the engine through batches of
    windows, so 3 minutes cost little more than the signal; blocks change no value."""
    import importlib

    features = importlib.import_module("edge_runtime.features")
    rng = np.random.default_rng(11)
    signal = rng.normal(0, 0.1, 16000 * 180).astype(np.float32)
    recognizer = EmotionRecognizer(hostile.model, engine="numpy", speech_gate=None)
    whole = recognizer.frontend.unnormalized(signal[: 16000 * 20])
    monkeypatch.setattr(features, "_MAX_SCRATCH_BYTES", 512 * 8 * 300)  # 300-frame blocks
    np.testing.assert_allclose(
        features.Frontend(recognizer.frontend.config).unnormalized(signal[: 16000 * 20]),
        whole,
        rtol=1e-6,
        atol=1e-4,
    )
    monkeypatch.undo()
    tracemalloc.start()
    try:
        prediction = recognizer.predict_samples(signal, 16000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(prediction.window_starts) == 720  # 18,001 frames, 50-frame windows, hop 25
    assert peak < 4 * signal.nbytes + (80 << 20), f"peak {peak / 2**20:.0f} MiB"


@pytest.mark.parametrize("rate", [1, 3999, 384_001, 10**9])
def test_absurd_rates_are_refused_before_resampling(hostile, rate):
    recognizer = EmotionRecognizer(hostile.model, engine="numpy")
    with pytest.raises(ValueError, match=f"sample rate {rate} Hz not in 4000..384000"):
        recognizer.predict_samples(np.zeros(100_000, np.float32), rate)
