"""Feature windows for int8 calibration and for the parity report, from real audio.

Sources (`--calibration`, repeatable, and `--holdout`): a folder of audio files (WAV or FLAC,
`keras_dyconv.corpora.AUDIO_SUFFIXES`, searched recursively; no labels), or a CSV manifest
``path,label[,speaker,...]`` (`keras_dyconv.corpora.load_manifest`; labels must be among the
model's labels, so accuracy can be reported). Several sources are joined (`list_sources`:
e.g. one folder per corpus of a model trained on several). Audio is turned into features
by `edge_runtime.Frontend` with the model's own `FrontendConfig` (from its metadata,
normalisation included): the exact numpy code the device runs. WAV files are read as the
device reads them (`edge_runtime.wav.read_wav`), other formats (FLAC, lossless: the same
samples) with soundfile. Each utterance is
cut into windows by the model's window policy (`edge_runtime.windows.split_windows`).

For a model trained with normalization "stream" (online CMVN), each utterance is normalised
as the edge runtime normalises it when it streams one voice for a while (`extract_windows`):
the utterances of one stream share a `StreamStatistics` that starts from the training prior
and is carried from one utterance to the next, as `EmotionRecognizer` carries it across calls.
A stream is one speaker where a manifest names speakers, else one source (a folder, or a
manifest without speakers), its utterances heard in a seeded random order.

Calibration audio is played at several gains (`CALIBRATION_GAINS_DB`, cycled over the
utterances) so that the int8 activation ranges also cover speakers louder or quieter than
the calibration set. The window mean that feeds the first dynamic conv's attention is the
tensor that needs it: on EmoDB a held-out speaker's quiet windows fell outside its
calibrated range and saturated it (top-1 agreement 98.8%, max |dp| 0.64); with -6/0/+6 dB
the same export agreed on every held-out window (max |dp| 0.13).

Without `--holdout`, the calibration utterances are split deterministically into a
calibration part and a held-out part by a hash of each file name (`split_holdout`), so the
parity report never scores windows the int8 ranges were fitted on. Without any audio, the
parity report of float modes runs on `synthetic_windows`: random tones and noise through the
same frontend (realistic feature ranges, but agreement on noise, not on speech).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_runtime.features import Frontend
from edge_runtime.metadata import ModelMetadata
from edge_runtime.normalization import StreamStatistics, normalize
from edge_runtime.wav import read_wav
from edge_runtime.windows import WindowPolicy, split_windows
from keras_dyconv.console import Progress, track
from keras_dyconv.corpora import AUDIO_SUFFIXES, CorpusError, load_manifest
from keras_dyconv.normalization import stream_order

__all__ = [
    "CALIBRATION_GAINS_DB",
    "STREAM_ORDER_SEED",
    "AudioItem",
    "CalibrationError",
    "WindowSet",
    "extract_windows",
    "list_audio",
    "list_sources",
    "representative",
    "split_holdout",
    "synthetic_windows",
]


#: Gains (dB) the calibration utterances are played at, in turn (see the module docstring).
CALIBRATION_GAINS_DB = (-6.0, 0.0, 6.0)
#: Seed of the order in which each stream's utterances are heard (normalization "stream").
STREAM_ORDER_SEED = 0


class CalibrationError(ValueError):
    """Calibration or held-out audio cannot be used (names the file or manifest line)."""


@dataclass(frozen=True)
class AudioItem:
    """One utterance: its file, from a manifest its label, and the stream a device would
    hear it in (models with normalization "stream"): "SOURCE#SPEAKER" for a manifest row
    with a speaker, else the source (folder or manifest) it was listed from."""

    path: Path
    label: str | None = None
    stream: str = ""


@dataclass(frozen=True)
class WindowSet:
    """Feature windows of several utterances.

    Attributes:
        windows: (n, frames, n_features) float32.
        utterance: (n,) index of each window's utterance in `items`.
        items: the utterances.
        labels: (n_utterances,) class index of each utterance, or None when unlabelled.
        origin: where the windows come from, for reports.
    """

    windows: np.ndarray
    utterance: np.ndarray
    items: tuple[AudioItem, ...]
    labels: np.ndarray | None
    origin: str

    def __len__(self) -> int:
        return len(self.windows)


def list_audio(source: str | os.PathLike, labels: Sequence[str]) -> list[AudioItem]:
    """The utterances of a folder of audio files (`AUDIO_SUFFIXES`) or of a CSV manifest,
    sorted by path.

    Raises:
        CalibrationError: nothing found, a malformed manifest, or a label that is not one
            of `labels` (the model's).
    """
    source = Path(source)
    if source.is_dir():
        paths = sorted(p for p in source.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
        paths = [p for p in paths if p.is_file() and not p.name.startswith(".")]
        if not paths:
            raise CalibrationError(
                f"{source}: no audio files ({'/'.join(AUDIO_SUFFIXES)}) in this folder"
            )
        return [AudioItem(p, stream=str(source)) for p in paths]
    if not source.is_file():
        raise CalibrationError(f"{source}: no such folder or manifest file")
    try:
        utts = load_manifest(source)
    except CorpusError as err:
        raise CalibrationError(str(err)) from None
    unknown = sorted({u.label for u in utts} - set(labels))
    if unknown:
        raise CalibrationError(
            f"{source}: labels {unknown} are not among the model's labels {list(labels)}"
        )
    streams = [str(source) if u.speaker == "unknown" else f"{source}#{u.speaker}" for u in utts]
    return [AudioItem(u.path, u.label, s) for u, s in zip(utts, streams, strict=True)]


def list_sources(
    sources: str | os.PathLike | Sequence[str | os.PathLike], labels: Sequence[str]
) -> list[AudioItem]:
    """`list_audio` of one source or of several, joined in the order given.

    Raises:
        CalibrationError: as `list_audio`, or no source at all.
    """
    many = [sources] if isinstance(sources, (str, os.PathLike)) else list(sources)
    if not many:
        raise CalibrationError("no audio source given")
    return [item for source in many for item in list_audio(source, labels)]


def _read(path: Path) -> tuple[np.ndarray, int]:
    """Samples (mono float32) and rate of an audio file: WAV as the device reads it
    (`read_wav`), other formats with soundfile (several channels averaged).

    Raises:
        CalibrationError: naming the file, when it cannot be read.
    """
    if path.suffix.lower() == ".wav":
        try:
            return read_wav(path)
        except ValueError as err:  # edge_runtime.wav.WavError is one
            raise CalibrationError(f"{path}: cannot read audio ({err})") from None
    import soundfile as sf

    try:
        samples, rate = sf.read(path, dtype="float32", always_2d=True)
    except Exception as err:  # soundfile raises several types for unreadable files
        raise CalibrationError(f"{path}: cannot read audio ({err})") from None
    return samples.mean(axis=1), int(rate)


def split_holdout(
    items: Sequence[AudioItem], fraction: float
) -> tuple[list[AudioItem], list[AudioItem]]:
    """Split utterances into (calibration, held-out), about `fraction` held out.

    Deterministic: an utterance is held out when the sha256 of its file name falls in the
    first `fraction` of the hash range, so adding files never moves the others. Both parts
    get at least one utterance.
    """
    if not 0 < fraction < 1:
        raise ValueError(f"held-out fraction must be in (0, 1), got {fraction}")
    if len(items) < 2:
        raise CalibrationError(
            f"need at least 2 utterances to split into calibration and held-out parts, "
            f"got {len(items)} (or pass held-out audio separately)"
        )
    keys = [int(hashlib.sha256(i.path.name.encode()).hexdigest()[:12], 16) / 16**12 for i in items]
    held = [k < fraction for k in keys]
    if all(held) or not any(held):  # tiny sets: move the extreme one across
        flip = int(np.argmax(keys)) if all(held) else int(np.argmin(keys))
        held[flip] = not held[flip]
    return (
        [i for i, h in zip(items, held, strict=True) if not h],
        [i for i, h in zip(items, held, strict=True) if h],
    )


def extract_windows(
    items: Sequence[AudioItem],
    metadata: ModelMetadata,
    policy: WindowPolicy,
    *,
    origin: str,
    gains_db: Sequence[float] = (0.0,),
    progress: Progress | None = None,
) -> WindowSet:
    """Frontend features of each utterance cut into windows, normalised as the device would.

    Utterance i is scaled by `gains_db[i % len(gains_db)]` decibels before the frontend.
    `progress` (e.g. `keras_dyconv.console.terminal_progress`) shows the utterances go by.

    For normalization "stream" the utterances of each `AudioItem.stream` are one stream:
    heard in a random order (`stream_order`, seed `STREAM_ORDER_SEED`), each normalised by
    the running statistics of its stream so far, itself included; the windows stay in the
    order of `items`. Not each utterance as a fresh stream (the prior plus itself): that
    normalises every utterance by its own level, so its windows' means, which feed the first
    dynamic conv's attention (the int8 range that matters, see the module docstring), sit
    near 0, while a device that has heard a voice for a while, the use such a model is made
    for, sees them carry the utterance's level against the voice's (loud anger, quiet
    sadness). Measured on EmoDB (the shipped model's frontend with a stream prior), the
    window means span -0.41..+0.51 as fresh streams but -0.71..+0.51 in per-speaker
    streams: calibrated on fresh streams, a voice's quiet windows would saturate (the online
    stream model of scripts/build_default_model.sh on a quarter of each corpus's files, the
    same 244 held-out windows, one stream per corpus: max |dp| 0.197, mean 0.0050 when calibrated on
    fresh streams; 0.070 and 0.0031 on streams; top-1 agreement 98.8% both). A stream's
    first utterance is a fresh stream still, as a device's first. A folder gives no
    speakers, so its stream mixes voices: window means then also carry each voice's level
    against the others' (-0.77..+0.58 for EmoDB's folder), a range that holds one voice's
    stream; a manifest with a speaker column gives the per-voice streams themselves.
    """
    config = metadata.frontend
    frontend = Frontend(config)
    order: Sequence[int] = range(len(items))
    streams: dict[str, StreamStatistics] = {}
    if config.normalization == "stream":
        rng = np.random.default_rng(STREAM_ORDER_SEED)
        order = stream_order([item.stream for item in items], rng).tolist()
    cuts: list[np.ndarray] = [np.empty(0)] * len(items)
    for i in track(order, f"{origin} audio", len(items), progress):
        item = items[i]
        gain = np.float32(10 ** (gains_db[i % len(gains_db)] / 20))
        samples, rate = _read(Path(item.path))
        try:
            feats = frontend.unnormalized(samples * gain, rate)
        except ValueError as err:
            raise CalibrationError(f"{item.path}: cannot compute features ({err})") from None
        stream = None
        if config.normalization == "stream":
            if item.stream not in streams:
                streams[item.stream] = StreamStatistics(config)
            stream = streams[item.stream]
        cuts[i] = split_windows(normalize(feats, config, stream), policy)
    labelled = all(item.label is not None for item in items)
    labels = np.array([metadata.labels.index(item.label) for item in items]) if labelled else None
    return WindowSet(
        windows=np.concatenate(cuts).astype(np.float32),
        utterance=np.repeat(np.arange(len(items)), [len(c) for c in cuts]),
        items=tuple(items),
        labels=labels,
        origin=origin,
    )


def representative(windows: WindowSet, limit: int) -> np.ndarray:
    """At most `limit` windows spread evenly over the set (deterministic), (m, frames, F)."""
    if limit < 1:
        raise ValueError(f"need at least 1 calibration window, got limit={limit}")
    if len(windows) <= limit:
        return windows.windows
    pick = np.linspace(0, len(windows) - 1, limit).round().astype(int)
    return windows.windows[pick]


def synthetic_windows(
    metadata: ModelMetadata, policy: WindowPolicy, count: int = 32, seed: int = 0
) -> WindowSet:
    """`count` windows of synthetic audio (tones with vibrato and noise) through the frontend.

    For parity checks when no audio is given: the features have realistic ranges for the
    model's frontend and normalisation, but carry no emotion, so no labels. For
    normalization "stream" each window is a fresh stream (the prior plus itself): the
    signals are unrelated, there is no voice to adapt to.
    """
    rng = np.random.default_rng(seed)
    config = metadata.frontend
    frontend = Frontend(config)
    n = (policy.frames - 1) * config.hop_length + 1
    t = np.arange(n) / config.sample_rate
    windows = []
    for _ in range(count):
        f0 = rng.uniform(80, 400)
        vibrato = f0 * (1 + 0.05 * np.sin(2 * np.pi * rng.uniform(2, 8) * t))
        phase = 2 * np.pi * np.cumsum(vibrato) / config.sample_rate
        harmonics = sum(np.sin(h * phase) / h for h in range(1, 8))
        envelope = 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(1, 5) * t + rng.uniform(0, 6))
        signal = 0.3 * envelope * harmonics + rng.normal(0, 10 ** rng.uniform(-3, -1), n)
        feats = frontend(signal.astype(np.float32))
        windows.append(split_windows(feats, policy)[0])
    return WindowSet(
        windows=np.stack(windows).astype(np.float32),
        utterance=np.arange(count),
        items=(),
        labels=None,
        origin="synthetic",
    )
