"""Several corpora in one experiment: the common label space, their roles, their statistics.

`multi_corpus` maps several corpora into the common label space of `keras_dyconv.labels`
and splits them into what `keras_dyconv.experiment.run_experiment` takes: the utterances
the protocol's folds are made on, and the extra training utterances. `join_corpora` checks
and joins them for the run, `corpus_record` says what results.json and the saved models
record of the corpora, and `Corpora` is what one fit (`keras_dyconv.training.train_model`)
knows of them: each training utterance's corpus, for the masked loss, the corpus and class
balance and each corpus's own normalisation statistics.

    from keras_dyconv.multicorpus import multi_corpus
    utts, extra = multi_corpus({"emodb": emodb, "ravdess": ravdess}, target="emodb")
    run_experiment(utts, "runs/x", config, recipe, ProtocolSpec("loso"), extra=extra)

With target `POOLED` ("all") every corpus is trained and tested: the protocol's folds are
made on the union of the corpora (all their classes, speakers namespaced by corpus), each
fold validating on speakers of every corpus (`keras_dyconv.protocols`, ``per_corpus``).

    utts, _ = multi_corpus(corpora, target=POOLED)
    run_experiment(utts, "runs/x", config, recipe, ProtocolSpec("loso"), target=POOLED)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from edge_runtime.config import FrontendConfig
from edge_runtime.normalization import with_dataset_stats
from keras_dyconv.corpora import Utterance
from keras_dyconv.labels import (
    COMMON_LABELS,
    CORPUS_LABELS,
    corpus_classes,
    mapping_record,
    to_common,
)
from keras_dyconv.normalization import FeatureSource, load_features
from keras_dyconv.protocols import namespace_speakers

__all__ = [
    "POOLED",
    "Corpora",
    "check_corpus_statistics",
    "check_pooled_protocol",
    "corpus_of",
    "corpus_record",
    "join_corpora",
    "multi_corpus",
]

POOLED = "all"
"""The target that pools every corpus (``dyser-train --target all``): each corpus is both
trained and tested, the folds are made on their union and no corpus is extra."""


def corpus_of(loader: str, utts: Sequence[Utterance]) -> str | None:
    """The label-mapping name (a key of `CORPUS_LABELS`) of a corpus loaded with `loader`:
    the loader's own name, or the one value of a manifest's corpus column; None otherwise."""
    if loader in CORPUS_LABELS:
        return loader
    names = {str(u.extra.get("corpus") or "") for u in utts}
    if loader == "manifest" and len(names) == 1 and next(iter(names)) in CORPUS_LABELS:
        return next(iter(names))
    return None


def multi_corpus(
    corpora: Mapping[str, Sequence[Utterance]], target: str | None
) -> tuple[list[Utterance], list[Utterance]]:
    """Several corpora as `run_experiment`'s `utts` and `extra`, in the common label space.

    Args:
        corpora: corpus name (a key of `keras_dyconv.labels.CORPUS_LABELS`) -> its
            utterances in its own labels, in training order.
        target: the corpus the protocol's folds are made on; `POOLED`: all of them; None:
            protocol "loco" (every corpus is tested in turn, on the classes every corpus has).

    Returns:
        (utts, extra): with a target, its utterances (speaker ids unchanged, so its folds
        are those of a single-corpus run) and the other corpora's, speakers namespaced by
        corpus ("ravdess/01"); for `POOLED`, every corpus's utterances (all their classes),
        namespaced, and no extra; for "loco", every corpus's utterances of the shared
        classes, namespaced, and no extra.

    Raises:
        ValueError: an unknown target, a corpus named like `POOLED`, a label with no common
            name, or (loco) fewer than two corpora or no class that all of them have.
    """
    if POOLED in corpora:
        raise ValueError(f"a corpus cannot be named {POOLED!r}: that target pools every corpus")
    if target is not None and target != POOLED and target not in corpora:
        raise ValueError(f"target corpus {target!r} is not among the corpora {sorted(corpora)}")
    mapped = {name: to_common(utts, name) for name, utts in corpora.items()}
    if target == POOLED:
        return [u for name, us in mapped.items() for u in namespace_speakers(us, name)], []
    if target is not None:
        extra = [
            u for name, us in mapped.items() if name != target for u in namespace_speakers(us, name)
        ]
        return mapped[target], extra
    shared = set(COMMON_LABELS)
    for name, utts in mapped.items():
        shared &= set(corpus_classes(name, {u.extra["original_label"] for u in utts}))
    if not shared:
        raise ValueError(f"the corpora {sorted(corpora)} have no class in common")
    utts = [
        u for name, us in mapped.items() for u in namespace_speakers(us, name) if u.label in shared
    ]
    return utts, []


def check_pooled_protocol(target: str | None, loco: bool) -> None:
    """Refuse target `POOLED` with protocol "loco" (`loco`): ValueError, the one wording
    of that refusal (`dyser-train` shows it for ``--target all --protocol loco``)."""
    if loco and target == POOLED:
        raise ValueError(
            f"target {POOLED!r} pools every corpus in each fold; protocol 'loco' holds out "
            "one corpus per fold instead: choose one of the two"
        )


def join_corpora(
    utts: Sequence[Utterance], extra: Sequence[Utterance], target: str | None, protocol: str
) -> tuple[list[Utterance], str | None, int | None]:
    """`run_experiment`'s utterances: the protocol's `utts`, then the `extra` ones.

    Returns:
        (all utterances, target, n_protocol): for one corpus (no `extra`, protocol not
        "loco", target not `POOLED`) `utts`, `target` unchanged and n_protocol None; for
        several, the target (default: the first utterance's ``extra["corpus"]``; None for
        "loco"; `POOLED` stays) and the number of the protocol's own utterances, which come
        first (pooled: all of them).

    Raises:
        ValueError: naming the file, for an utterance not in the common label space (not
            mapped by `multi_corpus`) or, with extra corpora, one of `utts` not of the
            target; protocol "loco" with target `POOLED`, or `POOLED` with `extra`.
    """
    check_pooled_protocol(target, protocol == "loco")
    if target == POOLED and extra:
        raise ValueError(f"target {POOLED!r} pools every corpus: there are no extra corpora")
    if not extra and protocol != "loco" and target != POOLED:
        return list(utts), target, None
    unmapped = [u.path for u in [*utts, *extra] if "original_label" not in u.extra]
    if unmapped:
        raise ValueError(
            f"{unmapped[0]}: several corpora train in the common label space: map every "
            "corpus with keras_dyconv.multicorpus.multi_corpus first"
        )
    if extra and target is None:
        target = utts[0].extra["corpus"]
    stray = [u.path for u in utts if extra and u.extra["corpus"] != target]
    if stray:
        raise ValueError(f"{stray[0]}: not of the target corpus {target!r}")
    return [*utts, *extra], target, len(utts)


def check_corpus_statistics(target: str | None, corpus_statistics: bool) -> None:
    """Refuse `Recipe.corpus_statistics` for a multi-corpus run without a target corpus
    (`target` None: leave-one-corpus-out, or `POOLED`): the model keeps one corpus's
    normalisation statistics, the target's, and there is none.

    Raises:
        ValueError: `corpus_statistics` with no target.
    """
    if corpus_statistics and target in (None, POOLED):
        raise ValueError(
            "corpus_statistics needs a target corpus (whose statistics the model keeps); "
            f"leave-one-corpus-out and pooled training (target {POOLED!r}) have none"
        )


def corpus_record(
    utts: Sequence[Utterance],
    target: str | None,
    n_protocol: int | None,
    extra_role: str = "extra training",
) -> dict[str, Any]:
    """What results.json and the saved model record of a multi-corpus run: the corpora
    (role, utterances and speakers of each), the target and the label mapping.

    Args:
        utts: every utterance of the run (`join_corpora`), the protocol's first.
        target: the target corpus; `POOLED`: every corpus (role "pooled"); None:
            leave-one-corpus-out.
        n_protocol: how many of `utts` are the protocol's own.
        extra_role: the role of the other corpora: "extra training" (in every fold's
            training part) or "pretraining" (`Recipe.pretrain_extra`).
    """
    corpora: dict[str, dict[str, Any]] = {}
    for i, u in enumerate(utts):
        entry = corpora.setdefault(u.extra["corpus"], {"utterances": 0, "speakers": set()})
        entry["utterances"] += 1
        entry["speakers"].add(u.speaker)
        if target is None:
            entry["role"] = "loco"
        elif target == POOLED:
            entry["role"] = "pooled"
        else:
            entry["role"] = "target" if i < (n_protocol or 0) else extra_role
    return {
        "target_corpus": target,
        "corpora": {
            name: {"role": e["role"], "utterances": e["utterances"], "speakers": len(e["speakers"])}
            for name, e in corpora.items()
        },
        "label_mapping": mapping_record(corpora),
    }


@dataclass(frozen=True)
class Corpora:
    """The corpora of a multi-corpus fit: the target (None: leave-one-corpus-out or pooled,
    every corpus weighs the same), and the corpus of each utterance."""

    target: str | None
    names: list[str]

    @classmethod
    def of_fit(
        cls, target: str | None, names: Sequence[str] | None, n_utterances: int
    ) -> Corpora | None:
        """The corpora of a fit on `n_utterances` utterances from the corpora `names` (one
        per utterance); None for a single-corpus fit (`names` None).

        Raises:
            ValueError: `names` is not one per utterance.
        """
        if names is None:
            return None
        if len(names) != n_utterances:
            raise ValueError(f"{n_utterances} training utterances but {len(names)} corpora")
        return cls(target, list(names))

    def plus(self, names: Sequence[str] | None, n: int) -> Corpora:
        """These corpora followed by those of `n` more utterances: `names`, one per
        utterance (None: all of the target corpus)."""
        extra = list(names) if names is not None else [self.target] * n
        return Corpora(self.target, [*self.names, *extra])

    def statistics(
        self, sources: Sequence[FeatureSource], config: FrontendConfig
    ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Each corpus's dataset statistics (mean, std) over its utterances in `sources`
        (`Recipe.corpus_statistics`)."""
        check_corpus_statistics(self.target, True)
        names = np.asarray(self.names)
        out = {}
        for c in dict.fromkeys(self.names):
            mine = (load_features(sources[i]) for i in np.flatnonzero(names == c))
            stats = with_dataset_stats(config, mine, "dataset")
            out[c] = (np.asarray(stats.mean), np.asarray(stats.std))
        return out

    def masks(self, labels: np.ndarray, num_classes: int) -> np.ndarray:
        """Per utterance, the classes its corpus has among the fit's utterances, bool (n, C)."""
        names = np.asarray(self.names)
        has = {c: np.bincount(labels[names == c], minlength=num_classes) > 0 for c in set(names)}
        return np.stack([has[c] for c in self.names])
