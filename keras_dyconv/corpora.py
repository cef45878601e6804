"""Corpus loaders: list a corpus's utterances (path, label, speaker, ...) from its own layout.

Every loader reads only file names and label files (no audio), returns `Utterance` records
sorted by path, and raises `CorpusError` naming the folder and what was expected versus
found when the layout is not the corpus's published one. Nothing is dropped silently.

    from keras_dyconv.corpora import load_corpus
    utts = load_corpus("emodb", "/data/emodb")          # 535 utterances, 10 speakers
    utts = load_corpus("iemocap", "/data/IEMOCAP_full_release")   # 5531 (4 classes)
    utts = load_corpus("manifest", "corpus/manifest.csv")

Registry: `CORPORA` maps a name to its loader; `load_corpus(name, root, **options)`.
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_runtime.files import atomic_output

__all__ = [
    "AUDIO_SUFFIXES",
    "CASIA_EMOTIONS",
    "CASIA_SPEAKERS",
    "CASIA_SPEAKER_ALIASES",
    "CORPORA",
    "EMODB_EMOTIONS",
    "EMODB_SPEAKERS",
    "IEMOCAP_FOUR_CLASSES",
    "IEMOCAP_LABELS",
    "RAVDESS_EMOTIONS",
    "CorpusError",
    "Utterance",
    "casia_speaker",
    "is_audio_file",
    "load_casia",
    "load_corpus",
    "load_emodb",
    "load_folders",
    "load_iemocap",
    "load_manifest",
    "load_ravdess",
    "verify_checksums",
    "write_manifest",
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


def _sorted(utts: Iterable[Utterance]) -> list[Utterance]:
    return sorted(utts, key=lambda u: str(u.path))


def _require_dir(path: Path, what: str) -> None:
    if not path.is_dir():
        found = "a file" if path.exists() else "nothing"
        raise CorpusError(f"{path}: expected {what} folder, found {found}")


def _visible(entries: Iterable[Path]) -> list[Path]:
    # Hidden files and macOS resource forks ("._x.wav", shipped with IEMOCAP) are not data.
    return sorted(p for p in entries if not p.name.startswith("."))


AUDIO_SUFFIXES: tuple[str, ...] = (".wav", ".flac")
"""File name endings the loaders take as audio (any case). Training reads them with
librosa/soundfile (`keras_dyconv.features.load_audio`); the edge runtime reads WAV only."""
_AUDIO_WHAT = "/".join(AUDIO_SUFFIXES)


def is_audio_file(path: str | os.PathLike) -> bool:
    """True when `path` ends in one of `AUDIO_SUFFIXES` (it may not exist)."""
    return Path(path).suffix.lower() in AUDIO_SUFFIXES


def _audio_files(folder: Path) -> list[Path]:
    """The audio files directly in `folder`, sorted; other files (labels, notes) are ignored."""
    return [p for p in _visible(folder.iterdir()) if p.is_file() and is_audio_file(p)]


def _audio_file(stem: Path) -> Path | None:
    """The existing audio file `stem` + one of `AUDIO_SUFFIXES` (first found), else None."""
    for suffix in AUDIO_SUFFIXES:
        if stem.with_name(stem.name + suffix).is_file():
            return stem.with_name(stem.name + suffix)
    return None


def _subdirs(folder: Path) -> list[Path]:
    return [p for p in _visible(folder.iterdir()) if p.is_dir()]


# --------------------------------------------------------------------------------------- EmoDB

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
    _require_dir(wav_dir, "EmoDB's 'wav'")
    files = _audio_files(wav_dir)
    if not files:
        raise CorpusError(
            f"{wav_dir}: expected EmoDB audio files ({_AUDIO_WHAT}, e.g. 03a01Fa.wav), found none"
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
    return _sorted(utts)


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
            for p in _audio_files(root / "wav")
            if p.resolve() not in listed
        ]
    if problems:
        raise CorpusError(
            f"{root}: {len(problems)} file(s) do not match {sums_file}:\n  " + "\n  ".join(problems)
        )
    return len(listed)


# --------------------------------------------------------------------------------------- CASIA

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
    _require_dir(root, "CASIA's root")
    folders: dict[str, list[Path]] = {}
    unexpected = []
    for folder in _subdirs(root):
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
            f"{sorted(p.name for p in _subdirs(root))} (missing {missing}, "
            f"unexpected {sorted(unexpected)})"
        )
    twice = {s: sorted(p.name for p in f) for s, f in folders.items() if len(f) > 1}
    if twice:
        raise CorpusError(f"{root}: expected one folder per CASIA speaker, found {twice}")
    utts = []
    for speaker, gender in CASIA_SPEAKERS.items():
        (folder,) = folders[speaker]
        emotions = {p.name for p in _subdirs(folder)}
        if emotions != set(CASIA_EMOTIONS):
            raise CorpusError(
                f"{folder}: expected emotion folders {list(CASIA_EMOTIONS)}, "
                f"found {sorted(emotions)}"
            )
        for emotion in CASIA_EMOTIONS:
            files = _audio_files(folder / emotion)
            if not files:
                raise CorpusError(
                    f"{folder / emotion}: expected audio files ({_AUDIO_WHAT}), found none"
                )
            utts += [
                Utterance(path=p, label=emotion, speaker=speaker, gender=gender, text=p.stem)
                for p in files
            ]
    return _sorted(utts)


# ------------------------------------------------------------------------------------- IEMOCAP

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
    _require_dir(root, "IEMOCAP's root")
    if missing not in ("raise", "warn"):
        raise ValueError(f"missing must be 'raise' or 'warn', got {missing!r}")
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
    utts, absent, seen = [], [], {}
    for n in sessions:
        session_dir = root / f"Session{n}"
        _require_dir(session_dir, f"IEMOCAP's Session{n}")
        eval_dir = session_dir / "dialog" / "EmoEvaluation"
        _require_dir(eval_dir, "IEMOCAP's dialog/EmoEvaluation")
        label_files = [p for p in _visible(eval_dir.iterdir()) if p.suffix == ".txt"]
        if not label_files:
            raise CorpusError(f"{eval_dir}: expected EmoEvaluation .txt files, found none")
        wav_root = session_dir / "sentences" / "wav"
        _require_dir(wav_root, "IEMOCAP's sentences/wav")
        session = f"Ses{n:02d}"
        for label_file in label_files:
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
                        f"{where}: expected an utterance name ending in _F<nnn> or _M<nnn>, "
                        f"found {utt!r}"
                    )
                path = _audio_file(wav_root / dialog / utt)
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
    if absent:
        msg = (
            f"{root}: {len(absent)} labelled utterance(s) have no audio file "
            f"({_AUDIO_WHAT}), e.g. {absent[0]}"
        )
        if missing == "raise":
            raise CorpusError(msg + " (pass missing='warn' to skip them)")
        warnings.warn(msg + "; skipped", stacklevel=2)
    if not utts:
        raise CorpusError(f"{root}: no utterances of classes {sorted(keep)} found")
    return _sorted(utts)


# ------------------------------------------------------------------------------------- RAVDESS

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
    _require_dir(root, "RAVDESS's root")
    actors = _subdirs(root)
    bad = [p.name for p in actors if re.fullmatch(r"Actor_\d\d", p.name) is None]
    if bad or not actors:
        raise CorpusError(
            f"{root}: expected only folders Actor_01 .. Actor_24, found {[p.name for p in actors]}"
        )
    utts = []
    for folder in actors:
        files = _audio_files(folder)
        if not files:
            raise CorpusError(f"{folder}: expected audio files ({_AUDIO_WHAT}), found none")
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
    return _sorted(utts)


# ------------------------------------------------------------------------- folder per label

SpeakerRule = str | re.Pattern | Callable[[Path], str] | None


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
    _require_dir(root, "the corpus root (one folder per label)")
    labels = _subdirs(root)
    if not labels:
        raise CorpusError(f"{root}: expected one folder per label (root/<label>/*.wav), found none")
    pattern = re.compile(speaker) if isinstance(speaker, str) else speaker
    utts = []
    for folder in labels:
        files = _audio_files(folder)
        if not files:
            raise CorpusError(
                f"{folder}: expected audio files ({_AUDIO_WHAT}) for label {folder.name!r}, "
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
    return _sorted(utts)


# ------------------------------------------------------------------------------------ manifest

_FIELDS = ("path", "label", "speaker", "gender", "text", "session")
_GENDERS = {"f": "female", "female": "female", "m": "male", "male": "male"}


def load_manifest(manifest: str | os.PathLike, check_files: bool = True) -> list[Utterance]:
    """A CSV manifest: header ``path,label[,speaker[,gender,text,session,...]]``.

    Relative paths are relative to the manifest's folder. Columns gender (f/m/female/male or
    empty), text and session fill those fields; any other column goes into ``extra``.
    A missing speaker column or empty speaker cell gives "unknown". `manifest` may also be a
    folder holding ``manifest.csv``.

    Raises:
        CorpusError: naming the line for a missing column, empty path/label, bad gender,
            duplicate path, or (with `check_files`) a file that does not exist.
    """
    manifest = Path(manifest)
    if manifest.is_dir():
        manifest = manifest / "manifest.csv"
    if not manifest.is_file():
        raise CorpusError(
            f"{manifest}: expected a CSV manifest (path,label[,speaker,...]), found none"
        )
    base = manifest.parent
    with open(manifest, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames or []
        if "path" not in header or "label" not in header:
            raise CorpusError(
                f"{manifest}:1: expected a header with columns path,label[,speaker,...], "
                f"found {header}"
            )
        utts, first_line = [], {}
        for row in reader:
            where = f"{manifest}:{reader.line_num}"
            if None in row or any(v is None for v in row.values()):
                raise CorpusError(f"{where}: expected {len(header)} columns ({','.join(header)})")
            if not row["path"].strip() or not row["label"].strip():
                raise CorpusError(f"{where}: empty path or label")
            path = Path(row["path"].strip())
            path = path if path.is_absolute() else base / path
            if check_files and not path.is_file():
                raise CorpusError(f"{where}: audio file {path} does not exist")
            key = os.path.normpath(path)
            if key in first_line:
                raise CorpusError(f"{where}: {row['path']} already listed at {first_line[key]}")
            first_line[key] = where
            gender = (row.get("gender") or "").strip()
            if gender and gender.lower() not in _GENDERS:
                raise CorpusError(f"{where}: gender must be female/male (or f/m), got {gender!r}")
            utts.append(
                Utterance(
                    path=path,
                    label=row["label"].strip(),
                    speaker=(row.get("speaker") or "").strip() or "unknown",
                    gender=_GENDERS[gender.lower()] if gender else None,
                    text=(row.get("text") or "").strip() or None,
                    session=(row.get("session") or "").strip() or None,
                    extra={k: v for k, v in row.items() if k not in _FIELDS},
                )
            )
    if not utts:
        raise CorpusError(f"{manifest}: expected at least one utterance row, found none")
    return _sorted(utts)


def write_manifest(utts: Sequence[Utterance], manifest: str | os.PathLike) -> Path:
    """Write `utts` as a CSV manifest that `load_manifest` reads back (atomically).

    Paths under the manifest's folder are written relative to it. Extra fields become
    columns (string-converted). Use it to add speakers to a folder-per-label corpus.
    """
    manifest = Path(manifest)
    extra_keys = sorted({k for u in utts for k in u.extra} - set(_FIELDS))
    base = manifest.parent.resolve()
    with atomic_output(manifest) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow([*_FIELDS, *extra_keys])
        for u in utts:
            path = u.path.resolve()
            rel = path.relative_to(base) if path.is_relative_to(base) else path
            fields = [u.label, u.speaker, u.gender or "", u.text or "", u.session or ""]
            writer.writerow([rel.as_posix(), *fields, *(u.extra.get(k, "") for k in extra_keys)])
    return manifest


# ------------------------------------------------------------------------------------ registry

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
