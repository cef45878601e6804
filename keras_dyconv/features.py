"""Training-side audio features with librosa: the reference the edge runtime reproduces.

`librosa_features(samples, config)` is the reference definition of the model input for a
`FrontendConfig` (edge_runtime.features.Frontend must match it). `extract_corpus` runs it
over many files in parallel, with a progress bar and an on-disk cache keyed by the config
fingerprint and each file's content hash (`edge_runtime.files.file_sha256`).
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import joblib
import librosa
import numpy as np

from edge_runtime.config import (
    N_MFCC,
    PITCH_FMAX_HZ,
    PITCH_FMIN_HZ,
    PITCH_TROUGH_THRESHOLD,
    FrontendConfig,
)
from edge_runtime.dsp import delta_width_for
from edge_runtime.files import atomic_write, file_sha256
from edge_runtime.normalization import normalize
from edge_runtime.pitch import (
    cumulative_mean_normalized,
    voicing_channels,
    yin_frame_length,
    yin_lag_range,
)
from keras_dyconv.console import terminal_progress, track

__all__ = [
    "RESAMPLER",
    "FeatureCache",
    "extract_corpus",
    "file_features",
    "librosa_features",
    "librosa_pitch",
    "librosa_yin",
    "load_audio",
]

#: librosa's default (and best general-purpose) resampler; the edge resampler is measured
#: against it.
RESAMPLER = "soxr_hq"


def load_audio(path: str | os.PathLike, config: FrontendConfig) -> np.ndarray:
    """Any file librosa/soundfile can read -> mono float32 at config.sample_rate (soxr_hq).

    Raises ValueError naming the file when it cannot be decoded.
    """
    try:
        samples, _ = librosa.load(path, sr=config.sample_rate, mono=True, res_type=RESAMPLER)
    except Exception as err:  # soundfile, audioread and OS errors all mean "unreadable"
        # audioread's error has no text when soundfile's, the one it followed, says why.
        why = str(err) or str(err.__context__ or "") or type(err).__name__
        raise ValueError(f"{os.fspath(path)}: cannot load audio ({why})") from err
    if samples.size == 0:
        raise ValueError(f"{os.fspath(path)}: no audio samples")
    return samples


def librosa_features(
    samples: np.ndarray, config: FrontendConfig, sample_rate: int | None = None
) -> np.ndarray:
    """Reference features (frames, config.n_features) float32 of a 1-D float signal.

    `samples` is at `sample_rate` Hz (default config.sample_rate) and is resampled with
    soxr_hq otherwise. Log-mel = power_to_db(melspectrogram(preemphasis(y))); MFCC-39 =
    13 DCT-II (ortho) coefficients of it, then librosa.feature.delta of order 1 and 2
    (mode "interp"; the width shrinks for clips shorter than `delta_width` frames, see
    edge_runtime.dsp.delta_width_for); log-mel with deltas = each band's log-mel, delta
    and delta-delta side by side. With `config.pitch`, `librosa_pitch` of the signal (before
    pre-emphasis) joins the log-mel bands or MFCCs before the deltas.
    """
    y = np.asarray(samples, dtype=np.float32)
    if y.ndim != 1:
        raise ValueError(f"expected a 1-D signal (mono samples), got shape {y.shape}")
    if sample_rate is not None and sample_rate != config.sample_rate:
        y = librosa.resample(
            y, orig_sr=sample_rate, target_sr=config.sample_rate, res_type=RESAMPLER
        )
    emphasized = (
        librosa.effects.preemphasis(y, coef=config.preemphasis) if config.preemphasis else y
    )
    mel = librosa.feature.melspectrogram(
        y=emphasized,
        sr=config.sample_rate,
        n_fft=config.n_fft,
        hop_length=config.hop_length,
        win_length=config.win_length,
        window=config.window,
        center=config.center,
        pad_mode=config.pad_mode,
        power=config.power,
        n_mels=config.n_mels,
        fmin=config.fmin,
        fmax=config.mel_fmax,
        htk=config.mel_scale == "htk",
        norm=config.mel_norm,
    )
    feats = librosa.power_to_db(mel, ref=config.ref, amin=config.amin, top_db=config.top_db)
    if config.feature == "mfcc39":
        feats = librosa.feature.mfcc(S=feats, n_mfcc=N_MFCC, dct_type=2, norm="ortho")
    if config.pitch:
        feats = np.concatenate([feats, librosa_pitch(y, config).T], axis=0)
    if config.feature == "mfcc39":
        feats = np.concatenate([feats, *_deltas(feats, config.delta_width)], axis=0)
    elif config.feature == "logmel_deltas":
        stacked = np.stack([feats, *_deltas(feats, config.delta_width)], axis=1)
        feats = stacked.reshape(-1, feats.shape[1])  # band-major: value, delta, delta-delta
    return normalize(np.ascontiguousarray(feats.T, dtype=np.float32), config)


def librosa_pitch(samples: np.ndarray, config: FrontendConfig) -> np.ndarray:
    """Reference pitch channels (frames, 2) float32 of a 1-D signal at config.sample_rate
    (`librosa_yin`, combined by edge_runtime.pitch.voicing_channels): what
    edge_runtime.pitch.pitch_channels reproduces."""
    return voicing_channels(
        *librosa_yin(samples, config.sample_rate, config.hop_length, config.pad_mode)
    )


def librosa_yin(
    samples: np.ndarray, sample_rate: int, hop_length: int, pad_mode: str = "constant"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Reference of edge_runtime.pitch.yin: (F0 Hz from librosa.yin, min d' of YIN as
    published (de Cheveigne & Kawahara 2002, eq. 6 and 8) summed directly, lag by lag, over
    librosa.util.frame's frames, mean square of the window W that d' compares), each
    (frames,) float64."""
    y = np.asarray(samples, dtype=np.float64)  # float32 input would run yin's FFTs in float32
    frame_length = yin_frame_length(sample_rate)
    min_period, max_period = yin_lag_range(sample_rate, frame_length)
    f0 = librosa.yin(
        y,
        fmin=PITCH_FMIN_HZ,
        fmax=PITCH_FMAX_HZ,
        sr=sample_rate,
        frame_length=frame_length,
        hop_length=hop_length,
        trough_threshold=PITCH_TROUGH_THRESHOLD,
        center=True,
        pad_mode=pad_mode,
    )
    padded = np.pad(y, frame_length // 2, mode=pad_mode)  # yin's centring
    frames = librosa.util.frame(padded, frame_length=frame_length, hop_length=hop_length)
    window = frame_length - max_period
    # d(tau) = sum_{j<W} (y(j) - y(j + tau))^2 for tau = 1..max_period, one lag at a time.
    diff = np.stack(
        [
            np.sum(np.square(frames[:window] - frames[tau : tau + window]), axis=0)
            for tau in range(1, max_period + 1)
        ],
        axis=-1,
    )
    d_min = cumulative_mean_normalized(diff)[:, min_period - 1 :].min(axis=1)
    return f0, d_min, np.mean(np.square(frames[:window]), axis=0)


def _deltas(feats: np.ndarray, delta_width: int) -> tuple[np.ndarray, np.ndarray]:
    """librosa.feature.delta of order 1 and 2 of (n_features, frames) features (zero for
    clips too short for any delta window, see `delta_width_for`)."""
    width = delta_width_for(feats.shape[1], delta_width)
    if not width:
        return np.zeros_like(feats), np.zeros_like(feats)
    return tuple(librosa.feature.delta(feats, width=width, order=k) for k in (1, 2))


def file_features(path: str | os.PathLike, config: FrontendConfig) -> np.ndarray:
    """`librosa_features` of an audio file (loaded and resampled by `load_audio`)."""
    return librosa_features(load_audio(path, config), config)


class FeatureCache:
    """Features on disk under `root/<config fingerprint>/<key>.npy`, key = the file's sha256
    (`edge_runtime.files.file_sha256`).

    Renaming or moving a file keeps its entry; changing its content or the config misses.
    Entries are written to a temporary file and renamed, so readers never see half a file.
    """

    def __init__(self, root: str | os.PathLike, config: FrontendConfig) -> None:
        self.config = config
        self.directory = Path(root) / config.fingerprint()

    def path(self, key: str) -> Path:
        """The `.npy` file of `key`."""
        return self.directory / f"{key}.npy"

    def load(self, key: str, mmap: bool = False) -> np.ndarray | None:
        """Cached features for `key`, or None on a miss (or an unreadable entry).

        With `mmap` the array is memory-mapped read-only (`np.load(mmap_mode="r")`): only
        the header is read now, and a window of it reads only its own frames from disk.
        """
        try:
            feats = np.load(self.path(key), mmap_mode="r" if mmap else None, allow_pickle=False)
        except (OSError, ValueError, EOFError):
            return None
        if feats.ndim != 2 or feats.shape[1] != self.config.n_features:
            return None
        return feats

    def store(self, key: str, features: np.ndarray) -> None:
        """Write (frames, n_features) `features` under `key` (atomically, as C-ordered
        float32: `load(key, mmap=True)` maps it), and the config beside the entries."""
        if features.ndim != 2 or features.shape[1] != self.config.n_features:
            raise ValueError(
                f"{self.path(key)}: expected features of shape (frames, "
                f"{self.config.n_features}), got {features.shape}"
            )
        features = np.ascontiguousarray(features, dtype=np.float32)
        self.directory.mkdir(parents=True, exist_ok=True)
        config_file = self.directory / "config.json"
        if not config_file.exists():
            atomic_write(config_file, self.config.to_json())
        encoded = io.BytesIO()
        np.save(encoded, features, allow_pickle=False)
        atomic_write(self.path(key), encoded.getvalue())


def extract_corpus(
    paths: Sequence[str | os.PathLike],
    config: FrontendConfig,
    *,
    cache_dir: str | os.PathLike | None = None,
    n_jobs: int = 1,
    progress: bool = True,
    as_paths: bool = False,
) -> list[np.ndarray] | list[Path]:
    """`file_features` for every path, in order, as (frames, n_features) float32 arrays.

    `n_jobs` worker processes (joblib; -1 = all cores, 1 = in this process); `cache_dir`
    enables the on-disk `FeatureCache`; `progress` draws a progress bar on stderr when it is
    a terminal (`keras_dyconv.console.terminal_progress`; nothing in logs and pipes).
    `as_paths=True` (needs `cache_dir`) returns the cache's `.npy` files instead of arrays,
    so a corpus larger than memory can be streamed (`np.load(..., mmap_mode="r")`).
    """
    if as_paths and cache_dir is None:
        raise ValueError("as_paths=True needs a cache_dir to hold the feature files")
    paths = [os.fspath(p) for p in paths]
    if n_jobs == 1:
        results: Iterator = (_extract_one(p, config, cache_dir, as_paths) for p in paths)
    else:
        parallel = joblib.Parallel(n_jobs=n_jobs, return_as="generator")
        results = parallel(
            joblib.delayed(_extract_one)(p, config, cache_dir, as_paths) for p in paths
        )
    return list(track(results, "features", len(paths), terminal_progress if progress else None))


def _extract_one(
    path: str, config: FrontendConfig, cache_dir: str | os.PathLike | None, as_path: bool = False
) -> np.ndarray | Path:
    if cache_dir is None:
        return file_features(path, config)
    cache, key = FeatureCache(cache_dir, config), file_sha256(path)
    if (hit := cache.load(key, mmap=as_path)) is None:
        hit = file_features(path, config)
        cache.store(key, hit)
    return cache.path(key) if as_path else hit
