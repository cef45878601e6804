"""CASIA Chinese emotional speech (public part): ``root/<speaker>/<emotion>/<id>.wav``."""

from __future__ import annotations

import os
from pathlib import Path

from keras_dyconv.corpora import common
from keras_dyconv.corpora.common import CorpusError, Utterance

__all__ = [
    "CASIA_EMOTIONS",
    "CASIA_SPEAKERS",
    "CASIA_SPEAKER_ALIASES",
    "casia_speaker",
    "load_casia",
]

CASIA_SPEAKERS: dict[str, str] = {
    "liuchang": "female",
    "wangzhe": "male",
    "zhaoquanyin": "female",
    "ZhaoZuoxiang": "male",
}
CASIA_SPEAKER_ALIASES: dict[str, str] = {
    # The commonly circulated copy (and the shared one) spells this folder "liuchanhg".
    "liuchanhg": "liuchang",
    # The "different texts" part of the corpus names its folders given name . family name.
    "chang.liu": "liuchang",
    "zhe.wang": "wangzhe",
    "quanyin.zhao": "zhaoquanyin",
    "zuoxiang.zhao": "ZhaoZuoxiang",
}
"""Known spellings of the CASIA speaker folders -> canonical id (a key of `CASIA_SPEAKERS`).
Folder names are matched case-insensitively, against the canonical ids and these aliases."""
CASIA_EMOTIONS: tuple[str, ...] = ("angry", "fear", "happy", "neutral", "sad", "surprise")


def casia_speaker(folder_name: str) -> str | None:
    """The canonical CASIA speaker id of a speaker folder name, None when it is none of them.

    ``casia_speaker("liuchanhg") == casia_speaker("liuchang") == "liuchang"``;
    ``casia_speaker("zhaozuoxiang") == "ZhaoZuoxiang"``.
    """
    known = {s.lower(): s for s in CASIA_SPEAKERS} | CASIA_SPEAKER_ALIASES
    return known.get(folder_name.lower())


def load_casia(root: str | os.PathLike) -> list[Utterance]:
    """CASIA Chinese emotional speech (public part): ``root/<speaker>/<emotion>/<id>.wav``.

    Reads the copy as commonly circulated: 4 speakers x 6 emotions x 50 texts = 1200 files.
    Requires one folder for each of the 4 speakers (`CASIA_SPEAKERS`; any spelling in
    `CASIA_SPEAKER_ALIASES`, e.g. ``liuchanhg``, case-insensitive) and, under each, all 6
    emotion folders (`CASIA_EMOTIONS`), each with at least one audio file. Files beside the
    audio (``.lab``, ``.tag``, ``.peak``, the transcript ``.txt`` at the root) are ignored.
    The file stem is the text id (the same sentences are read in every emotion).

    Returns:
        Utterances sorted by path; speaker is the canonical id (``liuchang`` for a folder
        spelled ``liuchanhg``), whatever the folder's spelling.
    """
    root = Path(root)
    common.require_dir(root, "CASIA's root")
    folders: dict[str, list[Path]] = {}
    unexpected = []
    for folder in common.subdirs(root):
        speaker = casia_speaker(folder.name)
        if speaker is None:
            unexpected.append(folder.name)
        else:
            folders.setdefault(speaker, []).append(folder)
    missing = sorted(set(CASIA_SPEAKERS) - set(folders))
    if missing or unexpected:
        raise CorpusError(
            f"{root}: expected CASIA speaker folders {sorted(CASIA_SPEAKERS)} (or a known "
            f"spelling: {sorted(CASIA_SPEAKER_ALIASES)}), found "
            f"{sorted(p.name for p in common.subdirs(root))} (missing {missing}, "
            f"unexpected {sorted(unexpected)})"
        )
    twice = {s: sorted(p.name for p in f) for s, f in folders.items() if len(f) > 1}
    if twice:
        raise CorpusError(f"{root}: expected one folder per CASIA speaker, found {twice}")
    utts = []
    for speaker, gender in CASIA_SPEAKERS.items():
        (folder,) = folders[speaker]
        emotions = {p.name for p in common.subdirs(folder)}
        if emotions != set(CASIA_EMOTIONS):
            raise CorpusError(
                f"{folder}: expected emotion folders {list(CASIA_EMOTIONS)}, "
                f"found {sorted(emotions)}"
            )
        for emotion in CASIA_EMOTIONS:
            files = common.audio_files(folder / emotion)
            if not files:
                raise CorpusError(
                    f"{folder / emotion}: expected audio files ({common.AUDIO_WHAT}), found none"
                )
            utts += [
                Utterance(path=p, label=emotion, speaker=speaker, gender=gender, text=p.stem)
                for p in files
            ]
    return common.sorted_by_path(utts)
