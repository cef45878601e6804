"""Scoring a saved model on a corpus (`dyser-eval`), across label sets.

A model trained on one corpus (or several) and a corpus it is tested on may name their
classes differently (EmoDB "anger", CASIA "angry") and have different class sets (CASIA has
surprise, EmoDB boredom). Both are mapped into the common label space of
`keras_dyconv.labels`, and the model is scored on the classes they share:

- **common**: the arg-max over every class of the model, named in common names; predicting
  a class the corpus does not have counts as an error. This is the headline score.
- **own**: for a corpus with a label mapping (`keras_dyconv.labels.CORPUS_LABELS`), the
  arg-max over the shared classes only, named as the corpus names them
  (`keras_dyconv.labels.score_both`): comparable with single-corpus results on it.

Utterances of classes the model cannot output are not scored, and are counted by class
(`LabelMatch.not_in_model`); the model's classes the corpus lacks are listed
(`LabelMatch.not_in_corpus`). A label with no common name (a manifest's own classes) is
matched by its name: a model scored on the corpus it was trained on gives the same numbers
as before the mapping.

A model with normalization "stream" adapts online to each speaker: each speaker's utterances
are one stream, heard in a random order per speaker (`seed`; `stream_order`), as
`dyser-train` scores its headline (`keras_dyconv.scoring`), or in corpus order on request.

    from keras_dyconv.evaluation import evaluate_model
    model, metadata = load_model("runs/x/model.keras")
    report = evaluate_model(model, metadata, load_corpus("casia", root), "casia")
    report["wa"], report["own"]["ua"], report["not_in_model"]
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from keras_dyconv.corpora import Utterance
from keras_dyconv.labels import (
    COMMON_LABELS,
    CORPUS_LABELS,
    common_label,
    corpus_classes,
    score_both,
)
from keras_dyconv.metrics import summarize
from keras_dyconv.normalization import stream_order
from keras_dyconv.results import CORPUS_ORDER

if TYPE_CHECKING:
    import keras

    from edge_runtime.metadata import ModelMetadata

__all__ = ["LabelMatch", "evaluate_model", "label_key", "match_labels", "score"]


def _any_corpus_name(label: str) -> str | None:
    """The common name of `label` if it is a common name, or every corpus that has it maps
    it to the same one; None otherwise."""
    if label in COMMON_LABELS:
        return label
    names = {table[label] for table in CORPUS_LABELS.values() if label in table}
    return names.pop() if len(names) == 1 else None


def label_key(label: str, corpus: str | None = None) -> str:
    """The name `label` is matched by: its common name in `corpus` (or, without a corpus or
    when `corpus` lacks it, in any corpus that has it), else `label` itself."""
    if corpus is not None and label in CORPUS_LABELS.get(corpus, {}):
        return common_label(corpus, label)
    return _any_corpus_name(label) or label


@dataclass(frozen=True)
class LabelMatch:
    """How a model's classes and a corpus's utterances meet (`match_labels`).

    Attributes:
        space: the model's classes in output order, each by its `label_key` (its common
            name where it has one).
        corpus: the corpus's label-mapping name, or None.
        scored: indices of the utterances of a class the model can output.
        y: class index into `space` of each scored utterance.
        own_labels: each scored utterance's label as the corpus names it.
        not_in_model: class (its key) -> number of utterances not scored because the model
            cannot output it.
        not_in_corpus: the model's classes (keys) the corpus does not have.
    """

    space: list[str]
    corpus: str | None
    scored: list[int]
    y: np.ndarray
    own_labels: list[str]
    not_in_model: dict[str, int]
    not_in_corpus: list[str]


def match_labels(
    model_labels: Sequence[str], utts: Sequence[Utterance], corpus: str | None
) -> LabelMatch:
    """Map the model's classes and the utterances' labels into the common label space.

    Args:
        model_labels: the model's class names in output order (its metadata's labels).
        utts: the corpus's utterances, in its own labels.
        corpus: the corpus's label-mapping name (`keras_dyconv.multicorpus.corpus_of`);
            None: labels are matched by common name where they have one, else by name.
    """
    space = [label_key(m) for m in model_labels]
    index = {k: i for i, k in enumerate(space)}
    if len(index) != len(space):
        raise ValueError(f"the model's classes {list(model_labels)} name one class twice")
    keys = [label_key(u.label, corpus) for u in utts]
    scored = [i for i, k in enumerate(keys) if k in index]
    missing = Counter(k for k in keys if k not in index)
    has = set(corpus_classes(corpus)) if corpus is not None else set(keys)
    return LabelMatch(
        space=space,
        corpus=corpus,
        scored=scored,
        y=np.array([index[keys[i]] for i in scored], dtype=np.int64),
        own_labels=[utts[i].label for i in scored],
        not_in_model=dict(sorted(missing.items())),
        not_in_corpus=[k for k in space if k not in has],
    )


def score(match: LabelMatch, probabilities: np.ndarray) -> dict[str, Any]:
    """Score the scored utterances of `match` from the model's class probabilities.

    Args:
        probabilities: shape (len(match.scored), len(match.space)).

    Returns:
        The "common" `summarize` dict (`keras_dyconv.metrics`) with "skipped_unknown_labels"
        (utterances not scored), "not_in_model", "not_in_corpus" and, for a corpus with a
        label mapping whose shared classes all have common names, "own": the score in the
        corpus's own label set.
    """
    p = np.asarray(probabilities)
    table = CORPUS_LABELS.get(match.corpus or "", {})
    if set(match.space) <= set(COMMON_LABELS) and set(match.own_labels) <= set(table):
        both = score_both(p, match.space, match.own_labels, match.corpus)
        summary, own = both["common"], both["own"]
    else:
        summary, own = summarize(match.y, p.argmax(axis=1), match.space), None
    summary["skipped_unknown_labels"] = sum(match.not_in_model.values())
    summary["not_in_model"] = match.not_in_model
    summary["not_in_corpus"] = match.not_in_corpus
    if own is not None:
        summary["own"] = own
    return summary


def evaluate_model(
    model: keras.Model,
    metadata: ModelMetadata,
    utts: Sequence[Utterance],
    corpus: str | None,
    cache_dir: str | os.PathLike | None = None,
    seed: int | None = 0,
) -> dict[str, Any]:
    """Score a saved model (`keras_dyconv.modelio.load_model`'s model and metadata) on
    `utts`, with its own frontend, normalisation statistics, labels and windows (`score`;
    "model_labels" and "corpus" added). With `cache_dir` the features are memory-mapped
    from the cache's files.

    With normalization "stream" each speaker's utterances are one stream, online: in the
    random order ``stream_order(speakers, np.random.default_rng(seed))`` of the scored
    utterances (each speaker's utterances shuffled among the positions they hold; a fold
    model from `dyser-train` gives its fold's "predicted" with the fold's training seed on
    exactly that fold's test utterances), or with `seed` None in the order of `utts` (corpus
    order: emotion-blocked in corpora that list a speaker's files by emotion).
    "online_order" in the report says which. Other normalizations ignore `seed`.

    Raises:
        ValueError: no utterance is of a class the model can output, or an audio file that
            cannot be read (naming it).
    """
    from keras_dyconv.features import extract_corpus
    from keras_dyconv.scoring import predict_in_order

    match = match_labels(metadata.labels, utts, corpus)
    if not match.scored:
        raise ValueError(
            f"no utterances with labels the model knows ({metadata.labels}); the corpus has "
            f"{sorted(match.not_in_model)}"
        )
    known = [utts[i] for i in match.scored]
    raw = metadata.frontend.unnormalized()
    feats = extract_corpus(
        [u.path for u in known], raw, cache_dir=cache_dir, as_paths=cache_dir is not None
    )
    speakers = [u.speaker for u in known]
    stream = metadata.frontend.normalization == "stream"
    rng = np.random.default_rng(seed) if stream and seed is not None else None
    order = stream_order(speakers, rng)
    probs = predict_in_order(model, feats, metadata.frontend, metadata.window, speakers, order)
    report = {**score(match, probs), "model_labels": list(metadata.labels), "corpus": corpus}
    if stream:
        report["online_order"] = f"random per speaker, seed {seed}" if rng else CORPUS_ORDER
    return report
