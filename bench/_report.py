"""Shared by the bench scripts: print a Markdown table and store it in docs/benchmarks.md.

Each script owns one section of docs/benchmarks.md, delimited by HTML comments, so scripts
can be re-run in any order without clobbering each other's results.
"""

from __future__ import annotations

import platform
import re
from collections.abc import Sequence
from datetime import date
from pathlib import Path

BENCHMARKS_MD = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Render rows as a GitHub Markdown table (floats as given; format them before)."""
    lines = ["| " + " | ".join(map(str, header)) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in rows]
    return "\n".join(lines)


def verdict(ok: bool) -> str:
    """How a target reads in the reports: "met" or a bold "missed"."""
    return "met" if ok else "**missed**"


def machine_line() -> str:
    """One line describing where the numbers were measured."""
    import os

    return (
        f"Measured {date.today().isoformat()} on {platform.machine()} "
        f"({os.cpu_count()} cores), Python {platform.python_version()}."
    )


def write_section(name: str, title: str, body: str) -> None:
    """Replace (or append) section `name` of docs/benchmarks.md with `title` and `body`."""
    start, end = f"<!-- bench:{name}:start -->", f"<!-- bench:{name}:end -->"
    block = f"{start}\n## {title}\n\n{body.strip()}\n{end}"
    text = BENCHMARKS_MD.read_text() if BENCHMARKS_MD.exists() else "# Benchmarks\n"
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    BENCHMARKS_MD.parent.mkdir(parents=True, exist_ok=True)
    BENCHMARKS_MD.write_text(text)
