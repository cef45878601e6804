"""Every click command (dyser-train, dyser-eval, dyser-export, dyser-demo) given bad options
or bad files ends with a one-line message naming the problem and its documented exit status,
never a traceback (issue 22, point 4; `python -m edge_runtime` has its own in
test_edge_hostile_input.py)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from export.cli import main as export_main
from export.demo import main as demo_main
from keras_dyconv.cli import evaluate, train


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli-errors")
    (d / "bad.keras").write_bytes(b"not a zip file")
    (d / "empty").mkdir()
    return d


def cases(d):
    data = ["--corpus", "emodb", "--data", str(d / "empty"), "--out", str(d / "run")]
    bad_model = str(d / "bad.keras")
    return [
        # (command, argv, exit status, text the message must contain)
        (train, [*data, "--batch-size", "0"], 2, "batch_size must be >= 1"),
        (train, [*data, "--epochs", "-1"], 2, "epochs must be >= 1"),
        (train, [*data, "--learning-rate", "0"], 2, "learning_rate must be > 0"),
        (train, [*data, "--label-smoothing", "1"], 2, "label_smoothing must be in [0, 1)"),
        (train, [*data, "--seed", "x"], 2, "--seed"),
        (train, [*data, "--corpus", "nope"], 2, "'nope' is not one of"),
        (train, ["--corpus", "emodb", "--data", str(d / "none"), "--out", "x"], 2, "does not"),
        (train, data, 2, "expected EmoDB's 'wav' folder"),
        (evaluate, [bad_model, "--corpus", "emodb", "--data", str(d)], 2, "not a readable"),
        (evaluate, [str(d / "none.keras"), "--corpus", "emodb", "--data", str(d)], 2, "exist"),
        (export_main, [bad_model], 4, "not a readable .keras file"),
        (export_main, [str(d / "none.keras")], 2, "does not exist"),
        (export_main, [bad_model, "--format", "bogus"], 2, "'bogus' is not one of"),
        (export_main, [bad_model, "--min-agreement", "101"], 2, "--min-agreement"),
        (demo_main, ["--speakers", "1", "--workdir", str(d / "demo")], 2, "--speakers"),
        (demo_main, ["--per-emotion", "0", "--workdir", str(d / "demo")], 2, "--per-emotion"),
        (demo_main, ["--epochs", "0", "--workdir", str(d / "demo")], 2, "--epochs"),
    ]


def test_bad_options_and_files_give_a_message_and_the_documented_status(files):
    runner = CliRunner()
    for command, argv, status, text in cases(files):
        result = runner.invoke(command, argv)
        where = f"{command.name} {' '.join(argv)}"
        # A clean exit is a SystemExit; anything else escaped as a traceback.
        assert isinstance(result.exception, SystemExit), (where, result.exception)
        assert result.exit_code == status, (where, result.output)
        assert text in result.output, (where, result.output)
        assert "Traceback" not in result.output, where
