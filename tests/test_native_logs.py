"""dyser-train and dyser-eval keep TensorFlow's native log noise (oneDNN notices, CUDA
probing, cuInit errors) off stderr unless --verbose (issue 21, point 7)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from keras_dyconv.synthetic import write_corpus

ROOT = Path(__file__).resolve().parents[1]

#: What TensorFlow's C++ code writes on stderr when it loads (absl's preamble, I0000/E0000
#: lines: oneDNN, CUDA probing and cuInit, CPU features).
NOISE = re.compile(r"^([IWE]\d{4} |WARNING: All log messages before absl)|oneDNN|cuInit", re.M)


def _run(module_call: str, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-c", f"from keras_dyconv.cli import {module_call}; {module_call}()",
         *args],
        capture_output=True, text=True, timeout=600, env=env, cwd=ROOT,
    )  # fmt: skip


def test_train_and_eval_print_no_native_noise_unless_verbose(tmp_path):
    manifest = write_corpus(
        tmp_path / "corpus", n_speakers=3, utterances_per_emotion_per_speaker=1,
        emotions=("anger", "neutral"), duration=(1.0, 1.2), seed=4,
    )  # fmt: skip
    out = tmp_path / "run"
    train = _run(
        "train", "--corpus", "manifest", "--data", str(manifest), "--out", str(out),
        "--recipe", "fast", "--epochs", "1", "--window", "1.0", "--max-folds", "1",
        "--val-speakers", "1", "--model", '{"conv_filters": [4], "lstm_units": 8}',
        "--save-models", "--quiet",
    )  # fmt: skip
    assert train.returncode == 0, train.stderr
    assert not NOISE.search(train.stderr), train.stderr
    assert "extracting features of 6 utterances" in train.stderr  # our own log is kept
    (model,) = out.glob("folds/*/model.keras")
    args = [str(model), "--corpus", "manifest", "--data", str(manifest)]
    quiet = _run("evaluate", *args)
    assert quiet.returncode == 0 and "6 utterances" in quiet.stdout, quiet.stderr
    assert not NOISE.search(quiet.stderr), quiet.stderr
    # --verbose lets it through (so the checks above would see it).
    verbose = _run("evaluate", *args, "--verbose")
    assert verbose.returncode == 0 and NOISE.search(verbose.stderr), verbose.stderr
