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
edge CLI's options, JSON keys, engines), and the API reference must cover every module.
"""

from __future__ import annotations

import argparse
import ast
import copy
import csv
import dataclasses
import importlib
import importlib.util
import io
import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from collections.abc import Callable, Iterator
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import click
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PACKAGES = ("keras_dyconv", "export", "edge_runtime")
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
SCRIPTS: dict[str, str] = PYPROJECT["project"]["scripts"]
EXTRAS: set[str] = set(PYPROJECT["project"]["optional-dependencies"])

#: Programs a docs command may run besides ours; their arguments are not checked.
ALLOWED_PROGRAMS = {
    "apt", "apt-get", "arecord", "cat", "cd", "cp", "journalctl", "ls", "mkdir", "mkdocs",
    "scp", "ssh", "systemctl",
}  # fmt: skip
#: Wrappers that run the rest of the line as a command.
WRAPPERS = {"sudo", "time", "nice", "exec"}
#: Packages `pip install` may name besides dyser: its dependencies and the fallback
#: interpreter that edge_runtime.engines supports.
KNOWN_PACKAGES = {"dyser", "tflite-runtime", "pip", "setuptools", "wheel"} | {
    re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0].lower()
    for requirements in [
        PYPROJECT["project"]["dependencies"],
        *PYPROJECT["project"]["optional-dependencies"].values(),
    ]
    for requirement in requirements
}
FENCE = re.compile(r"^(?P<indent>[ ]*)(?P<fence>`{3,}|~{3,})[ ]*(?P<info>[^`]*)$")
MARKER = re.compile(r"^\s*<!--\s*test:\s*(?P<marker>.*?)\s*-->\s*$")
LANGUAGES = {"python", "bash", "ini", "json", "csv", "text", "mermaid"}


class DocError(AssertionError):
    """A documentation block or table does not match the code."""


# ----------------------------------------------------------------------------------- parsing
@dataclasses.dataclass(frozen=True)
class Block:
    """One fenced code block: where it is, its language, its marker and its text."""

    path: Path
    line: int
    lang: str
    marker: str
    code: str

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


@dataclasses.dataclass(frozen=True)
class Table:
    """A Markdown table preceded by a marker: its header and rows of cell texts."""

    path: Path
    line: int
    marker: str
    header: list[str]
    rows: list[list[str]]

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def _marker_before(lines: list[str], index: int) -> str:
    k = index - 1
    while k >= 0 and not lines[k].strip():
        k -= 1
    m = MARKER.match(lines[k]) if k >= 0 else None
    return m["marker"] if m else ""


def parse_blocks(path: Path, text: str) -> list[Block]:
    """The fenced code blocks of a Markdown text (indented ones inside admonitions too)."""
    lines = text.splitlines()
    blocks, i = [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if m is None:
            i += 1
            continue
        indent, fence = m["indent"], m["fence"]
        closing = re.compile(rf"^\s*{re.escape(fence[0])}{{{len(fence)},}}\s*$")
        body, j = [], i + 1
        while j < len(lines) and not closing.match(lines[j]):
            line = lines[j]
            body.append(line[len(indent) :] if line.startswith(indent) else line.lstrip())
            j += 1
        if j == len(lines):
            raise DocError(f"{path}:{i + 1}: code block is never closed")
        lang = m["info"].split()[0].lower() if m["info"].strip() else ""
        blocks.append(Block(path, i + 1, lang, _marker_before(lines, i), "\n".join(body) + "\n"))
        i = j + 1
    return blocks


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def parse_tables(path: Path, text: str) -> list[Table]:
    """The Markdown tables that directly follow a marker comment."""
    lines = text.splitlines()
    tables = []
    for i, line in enumerate(lines):
        m = MARKER.match(line)
        if m is None:
            continue
        j = i + 1
        while j < len(lines) and not lines[j].strip():
            j += 1
        if j >= len(lines) or not lines[j].lstrip().startswith("|"):
            continue
        rows = []
        while j < len(lines) and lines[j].lstrip().startswith("|"):
            rows.append(_cells(lines[j]))
            j += 1
        tables.append(Table(path, i + 2, m["marker"], rows[0], rows[2:]))
    return tables


def doc_files() -> list[Path]:
    return [*sorted(DOCS.rglob("*.md")), ROOT / "README.md"]


def all_blocks() -> list[Block]:
    return [b for path in doc_files() for b in parse_blocks(path, path.read_text())]


def all_tables() -> list[Table]:
    return [t for path in doc_files() for t in parse_tables(path, path.read_text())]


BLOCKS = all_blocks()
TABLES = all_tables()


def _code(cell: str) -> str:
    """The text of a table cell written as `code`."""
    m = re.fullmatch(r"`([^`]*)`", cell.strip())
    if m is None:
        raise DocError(f"expected a `code` cell, got {cell!r}")
    return m[1]


# ------------------------------------------------------------------------------ shell lines
def shell_commands(script: str) -> list[list[str]]:
    """Split a shell script into simple commands (lists of words), as a shell would.

    Handles line continuations, comments, quotes, pipes, ``&&``/``||``/``;`` and
    redirections (dropped with their target); subshells and command substitution are
    refused so that every command stays checkable.
    """
    commands: list[list[str]] = []
    for line in script.replace("\\\n", " ").splitlines():
        if "$(" in line or "`" in line:
            raise DocError(f"command substitution cannot be checked: {line!r}")
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        lexer.commenters = "#"
        words: list[str] = []
        tokens = list(lexer)
        k = 0
        while k < len(tokens):
            token = tokens[k]
            if token in ("|", "||", "&&", ";", "&"):
                if words:
                    commands.append(words)
                words = []
            elif token in (">", ">>", "<", ">&", "&>"):
                if words and words[-1].isdigit():
                    words.pop()  # "2>" is split into "2" and ">"
                k += 1  # the redirection target
            elif token in ("(", ")"):
                raise DocError(f"subshells cannot be checked: {line!r}")
            else:
                words.append(token)
            k += 1
        if words:
            commands.append(words)
    return commands


def load_entry_point(name: str) -> tuple[object, str]:
    """The object behind an entry point of pyproject.toml, and its module name."""
    module, _, attr = SCRIPTS[name].partition(":")
    return getattr(importlib.import_module(module), attr), module


def check_click(command: click.Command, prog: str, args: list[str]) -> None:
    """Parse `args` with the real click command; paths need not exist."""
    params = []
    for param in command.params:
        probe = copy.copy(param)
        if isinstance(param.type, click.Path):
            probe.type = click.Path()  # the docs' example paths do not exist here
        params.append(probe)
    probe_command = click.Command(
        prog,
        params=params,
        context_settings=command.context_settings,
        add_help_option=command.add_help_option,
    )
    try:
        with redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):
            probe_command.make_context(prog, list(args), resilient_parsing=False)
    except click.exceptions.Exit:
        pass  # --help
    except click.ClickException as err:
        raise DocError(f"{prog} {shlex.join(args)}: {err.format_message()}") from None


def _parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _parsers(sub)


def check_argparse(parser: argparse.ArgumentParser, prog: str, args: list[str]) -> None:
    """Parse `args` with the real argparse parser, abbreviated options refused.

    argparse accepts any unambiguous prefix of an option; the docs must spell options out,
    so that renaming `--hop` to `--hop-seconds` cannot leave `--hop` passing as a prefix.
    """
    for each in _parsers(parser):
        each.allow_abbrev = False
    stderr = io.StringIO()
    try:
        with redirect_stdout(io.StringIO()), redirect_stderr(stderr):
            parser.parse_args(args)
    except SystemExit as exit_:
        if exit_.code not in (0, None):
            message = stderr.getvalue().strip().splitlines()[-1:]
            raise DocError(f"{prog} {shlex.join(args)}: {' '.join(message)}") from None


def edge_parser() -> argparse.ArgumentParser:
    return importlib.import_module("edge_runtime.__main__").build_parser()


def check_ours(name: str, args: list[str], commands: dict[str, object] | None) -> None:
    """An entry point of ours: click commands and argparse parsers parse the arguments."""
    if commands is not None and name in commands:
        target, module = commands[name], None
    else:
        target, module = load_entry_point(name)
    if isinstance(target, click.Command):
        check_click(target, name, args)
    else:
        parser = getattr(importlib.import_module(module), "build_parser", None) if module else None
        if parser is None:
            raise DocError(f"{name}: neither a click command nor a module with build_parser()")
        check_argparse(parser(), name, args)


def check_pip(args: list[str]) -> None:
    """pip: installs may only name dyser (or this checkout) with real extras, or known packages."""
    if not args or args[0] not in ("install", "wheel"):
        if args and args[0] in ("show", "list", "uninstall", "download"):
            return
        raise DocError(f"pip {shlex.join(args)}: unexpected pip command")
    takes_value = {"-r", "--requirement", "-f", "--find-links", "-w", "--wheel-dir", "-c",
                   "--index-url", "--extra-index-url", "-t", "--target"}  # fmt: skip
    k = 1
    while k < len(args):
        arg = args[k]
        k += 1
        if arg in takes_value:
            k += 1
            continue
        if arg.startswith("-") and arg not in ("-e", "--editable"):
            continue
        if arg in ("-e", "--editable"):
            arg = args[k]
            k += 1
        m = re.fullmatch(r"(?P<name>[^\[<>=!~;]+)(\[(?P<extras>[^\]]*)\])?(?P<spec>.*)", arg)
        if m is None:
            raise DocError(f"pip: cannot read requirement {arg!r}")
        name = m["name"].strip().lower()
        extras = {e.strip() for e in (m["extras"] or "").split(",") if e.strip()}
        ours = name in ("dyser", ".") or name.endswith(".whl") or name.startswith("dist/dyser")
        if ours:
            unknown = extras - EXTRAS
            if unknown:
                raise DocError(
                    f"pip: extras {sorted(unknown)} of {arg!r} are not in pyproject.toml "
                    f"(known: {sorted(EXTRAS)})"
                )
        elif name not in KNOWN_PACKAGES:
            raise DocError(f"pip: {name!r} is neither dyser nor a package the project uses")


def check_python(args: list[str], commands: dict[str, object] | None) -> None:
    """python: -m edge_runtime (argparse), -m venv/pip/pytest/mkdocs, -c, or a repo script."""
    if not args:
        raise DocError("python without arguments (an interactive session) cannot be checked")
    if args[0] == "-m" and len(args) > 1:
        module, rest = args[1], args[2:]
        if module == "edge_runtime":
            if commands is not None and "python -m edge_runtime" in commands:
                check_argparse(commands["python -m edge_runtime"], "python -m edge_runtime", rest)
            else:
                check_argparse(edge_parser(), "python -m edge_runtime", rest)
        elif module == "pip":
            check_pip(rest)
        elif module not in ("venv", "pytest", "mkdocs"):
            raise DocError(f"python -m {module}: not a module the docs may run")
        return
    if args[0] == "-c":
        compile(args[1], "<python -c>", "exec")
        return
    script = ROOT / args[0]
    if not (args[0].endswith(".py") and script.is_file()):
        raise DocError(f"python {args[0]}: not a script of this repository")


def check_command(words: list[str], commands: dict[str, object] | None = None) -> None:
    """Check one simple command; `commands` overrides our entry points (for tests)."""
    while words and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0]):
        words = words[1:]  # environment assignments
    if not words:
        return
    program, args = os.path.basename(words[0]), words[1:]
    if program in WRAPPERS:
        while args and args[0].startswith("-"):
            args = args[1:]
        check_command(args, commands)
    elif program in SCRIPTS:
        check_ours(program, args, commands)
    elif re.fullmatch(r"python(3(\.\d+)?)?", program):
        check_python(args, commands)
    elif program in ("pip", "pip3"):
        check_pip(args)
    elif program in ("sh", "bash"):
        if args[:1] == ["-c"] and len(args) > 1:
            for command in shell_commands(args[1]):
                check_command(command, commands)
        elif not args or not (ROOT / args[0]).is_file():
            raise DocError(f"{program} {shlex.join(args)}: not a script of this repository")
    elif program not in ALLOWED_PROGRAMS:
        raise DocError(
            f"{program}: not one of our programs ({sorted(SCRIPTS)}, python -m edge_runtime) "
            f"nor on the allow-list {sorted(ALLOWED_PROGRAMS)}"
        )


def check_shell(script: str, commands: dict[str, object] | None = None) -> None:
    for words in shell_commands(script):
        check_command(words, commands)


# ------------------------------------------------------------------- other block checkers
def check_systemd_unit(text: str) -> None:
    import configparser

    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # systemd keys are case-sensitive
    unit.read_string(text)
    missing = {"Unit", "Service", "Install"} - set(unit.sections())
    if missing:
        raise DocError(f"systemd unit lacks sections {sorted(missing)}")
    exec_start = unit["Service"].get("ExecStart")
    if not exec_start:
        raise DocError("systemd unit has no ExecStart")
    check_shell(exec_start)


def check_layout(text: str, corpus: str, root: Path) -> None:
    """Create the listed files (empty: loaders read names only) and load them."""
    from keras_dyconv.corpora import load_corpus

    paths = [line.strip() for line in text.splitlines() if line.strip()]
    for rel in paths:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).touch()
    utts = load_corpus(corpus, root)
    wavs = [p for p in paths if p.lower().endswith(".wav")]
    if len(utts) != len(wavs):
        raise DocError(f"load_corpus({corpus!r}) found {len(utts)} utterances, listed {len(wavs)}")


def check_manifest(text: str, root: Path) -> None:
    from keras_dyconv.corpora import load_manifest

    rows = list(csv.DictReader(io.StringIO(text)))
    for row in rows:
        (root / row["path"]).parent.mkdir(parents=True, exist_ok=True)
        (root / row["path"]).touch()
    (root / "manifest.csv").write_text(text)
    if len(load_manifest(root / "manifest.csv")) != len(rows):
        raise DocError("load_manifest did not read every row")


def check_block(block: Block, tmp: Path) -> None:
    """Every non-python block; python blocks run in the subprocess (`python_results`)."""
    marker = block.marker.split()
    if block.lang == "bash":
        check_shell(block.code)
    elif block.lang == "ini":
        check_systemd_unit(block.code)
    elif block.lang == "json":
        data = json.loads(block.code)
        if marker[:1] == ["frontend-config"]:
            from edge_runtime.config import FrontendConfig

            FrontendConfig.from_json(json.dumps(data))
    elif block.lang == "csv":
        if marker[:1] == ["manifest"]:
            check_manifest(block.code, tmp)
        else:
            list(csv.reader(io.StringIO(block.code)))
    elif block.lang == "text":
        if marker[:1] != ["layout"] or len(marker) != 2:
            raise DocError("a text block needs <!-- test: layout CORPUS --> (or another language)")
        check_layout(block.code, marker[1], tmp)
    elif block.lang == "mermaid":
        if block.code.split()[0] not in ("flowchart", "graph"):
            raise DocError("mermaid blocks must be flowcharts")
    elif block.lang != "python":
        raise DocError(f"language {block.lang!r} has no checker; use one of {sorted(LANGUAGES)}")


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


def _field_names(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def _import(dotted: str) -> object:
    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)


def check_fields_table(table: Table) -> None:
    """`fields module.Class [+extra ...] [values=module.MAPPING]`: names, defaults, values."""
    args = table.marker.split()[1:]
    cls = _import(args[0])
    extra = [a[1:] for a in args[1:] if a.startswith("+")]
    values = next((_import(a.split("=", 1)[1]) for a in args[1:] if a.startswith("values=")), {})
    listed = [_code(row[0]) for row in table.rows]
    expected = _field_names(cls) + extra
    if sorted(listed) != sorted(expected):
        raise DocError(
            f"{table.id}: table lists {sorted(set(listed) - set(expected))} that "
            f"{cls.__name__} lacks, and misses {sorted(set(expected) - set(listed))}"
        )
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for col, head in enumerate(table.header):
        head = head.strip().strip("`")
        if head in values:
            owner = values[head]
            actual = {name: getattr(owner, name) for name in fields}
        elif head == "default":
            actual = {name: f.default for name, f in fields.items()}
        else:
            continue
        for row in table.rows:
            name = _code(row[0])
            if name not in fields:
                continue
            documented = ast.literal_eval(_code(row[col]))
            value = actual[name]
            if dataclasses.is_dataclass(value):  # a nested options object: its fields
                value = dataclasses.asdict(value)
            if documented != value:
                raise DocError(
                    f"{table.id}: {name} is {actual[name]!r} in {head!r}, documented {documented!r}"
                )


def check_edge_cli_table(table: Table) -> None:
    """`edge-cli SUBCOMMAND`: the table lists exactly that subcommand's options and defaults."""
    (name,) = table.marker.split()[1:]
    sub = edge_parser()._subparsers._group_actions[0].choices[name]
    actions = {
        a.option_strings[-1]: a
        for a in sub._actions
        if a.option_strings and not isinstance(a, argparse._HelpAction)
    }
    listed = {_code(row[0]): row[1] for row in table.rows}
    if set(listed) != set(actions):
        raise DocError(
            f"{table.id}: `{name}` options are {sorted(actions)}, the table lists {sorted(listed)}"
        )
    for option, cell in listed.items():
        default = actions[option].default
        if cell in ("—", "-", ""):
            if default not in (None, False):
                raise DocError(f"{table.id}: {option} defaults to {default!r}, documented none")
        elif _code(cell) != str(default):
            raise DocError(f"{table.id}: {option} defaults to {default!r}, documented {cell}")


def check_json_keys_table(table: Table) -> None:
    """`json-keys predict|stream`: the keys the edge CLI prints with --json."""
    from edge_runtime.recognizer import Decision, Prediction

    (which,) = table.marker.split()[1:]
    if which == "predict":
        sample = Prediction("a", {"a": 1.0}, (0.0,), np.ones((1, 1))).to_dict()
        expected = {"file", *sample} | {f"windows[].{k}" for k in sample["windows"][0]}
    elif which == "stream":
        expected = set(_field_names(Decision))
    else:
        raise DocError(f"{table.id}: unknown json-keys {which!r}")
    listed = {_code(row[0]) for row in table.rows}
    if listed != expected:
        raise DocError(f"{table.id}: keys are {sorted(expected)}, the table lists {sorted(listed)}")


def check_engines_table(table: Table) -> None:
    from edge_runtime.engines import ENGINES

    listed = {_code(row[0]) for row in table.rows}
    if listed != set(ENGINES):
        raise DocError(
            f"{table.id}: engines are {sorted(ENGINES)}, the table lists {sorted(listed)}"
        )


TABLE_CHECKS: dict[str, Callable[[Table], None]] = {
    "fields": check_fields_table,
    "edge-cli": check_edge_cli_table,
    "json-keys": check_json_keys_table,
    "engines": check_engines_table,
}


@pytest.mark.parametrize("table", TABLES, ids=lambda t: t.id)
def test_table(table: Table) -> None:
    kind = table.marker.split()[0]
    assert kind in TABLE_CHECKS, f"{table.id}: unknown table marker {table.marker!r}"
    TABLE_CHECKS[kind](table)


def test_every_edge_subcommand_has_a_checked_table() -> None:
    subcommands = set(edge_parser()._subparsers._group_actions[0].choices)
    documented = {t.marker.split()[1] for t in TABLES if t.marker.startswith("edge-cli ")}
    assert documented == subcommands


def _table(marker: str, rows: list[list[str]], header: list[str]) -> Table:
    return Table(DOCS / "negative.md", 1, marker, header, rows)


def test_table_checks_catch_drift() -> None:
    """Wrong fields, defaults, options and keys are caught."""
    frontend = [
        [f"`{name}`", "`0`"] for name in _field_names(_import("edge_runtime.config.FrontendConfig"))
    ]
    with pytest.raises(DocError, match="sample_rate"):
        check_fields_table(
            _table("fields edge_runtime.config.FrontendConfig", frontend, ["field", "default"])
        )
    with pytest.raises(DocError, match="misses"):
        check_fields_table(
            _table("fields edge_runtime.config.FrontendConfig", frontend[1:], ["field", "x"])
        )
    with pytest.raises(DocError, match="--threads"):
        check_edge_cli_table(
            _table(
                "edge-cli info", [["`--json`", "—"], ["`--threads`", "`1`"]], ["option", "default"]
            )
        )
    stream = [["`--rate`", "`16000`"], ["`--hop`", "`9`"], ["`--smoothing`", "`0.5`"],
              ["`--json`", "—"], ["`--engine`", "`auto`"], ["`--threads`", "`1`"]]  # fmt: skip
    with pytest.raises(DocError, match="--hop"):
        check_edge_cli_table(_table("edge-cli stream", stream, ["option", "default"]))
    with pytest.raises(DocError):
        check_json_keys_table(_table("json-keys stream", [["`time_s`"], ["`label`"]], ["key"]))
    with pytest.raises(DocError):
        check_engines_table(_table("engines", [["`auto`"], ["`litert`"]], ["engine"]))


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


# --------------------------------------------------------------------- site structure
def _nav_pages() -> set[str]:
    text = (ROOT / "mkdocs.yml").read_text()
    nav = text.split("\nnav:\n", 1)[1].split("\n\n", 1)[0]
    return set(re.findall(r"([\w./-]+\.md)\s*$", nav, re.M))


def test_nav_lists_every_page() -> None:
    pages = {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")}
    assert _nav_pages() == pages


def _public_modules() -> Iterator[str]:
    for package in PACKAGES:
        yield package
        for path in sorted((ROOT / package).glob("*.py")):
            if path.stem != "__init__":
                yield f"{package}.{path.stem}"


def test_api_reference_covers_every_module() -> None:
    """A new module needs a line in docs/reference/ (mkdocstrings or mkdocs-click)."""
    documented = set()
    for path in (DOCS / "reference").rglob("*.md"):
        text = path.read_text()
        documented |= set(re.findall(r"^::: ([\w.]+)\s*$", text, re.M))
        documented |= set(re.findall(r"^\s*:module: ([\w.]+)\s*$", text, re.M))
    for module in documented - {"mkdocs-click"}:
        assert importlib.util.find_spec(module) is not None, f"docs reference {module}"
    # Package __init__ modules are described on their package's page; the edge CLI by hand.
    exempt = {*PACKAGES, "edge_runtime.__main__"}
    missing = [m for m in _public_modules() if m not in documented and m not in exempt]
    assert not missing, f"modules without a reference page entry: {missing}"


# Docstring problems present when the API reference was written; mkdocs.yml keeps griffe
# quiet about them. New ones fail here, and fixed ones must be removed from this list.
KNOWN_DOCSTRING_WARNINGS: set[tuple[str, str]] = set()


def _docstring_warnings() -> set[tuple[str, str]]:
    import logging

    griffe = pytest.importorskip("griffe")  # installed with the dev extra (mkdocstrings)

    found: set[tuple[str, str]] = set()
    messages: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append(record.getMessage())

    logger = logging.getLogger("griffe")
    handler = Collect(level=logging.WARNING)
    logger.addHandler(handler)
    try:
        for package in PACKAGES:
            root = griffe.load(package, search_paths=[str(ROOT)], resolve_aliases=False)
            stack = [root]
            while stack:
                obj = stack.pop()
                stack.extend(m for m in obj.members.values() if not m.is_alias)
                if obj.docstring is None:
                    continue
                del messages[:]
                obj.docstring.parse("google")
                found |= {(obj.path, message) for message in messages}
    finally:
        logger.removeHandler(handler)
    return found


def test_docstrings_parse() -> None:
    found = _docstring_warnings()
    unknown = {
        (path, message)
        for path, message in found
        if not any(path == p and needle in message for p, needle in KNOWN_DOCSTRING_WARNINGS)
    }
    assert not unknown, "docstrings the API reference cannot parse:\n" + "\n".join(
        f"  {p}: {m}" for p, m in sorted(unknown)
    )
    fixed = {
        (p, needle)
        for p, needle in KNOWN_DOCSTRING_WARNINGS
        if not any(path == p and needle in message for path, message in found)
    }
    assert not fixed, f"fixed docstrings, remove them from KNOWN_DOCSTRING_WARNINGS: {fixed}"


def test_click_help_hook_keeps_verbatim_paragraphs() -> None:
    """docs/_hooks/click_help.py turns click's indented help paragraphs into code blocks."""
    spec = importlib.util.spec_from_file_location("click_help", DOCS / "_hooks" / "click_help.py")
    hook = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hook)
    lines = [
        "# dyser-x",
        "One wrapped",
        "paragraph.",
        "",
        "EXIT STATUS",
        "  0  ok",
        "  1  failed",
        "",
        "**Usage:**",
        "Examples:",
        "  not in a description",
    ]
    out = hook._VerbatimParagraphs(None).run(lines)
    assert "One wrapped" in out and "    EXIT STATUS" in out and "      1  failed" in out
    assert out[out.index("    EXIT STATUS") - 1] == ""
    assert out[-2:] == ["Examples:", "  not in a description"]
