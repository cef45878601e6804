"""RAVDESS audio-only speech: ``root/Actor_XX/03-01-05-01-02-01-12.wav``."""

from __future__ import annotations

import os
import re
from pathlib import Path

from keras_dyconv.corpora import common
from keras_dyconv.corpora.common import CorpusError, Utterance

__all__ = ["RAVDESS_EMOTIONS", "load_ravdess"]

RAVDESS_EMOTIONS: dict[str, str] = {
    "01": "neutral",
    "02": "calm",
    "03": "happy",
    "04": "sad",
    "05": "angry",
    "06": "fearful",
    "07": "disgust",
    "08": "surprised",
}
_RAVDESS_NAME = re.compile(
    r"(?P<modality>\d\d)-(?P<channel>\d\d)-(?P<emotion>\d\d)-(?P<intensity>\d\d)-"
    r"(?P<statement>\d\d)-(?P<repetition>\d\d)-(?P<actor>\d\d)"
)


def load_ravdess(root: str | os.PathLike) -> list[Utterance]:
    """RAVDESS audio-only speech: ``root/Actor_XX/03-01-05-01-02-01-12.wav``.

    The release is WAV; a copy converted to FLAC (``.flac``, as in the shared 16 kHz copy)
    loads the same way (see `AUDIO_SUFFIXES`).

    Name fields: modality (must be 03 = audio-only), vocal channel (must be 01 = speech;
    song is a different task), emotion (`RAVDESS_EMOTIONS`), intensity (01 normal,
    02 strong), statement (01, 02), repetition, actor (odd = male, even = female; must match
    the folder). Other codes raise `CorpusError`. The full set is 1440 files, 24 actors.
    """
    root = Path(root)
    common.require_dir(root, "RAVDESS's root")
    actors = common.subdirs(root)
    bad = [p.name for p in actors if re.fullmatch(r"Actor_\d\d", p.name) is None]
    if bad or not actors:
        raise CorpusError(
            f"{root}: expected only folders Actor_01 .. Actor_24, found {[p.name for p in actors]}"
        )
    utts = []
    for folder in actors:
        files = common.audio_files(folder)
        if not files:
            raise CorpusError(f"{folder}: expected audio files ({common.AUDIO_WHAT}), found none")
        for path in files:
            m = _RAVDESS_NAME.fullmatch(path.stem)
            problem = None
            if m is None:
                problem = "a name like 03-01-05-01-02-01-12.wav"
            elif m["modality"] != "03":
                problem = f"modality 03 (audio-only), not {m['modality']}"
            elif m["channel"] != "01":
                problem = f"vocal channel 01 (speech), not {m['channel']}"
            elif m["emotion"] not in RAVDESS_EMOTIONS:
                problem = f"an emotion code 01-08, not {m['emotion']}"
            elif m["intensity"] not in ("01", "02") or m["statement"] not in ("01", "02"):
                problem = "intensity and statement codes 01 or 02"
            elif folder.name != f"Actor_{m['actor']}":
                problem = f"actor {folder.name[-2:]} as in the folder, not {m['actor']}"
            if problem:
                raise CorpusError(f"{path}: expected {problem}, found {path.name!r}")
            utts.append(
                Utterance(
                    path=path,
                    label=RAVDESS_EMOTIONS[m["emotion"]],
                    speaker=m["actor"],
                    gender="male" if int(m["actor"]) % 2 else "female",
                    text=m["statement"],
                    extra={
                        "intensity": "normal" if m["intensity"] == "01" else "strong",
                        "repetition": m["repetition"],
                    },
                )
            )
    return common.sorted_by_path(utts)
