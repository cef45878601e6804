"""The documentation site: the mkdocs nav lists every page, the API reference covers every
module, docstrings parse, and the click help keeps verbatim paragraphs."""

from __future__ import annotations

import importlib
import importlib.util
import re
from collections.abc import Iterator

import pytest
from docs_checks import DOCS, PACKAGES, ROOT


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
