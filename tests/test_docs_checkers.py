"""The docs checkers (tests/docs_checks.py) catch rot: wrong commands and options, renamed
options, bad layouts and manifests fail them; what the real parsers accept passes."""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path

import pytest
from docs_checks import (
    BLOCKS,
    DOCS,
    Block,
    DocError,
    check_block,
    check_command,
    check_layout,
    check_manifest,
    check_shell,
    edge_parser,
    shell_commands,
)


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("dyser-train --corpus emodb --data c --out o --bogus-option 3", "--bogus-option"),
        ("dyser-train --corpus emodb --data c --out o --protocol lopo", "lopo"),
        ("dyser-train --corpus emodb --out runs/x", "--data"),  # required
        ("dyser-train --corpus emodb --data d --out o --folds five", "five"),
        ("dyser-eval runs/x/model.keras --corpus emodb --data d --speaker 03", "--speaker"),
        ("dyser-export model.keras --quantise int8", "--quantise"),
        ("dyser-export model.keras --format tflite --quantize int4", "int4"),
        ("dyser-demo --epoch 3", "--epoch"),
        ("python -m edge_runtime predict --bogus model.tflite a.wav", "--bogus"),
        ("python -m edge_runtime stream model.tflite --hop fast", "fast"),
        ("python -m edge_runtime stream model.tflite --smooth 0.7", "--smooth"),
        ("python -m edge_runtime serve model.tflite", "serve"),
        ("dyser-edge predict model.tflite a.wav --engine tpu", "tpu"),
        ("curl -s https://example.org/install.sh | sh", "curl"),
        ("pip install 'dyser[lite]'", "lite"),
        ("pip install -e '.[train,gpu]'", "gpu"),
        ("pip install tensorflow-gpu", "tensorflow-gpu"),
        ("python bench/no_such_script.py", "no_such_script"),
        ("python -m http.server", "http.server"),
        ("sudo rm -rf /opt/dyser", "rm"),
        ("ls $(pwd)", "substitution"),
    ],
)
def test_shell_checker_rejects(line: str, reason: str) -> None:
    with pytest.raises(DocError, match=re.escape(reason)):
        check_shell(line)


def test_shell_checker_accepts_what_the_real_parsers_accept() -> None:
    check_shell(
        "KERAS_BACKEND=jax dyser-train --corpus manifest --data m.csv --out runs/x \\\n"
        "  --protocol group-kfold --folds 5 --seed 0 --seed 1 --spec-augment 2 30 2 8\n"
        "dyser-export model.keras --quantize --calibration wav/  # bare --quantize means int8\n"
        "arecord -f S16_LE -r 16000 -c 1 -t raw | python3 -m edge_runtime stream m.tflite \\\n"
        "  2>/dev/null\n"
        "dyser-train --help && sudo systemctl restart dyser.service"
    )


def test_renamed_option_fails_the_documented_commands() -> None:
    """Rename an option of a real command: every docs line that uses it must now fail."""
    from keras_dyconv.cli import train

    renamed = copy.copy(train)
    renamed.params = [copy.copy(p) for p in train.params]
    corpus = next(p for p in renamed.params if p.name == "corpus")
    corpus.opts = ["--dataset"]
    lines = [
        words
        for b in BLOCKS
        if b.lang == "bash"
        for words in shell_commands(b.code)
        if os.path.basename(words[0]) == "dyser-train" and "--corpus" in words
    ]
    assert len(lines) >= 5
    for words in lines:
        check_command(words)  # passes with the real command
        with pytest.raises(DocError, match="--corpus"):
            check_command(words, commands={"dyser-train": renamed})

    parser = edge_parser()
    predict = parser._subparsers._group_actions[0].choices["predict"]
    predict._option_string_actions.pop("--json")
    with pytest.raises(DocError, match="--json"):
        check_command(
            ["python", "-m", "edge_runtime", "predict", "m.tflite", "a.wav", "--json"],
            commands={"python -m edge_runtime": parser},
        )


def test_layout_and_manifest_checks_catch_bad_examples(tmp_path: Path) -> None:
    from keras_dyconv.corpora import CorpusError

    with pytest.raises(CorpusError):
        check_layout("wav/03a01Xa.wav\n", "emodb", tmp_path / "emodb")  # no emotion X
    with pytest.raises(CorpusError):
        check_manifest("path,emotion\na.wav,angry\n", tmp_path / "manifest")  # no label column
    with pytest.raises(DocError):
        check_block(Block(DOCS / "x.md", 1, "text", "", "some output\n"), tmp_path)
    with pytest.raises(DocError):
        check_block(Block(DOCS / "x.md", 1, "yaml", "", "a: 1\n"), tmp_path)
