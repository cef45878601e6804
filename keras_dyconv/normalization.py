"""Normalisation statistics of training features, and features normalised as a device sees them.

Features are cached unnormalised (frontend normalization "none"); a fit computes the
training set's statistics (`edge_runtime.normalization.with_dataset_stats`) and, for normalization
"stream", each training speaker's own statistics (`speaker_statistics`: over all their
utterances, or over their neutral ones only, `neutral_reference`) or the running
statistics a device would have at random points of the speaker's stream
(`online_statistics`); `stream_training_statistics` makes the choice of
`Recipe.stream_training`. `iter_normalized` (and `normalize_utterances`, its list) applies
them as the deployed model would; `stream_order` shuffles each test speaker's stream.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence

import numpy as np

from edge_runtime.config import FrontendConfig
from edge_runtime.normalization import StreamStatistics, dataset_statistics, normalize

#: Utterance features: an in-memory (frames, n_features) array or a `.npy` file path.
FeatureSource = np.ndarray | str | os.PathLike
#: Random orderings of each training speaker's utterances that `online_statistics` streams.
STREAM_ORDERINGS = 7
#: The class whose utterances give a speaker's statistics for `Recipe.stream_training`
#: "neutral" (neutral-referenced normalisation): the class of that name in the model's labels.
NEUTRAL = "neutral"
#: Per utterance, the (mean, std) choices that normalise its windows in training.
Statistics = list[list[tuple[np.ndarray, np.ndarray]]]


def load_features(source: FeatureSource) -> np.ndarray:
    """(frames, n_features) float32 features from an array or a `.npy` file (memory-mapped)."""
    if isinstance(source, np.ndarray):
        return source
    return np.load(source, mmap_mode="r", allow_pickle=False)


def normalized(features: np.ndarray, config: FrontendConfig) -> np.ndarray:
    """A normalised float32 copy of `features` (edge_runtime's `normalize` works in place,
    and training must never change the stored features: they are reused every epoch)."""
    return normalize(np.array(features, dtype=np.float32), config)


def speaker_statistics(
    sources: Sequence[FeatureSource],
    speakers: Sequence[str],
    counted: Sequence[bool] | np.ndarray | None = None,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per-feature (mean, std) float32 of each speaker over all their utterances, or, with
    `counted` (one bool per utterance), over those of their utterances it marks only (e.g.
    the neutral ones: `neutral_reference`).

    Raises:
        ValueError: the lengths differ, or a speaker has no counted utterance.
    """
    if len(sources) != len(speakers) or (counted is not None and len(counted) != len(sources)):
        raise ValueError(
            f"{len(sources)} feature sources but {len(speakers)} speakers"
            + ("" if counted is None else f" and {len(counted)} counted flags")
        )
    use = np.ones(len(sources), bool) if counted is None else np.asarray(counted, bool)
    stats = {}
    for speaker in dict.fromkeys(speakers):
        mine = [s for s, who, u in zip(sources, speakers, use, strict=True) if who == speaker and u]
        if not mine:
            raise ValueError(f"speaker {speaker!r} has no utterance counted for their statistics")
        mean, std = dataset_statistics(load_features(s) for s in mine)
        stats[speaker] = (np.float32(mean), np.float32(std))
    return stats


def neutral_class(labels: Sequence[str]) -> int:
    """The index of `NEUTRAL` in a model's class names `labels` (the common names in a
    multi-corpus run, the corpus's own otherwise).

    Raises:
        ValueError: `labels` has no such class (neutral-referenced normalisation needs it).
    """
    if NEUTRAL not in labels:
        raise ValueError(
            f'stream_training "neutral" normalises each speaker by their {NEUTRAL!r} '
            f"utterances, but the classes {list(labels)} have no {NEUTRAL!r} class: use "
            f'stream_training "speaker" or "online", or label the neutral class {NEUTRAL!r}'
        )
    return list(labels).index(NEUTRAL)


def neutral_reference(
    neutral: Sequence[bool] | np.ndarray, speakers: Sequence[str]
) -> tuple[np.ndarray, list[str]]:
    """Which utterances give each speaker's statistics under neutral-referenced
    normalisation (`Recipe.stream_training` "neutral"): the `counted` of
    `speaker_statistics`.

    Args:
        neutral: (n,) whether each utterance is of the neutral class.
        speakers: the speaker of each utterance.

    Returns:
        (n,) bool: a speaker's neutral utterances, or all of them for a speaker with no
        neutral utterance (their statistics fall back to all of their audio); and those
        fallback speakers, in order of first appearance.
    """
    neutral, owners = np.asarray(neutral, bool), np.asarray(speakers)
    if neutral.shape != owners.shape:
        raise ValueError(f"{len(neutral)} neutral flags but {len(owners)} speakers")
    counted = neutral.copy()
    fallback = []
    for speaker in dict.fromkeys(speakers):
        mine = owners == speaker
        if not neutral[mine].any():
            counted[mine] = True
            fallback.append(speaker)
    return counted, fallback


def stream_training_statistics(
    stream_training: str,
    config: FrontendConfig,
    sources: Sequence[FeatureSource],
    speakers: Sequence[str],
    seed: int,
    counted: Sequence[bool] | np.ndarray | None = None,
) -> Statistics:
    """The statistics that normalise each training utterance's windows for normalization
    "stream", by `Recipe.stream_training`: "online" the draws of `online_statistics`,
    "speaker" and "neutral" the one `speaker_statistics` of its speaker (for "neutral",
    `counted` is the `neutral_reference` of the utterances)."""
    if stream_training == "online":
        return online_statistics(sources, speakers, config, seed=seed)
    by_speaker = speaker_statistics(sources, speakers, counted)
    return [[by_speaker[s]] for s in speakers]


def online_statistics(
    sources: Sequence[FeatureSource],
    speakers: Sequence[str],
    config: FrontendConfig,
    orderings: int = STREAM_ORDERINGS,
    seed: int = 0,
) -> Statistics:
    """Running statistics a device could have when it hears each utterance, several per
    utterance: (mean, std) float32 lists, one list per utterance.

    Each speaker's utterances are streamed through `StreamStatistics` in `orderings`
    random orders; the statistics right after an utterance (itself included, as at test
    time) are one draw for it, so its draws sit at random points of its speaker's stream.
    One more draw is a fresh stream (the training prior plus the utterance alone): the
    cold start of a voice the device has never heard.
    """
    if len(sources) != len(speakers):
        raise ValueError(f"{len(sources)} feature sources but {len(speakers)} speakers")
    rng = np.random.default_rng(seed)
    draws: Statistics = [[] for _ in sources]
    stream = StreamStatistics(config)

    def draw(i: int) -> None:
        stream.update(load_features(sources[i]))
        draws[i].append((np.float32(stream.mean), np.float32(stream.std)))

    for i in range(len(sources)):
        stream.reset()
        draw(i)
    owners = np.asarray(speakers)
    for speaker in dict.fromkeys(speakers):
        mine = np.flatnonzero(owners == speaker)
        for _ in range(orderings):
            stream.reset()
            for i in rng.permutation(mine):
                draw(int(i))
    return draws


ADAPTATIONS = ("online", "independent", "speaker")


def stream_order(speakers: Sequence[str], rng: np.random.Generator | None) -> np.ndarray:
    """The order a device hears the utterances in: (n,) int64 indices, a permutation of
    range(n) in which each speaker's utterances are shuffled (`rng`) among the positions
    they hold, or the order given (`rng` None: ``arange(n)``).

    Streaming ``sources[order]`` with ``speakers[order]`` through `iter_normalized` (or
    `keras_dyconv.feeding.predict_utterances`) and writing result k back to ``order[k]``
    scores every utterance as heard in that order; every speaker's stream keeps its
    length and other speakers' streams are untouched. Corpora list a speaker's files
    emotion by emotion (CASIA, RAVDESS), so the given order drifts the online statistics
    towards the current emotion; a random order is what a device hearing mixed emotions
    gets. The speakers are shuffled in order of first appearance, one ``rng.permutation``
    each: the same generator state gives the same order.
    """
    order = np.arange(len(speakers))
    if rng is None:
        return order
    owners = np.asarray(speakers)
    for speaker in dict.fromkeys(speakers):
        mine = np.flatnonzero(owners == speaker)
        order[mine] = rng.permutation(mine)
    return order


def normalize_utterances(
    sources: Sequence[FeatureSource],
    config: FrontendConfig,
    speakers: Sequence[str] | None = None,
    adapt: str = "online",
    counted: Sequence[bool] | np.ndarray | None = None,
) -> list[np.ndarray]:
    """Normalised float32 copies of utterance features, as the deployed model would see them
    (the list of `iter_normalized`: see there)."""
    return list(iter_normalized(sources, config, speakers, adapt, counted))


def iter_normalized(
    sources: Sequence[FeatureSource],
    config: FrontendConfig,
    speakers: Sequence[str] | None = None,
    adapt: str = "online",
    counted: Sequence[bool] | np.ndarray | None = None,
) -> Iterator[np.ndarray]:
    """Normalised float32 copies of utterance features, one at a time, in order, as the
    deployed model would see them (only the current one is held: features memory-mapped
    from a cache are normalised in bounded memory).

    For normalization "stream" the utterances of each speaker are one stream, in the order
    given: with `adapt="online"` each is normalised by the running statistics of its
    speaker's audio so far, itself included (`StreamStatistics`, what a device can do);
    with `adapt="independent"` each utterance starts a fresh stream (the training prior
    plus itself: no adaptation across utterances, `speakers` not needed); with
    `adapt="speaker"` by the statistics of all the speaker's utterances, or of those
    `counted` marks (`speaker_statistics`; e.g. their neutral ones, `neutral_reference`):
    transductive when used on test speakers, a reference only, or for training speakers.
    Other normalizations ignore `speakers` and `adapt`, other adaptations `counted`.
    """
    if adapt not in ADAPTATIONS:
        raise ValueError(f"adapt must be one of {ADAPTATIONS}, got {adapt!r}")
    if config.normalization != "stream" or adapt == "independent":
        for source in sources:
            yield normalized(load_features(source), config)
        return
    if speakers is None:
        raise ValueError('normalization "stream" needs the speaker of every utterance')
    if adapt == "speaker":
        stats = speaker_statistics(sources, speakers, counted)
        for source, speaker in zip(sources, speakers, strict=True):
            mean, std = stats[speaker]
            yield (np.asarray(load_features(source), np.float32) - mean) / std
        return
    streams: dict[str, StreamStatistics] = {}
    for source, speaker in zip(sources, speakers, strict=True):
        stream = streams.setdefault(speaker, StreamStatistics(config))
        yield normalize(np.array(load_features(source), np.float32), config, stream)
