"""IEMOCAP: ``root/SessionN/sentences/wav/<dialog>/<utt>.wav`` labelled by
``root/SessionN/dialog/EmoEvaluation/*.txt``."""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Sequence
from pathlib import Path

from keras_dyconv.corpora import common
from keras_dyconv.corpora.common import CorpusError, Utterance

__all__ = ["IEMOCAP_FOUR_CLASSES", "IEMOCAP_LABELS", "load_iemocap"]

IEMOCAP_LABELS: dict[str, str] = {
    "neu": "neutral",
    "hap": "happy",
    "exc": "excited",
    "ang": "angry",
    "sad": "sad",
    "fru": "frustrated",
    "sur": "surprised",
    "fea": "fearful",
    "dis": "disgusted",
    "oth": "other",
    "xxx": "xxx",  # annotators did not agree
}
IEMOCAP_FOUR_CLASSES: tuple[str, ...] = ("neutral", "happy", "angry", "sad")
_IEMOCAP_LINE = re.compile(
    r"\[(?P<start>[\d.]+) - (?P<end>[\d.]+)\]\t(?P<utt>Ses\d\d[FM]_\S+)\t(?P<code>\w+)\t"
    r"\[(?P<vad>[^\]]*)\]"
)


def load_iemocap(
    root: str | os.PathLike,
    classes: str | Sequence[str] = "4",
    merge_excited: bool = True,
    missing: str = "raise",
    sessions: Sequence[int] = (1, 2, 3, 4, 5),
) -> list[Utterance]:
    """IEMOCAP: ``root/SessionN/sentences/wav/<dialog>/<utt>.wav`` labelled by
    ``root/SessionN/dialog/EmoEvaluation/*.txt`` (the majority-vote line of each turn).
    A converted copy with ``<utt>.flac`` instead loads the same way (`AUDIO_SUFFIXES`).

    The standard 4-class setup (``classes="4"``: neutral, happy with excited merged in,
    angry, sad) gives 5531 utterances on the full release: neutral 1708, happy 1636
    (595 hap + 1041 exc), angry 1103, sad 1084.

    Speaker = session + gender of the utterance's speaker: the first letter of the last
    name part (``Ses01F_impro01_M003`` -> ``Ses01M``; the letter after ``Ses01`` only says
    who wore the motion-capture markers). `session` (``Ses01``) is the grouping unit for
    leave-one-session-out.

    Args:
        classes: "4", "all" (every label, ``xxx`` = no agreement included) or a list of label
            names (`IEMOCAP_LABELS` values, e.g. ``["neutral", "happy", "frustrated"]``).
        merge_excited: label ``exc`` as "happy" (the usual 4-class practice).
        missing: "raise" when a labelled utterance of a kept class has no wav, or "warn"
            (skip those and warn with their count).
        sessions: which of Session1..5 to read; each must exist.

    Returns:
        Utterances sorted by path; extra holds ``code`` (original label), ``start_s``,
        ``end_s`` and ``vad`` (valence, activation, dominance).
    """
    root = Path(root)
    common.require_dir(root, "IEMOCAP's root")
    if missing not in ("raise", "warn"):
        raise ValueError(f"missing must be 'raise' or 'warn', got {missing!r}")
    label_of, keep = _label_map(classes, merge_excited)
    utts, absent, seen = [], [], {}
    for n in sessions:
        session_dir = root / f"Session{n}"
        common.require_dir(session_dir, f"IEMOCAP's Session{n}")
        eval_dir = session_dir / "dialog" / "EmoEvaluation"
        common.require_dir(eval_dir, "IEMOCAP's dialog/EmoEvaluation")
        label_files = [p for p in common.visible(eval_dir.iterdir()) if p.suffix == ".txt"]
        if not label_files:
            raise CorpusError(f"{eval_dir}: expected EmoEvaluation .txt files, found none")
        wav_root = session_dir / "sentences" / "wav"
        common.require_dir(wav_root, "IEMOCAP's sentences/wav")
        for label_file in label_files:
            found, lacking = _read_label_file(
                label_file, wav_root, f"Ses{n:02d}", label_of, keep, seen
            )
            utts += found
            absent += lacking
    if absent:
        msg = (
            f"{root}: {len(absent)} labelled utterance(s) have no audio file "
            f"({common.AUDIO_WHAT}), e.g. {absent[0]}"
        )
        if missing == "raise":
            raise CorpusError(msg + " (pass missing='warn' to skip them)")
        warnings.warn(msg + "; skipped", stacklevel=2)
    if not utts:
        raise CorpusError(f"{root}: no utterances of classes {sorted(keep)} found")
    return common.sorted_by_path(utts)


def _label_map(classes: str | Sequence[str], merge_excited: bool) -> tuple[dict[str, str], set]:
    """(label code -> label name, the label names to keep) for `load_iemocap`'s options."""
    label_of = dict(IEMOCAP_LABELS)
    if merge_excited:
        label_of["exc"] = "happy"
    if isinstance(classes, str) and classes == "4":
        keep = set(IEMOCAP_FOUR_CLASSES)
    elif isinstance(classes, str) and classes == "all":
        keep = set(label_of.values())
    elif isinstance(classes, str):
        raise ValueError(f"classes must be '4', 'all' or a list of labels, got {classes!r}")
    else:
        keep = set(classes)
        unknown = keep - set(label_of.values())
        if unknown:
            raise ValueError(
                f"unknown IEMOCAP classes {sorted(unknown)}; expected some of "
                f"{sorted(set(label_of.values()))}"
            )
    return label_of, keep


def _read_label_file(
    label_file: Path,
    wav_root: Path,
    session: str,
    label_of: dict[str, str],
    keep: set[str],
    seen: dict[str, str],
) -> tuple[list[Utterance], list[Path]]:
    """The utterances of the kept classes that one EmoEvaluation file labels, and the audio
    files expected for those that have none. `seen` (utterance -> "file:line") is updated, to
    catch a turn labelled twice across files."""
    utts, absent = [], []
    for lineno, line in enumerate(label_file.read_text(encoding="utf-8").splitlines(), 1):
        if not line.startswith("["):
            continue
        m = _IEMOCAP_LINE.match(line)
        if m is None:
            raise CorpusError(
                f"{label_file}:{lineno}: expected '[start - end]<TAB>utterance<TAB>"
                f"label<TAB>[v, a, d]', found {line!r}"
            )
        utt, code = m["utt"], m["code"]
        where = f"{label_file}:{lineno}"
        if not utt.startswith(session):
            raise CorpusError(f"{where}: utterance {utt} is not from {session}")
        if code not in label_of:
            raise CorpusError(
                f"{where}: unknown label {code!r}; expected one of {sorted(label_of)}"
            )
        if utt in seen:
            raise CorpusError(f"{where}: utterance {utt} already labelled at {seen[utt]}")
        seen[utt] = where
        label = label_of[code]
        if label not in keep:
            continue
        dialog, last = utt.rsplit("_", 1)
        if last[:1] not in ("F", "M"):
            raise CorpusError(
                f"{where}: expected an utterance name ending in _F<nnn> or _M<nnn>, found {utt!r}"
            )
        path = common.audio_file(wav_root / dialog / utt)
        if path is None:
            absent.append(wav_root / dialog / f"{utt}.wav")
            continue
        utts.append(
            Utterance(
                path=path,
                label=label,
                speaker=session + last[0],
                gender="female" if last[0] == "F" else "male",
                session=session,
                extra={
                    "code": code,
                    "start_s": float(m["start"]),
                    "end_s": float(m["end"]),
                    "vad": tuple(float(v) for v in m["vad"].split(",")),
                },
            )
        )
    return utts, absent
