"""The corpus registry: the one place that lists the corpora (`dyser-train --corpus` takes
its choices from `CORPORA`). A new corpus is a module of this package plus a line here."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from keras_dyconv.corpora.casia import load_casia
from keras_dyconv.corpora.common import CorpusError, Utterance
from keras_dyconv.corpora.emodb import load_emodb
from keras_dyconv.corpora.folders import load_folders
from keras_dyconv.corpora.iemocap import load_iemocap
from keras_dyconv.corpora.manifest import load_manifest
from keras_dyconv.corpora.ravdess import load_ravdess

__all__ = ["CORPORA", "load_corpus"]

CORPORA: dict[str, Callable[..., list[Utterance]]] = {
    "emodb": load_emodb,
    "casia": load_casia,
    "iemocap": load_iemocap,
    "ravdess": load_ravdess,
    "folders": load_folders,
    "manifest": load_manifest,
}


def load_corpus(name: str, root: str | os.PathLike, **options: Any) -> list[Utterance]:
    """Load corpus `name` (a key of `CORPORA`) from `root`, passing `options` to its loader."""
    try:
        loader = CORPORA[name]
    except KeyError:
        raise CorpusError(f"unknown corpus {name!r}; expected one of {sorted(CORPORA)}") from None
    return loader(root, **options)
