"""A folder per label: ``root/<label>/*.wav``, speakers from the file names (optional)."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

from keras_dyconv.corpora import common
from keras_dyconv.corpora.common import CorpusError, Utterance

__all__ = ["SpeakerRule", "load_folders"]

SpeakerRule = str | re.Pattern | Callable[[Path], str] | None
"""How `load_folders` finds a file's speaker: a regex (or its source), a callable, or None."""


def load_folders(root: str | os.PathLike, speaker: SpeakerRule = None) -> list[Utterance]:
    """A folder per label: ``root/<label>/*.wav`` (or ``.flac``, see `AUDIO_SUFFIXES`).

    Args:
        speaker: how to get the speaker from a file: a regex searched in the file stem (the
            group named ``speaker``, else group 1, else the whole match; a file it does not
            match raises), a callable ``path -> speaker``, or None: every speaker is
            "unknown", so speaker-independent protocols are impossible; write a manifest
            with a speaker column for those.
    """
    root = Path(root)
    common.require_dir(root, "the corpus root (one folder per label)")
    labels = common.subdirs(root)
    if not labels:
        raise CorpusError(f"{root}: expected one folder per label (root/<label>/*.wav), found none")
    pattern = re.compile(speaker) if isinstance(speaker, str) else speaker
    utts = []
    for folder in labels:
        files = common.audio_files(folder)
        if not files:
            raise CorpusError(
                f"{folder}: expected audio files ({common.AUDIO_WHAT}) for label {folder.name!r}, "
                "found none"
            )
        for path in files:
            if pattern is None:
                who = "unknown"
            elif isinstance(pattern, re.Pattern):
                m = pattern.search(path.stem)
                if m is None:
                    raise CorpusError(
                        f"{path}: speaker pattern {pattern.pattern!r} does not match {path.stem!r}"
                    )
                who = m["speaker"] if "speaker" in pattern.groupindex else m[min(m.re.groups, 1)]
                if not who:
                    raise CorpusError(
                        f"{path}: speaker pattern {pattern.pattern!r} matched {path.stem!r} "
                        f"but captured no speaker"
                    )
            else:
                who = str(pattern(path))
            utts.append(Utterance(path=path, label=folder.name, speaker=who))
    return common.sorted_by_path(utts)
