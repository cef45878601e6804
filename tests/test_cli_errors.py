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
    (d / "file").write_text("a file, not a folder")
    # Manifests whose audio files exist (the class checks read no audio).
    for name in ("a", "b", "c", "d"):
        (d / f"{name}.wav").touch()
    (d / "two-speakers.csv").write_text(
        "path,label,speaker\na.wav,angry,s1\nb.wav,angry,s2\nc.wav,sad,s1\nd.wav,sad,s2\n"
    )
    rows = "a.wav,angry,s1\nb.wav,angry,s2\nc.wav,angyr,s2\n"
    (d / "typo.csv").write_text(f"path,label,speaker\n{rows}")
    (d / "one-class.csv").write_text(f"path,label,speaker\n{rows.replace('angyr', 'angry')}")
    return d


def cases(d):
    data = ["--corpus", "emodb", "--data", str(d / "empty"), "--out", str(d / "run")]
    bad_model = str(d / "bad.keras")
    typo = ["--corpus", "manifest", "--data", str(d / "typo.csv"), "--out", str(d / "run")]
    one_class = ["--corpus", "manifest", "--data", str(d / "one-class.csv"), "--out", "x"]
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
        (train, [*data, "--seed", "-1"], 2, "'--seed': -1 is not in the range 0<=x<=4294967295"),
        (train, [*data, "--folds", "1"], 2, "'--folds': 1 is not in the range x>=2"),
        (train, [*data, "--max-folds", "-1"], 2, "'--max-folds': -1 is not in the range x>=1"),
        (train, [*data, "--jobs", "0"], 2, "'--jobs': expected 1 or more processes, or -1"),
        (train, [*data, "--window", "0"], 2, "--window: expected 1 to 60000 frames of 10 ms"),
        (train, [*data, "--window", "nan"], 2, "(0.01 to 600 s), got nan s"),
        (train, [*data, "--window", "1e9"], 2, "(0.01 to 600 s), got 1e+09 s"),
        (train, [*data, "--window-hop", "0"], 2, "--window-hop: expected 1 to 60000 frames"),
        (train, [*data, "--out", str(d / "file")], 2, f"'--out': {d / 'file'}: expected a folder"),
        (train, [*data, "--out", str(d / "file" / "run")], 2, f"but {d / 'file'} is a file"),
        (train, [*data, "--cache", str(d / "file")], 2, "'--cache': "),
        (train, [*data, "--checkpoints", str(d / "file" / "c")], 2, "'--checkpoints': "),
        (train, [*data, "--protocol", "split"], 2, "--protocol split needs --split-file"),
        (
            train,
            [*data, "--split-file", bad_model],
            2,
            "only with --protocol split, got --protocol loso",
        ),
        (train, [*data, "--protocol", "loco"], 2, "needs 2 --corpus/--data pairs or more, got 1"),
        (train, typo, 2, "typo.csv: every class needs 2 utterances or more"),
        (train, typo, 2, f"found 1 of class 'angyr' ({d / 'c.wav'}"),
        (
            train,
            one_class,
            2,
            "one-class.csv: training needs 2 classes or more, found 1: ['angry']",
        ),
        (
            evaluate,
            [bad_model, "--corpus", "emodb", "--data", str(d), "--cache", str(d / "file")],
            2,
            "'--cache'",
        ),
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


def test_a_run_refused_before_training_leaves_no_run_folder(files):
    out = files / "refused-run"
    argv = ["--corpus", "manifest", "--data", str(files / "two-speakers.csv"), "--out", str(out)]
    result = CliRunner().invoke(train, [*argv, "--protocol", "group-kfold", "--folds", "3"])
    assert result.exit_code == 1, result.output
    assert "k must be in [2, 2] (the number of speakers), got 3" in result.output
    assert not out.exists()
