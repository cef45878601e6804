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
from keras_dyconv.validation_speakers import (
    ValSpeakers,
    auto_val_speakers,
    fold_validation,
    parse_val_speakers,
    speaker_genders,
)

__all__ = [
    "POOLED_MIN_TRAIN_SPEAKERS",
    "deal_per_corpus",
    "per_corpus_validation",
    "utterance_corpora",
]


#: With "auto" validation in a pool of corpora, a corpus gives validation speakers only
#: when it keeps at least this many training speakers; a smaller one trains on all of its
#: speakers and the other corpora choose the epoch. One or two training voices teach a
#: model the voices rather than the emotions (CASIA alone, issue 23: 26.5% and 22.8% WA
#: with 1 and 2 training speakers, chance 16.7%), and in a pool the larger corpora's
#: validation speakers can do the model selection instead.
POOLED_MIN_TRAIN_SPEAKERS = 4


def per_corpus_validation(
    utts: Sequence[Utterance], speakers: np.ndarray, is_test: np.ndarray, val_speakers: ValSpeakers
) -> tuple[list[str], dict[str, Any]]:
    """`fold_validation` within each corpus (``extra["corpus"]``, in order of first
    appearance), the picks joined. "auto" takes a fifth of each corpus's training speakers,
    except from a corpus that would keep fewer than `POOLED_MIN_TRAIN_SPEAKERS` (it trains
    on all of its speakers) as long as another corpus validates; when none would keep that
    many, every corpus validates as on its own. A number `val_speakers` means that many per
    corpus. A corpus without a test speaker in the fold anchors its choice at its first
    speaker (sorted), as protocol "all" does; a corpus wholly in the fold's test part
    (leave-one-corpus-out's held-out corpus) has no training speaker to give and takes no
    part.

    Returns:
        (validation speakers, rule): the rule has the keys of `validation_rule` (summed
        over the corpora) and "per_corpus": {corpus: its `validation_rule`}.
    """
    corpus_of = utterance_corpora(utts, "validation per corpus", speakers.tolist())
    training = {
        corpus: np.flatnonzero(corpus_of == corpus)
        for corpus in dict.fromkeys(corpus_of.tolist())
        if not is_test[corpus_of == corpus].all()
    }
    spares = _spares_validation(training, speakers, is_test, val_speakers)
    val: list[str] = []
    rules: dict[str, dict[str, Any]] = {}
    for corpus, mine in training.items():
        anchor = None if is_test[mine].any() else min(speakers[mine])
        try:
            picked, rules[corpus] = fold_validation(
                [utts[i] for i in mine],
                speakers[mine],
                is_test[mine],
                val_speakers if spares[corpus] else 0,
                anchor,
            )
        except ValueError as err:
            raise ValueError(f"corpus {corpus}: {err}") from None
        if not spares[corpus]:
            n = rules[corpus]["candidates"]
            rules[corpus].update(
                rule="auto",
                description=f"auto, pooled: all {n} training speakers train (validating "
                f"would keep fewer than {POOLED_MIN_TRAIN_SPEAKERS}; the other corpora "
                "validate)",
            )
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


def _spares_validation(
    training: dict[str, np.ndarray],
    speakers: np.ndarray,
    is_test: np.ndarray,
    val_speakers: ValSpeakers,
) -> dict[str, bool]:
    """Which corpora of a pooled fold give validation speakers (`per_corpus_validation`)."""
    if parse_val_speakers(val_speakers) != "auto":
        return dict.fromkeys(training, True)
    candidates = {c: len(set(speakers[i[~is_test[i]]])) for c, i in training.items()}
    keeps = {
        c: n - auto_val_speakers(n) >= POOLED_MIN_TRAIN_SPEAKERS for c, n in candidates.items()
    }
    if not any(keeps.values()):
        return dict.fromkeys(training, True)
    return keeps


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
