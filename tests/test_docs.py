"""Every code block in docs/ and README.md is exercised, so the documentation cannot rot.

Blocks are checked by language, or by a marker comment ``<!-- test: MARKER -->`` on the line
before them (docs/writing-docs.md lists them):

* python: executed in a subprocess, each block in a fresh namespace and its own temporary
  working folder; after ``compile``, compiled and statically checked instead (imported
  modules and names exist, calls of our functions and classes bind to their signatures).
* bash: every command is parsed. Our programs (the entry points in pyproject.toml and
  ``python -m edge_runtime``) go through their real parsers (click, argparse), so a renamed
  option, a wrong choice or a missing required option fails; ``pip install`` may only name
  our extras and known packages; every other program must be on `ALLOWED_PROGRAMS`.
* ini (systemd unit): its ExecStart is checked like a bash line; json, csv, text and mermaid
  blocks have the checks in `check_block` (text blocks only as ``layout CORPUS``).

Marked tables are compared with the code they describe (dataclass fields and defaults, the
edge CLI's options, JSON keys, engines: tests/test_docs_tables.py), and the API reference must
cover every module (tests/test_docs_site.py). The checkers live in tests/docs_checks.py;
tests/test_docs_checkers.py shows that they catch rot.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from docs_checks import (
    BLOCKS,
    LANGUAGES,
    ROOT,
    SCRIPTS,
    Block,
    DocError,
    check_block,
    shell_commands,
)

# ------------------------------------------------------------------------- python blocks
RUNNER = r"""
import ast, importlib, inspect, json, os, sys, tempfile, time, traceback
sys.path.insert(0, sys.argv[2])
OURS = ("keras_dyconv", "export", "edge_runtime")


def _resolve(node, bound):
    if isinstance(node, ast.Name):
        return bound.get(node.id)
    if isinstance(node, ast.Attribute):
        owner = _resolve(node.value, bound)
        if owner is None:
            return None
        if inspect.ismodule(owner) or inspect.isclass(owner):
            if not hasattr(owner, node.attr):
                raise AttributeError(f"line {node.lineno}: {ast.unparse(node)} does not exist")
            return getattr(owner, node.attr)
    return None


def _ours(obj):
    name = obj.__name__ if inspect.ismodule(obj) else getattr(obj, "__module__", "") or ""
    return name.split(".")[0] in OURS


def static_check(code, name):
    tree = ast.parse(code, name)
    bound = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                module = importlib.import_module(alias.name)
                if alias.asname:
                    bound[alias.asname] = module
                else:
                    top = alias.name.split(".")[0]
                    bound[top] = importlib.import_module(top)
        elif isinstance(node, ast.ImportFrom):
            if node.level or node.module is None:
                raise ImportError(f"line {node.lineno}: relative import")
            module = importlib.import_module(node.module)
            for alias in node.names:
                if alias.name == "*":
                    raise ImportError(f"line {node.lineno}: star import")
                if hasattr(module, alias.name):
                    obj = getattr(module, alias.name)
                else:
                    obj = importlib.import_module(f"{node.module}.{alias.name}")
                bound[alias.asname or alias.name] = obj
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            _resolve(node, bound)
        if not isinstance(node, ast.Call):
            continue
        target = _resolve(node.func, bound)
        if target is None or not callable(target) or not _ours(target):
            continue
        if any(isinstance(a, ast.Starred) for a in node.args):
            continue
        if any(k.arg is None for k in node.keywords):
            continue
        try:
            signature = inspect.signature(target)
        except (TypeError, ValueError):
            continue
        try:
            signature.bind(*node.args, **{k.arg: k.value for k in node.keywords})
        except TypeError as err:
            raise TypeError(
                f"line {node.lineno}: {ast.unparse(node.func)}(...) does not match "
                f"{ast.unparse(node.func)}{signature}: {err}"
            ) from None


results = {}
cwd = os.getcwd()
for job in json.load(sys.stdin):
    start = time.perf_counter()
    try:
        code = compile(job["code"], job["id"], "exec")
        if job["mode"] == "compile":
            static_check(job["code"], job["id"])
        else:
            with tempfile.TemporaryDirectory(prefix="dyser-docs-") as tmp:
                os.chdir(tmp)
                try:
                    exec(code, {"__name__": "__main__"})
                finally:
                    os.chdir(cwd)
        results[job["id"]] = {"ok": True}
    except BaseException:
        results[job["id"]] = {"ok": False, "error": traceback.format_exc(limit=8)}
    results[job["id"]]["seconds"] = round(time.perf_counter() - start, 2)
    sys.stdout.flush()
with open(sys.argv[1], "w") as f:
    json.dump(results, f)
"""

#: Blocks that must FAIL the python checks: they prove the checks can catch rot.
NEGATIVE_PYTHON = {
    "negative:missing-name": ("compile", "from keras_dyconv.layers import DynamicConv3D\n"),
    "negative:missing-module": ("compile", "import keras_dyconv.nonexistent\n"),
    "negative:renamed-keyword": (
        "compile",
        "from export.pipeline import export_model\n"
        "export_model('m.keras', 'tflite', quantise='int8')\n",
    ),
    "negative:missing-attribute": (
        "compile",
        "import keras_dyconv.corpora\nkeras_dyconv.corpora.load_emodb_v2('x')\n",
    ),
    "negative:too-many-arguments": (
        "compile",
        "from edge_runtime.config import FrontendConfig\n"
        "from edge_runtime.features import Frontend\n"
        "Frontend(FrontendConfig(), 16000)\n",
    ),
    "negative:exec-error": (
        "exec",
        "from keras_dyconv.metrics import summarize\nsummarize([0], [0, 1], ['a'])\n",
    ),
}  # fmt: skip


@pytest.fixture(scope="session", autouse=True)
def python_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple]:
    """Start running every python block (and the negative examples) in one subprocess.

    It starts with the session and runs while the other checks import their own modules;
    `python_results` waits for it.
    """
    jobs = [
        {"id": b.id, "code": b.code, "mode": "compile" if b.marker == "compile" else "exec"}
        for b in BLOCKS
        if b.lang == "python"
    ]
    jobs += [{"id": k, "mode": mode, "code": code} for k, (mode, code) in NEGATIVE_PYTHON.items()]
    folder = tmp_path_factory.mktemp("docs")
    (folder / "jobs.json").write_text(json.dumps(jobs))
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "3"}
    with (
        open(folder / "jobs.json") as stdin,
        open(folder / "stdout.txt", "w") as stdout,
        open(folder / "stderr.txt", "w") as stderr,
    ):
        proc = subprocess.Popen(
            [sys.executable, "-c", RUNNER, str(folder / "results.json"), str(ROOT)],
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            env=env,
            cwd=ROOT,
        )
    yield proc, folder
    if proc.poll() is None:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="session")
def python_results(python_run: tuple) -> dict[str, dict]:
    proc, folder = python_run
    try:
        proc.wait(timeout=300)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("the docs runner took more than 300 s")
    out = folder / "results.json"
    if not out.exists():
        stderr = (folder / "stderr.txt").read_text()[-4000:]
        pytest.fail(f"the docs runner crashed (exit {proc.returncode}):\n{stderr}")
    return json.loads(out.read_text())


# ----------------------------------------------------------------------------- the tests
PYTHON_BLOCKS = [b for b in BLOCKS if b.lang == "python"]
OTHER_BLOCKS = [b for b in BLOCKS if b.lang != "python"]


@pytest.mark.parametrize("block", OTHER_BLOCKS, ids=lambda b: b.id)
def test_block(block: Block, tmp_path: Path) -> None:
    try:
        check_block(block, tmp_path)
    except DocError as err:
        raise DocError(f"{block.id}: {err}") from None


@pytest.mark.parametrize("block", PYTHON_BLOCKS, ids=lambda b: b.id)
def test_python_block(block: Block, python_results: dict[str, dict]) -> None:
    result = python_results[block.id]
    assert result["ok"], f"{block.id} ({block.marker or 'executed'}):\n{result.get('error')}"


def test_blocks_are_found_and_cover_every_program() -> None:
    """The checks above cannot pass vacuously: the docs have blocks, and use every program."""
    assert len(PYTHON_BLOCKS) >= 10 and len(OTHER_BLOCKS) >= 20
    assert all(b.lang in LANGUAGES for b in BLOCKS), sorted({b.lang for b in BLOCKS} - LANGUAGES)
    shell = "\n".join(b.code for b in BLOCKS if b.lang == "bash")
    used = {os.path.basename(words[0]) for words in shell_commands(shell)}
    missing = [program for program in SCRIPTS if program not in used]
    assert not missing, f"no docs example runs {missing}"
    assert re.search(r"python3? -m edge_runtime (predict|stream|info)", shell)


def test_negative_python_examples_fail(python_results: dict[str, dict]) -> None:
    """Each deliberately wrong block is caught, and for the reason it was written for."""
    expected = {
        "negative:missing-name": "DynamicConv3D",
        "negative:missing-module": "keras_dyconv.nonexistent",
        "negative:renamed-keyword": "quantise",
        "negative:missing-attribute": "load_emodb_v2",
        "negative:too-many-arguments": "too many positional arguments",
        "negative:exec-error": "equal length",
    }
    for key, reason in expected.items():
        result = python_results[key]
        assert not result["ok"], f"{key} passed the python checks"
        assert reason in result["error"], f"{key} failed for another reason:\n{result['error']}"
