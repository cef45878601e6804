"""How many, and which, training speakers a speaker-independent fold holds out for validation.

`val_speakers="auto"` (`auto_val_speakers`) takes a fifth of the fold's training speakers,
rounded, at least 1 and at most half; a number takes exactly that many, never more than
training keeps (`validation_rule` says which and why, for results.json). `pick_val_speakers`
chooses them deterministically, balancing genders when every speaker's gender is known.
`fold_validation` applies both to one fold's training speakers. The protocols of
`keras_dyconv.protocols` use these (the names for setting the rule are re-exported there),
within each corpus for pooled corpora (`keras_dyconv.pooling`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from keras_dyconv.corpora import Utterance

__all__ = [
    "AUTO_VAL_FRACTION",
    "ValSpeakers",
    "auto_val_speakers",
    "fold_validation",
    "parse_val_speakers",
    "pick_val_speakers",
    "speaker_genders",
    "validation_rule",
]

ValSpeakers = int | str
"""How many training speakers a fold holds out for validation: a count, or "auto"."""
AUTO_VAL_FRACTION = 0.2
"""The share of a fold's training speakers that ``val_speakers="auto"`` validates on."""


def auto_val_speakers(n_candidates: int) -> int:
    """Validation speakers for a fold with `n_candidates` training speakers (before the
    validation ones are taken out): ``round(AUTO_VAL_FRACTION * n)``, at least 1, at most
    ``n // 2`` so that training always keeps at least as many speakers; 0 when n < 2.

    4 speakers, LOSO: 3 candidates -> 1 (train on 2). 10 speakers, LOSO: 9 -> 2 (train on 7,
    as with EmoDB's former fixed default of 2). 24 speakers in 6 folds: 20 -> 4 (2 female +
    2 male when genders are known; train on 16); 24 speakers, LOSO: 23 -> 5.
    """
    if n_candidates < 2:
        return 0
    return max(1, min(math.floor(AUTO_VAL_FRACTION * n_candidates + 0.5), n_candidates // 2))


def parse_val_speakers(value: ValSpeakers) -> ValSpeakers:
    """`value` as a valid ``val_speakers`` option: "auto", or a count >= 0 (an int or its
    decimal string, e.g. from a command line). Raises ValueError otherwise."""
    if isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise ValueError(f"val_speakers must be 'auto' or a number >= 0, got {value!r}")


def validation_rule(n_candidates: int, val_speakers: ValSpeakers = "auto") -> dict[str, Any]:
    """How many of a fold's `n_candidates` training speakers go to validation, and why.

    Returns:
        ``{"rule": "auto" | "fixed", "candidates": n, "val_speakers": v,
        "train_speakers": n - v, "description": str}`` (JSON-ready, for results.json).

    Raises:
        ValueError: a fixed count that would leave training fewer speakers than validation
            (it names the "auto" choice instead).
    """
    value = parse_val_speakers(val_speakers)
    auto = auto_val_speakers(n_candidates)
    if value == "auto":
        n = auto
        description = (
            f"auto: round({AUTO_VAL_FRACTION:g} x {n_candidates} training speakers), at least "
            f"1, at most half -> {n} for validation, {n_candidates - n} for training"
        )
    else:
        n = int(value)
        if n > n_candidates - n:
            raise ValueError(
                f"{n} validation speaker(s) out of {n_candidates} training speakers would leave "
                f"{max(n_candidates - n, 0)} to train on, fewer than validation takes; use at "
                f"most {n_candidates // 2}, or val_speakers='auto' ({auto} here)"
            )
        description = f"fixed: {n} for validation, {n_candidates - n} for training"
    return {
        "rule": "auto" if value == "auto" else "fixed",
        "candidates": n_candidates,
        "val_speakers": n,
        "train_speakers": n_candidates - n,
        "description": description,
    }


def speaker_genders(utts: Sequence[Utterance]) -> dict[str, str | None]:
    """Each speaker's gender; None for all when any is unknown. Raises on inconsistency."""
    genders: dict[str, str | None] = {}
    for u in utts:
        if genders.setdefault(u.speaker, u.gender) != u.gender:
            raise ValueError(
                f"speaker {u.speaker!r} has genders {genders[u.speaker]!r} and {u.gender!r} "
                f"({u.path})"
            )
    if any(g is None for g in genders.values()):
        return dict.fromkeys(genders)
    return genders


def pick_val_speakers(
    test_speakers: Sequence[str], candidates: Sequence[str], genders: dict, n: int
) -> list[str]:
    """Deterministic validation speakers from `candidates` (the sorted training speakers).

    Anchor = the first test speaker. Genders unknown: the next `n` speakers after it in
    sorted order, cyclically. Genders known: alternately the next speaker of the anchor's
    gender (cyclically, in sorted order) and the speaker of the other gender at the
    anchor's rank; rotating the rank this way spreads validation duty evenly over speakers.
    """
    if n == 0:
        return []
    anchor = test_speakers[0]
    ordered = [s for s in candidates if s > anchor] + [s for s in candidates if s < anchor]
    if genders[anchor] is None:
        return sorted(ordered[:n])
    own = genders[anchor]
    members = {g: sorted(s for s in genders if genders[s] == g) for g in set(genders.values())}
    rank = members[own].index(anchor)
    queues = [[s for s in ordered if genders[s] == own]]
    for g in sorted(set(members) - {own}):
        rotated = members[g][rank % len(members[g]) :] + members[g][: rank % len(members[g])]
        queues.append([s for s in rotated if s in candidates])
    picked: list[str] = []
    while len(picked) < n and any(queues):
        for queue in queues:
            if queue and len(picked) < n:
                picked.append(queue.pop(0))
    return sorted(picked)


def fold_validation(
    utts: Sequence[Utterance],
    speakers: np.ndarray,
    is_test: np.ndarray,
    val_speakers: ValSpeakers,
    anchor: str | None = None,
) -> tuple[list[str], dict[str, Any]]:
    """The validation speakers among the training speakers of `utts` (those not
    `is_test`), and the rule that chose them (`validation_rule`). The choice is anchored at
    the first test speaker (`pick_val_speakers`), or at `anchor` when given.

    `speakers` (n,) is the speaker of each of `utts`, `is_test` (n,) bool marks the fold's
    test part."""
    train_speakers = sorted(set(speakers[~is_test]))
    test_speakers = [anchor] if anchor is not None else sorted(set(speakers[is_test]))
    rule = validation_rule(len(train_speakers), val_speakers)
    genders = speaker_genders(utts)
    return pick_val_speakers(test_speakers, train_speakers, genders, rule["val_speakers"]), rule
