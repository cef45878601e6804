"""What the command lines show on stderr: progress bars where a person watches them, and no
native log noise.

Libraries (`keras_dyconv.features.extract_corpus`, `export.pipeline.export_model`) take a
`Progress` callable instead of drawing bars themselves; `terminal_progress` is the one the
command lines pass. With stderr not a terminal (a log file, a pipe, CI) it draws nothing, so
logs get no stray label lines. `native_logs` drops what TensorFlow's native code logs
(CUDA probing, oneDNN notices) unless the user asks for it (`--verbose`).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

__all__ = ["Progress", "native_logs", "terminal_progress", "track"]

T = TypeVar("T")

#: `progress(items, label, length)` yields `items` (an iterable of `length` items, or None
#: when unknown) in order, showing progress however it likes.
Progress = Callable[[Iterable[Any], str, int | None], Iterator[Any]]


def terminal_progress(items: Iterable[T], label: str, length: int | None = None) -> Iterator[T]:
    """Yield `items` with a click progress bar on stderr when stderr is a terminal."""
    if not sys.stderr.isatty():
        yield from items
        return
    import click  # only for a terminal: the libraries that take a Progress need no click

    with click.progressbar(items, length=length, label=label, file=sys.stderr) as bar:
        yield from bar


def track(
    items: Iterable[T], label: str, length: int | None, progress: Progress | None
) -> Iterator[T]:
    """`progress(items, label, length)`, or `items` unchanged when `progress` is None/False."""
    return iter(progress(items, label, length)) if progress else iter(items)


@contextlib.contextmanager
def native_logs(verbose: bool) -> Iterator[None]:
    """Run the block with TensorFlow's and LiteRT's native log lines dropped from stderr
    unless `verbose` (`edge_runtime.engines.quiet_native_stderr`); Python's own stderr (the
    command's messages, warnings, tracebacks) is kept.

    TensorFlow reads ``TF_CPP_MIN_LOG_LEVEL`` (set here to 3 unless the user set it) when it
    is first imported: enter the block before anything imports it.
    """
    if not verbose:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from edge_runtime.engines import quiet_native_stderr

    with quiet_native_stderr(not verbose):
        yield
