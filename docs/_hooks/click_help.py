"""MkDocs hook: keep click's verbatim help paragraphs as they are printed.

click prints a help paragraph marked with a ``\\b`` line without rewrapping it (option
lists, exit statuses, examples): its first line is a title and the others are indented.
mkdocs-click drops the marker and copies the text into the Markdown source, where the lines
would be joined into one paragraph. This preprocessor runs right after mkdocs-click's and
turns every such paragraph of a command's description (between the command's heading and
its "**Usage:**" line) into a code block.
"""

from __future__ import annotations

from markdown import Extension, Markdown
from markdown.preprocessors import Preprocessor

_MKDOCS_CLICK_PRIORITY = 141  # mkdocs_click's preprocessor; ours must run after it
_USAGE = "**Usage:**"


def _paragraphs(lines: list[str]) -> list[list[str]]:
    blocks: list[list[str]] = [[]]
    for line in lines:
        if line.strip():
            blocks[-1].append(line)
        elif blocks[-1]:
            blocks.append([])
    return [b for b in blocks if b]


def _verbatim(paragraph: list[str]) -> bool:
    return len(paragraph) > 1 and all(line.startswith("  ") for line in paragraph[1:])


class _VerbatimParagraphs(Preprocessor):
    def run(self, lines: list[str]) -> list[str]:
        out: list[str] = []
        start = 0
        for i, line in enumerate(lines):
            if line.strip() != _USAGE:
                continue
            heading = max((k for k in range(start, i) if lines[k].startswith("#")), default=None)
            if heading is None:
                continue
            out += lines[start : heading + 1]
            for paragraph in _paragraphs(lines[heading + 1 : i]):
                indent = "    " if _verbatim(paragraph) else ""
                out += ["", *(indent + p for p in paragraph)]
            out.append("")
            start = i
        return out + lines[start:]


class _ClickHelpExtension(Extension):
    def extendMarkdown(self, md: Markdown) -> None:
        md.preprocessors.register(
            _VerbatimParagraphs(md), "click_verbatim", _MKDOCS_CLICK_PRIORITY - 1
        )


def on_config(config):
    config.markdown_extensions.append(_ClickHelpExtension())
    return config
