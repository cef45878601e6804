"""Folds and validation picks across several pooled corpora (``extra["corpus"]`` of each
utterance, speaker ids namespaced by `keras_dyconv.protocols.namespace_speakers`).

`utterance_corpora` reads and checks each utterance's corpus; `per_corpus_validation`
applies the validation rule of `keras_dyconv.validation_speakers` within each corpus and
joins the picks; `deal_per_corpus` deals speaker groups to folds balanced by corpus first.
The protocols of `keras_dyconv.protocols` use these with ``per_corpus=True`` and in
`leave_one_corpus_out`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from keras_dyconv.corpora import Utterance
from keras_dyconv.validation_speakers import ValSpeakers, fold_validation, speaker_genders

__all__ = ["deal_per_corpus", "per_corpus_validation", "utterance_corpora"]


def per_corpus_validation(
    utts: Sequence[Utterance], speakers: np.ndarray, is_test: np.ndarray, val_speakers: ValSpeakers
) -> tuple[list[str], dict[str, Any]]:
    """`fold_validation` within each corpus (``extra["corpus"]``, in order of first
    appearance), the picks joined: every corpus takes part in model selection, and a number
    `val_speakers` means that many per corpus. A corpus without a test speaker in the fold
    anchors its choice at its first speaker (sorted), as protocol "all" does; a corpus
    wholly in the fold's test part (leave-one-corpus-out's held-out corpus) has no training
    speaker to give and takes no part.

    Returns:
        (validation speakers, rule): the rule has the keys of `validation_rule` (summed
        over the corpora) and "per_corpus": {corpus: its `validation_rule`}.
    """
    corpus_of = utterance_corpora(utts, "validation per corpus", speakers.tolist())
    val: list[str] = []
    rules: dict[str, dict[str, Any]] = {}
    for corpus in dict.fromkeys(corpus_of.tolist()):
        mine = np.flatnonzero(corpus_of == corpus)
        if is_test[mine].all():
            continue
        anchor = None if is_test[mine].any() else min(speakers[mine])
        try:
            picked, rules[corpus] = fold_validation(
                [utts[i] for i in mine], speakers[mine], is_test[mine], val_speakers, anchor
            )
        except ValueError as err:
            raise ValueError(f"corpus {corpus}: {err}") from None
        val += picked
    totals = {k: sum(r[k] for r in rules.values()) for k in ("candidates", "val_speakers")}
    return sorted(val), {
        "rule": next(iter(rules.values()))["rule"],
        **totals,
        "train_speakers": totals["candidates"] - totals["val_speakers"],
        "description": "per corpus: "
        + "; ".join(f"{c}: {r['description']}" for c, r in rules.items()),
        "per_corpus": rules,
    }


def utterance_corpora(
    utts: Sequence[Utterance], what: str, units: Sequence[str] | np.ndarray
) -> np.ndarray:
    """Each utterance's corpus (``extra["corpus"]``), for `what`, which needs it.

    Raises:
        ValueError: naming the first file without a corpus, or a unit (`units[i]` of
            `utts[i]`: its speaker, or session) found in two corpora.
    """
    missing = [u.path for u in utts if not u.extra.get("corpus")]
    if missing:
        raise ValueError(f"{missing[0]}: {what} needs extra['corpus']")
    owner: dict[str, str] = {}
    for u, unit in zip(utts, units, strict=True):
        if owner.setdefault(str(unit), u.extra["corpus"]) != u.extra["corpus"]:
            raise ValueError(
                f"{unit!r} is in corpora {owner[str(unit)]!r} and {u.extra['corpus']!r}: "
                "namespace the speakers first (namespace_speakers)"
            )
    return np.array([u.extra["corpus"] for u in utts])


def deal_per_corpus(
    utts: Sequence[Utterance], unit_of: np.ndarray, units: np.ndarray, sizes: np.ndarray, k: int
) -> list[list[str]]:
    """`keras_dyconv.protocols._deal` balanced by corpus first (``extra["corpus"]``; see
    `keras_dyconv.protocols.speaker_group_kfold`)."""
    corpora = utterance_corpora(utts, "folds balanced by corpus", unit_of)
    corpus_of = dict(zip(map(str, unit_of), corpora.tolist(), strict=True))
    gender_of: dict[str, str | None] = {}
    for corpus in dict.fromkeys(corpus_of.values()):
        mine = [u for u in utts if u.extra["corpus"] == corpus]
        gender_of.update(speaker_genders(mine))
    # Per fold: groups per (corpus, gender) and utterances per corpus.
    count: list[dict[tuple[str, str | None], int]] = [{} for _ in range(k)]
    corpus_load: list[dict[str, int]] = [{} for _ in range(k)]
    folds: list[list[str]] = [[] for _ in range(k)]
    load = np.zeros(k, dtype=np.int64)
    for i in sorted(range(len(units)), key=lambda i: (-sizes[i], units[i])):
        unit = str(units[i])
        corpus, gender = corpus_of[unit], gender_of.get(unit)
        j = min(
            range(k),
            key=lambda j: (
                sum(n for (c, _), n in count[j].items() if c == corpus),
                count[j].get((corpus, gender), 0),
                corpus_load[j].get(corpus, 0),
                load[j],
                j,
            ),
        )
        folds[j].append(unit)
        count[j][corpus, gender] = count[j].get((corpus, gender), 0) + 1
        corpus_load[j][corpus] = corpus_load[j].get(corpus, 0) + int(sizes[i])
        load[j] += sizes[i]
    return folds
