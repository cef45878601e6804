"""A common label space: each corpus's emotion names mapped to one shared set of names.

Corpora name the same emotion differently (EmoDB "anger", CASIA and RAVDESS "angry") and
have different class sets (RAVDESS has calm, EmoDB boredom, CASIA surprise). To train on
several corpora, or test a model on a corpus it was not trained on, every label is mapped to
`COMMON_LABELS` by the explicit per-corpus tables in `CORPUS_LABELS` (documented as a table
in docs/concepts/labels.md). EmoDB's names are the common names, so models trained on EmoDB
(the shipped one included) already speak the common label space.

    from keras_dyconv.labels import corpus_classes, score_both, to_common
    common = to_common(load_corpus("casia", root), "casia")   # "angry" -> "anger", ...
    corpus_classes("casia")    # ('anger', 'fear', 'happiness', 'neutral', 'sadness', 'surprise')

A class a corpus does not have (CASIA has no boredom) must not be taught as a negative for
that corpus's utterances: `class_mask` gives, per corpus, which classes of a model's label
space it can be scored on. `score_both` scores a model's predictions in the corpus's own
label set and in the common one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from keras_dyconv.corpora import Utterance
from keras_dyconv.metrics import bootstrap_ci, summarize

__all__ = [
    "COMMON_LABELS",
    "CORPUS_LABELS",
    "UNMAPPED_LABELS",
    "class_indices",
    "class_mask",
    "common_label",
    "corpus_classes",
    "mapping_record",
    "original_label",
    "score_both",
    "to_common",
]

COMMON_LABELS: tuple[str, ...] = (
    "anger",
    "boredom",
    "calm",
    "disgust",
    "excitement",
    "fear",
    "frustration",
    "happiness",
    "neutral",
    "other",
    "sadness",
    "surprise",
)
"""The shared emotion names (EmoDB's names, plus the classes other corpora add)."""

CORPUS_LABELS: dict[str, dict[str, str]] = {
    # EmoDB (keras_dyconv.corpora.EMODB_EMOTIONS): already the common names.
    "emodb": {
        "anger": "anger",
        "boredom": "boredom",
        "disgust": "disgust",
        "fear": "fear",
        "happiness": "happiness",
        "neutral": "neutral",
        "sadness": "sadness",
    },
    # CASIA (corpora.CASIA_EMOTIONS, its folder names).
    "casia": {
        "angry": "anger",
        "fear": "fear",
        "happy": "happiness",
        "neutral": "neutral",
        "sad": "sadness",
        "surprise": "surprise",
    },
    # RAVDESS (corpora.RAVDESS_EMOTIONS, emotion codes 01-08). Calm is its own class: acted
    # as a low-arousal positive state, it is neither neutral nor happiness.
    "ravdess": {
        "neutral": "neutral",
        "calm": "calm",
        "happy": "happiness",
        "sad": "sadness",
        "angry": "anger",
        "fearful": "fear",
        "disgust": "disgust",
        "surprised": "surprise",
    },
    # IEMOCAP (corpora.IEMOCAP_LABELS values). With merge_excited (the loader's and the
    # usual 4-class default) "exc" is already labelled "happy"; unmerged, "excited" stays a
    # class of its own, "excitement".
    "iemocap": {
        "neutral": "neutral",
        "happy": "happiness",
        "excited": "excitement",
        "angry": "anger",
        "sad": "sadness",
        "frustrated": "frustration",
        "surprised": "surprise",
        "fearful": "fear",
        "disgusted": "disgust",
        "other": "other",
    },
}
"""corpus -> {the loader's label -> common label}; one-to-one within each corpus."""

UNMAPPED_LABELS: dict[str, dict[str, str]] = {
    "iemocap": {"xxx": "the annotators did not agree: the utterance has no emotion label"},
}
"""Labels a loader can produce that name no emotion, with the reason; `to_common` refuses
them (drop those utterances first, e.g. IEMOCAP with classes="4")."""


def _table(corpus: str) -> dict[str, str]:
    try:
        return CORPUS_LABELS[corpus]
    except KeyError:
        raise ValueError(
            f"no label mapping for corpus {corpus!r}; expected one of {sorted(CORPUS_LABELS)}"
        ) from None


def common_label(corpus: str, label: str) -> str:
    """The common name of `corpus`'s `label` (``common_label("casia", "angry") == "anger"``).

    Raises:
        ValueError: an unknown corpus, a label the corpus does not have, or a label that
            names no emotion (`UNMAPPED_LABELS`).
    """
    table = _table(corpus)
    if label in table:
        return table[label]
    reason = UNMAPPED_LABELS.get(corpus, {}).get(label)
    if reason:
        raise ValueError(f"{corpus} label {label!r} has no common name: {reason}")
    raise ValueError(f"{corpus} has no label {label!r}; expected one of {sorted(table)}")


def original_label(corpus: str, common: str) -> str:
    """The inverse of `common_label`: `corpus`'s own name for the common label `common`.

    Raises:
        ValueError: `common` is not one of the corpus's classes.
    """
    inverse = {v: k for k, v in _table(corpus).items()}
    if common not in inverse:
        raise ValueError(
            f"{corpus} has no class {common!r}; its classes are {list(corpus_classes(corpus))}"
        )
    return inverse[common]


def to_common(utts: Sequence[Utterance], corpus: str | None = None) -> list[Utterance]:
    """`utts` relabelled in the common label space, in the same order.

    Each returned utterance has its common label as ``label`` and keeps the original in
    ``extra["original_label"]``, with ``extra["corpus"]`` the corpus name.

    Args:
        corpus: a key of `CORPUS_LABELS` for all of `utts`; None: each utterance's own
            ``extra["corpus"]`` (e.g. a manifest's corpus column).

    Raises:
        ValueError: naming the file, for an utterance already mapped, without a corpus, or
            whose label does not map (see `common_label`).
    """
    out = []
    for u in utts:
        if "original_label" in u.extra:
            raise ValueError(f"{u.path}: already in the common label space (has original_label)")
        name = corpus if corpus is not None else u.extra.get("corpus")
        if not name:
            raise ValueError(f"{u.path}: no corpus given and no extra['corpus'] to map it by")
        if u.extra.get("corpus", name) != name:
            raise ValueError(f"{u.path}: extra['corpus'] is {u.extra['corpus']!r}, not {name!r}")
        try:
            label = common_label(name, u.label)
        except ValueError as err:
            raise ValueError(f"{u.path}: {err}") from None
        extra = {**u.extra, "corpus": name, "original_label": u.label}
        out.append(dataclasses.replace(u, label=label, extra=extra))
    return out


def class_indices(
    utts: Sequence[Utterance], labels: Sequence[str] | None = None
) -> tuple[list[str], np.ndarray]:
    """The class names (`labels`, or the utterances' labels sorted) and each utterance's
    class index into them, shape (len(utts),).

    Raises:
        ValueError: an utterance's label is not in `labels`.
    """
    labels = list(labels) if labels is not None else sorted({u.label for u in utts})
    unknown = {u.label for u in utts} - set(labels)
    if unknown:
        raise ValueError(f"utterances carry labels not in {labels}: {sorted(unknown)}")
    return labels, np.array([labels.index(u.label) for u in utts])


def corpus_classes(corpus: str, present: Iterable[str] | None = None) -> tuple[str, ...]:
    """The common classes `corpus` has, in `COMMON_LABELS` order.

    Args:
        present: the corpus's own labels actually loaded (e.g. IEMOCAP's 4 classes); None:
            every label of the corpus's table.
    """
    if present is None:
        has = set(_table(corpus).values())
    else:
        has = {common_label(corpus, x) for x in present}
    return tuple(c for c in COMMON_LABELS if c in has)


def class_mask(
    corpus: str, label_space: Sequence[str], present: Iterable[str] | None = None
) -> np.ndarray:
    """Which classes of a model's `label_space` (common names, in its output order)
    `corpus` has: bool array, shape (len(label_space),). A loss masked with it never
    teaches a class the corpus lacks as a negative for that corpus's utterances.

    Raises:
        ValueError: a name in `label_space` that is not in `COMMON_LABELS`.
    """
    unknown = [c for c in label_space if c not in COMMON_LABELS]
    if unknown:
        raise ValueError(f"label space has names not in COMMON_LABELS: {unknown}")
    has = set(corpus_classes(corpus, present))
    return np.array([c in has for c in label_space], dtype=bool)


def score_both(
    probabilities: Any,
    label_space: Sequence[str],
    true_labels: Sequence[str],
    corpus: str,
    intervals: bool = False,
) -> dict[str, Any]:
    """Score one corpus's predictions in the common label space and in its own.

    Args:
        probabilities: the model's class probabilities (or scores), shape
            (n, len(label_space)).
        label_space: the model's classes, common names in output order.
        true_labels: the utterances' labels in the corpus's own names, length n (e.g.
            ``[u.extra["original_label"] for u in to_common(utts, corpus)]``).
        corpus: a key of `CORPUS_LABELS`.
        intervals: add to each summary "ci95": {metric: [low, high]}, the bootstrap 95%
            interval (`keras_dyconv.metrics.bootstrap_ci`) of "wa", "ua" and "macro_f1".

    Returns:
        ``{"common": summarize(...), "own": summarize(...)}`` (`keras_dyconv.metrics`):
        "common" takes the arg-max over the whole label space (predicting a class the
        corpus lacks is an error); "own" takes the arg-max over the corpus's classes only
        (the model told which classes the corpus has) and names them in the corpus's own
        labels, the corpus's own classes that the label space has, in sorted order.

    Raises:
        ValueError: a shape mismatch, or a true label whose class the label space lacks
            (keep only the utterances of the model's classes first).
    """
    p = np.asarray(probabilities, dtype=np.float64)
    if p.ndim != 2 or p.shape != (len(true_labels), len(label_space)):
        raise ValueError(
            f"probabilities must have shape (n, {len(label_space)}) with n = "
            f"{len(true_labels)} true labels, got {p.shape}"
        )
    mask = class_mask(corpus, label_space)
    index = {c: i for i, c in enumerate(label_space)}
    common_true = [common_label(corpus, x) for x in true_labels]
    missing = sorted({c for c in common_true if c not in index})
    if missing:
        raise ValueError(
            f"{corpus}: true classes {missing} are not in the label space {list(label_space)}"
        )
    y_common = np.array([index[c] for c in common_true], dtype=np.int64)
    own_labels = sorted(original_label(corpus, c) for c in np.asarray(label_space)[mask])
    own_index = {x: i for i, x in enumerate(own_labels)}
    columns = [index[common_label(corpus, x)] for x in own_labels]
    y_own = np.array([own_index[x] for x in true_labels], dtype=np.int64)
    scored = {
        "common": (y_common, p.argmax(axis=1), list(label_space)),
        "own": (y_own, p[:, columns].argmax(axis=1), own_labels),
    }
    out = {}
    for space, (y, predicted, names) in scored.items():
        out[space] = summarize(y, predicted, names)
        if intervals:
            out[space]["ci95"] = {
                m: list(bootstrap_ci(y, predicted, m)) for m in ("wa", "ua", "macro_f1")
            }
    return out


def mapping_record(corpora: Iterable[str]) -> dict[str, Any]:
    """The mapping used for `corpora`, JSON-ready (for results.json and model metadata):
    ``{"common_labels": [...], "corpora": {corpus: {"mapping": {...}, "classes": [...]}}}``.
    """
    return {
        "common_labels": list(COMMON_LABELS),
        "corpora": {
            c: {"mapping": dict(_table(c)), "classes": list(corpus_classes(c))}
            for c in sorted(set(corpora))
        },
    }
