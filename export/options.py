"""Click boilerplate shared by the `export` commands (`dyser-export`, `dyser-demo`).

`CONTEXT_SETTINGS` (`-h` as well as `--help`, 100-column help), `verbose_option` and
`native_logs(verbose)`, which keeps TensorFlow's and LiteRT's native stderr noise out of a
run unless `--verbose` asks for it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import click

from edge_runtime.engines import quiet_native_stderr

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

verbose_option = click.option(
    "--verbose",
    is_flag=True,
    help="Show what TensorFlow's native code logs on stderr (CUDA probing, oneDNN notices).",
)


@contextmanager
def native_logs(verbose: bool) -> Iterator[None]:
    """Run the block with TensorFlow's and LiteRT's native logging as `--verbose` asks.

    Without `verbose`: TensorFlow's C++ log level is set to 3 (errors only; unless
    TF_CPP_MIN_LOG_LEVEL is set already, and it takes effect only if TensorFlow is not yet
    imported), and what native code writes to stderr inside the block is dropped; Python's
    own writes to stderr are kept.
    """
    if not verbose:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with quiet_native_stderr(not verbose):
        yield
