"""The statistics `bench_enrollment.py` normalises with, and what its stream orders hear.

Per test utterance: the statistics of N seconds of its speaker's other utterances
(`enrollment_statistics`; of their neutral ones only with `neutral_pool`), or the running
statistics of its speaker's stream in a given order (`running_statistics`; the orders are
`keras_dyconv.normalization.stream_order`'s); their distance to the speaker's own
(`statistics_error`); the seconds heard before each utterance (`heard_before`) and how
emotion-blocked an order is (`same_emotion_share`). numpy and the project's normalisation
only: no model, no corpus.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from edge_runtime.config import STREAM_MEMORY_FRAMES, FrontendConfig
from edge_runtime.normalization import StreamStatistics, dataset_statistics
from keras_dyconv.normalization import NEUTRAL, FeatureSource, load_features

Statistics = list[tuple[np.ndarray, np.ndarray]]


def neutral_pool(labels: Sequence[str]) -> np.ndarray:
    """Which utterances may enroll when a user enrolls by speaking calmly: (n,) bool, True
    for the common label `NEUTRAL` only (the speech a device gets at enrollment, and the
    class neutral-referenced training normalises by; RAVDESS's "calm" is a class of its own and does
    not count), for `enrollment_statistics`'s `pool`.

    Args:
        labels: each utterance's common label (``Utterance.label`` after `to_common`).
    """
    return np.asarray(labels, dtype=object) == NEUTRAL


def enrollment_statistics(
    sources: Sequence[FeatureSource],
    speakers: Sequence[str],
    frames: int,
    rng: np.random.Generator,
    prior: FrontendConfig | None = None,
    pool: Sequence[bool] | np.ndarray | None = None,
    fallback: Statistics | None = None,
) -> tuple[Statistics, list[int]]:
    """Per utterance, the statistics of `frames` frames of *other* utterances of its speaker.

    For utterance i, the other utterances of `speakers[i]` are taken in a random order
    (`rng`), those outside `pool` dropped, and concatenated until `frames` frames are
    reached (the last one cut); their statistics normalise utterance i, which is never part
    of them. A speaker with fewer other frames than `frames` gives all of them. Without
    `prior` the statistics are the plain per-feature mean and std of those frames
    (`edge_runtime.normalization.dataset_statistics`, as the speaker reference computes
    them); with `prior` (a "stream" config) they are what a device's `StreamStatistics`
    holds after hearing them: the config's prior, weighted as its `stream_prior_frames`, and
    a `STREAM_MEMORY_FRAMES` memory.

    Args:
        sources: (frames, n_features) features per utterance, unnormalised.
        speakers: speaker per utterance.
        frames: frames of enrollment audio per utterance (>= 1).
        rng: the random orders. The order is drawn over all the speaker's other utterances
            before `pool` restricts it, so with the same `rng` a pooled enrollment takes
            its utterances in the unrestricted enrollment's order.
        prior: None, or the config whose training statistics start a device's stream.
        pool: (n,) bool, which utterances may enroll (e.g. `neutral_pool`); None: all.
        fallback: per utterance, the statistics it gets when no other utterance of its
            speaker is in the pool (it then enrolls 0 frames); None: refuse.

    Returns:
        ((mean, std) float32 arrays of shape (n_features,) per utterance, the number of
        enrollment frames each one got).

    Raises:
        ValueError: lengths differ, `frames` < 1, or, without `fallback`, a speaker has no
            other utterance (in the pool) to enroll from.
    """
    allowed = np.ones(len(sources), bool) if pool is None else np.asarray(pool, bool)
    for name, given in (("speakers", speakers), ("pool", allowed), ("fallback", fallback)):
        if given is not None and len(given) != len(sources):
            raise ValueError(f"{len(sources)} feature sources but {len(given)} {name}")
    if frames < 1:
        raise ValueError(f"enrollment needs at least 1 frame, got {frames}")
    owners = np.asarray(speakers)
    stats: Statistics = []
    used: list[int] = []
    for i, speaker in enumerate(speakers):
        others = np.flatnonzero(owners == speaker)
        others = others[others != i]
        if len(others):
            others = rng.permutation(others)
            others = others[allowed[others]]
        if not len(others):
            if fallback is None:
                what = "one utterance" if pool is None else "no other utterance in the pool"
                raise ValueError(f"speaker {speaker!r} has {what}: no other to enroll from")
            mean, std = fallback[i]
            stats.append((np.asarray(mean, np.float32), np.asarray(std, np.float32)))
            used.append(0)
            continue
        chunks, total = [], 0
        for j in others:
            x = load_features(sources[int(j)])
            chunks.append(x[: frames - total])
            total += len(chunks[-1])
            if total >= frames:
                break
        if prior is None:
            mean, std = dataset_statistics(chunks)
        else:
            stream = StreamStatistics(prior)
            for chunk in chunks:
                stream.update(chunk)
            mean, std = stream.mean, stream.std
        stats.append((np.asarray(mean, np.float32), np.asarray(std, np.float32)))
        used.append(total)
    return stats, used


def running_statistics(
    sources: Sequence[FeatureSource],
    speakers: Sequence[str],
    order: np.ndarray,
    config: FrontendConfig,
    include_current: bool = True,
    memory_frames: int = STREAM_MEMORY_FRAMES,
) -> Statistics:
    """Per utterance (index as `sources`), the running statistics of its speaker's stream
    (`StreamStatistics`, one per speaker) when the utterances are streamed in `order`:
    with `include_current` after the utterance is added (what the deployed online path
    normalises it with), else just before it; `memory_frames` as `StreamStatistics`'s."""
    streams: dict[str, StreamStatistics] = {}
    stats: Statistics = [None] * len(sources)  # type: ignore[list-item]
    for i in order:
        stream = streams.setdefault(
            speakers[i], StreamStatistics(config, memory_frames=memory_frames)
        )
        if include_current:
            stream.update(load_features(sources[i]))
        stats[i] = (np.float32(stream.mean), np.float32(stream.std))
        if not include_current:
            stream.update(load_features(sources[i]))
    return stats


def statistics_error(stats: Statistics, reference: Statistics) -> np.ndarray:
    """Per utterance, how far `stats` are from `reference` (the speaker's own statistics):
    (n, 2) float64, the mean over features of |mean - reference mean| / reference std, and
    the mean over features of ln(std / reference std) (> 0: features shrunk)."""
    out = np.zeros((len(stats), 2))
    for k, ((mean, std), (ref_mean, ref_std)) in enumerate(zip(stats, reference, strict=True)):
        ref_std = np.asarray(ref_std, np.float64)
        out[k, 0] = np.mean(np.abs(np.asarray(mean, np.float64) - ref_mean) / ref_std)
        out[k, 1] = np.mean(np.log(np.asarray(std, np.float64) / ref_std))
    return out


def heard_before(lengths: Sequence[int], speakers: Sequence[str], order: np.ndarray) -> np.ndarray:
    """Frames of its speaker's stream heard before each utterance (index as `lengths`),
    when the utterances are streamed in `order`."""
    heard = np.zeros(len(lengths), dtype=np.int64)
    so_far: dict[str, int] = {}
    for i in order:
        heard[i] = so_far.get(speakers[i], 0)
        so_far[speakers[i]] = heard[i] + lengths[i]
    return heard


def same_emotion_share(
    lengths: Sequence[int],
    speakers: Sequence[str],
    labels: Sequence[str],
    order: np.ndarray,
    memory: int = STREAM_MEMORY_FRAMES,
) -> np.ndarray:
    """Per utterance (index as `lengths`), the share of its stream's last `memory` frames
    (itself included, as the online statistics see them) that have its own label."""
    share = np.zeros(len(lengths))
    history: dict[str, list[int]] = {}
    for i in order:
        past = history.setdefault(speakers[i], [])
        past.append(int(i))
        left, same = memory, 0
        for j in reversed(past):
            n = min(lengths[j], left)
            same += n if labels[j] == labels[i] else 0
            left -= n
            if not left:
                break
        share[i] = same / (memory - left)
    return share
