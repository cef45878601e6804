"""What every corpus loader shares: the `Utterance` record, `CorpusError`, the audio file
endings, and the folder helpers the loaders list files with (no audio is read).

The helpers without a leading underscore here (`require_dir`, `audio_files`, ...) are for
the loaders of this package; the package's public names are in `keras_dyconv.corpora`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "AUDIO_SUFFIXES",
    "AUDIO_WHAT",
    "CorpusError",
    "Utterance",
    "audio_file",
    "audio_files",
    "is_audio_file",
    "require_dir",
    "sorted_by_path",
    "subdirs",
    "visible",
]


class CorpusError(ValueError):
    """The files on disk do not have the layout the loader expects."""


@dataclass(frozen=True)
class Utterance:
    """One labelled recording.

    Attributes:
        path: the audio file.
        label: emotion name (e.g. "anger").
        speaker: speaker id, unique within the corpus ("unknown" when the layout has none).
        gender: "female", "male" or None when unknown.
        text: id of the spoken text, when the corpus has one.
        session: recording session (IEMOCAP), the grouping unit for session-wise folds.
        extra: corpus-specific fields (original codes, intensity, times, ...).
    """

    path: Path
    label: str
    speaker: str
    gender: str | None = None
    text: str | None = None
    session: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, hash=False)


def sorted_by_path(utts: Iterable[Utterance]) -> list[Utterance]:
    """`utts` sorted by path (as strings): the order every loader returns."""
    return sorted(utts, key=lambda u: str(u.path))


def require_dir(path: Path, what: str) -> None:
    """Raise `CorpusError` unless `path` is a folder; `what` names it ("EmoDB's 'wav'")."""
    if not path.is_dir():
        found = "a file" if path.exists() else "nothing"
        raise CorpusError(f"{path}: expected {what} folder, found {found}")


def visible(entries: Iterable[Path]) -> list[Path]:
    """`entries` without hidden files, sorted."""
    # Hidden files and macOS resource forks ("._x.wav", shipped with IEMOCAP) are not data.
    return sorted(p for p in entries if not p.name.startswith("."))


AUDIO_SUFFIXES: tuple[str, ...] = (".wav", ".flac")
"""File name endings the loaders take as audio (any case). Training reads them with
librosa/soundfile (`keras_dyconv.features.load_audio`); the edge runtime reads WAV only."""
AUDIO_WHAT = "/".join(AUDIO_SUFFIXES)
"""`AUDIO_SUFFIXES` as error messages name them (".wav/.flac")."""


def is_audio_file(path: str | os.PathLike) -> bool:
    """True when `path` ends in one of `AUDIO_SUFFIXES` (it may not exist)."""
    return Path(path).suffix.lower() in AUDIO_SUFFIXES


def audio_files(folder: Path) -> list[Path]:
    """The audio files directly in `folder`, sorted; other files (labels, notes) are ignored."""
    return [p for p in visible(folder.iterdir()) if p.is_file() and is_audio_file(p)]


def audio_file(stem: Path) -> Path | None:
    """The existing audio file `stem` + one of `AUDIO_SUFFIXES` (first found), else None."""
    for suffix in AUDIO_SUFFIXES:
        if stem.with_name(stem.name + suffix).is_file():
            return stem.with_name(stem.name + suffix)
    return None


def subdirs(folder: Path) -> list[Path]:
    """The visible folders directly in `folder`, sorted."""
    return [p for p in visible(folder.iterdir()) if p.is_dir()]
