"""Evaluation protocols: train / validation / test index splits over a list of `Utterance`.

Speaker-independent protocols (`leave_one_speaker_out`, `speaker_group_kfold`) never let a
test speaker's voice into training or validation; validation is carved out of the training
part only, as held-out training speakers, never more of them than training keeps. How many:
`val_speakers="auto"` (the default, `auto_val_speakers`: a fifth of the fold's training
speakers, rounded, at least 1 and at most half: 1 of 3 on CASIA, 2 of 9 on EmoDB, 4 of 20 in
RAVDESS's 6 folds) or an explicit number; each fold records the decision in
`Fold.val_rule`. That rule lives in `keras_dyconv.validation_speakers` (its names for
setting it are re-exported here). With several corpora pooled (``per_corpus=True``,
``dyser-train --target all``) and in `leave_one_corpus_out` (over its training corpora) the
rule is applied within each corpus and the picks joined, and `speaker_group_kfold` (pooled)
balances its folds by corpus first (`keras_dyconv.pooling`). `stratified_kfold` is
speaker-DEPENDENT (the same speakers in train and test, as many papers report) and its folds
say so. Guards against the known traps of published SER code: `assert_no_leak` (call it on
every fold before training) and `assert_test_partition` (every utterance tested exactly
once).
"""

from __future__ import annotations

import csv
import dataclasses
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from keras_dyconv.corpora import Utterance
from keras_dyconv.pooling import deal_per_corpus, per_corpus_validation, utterance_corpora
from keras_dyconv.validation_speakers import (
    AUTO_VAL_FRACTION,
    ValSpeakers,
    auto_val_speakers,
    fold_validation,
    parse_val_speakers,
    speaker_genders,
    validation_rule,
)

__all__ = [
    "AUTO_VAL_FRACTION",
    "Fold",
    "LeakageError",
    "ValSpeakers",
    "add_training",
    "assert_no_leak",
    "assert_test_partition",
    "auto_val_speakers",
    "fixed_split",
    "leave_one_corpus_out",
    "leave_one_speaker_out",
    "namespace_speakers",
    "parse_val_speakers",
    "speaker_group_kfold",
    "stratified_kfold",
    "validation_rule",
]


class LeakageError(ValueError):
    """A fold lets test (or validation) material into training."""


@dataclass(frozen=True, eq=False)
class Fold:
    """One split: index arrays (int64, sorted) into the utterance list.

    Attributes:
        name: e.g. "loso-03", "session-Ses01", "stratified-2of5".
        train, val, test: disjoint index arrays; val may be empty.
        speaker_independent: no speaker is shared between test and train/val (nor between
            val and train); False for speaker-dependent protocols.
        group: the unit kept apart between test and training, "speaker", "session" or
            "corpus".
        val_rule: how validation was chosen, JSON-ready for results.json: for held-out
            speakers `validation_rule`'s dict (rule "auto" or "fixed", the numbers of
            training-speaker candidates, validation and training speakers, a description).
    """

    name: str
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    speaker_independent: bool
    group: str = "speaker"
    val_rule: dict[str, Any] = field(default_factory=dict)


def _index(mask_or_list) -> np.ndarray:
    return np.sort(np.asarray(mask_or_list, dtype=np.int64).reshape(-1))


def _holdout_fold(
    name: str,
    utts: Sequence[Utterance],
    test_units: set[str],
    unit_of: np.ndarray,
    val_speakers: ValSpeakers,
    group: str,
    per_corpus: bool = False,
) -> Fold:
    """Test = utterances whose unit is in `test_units`; val = held-out training speakers
    (`per_corpus`: chosen within each corpus, `per_corpus_validation`)."""
    speakers = np.array([u.speaker for u in utts])
    is_test = np.isin(unit_of, sorted(test_units))
    try:
        if per_corpus:
            val, rule = per_corpus_validation(utts, speakers, is_test, val_speakers)
        else:
            val, rule = fold_validation(utts, speakers, is_test, val_speakers)
    except ValueError as err:
        raise ValueError(f"fold {name}: {err}") from None
    is_val = ~is_test & np.isin(speakers, val)
    return Fold(
        name=name,
        train=_index(np.flatnonzero(~is_test & ~is_val)),
        val=_index(np.flatnonzero(is_val)),
        test=_index(np.flatnonzero(is_test)),
        speaker_independent=True,
        group=group,
        val_rule=rule,
    )


def _check_speakers(utts: Sequence[Utterance]) -> None:
    if not utts:
        raise ValueError("no utterances")
    if any(u.speaker == "unknown" for u in utts):
        raise ValueError(
            "speaker-independent protocols need speakers, but some utterances have speaker "
            "'unknown'; load the corpus from a manifest with a speaker column"
        )


def leave_one_speaker_out(
    utts: Sequence[Utterance], val_speakers: ValSpeakers = "auto", per_corpus: bool = False
) -> Iterator[Fold]:
    """Leave-one-speaker-out (LOSO): one fold per speaker (sorted), that speaker as test.

    Validation = `val_speakers` other speakers taken out of training ("auto":
    `auto_val_speakers`, e.g. 1 with 4 speakers, 2 with 10; a number: exactly that many,
    never more than training keeps). With genders known: alternately the test speaker's
    successor within its gender (sorted, cyclic) and the other gender's speaker of the same
    rank (with 2: one female and one male); otherwise the next speakers after the test
    speaker in sorted order. Speaker-independent.

    With `per_corpus` (several corpora pooled, speakers namespaced, each utterance's corpus
    in ``extra["corpus"]``) this choice is made within each corpus and the picks joined: a
    number `val_speakers` is then per corpus, and a corpus without the test speaker anchors
    its choice at its first speaker (sorted). Fold names replace the namespace's "/" by "-"
    ("loso-ravdess-01"), so that they name folders.

    Raises:
        ValueError: a fixed `val_speakers` larger than the training speakers it leaves.
    """
    _check_speakers(utts)
    speakers = np.array([u.speaker for u in utts])
    for s in sorted(set(speakers)):
        yield _holdout_fold(
            f"loso-{_fold_part(s)}", utts, {s}, speakers, val_speakers, "speaker", per_corpus
        )


def _fold_part(unit: str) -> str:
    """`unit` (a speaker or session id) as part of a fold name: a namespaced id's "/" (which
    would nest folders where the fold's files go) becomes "-"."""
    return unit.replace(SPEAKER_NAMESPACE, "-")


#: Joins a corpus name and a speaker id in `namespace_speakers` ("ravdess/01").
SPEAKER_NAMESPACE = "/"


def namespace_speakers(utts: Sequence[Utterance], corpus: str) -> list[Utterance]:
    """`utts` with each speaker id prefixed by `corpus` ("01" -> "ravdess/01"): speaker ids
    are unique within a corpus only, so pooled corpora name theirs this way before any
    protocol or leakage check compares speakers across corpora."""
    prefix = f"{corpus}{SPEAKER_NAMESPACE}"
    return [dataclasses.replace(u, speaker=prefix + u.speaker) for u in utts]


def leave_one_corpus_out(
    utts: Sequence[Utterance], val_speakers: ValSpeakers = 0
) -> Iterator[Fold]:
    """Leave-one-corpus-out (cross-corpus): one fold per corpus (in order of first
    appearance), that corpus's utterances as test and the other corpora's as training.

    Each utterance's corpus is its ``extra["corpus"]`` (`keras_dyconv.labels.to_common` sets
    it); speaker ids must not repeat across corpora (`namespace_speakers`). Validation:
    held-out speakers chosen within each training corpus and joined, as the pooled
    protocols do (``per_corpus=True``, `keras_dyconv.pooling.per_corpus_validation`):
    "auto" takes a fifth of each training corpus's speakers (at least 1, never more than
    that corpus's training keeps, female and male alternately when genders are known,
    anchored at the corpus's first speaker; a corpus that would keep fewer than
    `keras_dyconv.pooling.POOLED_MIN_TRAIN_SPEAKERS` trains on all of its speakers while
    another validates), a number that many per training corpus (default 0, none). So every
    training corpus keeps training speakers; `Fold.val_rule` records each corpus's choice
    under "per_corpus".
    Speaker-independent, group "corpus".

    Raises:
        ValueError: an utterance without a corpus, fewer than two corpora, or a speaker id
            shared by two corpora.
    """
    _check_speakers(utts)
    corpus_of = utterance_corpora(utts, "leave-one-corpus-out", [u.speaker for u in utts])
    corpora = list(dict.fromkeys(corpus_of.tolist()))
    if len(corpora) < 2:
        raise ValueError(f"leave-one-corpus-out needs two corpora or more, got {corpora}")
    for c in corpora:
        yield _holdout_fold(
            f"corpus-{c}", utts, {c}, corpus_of, val_speakers, "corpus", per_corpus=True
        )


def speaker_group_kfold(
    utts: Sequence[Utterance],
    k: int,
    group: str = "speaker",
    val_speakers: ValSpeakers = "auto",
    per_corpus: bool = False,
) -> Iterator[Fold]:
    """k folds of whole groups (speakers, or sessions as for IEMOCAP's leave-one-session-out).

    Groups are dealt to folds largest first (groups of equal size in sorted order), each to
    the fold with the fewest utterances so far (ties: lower fold index): deterministic and
    balanced. With group="speaker" and every speaker's gender known, the folds are balanced
    by gender first: a speaker goes to a fold with the fewest speakers of its gender so far,
    and among those to the one with the fewest utterances, so the folds' counts of each
    gender differ by at most one (RAVDESS, k=6: every fold 2 female + 2 male actors).
    Validation = held-out training speakers as in `leave_one_speaker_out` (with
    group="session" they come from training sessions; the other speakers of their sessions
    stay in training, which only affects early stopping). Speaker-independent.

    With `per_corpus` (several corpora pooled, as for `leave_one_speaker_out`) the folds are
    balanced by corpus first: a group goes to a fold with the fewest groups of its corpus
    so far, then (genders known within its corpus) the fewest of its corpus and gender,
    then the fewest utterances of its corpus, then the fewest in all; each fold holds out
    speakers of every corpus that has k speakers or more. Validation is chosen per corpus.

    Raises:
        ValueError: k < 2 or more than the number of groups; a speaker in two groups
            (sessions), which would leak that speaker into training.
    """
    _check_speakers(utts)
    if group not in ("speaker", "session"):
        raise ValueError(f"group must be 'speaker' or 'session', got {group!r}")
    if group == "session":
        no_session = [u.path for u in utts if u.session is None]
        if no_session:
            raise ValueError(f"group='session' needs sessions; {no_session[0]} has none")
        sessions_of: dict[str, set[str]] = {}
        for u in utts:
            sessions_of.setdefault(u.speaker, set()).add(str(u.session))
        shared = {s: sorted(v) for s, v in sessions_of.items() if len(v) > 1}
        if shared:
            raise ValueError(f"speakers appear in several sessions, folds would leak: {shared}")
    unit_of = np.array([u.speaker if group == "speaker" else str(u.session) for u in utts])
    units, sizes = np.unique(unit_of, return_counts=True)
    if not 2 <= k <= len(units):
        raise ValueError(f"k must be in [2, {len(units)}] (the number of {group}s), got {k}")
    folds = (
        deal_per_corpus(utts, unit_of, units, sizes, k)
        if per_corpus
        else _deal(utts, units, sizes, k, group)
    )
    for j, members in enumerate(folds):
        name = f"{group}-{_fold_part(members[0])}" if len(members) == 1 else f"{group}-{j + 1}of{k}"
        yield _holdout_fold(name, utts, set(members), unit_of, val_speakers, group, per_corpus)


def _deal(
    utts: Sequence[Utterance], units: np.ndarray, sizes: np.ndarray, k: int, group: str
) -> list[list[str]]:
    """`speaker_group_kfold`'s groups dealt to k folds: largest first, to the fold with the
    fewest groups of its gender (speakers, genders known), then the fewest utterances."""
    genders = speaker_genders(utts) if group == "speaker" else {}
    by_gender = bool(genders) and all(g is not None for g in genders.values())
    folds: list[list[str]] = [[] for _ in range(k)]
    load = np.zeros(k, dtype=np.int64)
    for i in sorted(range(len(units)), key=lambda i: (-sizes[i], units[i])):
        gender = genders.get(str(units[i])) if by_gender else None
        same = [sum(genders[m] == gender for m in members) if by_gender else 0 for members in folds]
        j = min(range(k), key=lambda j: (same[j], load[j], j))
        folds[j].append(str(units[i]))
        load[j] += sizes[i]
    return folds


def _stratified_parts(labels: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Fold number per utterance: each class shuffled and dealt round-robin."""
    part = np.empty(len(labels), dtype=np.int64)
    offset = 0
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        # Continue the deal where the previous class stopped, so fold sizes stay even.
        part[idx] = (offset + np.arange(len(idx))) % k
        offset += len(idx)
    return part


def stratified_kfold(
    utts: Sequence[Utterance], k: int = 5, seed: int = 0, val_fraction: float = 0.1
) -> Iterator[Fold]:
    """Stratified k-fold over utterances: SPEAKER-DEPENDENT.

    The same speakers occur in training and test, so the numbers are higher than
    speaker-independent ones and do not measure generalisation to new voices; many SER
    papers report this protocol, so it is here for comparison, and every fold has
    ``speaker_independent=False``. Validation is a stratified `val_fraction` of each fold's
    training part (at least one utterance of each class with 2 or more training utterances).
    """
    if not utts:
        raise ValueError("no utterances")
    labels = np.array([u.label for u in utts])
    smallest = min(np.unique(labels, return_counts=True)[1])
    if not 2 <= k <= smallest:
        raise ValueError(f"k must be in [2, {smallest}] (the smallest class size), got {k}")
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    rng = np.random.default_rng(seed)
    part = _stratified_parts(labels, k, rng)
    for j in range(k):
        train = np.flatnonzero(part != j)
        val = []
        if val_fraction > 0:
            for c in np.unique(labels[train]):
                idx = rng.permutation(train[labels[train] == c])
                if len(idx) >= 2:
                    val += idx[: max(1, round(val_fraction * len(idx)))].tolist()
        yield Fold(
            name=f"stratified-{j + 1}of{k}",
            train=_index(np.setdiff1d(train, val)),
            val=_index(val),
            test=_index(np.flatnonzero(part == j)),
            speaker_independent=False,
            val_rule={
                "rule": "stratified-fraction",
                "val_fraction": val_fraction,
                "description": f"a stratified {val_fraction:g} of the training utterances "
                "(speaker-dependent)",
            },
        )


def fixed_split(utts: Sequence[Utterance], split_file: str | os.PathLike) -> Iterator[Fold]:
    """One fold from a CSV file with header ``path,split`` (split: train, val or test).

    Relative paths are relative to the split file's folder. Every utterance must be listed
    once and every listed path must be an utterance. The fold is marked speaker-independent
    when the test speakers appear in neither train nor val and no val speaker in train.
    """
    split_file = Path(split_file)
    if not split_file.is_file():
        raise ValueError(f"{split_file}: split file not found")
    where_of = {os.path.normpath(Path(u.path).resolve()): i for i, u in enumerate(utts)}
    part = np.full(len(utts), "", dtype=object)
    with open(split_file, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if not {"path", "split"} <= set(reader.fieldnames or []):
            raise ValueError(
                f"{split_file}:1: expected a header with columns path,split, "
                f"found {reader.fieldnames}"
            )
        for row in reader:
            where = f"{split_file}:{reader.line_num}"
            split = (row["split"] or "").strip()
            if split not in ("train", "val", "test"):
                raise ValueError(f"{where}: split must be train, val or test, got {split!r}")
            path = Path((row["path"] or "").strip())
            path = path if path.is_absolute() else split_file.parent / path
            i = where_of.get(os.path.normpath(path.resolve()))
            if i is None:
                raise ValueError(f"{where}: {row['path']} is not one of the utterances")
            if part[i]:
                raise ValueError(f"{where}: {row['path']} is listed twice")
            part[i] = split
    unlisted = [str(utts[i].path) for i in np.flatnonzero(part == "")]
    if unlisted:
        raise ValueError(
            f"{split_file}: {len(unlisted)} utterance(s) are not listed, e.g. {unlisted[0]}"
        )
    if not np.any(part == "test") or not np.any(part == "train"):
        raise ValueError(f"{split_file}: needs at least one train and one test utterance")
    speakers = np.array([u.speaker for u in utts])
    sets = {s: set(speakers[part == s]) for s in ("train", "val", "test")}
    independent = (
        "unknown" not in sets["test"]
        and not sets["test"] & (sets["train"] | sets["val"])
        and not sets["val"] & sets["train"]
    )
    yield Fold(
        name=f"fixed-{split_file.stem}",
        train=_index(np.flatnonzero(part == "train")),
        val=_index(np.flatnonzero(part == "val")),
        test=_index(np.flatnonzero(part == "test")),
        speaker_independent=bool(independent),
        val_rule={
            "rule": "split-file",
            "val_speakers": len(sets["val"]),
            "description": f"the utterances {split_file.name} marks val",
        },
    )


def assert_no_leak(fold: Fold, utts: Sequence[Utterance]) -> None:
    """Raise `LeakageError` when `fold` leaks; call it before training on every fold.

    Checks: indices are integers in range without repeats; train, val and test share no
    index and no audio file (the same path listed twice); train and test are not empty;
    and for a speaker-independent fold, no test speaker in train or val, no val speaker in
    train, and (group="session") no test session in train or val.
    """
    n = len(utts)
    parts = {"train": fold.train, "val": fold.val, "test": fold.test}
    for name, idx in parts.items():
        idx = np.asarray(idx)
        if idx.ndim != 1 or (idx.size and not np.issubdtype(idx.dtype, np.integer)):
            raise LeakageError(f"{fold.name}: {name} must be a 1-D integer index array")
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            raise LeakageError(f"{fold.name}: {name} indices outside [0, {n})")
        if len(np.unique(idx)) != idx.size:
            raise LeakageError(f"{fold.name}: {name} repeats utterances")
    if not fold.train.size or not fold.test.size:
        raise LeakageError(f"{fold.name}: train and test must not be empty")

    def attr(idx: np.ndarray, key: str) -> set[str]:
        return {str(getattr(utts[i], key)) for i in idx}

    pairs = [("train", "val"), ("train", "test"), ("val", "test")]
    for a, b in pairs:
        shared = np.intersect1d(parts[a], parts[b])
        if shared.size:
            raise LeakageError(f"{fold.name}: {a} and {b} share utterances {shared[:5].tolist()}")
        files = {os.path.normpath(p) for p in attr(parts[a], "path")} & {
            os.path.normpath(p) for p in attr(parts[b], "path")
        }
        if files:
            raise LeakageError(f"{fold.name}: {a} and {b} share audio files {sorted(files)[:3]}")
    if not fold.speaker_independent:
        return
    for a, b in pairs:
        shared = attr(parts[a], "speaker") & attr(parts[b], "speaker")
        if shared:
            raise LeakageError(f"{fold.name}: speakers {sorted(shared)} are in both {a} and {b}")
    if fold.group == "session":
        shared = attr(parts["test"], "session") & (
            attr(parts["train"], "session") | attr(parts["val"], "session")
        )
        if shared:
            raise LeakageError(f"{fold.name}: test sessions {sorted(shared)} also in training")
    if fold.group == "corpus":
        corpora = [{str(utts[i].extra.get("corpus")) for i in parts[k]} for k in parts]
        shared = corpora[2] & (corpora[0] | corpora[1])
        if shared:
            raise LeakageError(f"{fold.name}: test corpora {sorted(shared)} also in training")


def add_training(fold: Fold, extra: Sequence[int]) -> Fold:
    """`fold` with the utterances at `extra` (e.g. extra training corpora, appended after
    the fold's own corpus) added to its training part, never to validation or test.

    Raises:
        LeakageError: an index of `extra` is already in the fold's train, val or test part.
    """
    extra = _index(extra)
    for name, idx in (("train", fold.train), ("val", fold.val), ("test", fold.test)):
        shared = np.intersect1d(extra, idx)
        if shared.size:
            raise LeakageError(
                f"{fold.name}: extra training utterances {shared[:5].tolist()} are in {name}"
            )
    return dataclasses.replace(fold, train=_index(np.concatenate([fold.train, extra])))


def assert_test_partition(folds: Sequence[Fold], n_utterances: int) -> None:
    """Raise `LeakageError` unless the folds' test sets together hold every utterance once."""
    tests = np.concatenate([np.asarray(f.test, dtype=np.int64) for f in folds] or [[]])
    outside = tests[(tests < 0) | (tests >= n_utterances)]
    counts = np.bincount(tests[(tests >= 0) & (tests < n_utterances)], minlength=n_utterances)
    if outside.size or np.any(counts != 1):
        never, twice = np.flatnonzero(counts == 0), np.flatnonzero(counts > 1)
        raise LeakageError(
            f"test sets do not partition the {n_utterances} utterances: "
            f"{len(never)} never tested (e.g. {never[:5].tolist()}), "
            f"{len(twice)} tested more than once (e.g. {twice[:5].tolist()}), "
            f"{outside.size} indices out of range"
        )
