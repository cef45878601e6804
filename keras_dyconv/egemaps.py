"""openSMILE eGeMAPSv02 functionals of audio files: the features of the classical floor.

`extract_egemaps` computes `file_egemaps` (88 functionals per file) for many files, in
worker processes if asked, with an on-disk `EgemapsCache` keyed by the file's content;
`keras_dyconv.baseline` fits and scores the linear SVM on them.
"""

from __future__ import annotations

import ctypes
import functools
import io
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
import joblib
import numpy as np
from joblib.executor import get_memmapping_executor

from edge_runtime.files import atomic_write, file_sha256

__all__ = [
    "FEATURE_SET",
    "N_FEATURES",
    "EgemapsCache",
    "extract_egemaps",
    "file_egemaps",
    "opensmile_version",
]

#: The openSMILE feature set and its number of functionals per utterance.
FEATURE_SET = "eGeMAPSv02"
N_FEATURES = 88


@functools.lru_cache(maxsize=1)
def _smile():
    import opensmile

    return opensmile.Smile(
        feature_set=getattr(opensmile.FeatureSet, FEATURE_SET),
        feature_level=opensmile.FeatureLevel.Functionals,
    )


def opensmile_version() -> str:
    """The installed openSMILE version (it keys the cache and is saved with results)."""
    import opensmile

    return opensmile.__version__


def file_egemaps(path: str | os.PathLike) -> np.ndarray:
    """eGeMAPSv02 functionals of one audio file (.wav, .flac, ...), shape (88,) float32.

    The file is read with soundfile at its own sample rate; several channels are averaged.

    Raises:
        ValueError: naming the file when it cannot be decoded, holds no samples, or gives
            non-finite functionals.
    """
    import soundfile as sf

    try:
        samples, rate = sf.read(os.fspath(path), dtype="float32", always_2d=True)
    except Exception as err:  # soundfile raises several types for unreadable files
        raise ValueError(f"{os.fspath(path)}: cannot load audio ({err})") from err
    if samples.size == 0:
        raise ValueError(f"{os.fspath(path)}: no audio samples")
    mono = samples.mean(axis=1)
    feats = _smile().process_signal(mono, rate).to_numpy(dtype=np.float32).reshape(-1)
    if feats.shape != (N_FEATURES,) or not np.all(np.isfinite(feats)):
        raise ValueError(
            f"{os.fspath(path)}: expected {N_FEATURES} finite {FEATURE_SET} functionals, got "
            f"shape {feats.shape} with {int(np.sum(~np.isfinite(feats)))} non-finite values"
        )
    return feats


class EgemapsCache:
    """Functionals on disk: ``root/<FEATURE_SET>-opensmile<version>/<content hash>.npy``.

    Keyed by the file's bytes (renaming keeps the entry), the feature set and the openSMILE
    version; entries are written atomically.
    """

    def __init__(self, root: str | os.PathLike) -> None:
        self.directory = Path(root) / f"{FEATURE_SET}-opensmile{opensmile_version()}"

    def path(self, key: str) -> Path:
        """The `.npy` file of `key`."""
        return self.directory / f"{key}.npy"

    def load(self, key: str) -> np.ndarray | None:
        """Cached functionals of `key`, or None on a miss (or an unreadable entry)."""
        try:
            feats = np.load(self.path(key), allow_pickle=False)
        except (OSError, ValueError, EOFError):
            return None
        return feats if feats.shape == (N_FEATURES,) else None

    def store(self, key: str, feats: np.ndarray) -> None:
        """Write `feats` under `key`, atomically."""
        self.directory.mkdir(parents=True, exist_ok=True)
        encoded = io.BytesIO()
        np.save(encoded, feats, allow_pickle=False)
        atomic_write(self.path(key), encoded.getvalue())


def _extract_one(path: str, cache_dir: str | os.PathLike | None) -> np.ndarray:
    if cache_dir is None:
        return file_egemaps(path)
    cache, key = EgemapsCache(cache_dir), file_sha256(path)
    if (hit := cache.load(key)) is None:
        hit = file_egemaps(path)
        cache.store(key, hit)
    return hit


def _fft_clash() -> bool:
    """Whether a library in this process's global namespace exports `rdft` (Ooura's FFT).

    TensorFlow's libtensorflow_framework does, in double precision; openSMILE's libSMILEapi
    has its own single-precision `rdft`, and when it is loaded after TensorFlow it binds to
    TensorFlow's and corrupts the heap ("malloc(): invalid size", SIGABRT or SIGSEGV inside
    openSMILE). Such a process extracts in a worker process instead.
    """
    if os.name != "posix":
        return False
    try:
        ctypes.CDLL(None).rdft  # noqa: B018  (dlsym in the global namespace)
    except AttributeError:
        return False
    return True


def extract_egemaps(
    paths: Sequence[str | os.PathLike],
    *,
    cache_dir: str | os.PathLike | None = None,
    n_jobs: int = 1,
    progress: bool = False,
) -> np.ndarray:
    """`file_egemaps` of every path, in order: shape (len(paths), 88) float32.

    `n_jobs` worker processes (joblib); with 1, in this process unless TensorFlow (or another
    library exporting Ooura's FFT, see `_fft_clash`) is loaded, then in one worker process.
    `cache_dir` enables the on-disk `EgemapsCache`, so a second run reads the functionals
    back instead of recomputing them.
    """
    paths = [os.fspath(p) for p in paths]
    if n_jobs == 1 and not _fft_clash():
        results: Any = (_extract_one(p, cache_dir) for p in paths)
    elif n_jobs == 1:  # in a fresh worker process, where openSMILE binds its own FFT
        executor = get_memmapping_executor(1)
        results = executor.map(_extract_one, paths, [cache_dir] * len(paths))
    else:
        parallel = joblib.Parallel(n_jobs=n_jobs, return_as="generator")
        results = parallel(joblib.delayed(_extract_one)(p, cache_dir) for p in paths)
    with click.progressbar(
        results, length=len(paths), label="eGeMAPS", file=sys.stderr, hidden=not progress
    ) as bar:
        rows = list(bar)
    return np.stack(rows).astype(np.float32) if rows else np.zeros((0, N_FEATURES), np.float32)
