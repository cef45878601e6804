"""File writing that no kill leaves half done, and the one file hash.

`atomic_output(target)` yields a temporary path next to `target`; when the block ends
normally the temporary file is renamed onto `target` (one `os.replace`, atomic on POSIX), and
removed otherwise: a reader sees the old file or the new one, never half of one.
`atomic_write(target, data)` does it for bytes or text. With `fsync=True` the temporary
file's bytes are on disk before the rename (what a checkpoint that a resume depends on
needs after a power loss, not only after a kill).

A process killed with SIGKILL runs no cleanup, so its temporary file stays behind. The
names are recognisable, ``.<target name>.tmp-<pid>-<random><target suffix>``, and
`sweep_stale_temporaries(folder)` removes those whose process is no longer running
(`dyser-export` sweeps its output folder before it writes there).

Standard library only.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = [
    "FILE_MODE",
    "atomic_output",
    "atomic_write",
    "check_writable_folder",
    "file_sha256",
    "sweep_stale_temporaries",
]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: Permissions of written files: what open() would give (temporary files are 0600).
FILE_MODE = 0o666 & ~_umask()

#: Temporary names: "." + target name + ".tmp-<pid>-" + mkstemp's random part + suffixes.
_TEMP_NAME = re.compile(r"^\..+\.tmp-(?P<pid>\d+)-[A-Za-z0-9_]+")


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 hex digest of a file's bytes (read in 1 MiB blocks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@contextmanager
def atomic_output(
    target: str | os.PathLike, mode: int = FILE_MODE, fsync: bool = False
) -> Iterator[Path]:
    """Yield an empty temporary file next to `target`; rename it onto `target` on success.

    The temporary file is in `target`'s folder (so the rename never crosses file systems)
    and ends in `target`'s suffixes (so tools that go by them, like `keras.Model.save` with
    ".keras" or `save_weights` with ".weights.h5", accept it). On an exception it is
    removed and `target` is left as it was. `mode`: the permissions the file gets before
    the rename; `fsync`: flush the file's bytes to disk (`os.fsync`) before the rename, so
    that `target` names a complete file even after a power loss.
    """
    target = Path(target)
    fd, name = tempfile.mkstemp(
        dir=target.parent,
        prefix=f".{target.name}.tmp-{os.getpid()}-",
        suffix="".join(target.suffixes),
    )
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        if fsync:
            with open(tmp, "rb+") as handle:
                os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write(target: str | os.PathLike, data: bytes | str) -> Path:
    """Write `data` (bytes, or text as UTF-8) to `target` atomically; returns `target`."""
    with atomic_output(target) as tmp:
        tmp.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return Path(target)


def _running(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists (another user's process), or cannot tell: keep its files
    return True


def sweep_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Remove the temporary files of `atomic_output` in `folder` whose process has ended.

    A file is stale when its name carries the pid of a process that no longer runs (killed
    before it could clean up); temporaries of running processes, this one included, are
    kept. Returns the paths removed.
    """
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        match = _TEMP_NAME.match(entry.name)
        if match is None or _running(int(match["pid"])) or not entry.is_file(follow_symlinks=False):
            continue
        try:
            os.unlink(entry.path)
        except FileNotFoundError:
            continue  # another sweep got there first
        removed.append(Path(entry.path))
    return removed


def check_writable_folder(folder: str | os.PathLike) -> Path:
    """Prove that a file can be created in the existing folder `folder`.

    Raises OSError naming the folder and why (missing, not a folder, permission denied,
    read-only file system). The probe creates and removes one empty temporary file, so the
    answer is the file system's, not a guess from permission bits (which root bypasses).
    """
    folder = Path(folder)
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise FileNotFoundError(f"folder {folder} {what}")
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=f".write-probe.tmp-{os.getpid()}-")
    except OSError as err:
        raise OSError(err.errno, f"cannot write in folder {folder}: {err.strerror}") from None
    os.close(fd)
    os.unlink(probe)
    return folder
