"""Shared by the bench scripts: raw results as JSON, rendered into docs/benchmarks.md.

A bench has two steps. Its measure step (`python bench/bench_X.py`) saves every number it
measured, with the settings, versions and machine, to `docs/results/bench/<name>.json`, then
renders its section from that file. Its render step (`bench/render_X.py`: `NAME`, `TITLE`
and `render(data) -> str`) turns the JSON into Markdown and nothing else, so a section can be
re-rendered without measuring again:

    python bench/_report.py render              # every section that has saved results
    python bench/_report.py render edge export  # only these
    python bench/_report.py check               # exit 1 if a section differs from its JSON

Each section of docs/benchmarks.md is delimited by HTML comments (`<!-- bench:NAME:start -->`
... `<!-- bench:NAME:end -->`), so benches can run in any order without clobbering each
other. Only the text between a section's markers is generated: the interpretation written
by hand (what the numbers mean, what to do about them) sits after the end marker, and no
script touches it.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import re
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from types import ModuleType

from edge_runtime.files import atomic_write

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
BENCHMARKS_MD = ROOT / "docs" / "benchmarks.md"
RESULTS = ROOT / "docs" / "results" / "bench"
#: Section name -> the module in bench/ that renders it from its JSON.
RENDERERS = {
    "export": "render_export",
    "frontend": "render_frontend",
    "dynconv": "render_dynconv",
    "edge": "render_edge",
    "speech_gate": "render_speech_gate",
    "memory": "render_memory",
    "fuzz": "render_fuzz",
    "enrollment": "render_enrollment",
}


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Render rows as a GitHub Markdown table (floats as given; format them before)."""
    lines = ["| " + " | ".join(map(str, header)) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in rows]
    return "\n".join(lines)


def verdict(ok: bool) -> str:
    """How a target reads in the reports: "met" or a bold "missed"."""
    return "met" if ok else "**missed**"


def cpu_name() -> str:
    """The CPU's model name (/proc/cpuinfo on Linux)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def environment(packages: Sequence[str] = ("numpy",)) -> dict:
    """Where and with what a bench measured: saved in its JSON as "environment".

    Keys: date (UTC, ISO), machine, cores, cpu, python, versions ({distribution: version}
    of `packages` that are installed), load_1min (load average when called).
    """
    versions = {}
    for name in packages:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return {
        "date": datetime.now(UTC).date().isoformat(),
        "machine": platform.machine(),
        "cores": os.cpu_count(),
        "cpu": cpu_name(),
        "python": platform.python_version(),
        "versions": versions,
        "load_1min": os.getloadavg()[0],
    }


def machine_line(env: dict | None = None) -> str:
    """One line describing where the numbers were measured (`env` from `environment()`;
    default: this machine now)."""
    env = env or environment()
    return (
        f"Measured {env['date']} on {env['machine']} ({env['cores']} cores), "
        f"Python {env['python']}."
    )


def results_path(name: str) -> Path:
    """Where section `name` keeps its raw results."""
    return RESULTS / f"{name}.json"


def save_environment(name: str, packages: Sequence[str] = ("numpy",)) -> Path:
    """For a section whose raw results live elsewhere (training, ablation: under
    docs/results/, one file per run): record where and when its measure step last ran, as
    {"environment": `environment(packages)`} in `results_path(name)`."""
    return save_json(results_path(name), {"environment": environment(packages)})


def saved_machine_line(name: str) -> str:
    """`machine_line` of what `save_environment(name)` recorded (a clear error if nothing
    was)."""
    return machine_line(load_json(results_path(name))["environment"])


def _jsonable(value: object) -> object:
    """JSON for what `json` does not know: numpy scalars and arrays, paths."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable: {value!r}")


def save_json(path: Path, data: dict) -> Path:
    """Write `data` as JSON, atomically (a temporary file renamed over `path`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(data, indent=1, default=_jsonable) + "\n")
    return path


def load_json(path: Path) -> dict:
    """A bench's saved results; a clear error if the file is missing or not JSON."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise SystemExit(f"{path}: no saved results (run the bench first)") from None
    except json.JSONDecodeError as err:
        raise SystemExit(f"{path}: not valid JSON ({err})") from None


def _markers(name: str) -> tuple[str, str]:
    return f"<!-- bench:{name}:start -->", f"<!-- bench:{name}:end -->"


def section_block(name: str, title: str, body: str) -> str:
    """The generated text of section `name`, markers included."""
    start, end = _markers(name)
    return f"{start}\n## {title}\n\n{body.strip()}\n{end}"


def read_section(name: str, markdown: Path = BENCHMARKS_MD) -> str | None:
    """Section `name` of `markdown` as written (markers included), or None."""
    start, end = _markers(name)
    text = markdown.read_text() if markdown.exists() else ""
    found = re.search(re.escape(start) + ".*?" + re.escape(end), text, re.S)
    return found.group(0) if found else None


def write_section(name: str, title: str, body: str, markdown: Path | None = None) -> None:
    """Replace (or append) section `name` of `markdown` (default: `BENCHMARKS_MD`, looked up
    at call time) with `title` and `body`; the text outside the section's markers stays."""
    markdown = BENCHMARKS_MD if markdown is None else markdown
    start, end = _markers(name)
    block = section_block(name, title, body)
    text = markdown.read_text() if markdown.exists() else "# Benchmarks\n"
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    markdown.parent.mkdir(parents=True, exist_ok=True)
    markdown.write_text(text)


def renderer(name: str) -> ModuleType:
    """The module that renders section `name` (`NAME`, `TITLE`, `render(data) -> str`)."""
    if name not in RENDERERS:
        raise SystemExit(f"unknown section {name!r}: expected one of {', '.join(RENDERERS)}")
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    return importlib.import_module(RENDERERS[name])


def publish(
    name: str,
    data: dict,
    *,
    results: Path | None = None,
    markdown: Path | None = BENCHMARKS_MD,
) -> str:
    """The measure step's last step: save `data` to `results` (default
    `docs/results/bench/<name>.json`; None with `markdown` None: save nothing), then render
    section `name` from what the file holds and write it into `markdown` (None: don't).
    Returns the rendered body."""
    data = json.loads(json.dumps(data, default=_jsonable))  # what the file will hold
    module = renderer(name)
    body = module.render(data)
    if markdown is not None or results is not None:
        save_json(results or results_path(name), data)
    if markdown is not None:
        write_section(name, module.TITLE, body, markdown)
    return body


def add_output_options(parser: argparse.ArgumentParser, name: str) -> None:
    """The options every bench's measure step takes for where its results go."""
    parser.add_argument(
        "--results",
        type=Path,
        default=None,
        help=f"raw results JSON (default: {results_path(name).relative_to(ROOT)})",
    )
    parser.add_argument(
        "--markdown",
        type=Path,
        default=BENCHMARKS_MD,
        help="the Markdown file whose section is rewritten (default: docs/benchmarks.md)",
    )
    parser.add_argument(
        "--no-write", action="store_true", help="print the section; save and write nothing"
    )


def output_targets(args: argparse.Namespace) -> dict:
    """`publish` keyword arguments from the options of `add_output_options`."""
    if args.no_write:
        return {"results": None, "markdown": None}
    return {"results": args.results, "markdown": args.markdown}


def render_sections(
    names: Sequence[str], *, results: Path = RESULTS, markdown: Path = BENCHMARKS_MD
) -> dict[str, str | None]:
    """Re-render sections `names` from their saved JSON into `markdown`. Returns, per
    name, the block written, or None where no JSON is saved (that section is left as is)."""
    done: dict[str, str | None] = {}
    for name in names:
        path = results / f"{name}.json"
        if not path.exists():
            done[name] = None
            continue
        module = renderer(name)
        body = module.render(load_json(path))
        write_section(name, module.TITLE, body, markdown)
        done[name] = section_block(name, module.TITLE, body)
    return done


def stale_sections(
    names: Sequence[str], *, results: Path = RESULTS, markdown: Path = BENCHMARKS_MD
) -> list[str]:
    """The sections among `names` with saved JSON whose text in `markdown` is not what
    their renderer makes of that JSON."""
    stale = []
    for name in names:
        path = results / f"{name}.json"
        if path.exists():
            module = renderer(name)
            expected = section_block(name, module.TITLE, module.render(load_json(path)))
            if read_section(name, markdown) != expected:
                stale.append(name)
    return stale


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Render docs/benchmarks.md from saved results.")
    parser.add_argument("command", choices=("render", "check"))
    parser.add_argument("sections", nargs="*", help=f"default: all ({', '.join(RENDERERS)})")
    parser.add_argument("--results", type=Path, default=RESULTS, help="folder of the JSON files")
    parser.add_argument("--markdown", type=Path, default=BENCHMARKS_MD)
    args = parser.parse_args(argv)
    names = args.sections or list(RENDERERS)
    for name in names:
        renderer(name)  # unknown names fail before anything is written
    if args.command == "check":
        stale = stale_sections(names, results=args.results, markdown=args.markdown)
        for name in stale:
            print(f"{name}: the section differs from what {name}.json renders to")
        return 1 if stale else 0
    for name, block in render_sections(names, results=args.results, markdown=args.markdown).items():
        print(f"{name}: " + ("re-rendered" if block else "no saved results, left as is"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
