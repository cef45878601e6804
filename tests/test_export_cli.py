"""dyser-export failing cleanly (bad calibration, failed conversion, low parity: exit status
and message) and its command-line manners (-h, no TensorFlow import for help, quiet native
stderr, demo exit status)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from click.testing import CliRunner
from export_fixtures import run_cli
from tone_corpus import RAW_CONFIG

from edge_runtime.artifact import load_artifact, manifest_path
from export import pipeline
from export.cli import main
from export.tflite import explain_failure
from keras_dyconv.modelio import save_model

# ---------------------------------------------------------------------- failure handling


def test_int8_without_calibration_is_a_usage_error(trained, tmp_path):
    out = tmp_path / "q.tflite"
    code, report, stderr = run_cli(trained.model_path, "--quantize", "--out", out)
    assert code == 2 and "--calibration" in stderr and report["exit_code"] == 2
    assert list(tmp_path.iterdir()) == []


def test_unusable_calibration_audio_is_reported(trained, tmp_path):
    wav = next(trained.train.parent.glob("*.wav"))
    manifest = tmp_path / "labels.csv"
    manifest.write_text(f"path,label\n{wav},angry\n")
    code, _, stderr = run_cli(trained.model_path, "--calibration", manifest)
    assert code == 4 and "['angry'] are not among the model's labels" in stderr
    manifest.write_text(f"path,label\n{wav.with_name('missing.wav')},low\n")
    code, _, stderr = run_cli(trained.model_path, "--calibration", manifest)
    assert code == 4 and "missing.wav" in stderr
    (tmp_path / "broken.wav").write_bytes(b"RIFF....WAVEjunk")
    code, _, stderr = run_cli(trained.model_path, "--holdout", tmp_path)
    assert code == 4 and "broken.wav" in stderr


def test_failed_conversion_leaves_previous_output_untouched(trained, tmp_path):
    inputs = keras.Input((None, RAW_CONFIG.n_mels))
    x = keras.layers.Conv1D(4, 3, name="plain_conv1d")(inputs)
    x = keras.layers.LSTM(4)(x)
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))
    model_path = save_model(model, tmp_path / "conv1d.keras", trained.metadata)
    out = tmp_path / "deployed.tflite"
    out.write_bytes(b"previous model")
    manifest_path(out).write_text("{}")
    before = sorted(tmp_path.iterdir())
    code, report, stderr = run_cli(model_path, "--out", out)
    assert code == 3 and "plain_conv1d" in stderr and "plain_conv1d" in report["error"]
    assert out.read_bytes() == b"previous model" and manifest_path(out).read_text() == "{}"
    assert sorted(tmp_path.iterdir()) == before  # no temporary files left behind


def test_converter_errors_name_the_layer_and_op():
    err = RuntimeError(
        "loc(\"dycnn/dyconv2/conv\"): 'tf.FancyOp' op is neither a custom op nor a flex op"
    )
    message = str(explain_failure(err, ["dyconv1", "dyconv2", "bilstm"], "TFLite conversion"))
    assert "at layer(s) dyconv2" in message and "tf.FancyOp" in message
    assert "dyconv1" not in message and "bilstm" not in message


def test_parity_below_threshold_exits_1_and_says_so(trained, tmp_path, monkeypatch):
    real_open = pipeline.open_engine

    class Scrambled:  # a broken export: probabilities rolled by one class
        def __init__(self, artifact, threads):
            self.engine = real_open(artifact, threads=threads)
            self.name = "scrambled"

        def predict(self, windows):
            return np.roll(self.engine.predict(windows), 1, axis=1)

    monkeypatch.setattr(pipeline, "open_engine", Scrambled)
    out = tmp_path / "bad.onnx"
    code, report, stderr = run_cli(
        trained.model_path, "--format", "onnx", "--holdout", trained.heldout, "--out", out
    )
    assert code == 1 and not report["passed"] and "below the minimum" in stderr
    assert report["parity"]["agreement"] < 0.5
    assert load_artifact(out).artifact_info.parity["passed"] is False


def test_min_agreement_override(trained, tmp_path):
    code, report, _ = run_cli(
        trained.model_path,
        "--format",
        "onnx",
        "--min-agreement",
        "50",
        "--holdout",
        trained.heldout,
        "--out",
        tmp_path / "m.onnx",
    )
    assert code == 0 and report["parity"]["min_agreement"] == 0.5
    code, _, stderr = run_cli(trained.model_path, "--min-agreement", "101")
    assert code == 2 and "101" in stderr


def test_help_reads_like_a_manual():
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    text = result.output
    for needle in (
        "QUANTIZATION MODES",
        "none",
        "float16",
        "dynamic",
        "int8",
        "EXIT STATUS",
        "parity",
        "--calibration",
        "--window",
        "--min-agreement",
        "EXAMPLES",
    ):
        assert needle in text
    for code in range(6):  # every exit status is documented
        assert re.search(rf"^\s+{code}  \w", text, re.M)


# ------------------------------------------------------------------ command-line manners


def test_export_help_takes_h_and_imports_no_tensorflow():
    assert CliRunner().invoke(main, ["-h"]).exit_code == 0
    probe = (
        "import sys; from click.testing import CliRunner; from export.cli import main; "
        "r = CliRunner().invoke(main, ['--help']); assert r.exit_code == 0, r.output; "
        "print(sorted(m for m in ('tensorflow', 'keras', 'tf_keras', 'onnx') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]", result.stdout


def test_native_stderr_is_dropped_and_python_stderr_kept():
    """TensorFlow's and LiteRT's C++ logs go to fd 2; Python's stderr must survive."""
    probe = (
        "import os, sys\n"
        "from edge_runtime.engines import quiet_native_stderr\n"
        "with quiet_native_stderr():\n"
        "    os.write(2, b'native noise\\n')\n"
        "    print('ours', file=sys.stderr)\n"
        "with quiet_native_stderr(enabled=False):\n"
        "    os.write(2, b'verbose native\\n')\n"
        "os.write(2, b'after\\n')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stderr.splitlines() == ["ours", "verbose native", "after"]


def test_the_litert_engine_prints_no_delegate_notice(trained, cli_exports):
    code, report, stderr = cli_exports("tflite", "none")
    assert code == 0, stderr
    out = report["output"]
    wav = next(trained.heldout.parent.glob("*.wav"))
    result = subprocess.run(
        [sys.executable, "-m", "edge_runtime", "predict", out, wav, "--no-speech-gate"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "XNNPACK" not in result.stderr and "INFO" not in result.stderr


def test_demo_exit_status_says_whether_its_checks_held(monkeypatch):
    from export import demo

    for passed, code in ((True, 0), (False, 1)):
        monkeypatch.setattr(demo, "_run", lambda *args, passed=passed: passed)
        assert CliRunner().invoke(demo.main, ["--epochs", "1"]).exit_code == code
    assert CliRunner().invoke(demo.main, ["-h"]).exit_code == 0


def test_demo_check_fails_only_when_agreement_is_significantly_low():
    from export.demo import wilson_upper

    assert wilson_upper(41 / 42, 42) > 0.98  # one flipped window of 42: not evidence
    assert wilson_upper(60 / 70, 70) < 0.98  # ten of 70: clearly below 98%
    assert wilson_upper(1.0, 0) == 1.0 and wilson_upper(1.0, 10) == 1.0
    assert abs(wilson_upper(0.5, 100) - 0.5962) < 1e-3  # the textbook 50 of 100: [0.404, 0.596]


def test_every_command_line_takes_h():
    """-h is --help for every program of pyproject.toml and for python -m edge_runtime."""
    import tomllib

    scripts = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())
    for name, target in scripts["project"]["scripts"].items():
        module, attr = target.split(":")
        entry = getattr(__import__(module, fromlist=[attr]), attr)
        if hasattr(entry, "main") and hasattr(entry, "params"):  # a click command
            result = CliRunner().invoke(entry, ["-h"])
            assert result.exit_code == 0 and "Usage:" in result.output, name
        else:
            with pytest.raises(SystemExit) as exit_info:
                entry(["-h"])
            assert exit_info.value.code == 0, name
    result = subprocess.run(
        [sys.executable, "-m", "edge_runtime", "-h"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and "usage:" in result.stdout
