"""Helpers for the edge runtime tests: a tiny numpy-format artifact built without Keras,
manifest edits (optionally re-sealed as an exporter would seal them), and `python -m
edge_runtime` run in a subprocess or in-process (`run_main`)."""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
import wave
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from edge_runtime.artifact import (
    ArtifactInfo,
    TensorSpec,
    manifest_digest,
    manifest_path,
    write_manifest,
)
from edge_runtime.config import FrontendConfig
from edge_runtime.metadata import ModelMetadata
from edge_runtime.windows import WindowPolicy

ROOT = Path(__file__).resolve().parent.parent
TINY_LABELS = ("calm", "angry", "sad")
TINY_CONFIG = FrontendConfig(n_mels=16, normalization="dataset", mean=(-40.0,) * 16, std=(10,) * 16)
TINY_POLICY = WindowPolicy(frames=50, hop_frames=25)


def pcm16_wav(path: Path, samples: np.ndarray, rate: int = 16000) -> Path:
    """`samples` (float, clipped to [-1, 1]) written as a mono 16-bit PCM WAV at `rate` Hz."""
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(rate)
        f.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    return path


def tiny_numpy_model(folder: Path, seed: int = 0) -> Path:
    """A 3-class softmax over the flattened (50, 16) log-mel window, as a `.npz` graph with
    its manifest: the numpy engine runs it in well under a millisecond."""
    rng = np.random.default_rng(seed)
    n_in = TINY_POLICY.frames * TINY_CONFIG.n_features
    graph = {
        "version": 1,
        "layers": [
            {"type": "flatten", "name": "flatten"},
            {"type": "dense", "name": "dense", "activation": "softmax"},
        ],
    }
    path = Path(folder) / "tiny.npz"
    np.savez(
        path,
        graph=np.frombuffer(json.dumps(graph).encode(), dtype=np.uint8),
        **{
            "1/kernel": rng.normal(0, 0.05, (n_in, len(TINY_LABELS))).astype(np.float32),
            "1/bias": np.zeros(len(TINY_LABELS), np.float32),
        },
    )
    metadata = ModelMetadata(labels=TINY_LABELS, frontend=TINY_CONFIG, window=TINY_POLICY)
    write_manifest(
        path,
        metadata,
        format="numpy",
        quantization="none",
        input=TensorSpec("x", (1, TINY_POLICY.frames, TINY_CONFIG.n_features), "float32"),
        output=TensorSpec("y", (1, len(TINY_LABELS)), "float32"),
        exporter="tests",
    )
    return path


def edit_manifest(model: Path, change: Callable[[dict], object], *, reseal: bool = False) -> None:
    """Apply `change` to a model's manifest JSON; with `reseal`, recompute manifest_sha256 as
    an exporter would, so that what lies behind the integrity check can be reached (a
    change that the parser refuses is written unsealed)."""
    manifest = manifest_path(model)
    data = json.loads(manifest.read_text())
    change(data)
    if reseal:
        try:
            meta = ModelMetadata.from_dict({k: v for k, v in data.items() if k != "artifact"})
            info = ArtifactInfo.from_dict(data.get("artifact"), str(manifest))
        except ValueError:
            pass
        else:
            data["artifact"]["manifest_sha256"] = manifest_digest(meta, info)
    manifest.write_text(json.dumps(data))


def run_edge(
    *args: str, stdin: bytes | None = None, text: bool = False
) -> subprocess.CompletedProcess:
    """`python -m edge_runtime ARGS` in a subprocess (output as bytes, or str with `text`)."""
    return subprocess.run(
        [sys.executable, "-m", "edge_runtime", *args],
        input=stdin,
        capture_output=True,
        cwd=ROOT,
        timeout=120,
        text=text,
    )


def run_main(argv: list[str], capsys, stdin: bytes = b"", monkeypatch=None) -> tuple[int, str, str]:
    """`python -m edge_runtime` in-process: (exit status, stdout, stderr)."""
    from edge_runtime.__main__ import main

    if monkeypatch is not None:
        monkeypatch.setattr(sys, "stdin", SimpleNamespace(buffer=io.BytesIO(stdin)))
    sigpipe = signal.getsignal(signal.SIGPIPE)
    try:
        status = main(argv)
    except SystemExit as exit_:
        status = exit_.code
    # main's SIG_DFL (quiet exit under `| head`) would let a later broken pipe kill pytest.
    assert signal.getsignal(signal.SIGPIPE) == sigpipe
    out = capsys.readouterr()
    return status, out.out, out.err
