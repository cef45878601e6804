"""EmoDB (Berlin Database of Emotional Speech): ``root/wav/03a01Fa.wav``, and the check of a
copy against its ``SHA256SUMS`` list."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from keras_dyconv.corpora import common
from keras_dyconv.corpora.common import CorpusError, Utterance

__all__ = ["EMODB_EMOTIONS", "EMODB_SPEAKERS", "load_emodb", "verify_checksums"]

EMODB_EMOTIONS: dict[str, str] = {
    "W": "anger",  # Wut
    "L": "boredom",  # Langeweile
    "E": "disgust",  # Ekel
    "A": "fear",  # Angst
    "F": "happiness",  # Freude
    "T": "sadness",  # Trauer
    "N": "neutral",
}
EMODB_SPEAKERS: dict[str, str] = {
    **dict.fromkeys(("03", "10", "11", "12", "15"), "male"),
    **dict.fromkeys(("08", "09", "13", "14", "16"), "female"),
}
_EMODB_NAME = re.compile(r"(?P<speaker>\d\d)(?P<text>[ab]\d\d)(?P<emotion>[A-Z])(?P<version>[a-z])")


def load_emodb(root: str | os.PathLike) -> list[Utterance]:
    """EmoDB (Berlin Database of Emotional Speech): ``root/wav/03a01Fa.wav``.

    Name: speaker (2 digits), text (a01..b10), emotion letter (W L E A F T N, see
    `EMODB_EMOTIONS`), version letter. The full corpus gives 535 utterances of 10 speakers.

    Returns:
        Utterances sorted by path; label is the English emotion name, text the text id,
        extra holds ``emotion_code`` and ``version``.
    """
    wav_dir = Path(root) / "wav"
    common.require_dir(wav_dir, "EmoDB's 'wav'")
    files = common.audio_files(wav_dir)
    if not files:
        raise CorpusError(
            f"{wav_dir}: expected EmoDB audio files ({common.AUDIO_WHAT}, e.g. 03a01Fa.wav), "
            "found none"
        )
    utts = []
    for path in files:
        m = _EMODB_NAME.fullmatch(path.stem)
        if m is None or m["emotion"] not in EMODB_EMOTIONS or m["speaker"] not in EMODB_SPEAKERS:
            raise CorpusError(
                f"{path}: expected an EmoDB name like 03a01Fa.wav (speaker in "
                f"{sorted(EMODB_SPEAKERS)}, text, emotion in {''.join(EMODB_EMOTIONS)}, "
                f"version), found {path.name!r}"
            )
        utts.append(
            Utterance(
                path=path,
                label=EMODB_EMOTIONS[m["emotion"]],
                speaker=m["speaker"],
                gender=EMODB_SPEAKERS[m["speaker"]],
                text=m["text"],
                extra={"emotion_code": m["emotion"], "version": m["version"]},
            )
        )
    return common.sorted_by_path(utts)


def verify_checksums(root: str | os.PathLike, sums_file: str = "SHA256SUMS") -> int:
    """Check a corpus copy against a ``sha256sum``-style list (``<hex>  <name>`` lines).

    A listed name is looked up relative to `root`, then to ``root/wav`` (EmoDB's list names
    bare files). Also flags audio files in ``root/wav`` that the list does not name.

    Returns:
        The number of files verified.

    Raises:
        CorpusError: listing every missing, mismatching and unlisted file.
    """
    root = Path(root)
    sums = root / sums_file
    if not sums.is_file():
        raise CorpusError(f"{root}: expected a checksum list {sums_file}, found none")
    problems, listed = [], set()
    lines = sums.read_text(encoding="utf-8").splitlines()
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        m = re.fullmatch(r"([0-9a-fA-F]{64}) [ *](.+)", line.strip())
        if m is None:
            raise CorpusError(f"{sums}:{lineno}: expected '<sha256>  <name>', found {line!r}")
        expected, name = m[1].lower(), m[2]
        candidates = [root / name, root / "wav" / name]
        path = next((p for p in candidates if p.is_file()), None)
        if path is None:
            problems.append(f"missing: {name}")
            continue
        listed.add(path.resolve())
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != expected:
            problems.append(f"mismatch: {name} (expected {expected[:12]}..., got {digest[:12]}...)")
    if (root / "wav").is_dir():
        problems += [
            f"unlisted: wav/{p.name}"
            for p in common.audio_files(root / "wav")
            if p.resolve() not in listed
        ]
    if problems:
        raise CorpusError(
            f"{root}: {len(problems)} file(s) do not match {sums_file}:\n  " + "\n  ".join(problems)
        )
    return len(listed)
