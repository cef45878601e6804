"""Which folds a run makes: the protocol names, `ProtocolSpec`, `make_folds` and `chosen_folds`
(a subset of them: `dyser-train --only-folds` / `--max-folds`, recorded by `subset_record`).

The fold generators are those of `keras_dyconv.protocols`; this module picks one by name.
It imports no Keras, so the command line lists `PROTOCOLS` without loading TensorFlow.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from keras_dyconv.corpora import Utterance
from keras_dyconv.protocols import (
    Fold,
    assert_test_partition,
    fixed_split,
    leave_one_corpus_out,
    leave_one_speaker_out,
    speaker_group_kfold,
    stratified_kfold,
)

__all__ = [
    "PROTOCOLS",
    "ProtocolSpec",
    "UnknownFoldError",
    "chosen_folds",
    "make_folds",
    "subset_record",
]

PROTOCOLS: tuple[str, ...] = ("loso", "group-kfold", "stratified", "split", "all", "loco")
"""The protocols `dyser-train --protocol` and `ProtocolSpec.name` take ("all" trains one
model and tests none: `keras_dyconv.experiment.run_experiment` handles it, not `make_folds`)."""


@dataclass(frozen=True)
class ProtocolSpec:
    """Which folds to run: a protocol name and its options."""

    name: str = "loso"
    k: int = 5
    split_file: str | None = None
    val_speakers: int | str = "auto"
    seed: int = 0


def make_folds(
    utts: Sequence[Utterance], spec: ProtocolSpec, per_corpus: bool = False
) -> list[Fold]:
    """The folds of `spec` over `utts` (see `keras_dyconv.protocols`); `per_corpus`: `utts`
    pool several corpora (``dyser-train --target all``), so the speaker-independent
    protocols balance folds by corpus and choose validation speakers within each corpus."""
    if spec.name == "loso":
        return list(
            leave_one_speaker_out(utts, val_speakers=spec.val_speakers, per_corpus=per_corpus)
        )
    if spec.name == "group-kfold":
        return list(
            speaker_group_kfold(utts, spec.k, val_speakers=spec.val_speakers, per_corpus=per_corpus)
        )
    if spec.name == "stratified":
        return list(stratified_kfold(utts, spec.k, seed=spec.seed))
    if spec.name == "split":
        if not spec.split_file:
            raise ValueError("protocol 'split' needs a split file")
        return list(fixed_split(utts, spec.split_file))
    if spec.name == "loco":
        return list(leave_one_corpus_out(utts, val_speakers=spec.val_speakers))
    raise ValueError(f"unknown protocol {spec.name!r}; choose one of {PROTOCOLS}")


class UnknownFoldError(ValueError):
    """`chosen_folds`: a fold asked for by name is not one of the protocol's."""


def chosen_folds(
    utts: Sequence[Utterance],
    protocol: ProtocolSpec,
    only_folds: Sequence[str] | None,
    max_folds: int | None,
    per_corpus: bool = False,
) -> tuple[list[Fold], dict[str, Any] | None]:
    """The folds of `protocol` to run: those named in `only_folds` (all if None; in the
    protocol's order), the first `max_folds` of them (all if None); and, when that is not
    every fold of the protocol, the record of the subset (`subset_record`), else None.
    `per_corpus`: pooled corpora, as `make_folds` takes it.

    Raises:
        UnknownFoldError: a name in `only_folds` is not a fold of the protocol (the
            message lists the protocol's folds).
    """
    folds = make_folds(utts, protocol, per_corpus)
    assert_test_partition(folds, len(utts))
    names = [f.name for f in folds]
    chosen = folds
    if only_folds is not None:
        unknown = [name for name in dict.fromkeys(only_folds) if name not in names]
        if unknown:
            raise UnknownFoldError(
                f"protocol {protocol.name!r} has no fold named {', '.join(unknown)}; "
                f"its folds: {', '.join(names)}"
            )
        chosen = [f for f in folds if f.name in set(only_folds)]
    if max_folds is not None:
        chosen = chosen[:max_folds]
    if len(chosen) == len(folds):
        return chosen, None
    return chosen, subset_record([f.name for f in chosen], len(folds), only_folds, max_folds)


def subset_record(
    ran: Sequence[str],
    n_folds: int,
    only_folds: Sequence[str] | None = None,
    max_folds: int | None = None,
) -> dict[str, Any]:
    """What results.json records of a run over some of its protocol's folds (in
    ``protocol["partial"]``): the folds that ran ("folds_run"), how many the protocol
    has ("n_folds"), and the options that chose them ("only_folds", "max_folds"; None when
    not given)."""
    return {
        "folds_run": list(ran),
        "n_folds": n_folds,
        "only_folds": None if only_folds is None else list(dict.fromkeys(only_folds)),
        "max_folds": max_folds,
    }
