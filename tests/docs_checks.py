"""The documentation checks run by tests/test_docs*.py: fenced blocks and marked tables
parsed from docs/ and README.md, and the checkers of each block language (shell commands
through our programs' real parsers, systemd units, layouts, manifests, JSON, CSV)."""

from __future__ import annotations

import argparse
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
import tomllib
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import click

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
