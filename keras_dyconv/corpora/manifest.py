"""A CSV manifest ``path,label[,speaker,gender,text,session,...]``: the corpus format that
needs no loader of its own, and the way to add speakers to a folder-per-label corpus."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from pathlib import Path

from edge_runtime.files import atomic_output
from keras_dyconv.corpora.common import CorpusError, Utterance, sorted_by_path

__all__ = ["load_manifest", "write_manifest"]

_FIELDS = ("path", "label", "speaker", "gender", "text", "session")
_GENDERS = {"f": "female", "female": "female", "m": "male", "male": "male"}


def load_manifest(manifest: str | os.PathLike, check_files: bool = True) -> list[Utterance]:
    """A CSV manifest: header ``path,label[,speaker[,gender,text,session,...]]``.

    The file is UTF-8 text (a leading byte-order mark, as spreadsheets write, is skipped).
    Relative paths are relative to the manifest's folder. Columns gender (f/m/female/male or
    empty), text and session fill those fields; any other column goes into ``extra``.
    A missing speaker column or empty speaker cell gives "unknown". `manifest` may also be a
    folder holding ``manifest.csv``.

    Raises:
        CorpusError: naming the line for a missing or repeated column, bytes that are not
            UTF-8, empty path/label, bad gender, duplicate path, or (with `check_files`) a
            path that is not an existing file.
    """
    manifest = Path(manifest)
    if manifest.is_dir():
        manifest = manifest / "manifest.csv"
    if not manifest.is_file():
        raise CorpusError(
            f"{manifest}: expected a CSV manifest (path,label[,speaker,...]), found none"
        )
    raw = manifest.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        bad = err.start + len(raw) - len(err.object)  # utf-8-sig counts after its BOM
        line = raw.count(b"\n", 0, bad) + 1
        raise CorpusError(
            f"{manifest}:{line}: expected UTF-8 text, found byte {raw[bad]:#04x} "
            "(save the manifest as UTF-8)"
        ) from None
    base = manifest.parent
    with io.StringIO(text, newline="") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames or []
        if "path" not in header or "label" not in header:
            raise CorpusError(
                f"{manifest}:1: expected a header with columns path,label[,speaker,...], "
                f"found {header}"
            )
        repeated = sorted({name for name in header if header.count(name) > 1})
        if repeated:
            raise CorpusError(
                f"{manifest}:1: expected each column once, found {', '.join(repeated)} "
                f"repeated in {header}"
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
                found = "a folder" if path.is_dir() else "nothing"
                raise CorpusError(f"{where}: expected an audio file at {path}, found {found}")
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
    return sorted_by_path(utts)


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
