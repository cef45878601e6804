"""Training on several corpora: the masked loss, leave-one-corpus-out, target-corpus folds
with extra training corpora, and what results.json and the model record of it."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest

from keras_dyconv.corpora import Utterance
from keras_dyconv.losses import MaskedCrossEntropy, masked_accuracy, with_mask
from keras_dyconv.protocols import (
    LeakageError,
    assert_no_leak,
    leave_one_corpus_out,
    namespace_speakers,
)


def _loss(y_true, y_pred, **kwargs) -> np.ndarray:
    loss = MaskedCrossEntropy(reduction=None, **kwargs)
    return keras.ops.convert_to_numpy(
        loss(keras.ops.convert_to_tensor(y_true), keras.ops.convert_to_tensor(y_pred))
    )


@pytest.mark.backends
def test_masked_cross_entropy_renormalises_over_the_corpus_classes():
    p = np.array([[0.5, 0.3, 0.2], [0.1, 0.6, 0.3]], np.float32)
    onehot = np.array([[1, 0, 0], [0, 0, 1]], np.float32)
    masks = np.array([[1, 0, 1], [0, 1, 1]], np.float32)
    # -log(p_y / sum_{c in C} p_c), by hand: 0.5 / (0.5 + 0.2) and 0.3 / (0.6 + 0.3).
    expected = [-math.log(0.5 / 0.7), -math.log(0.3 / 0.9)]
    np.testing.assert_allclose(_loss(with_mask(onehot, masks), p), expected, rtol=1e-5)
    # An all-ones mask is the plain categorical cross-entropy.
    full = _loss(with_mask(onehot, np.ones_like(masks)), p)
    np.testing.assert_allclose(full, [-math.log(0.5), -math.log(0.3)], rtol=1e-5)
    # Label smoothing spreads over the corpus's 2 classes only: targets (0.9, 0, 0.1).
    smoothed = _loss(with_mask(onehot[:1], masks[:1]), p[:1], label_smoothing=0.2)
    by_hand = -(0.9 * math.log(0.5 / 0.7) + 0.1 * math.log(0.2 / 0.7))
    np.testing.assert_allclose(smoothed, [by_hand], rtol=1e-5)
    # The accuracy takes the arg-max over the corpus's classes: sample 2 predicts class 1,
    # right for its corpus; sample 1's best allowed class is 0 (0.3 at class 1 is masked).
    acc = masked_accuracy(keras.ops.convert_to_tensor(with_mask(onehot, masks)), p)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(acc), [1.0, 0.0])


@pytest.mark.backends
def test_a_class_the_corpus_lacks_is_not_taught_as_a_negative():
    """With a softmax output, the masked loss does not depend on a masked class's logit
    (so its gradient there is 0); the plain cross-entropy pushes that logit down."""
    y_true = with_mask(np.array([[1, 0, 0]]), np.array([[1, 1, 0]]))
    losses = []
    for z2 in (-3.0, 0.0, 4.0):
        p = keras.ops.softmax(keras.ops.convert_to_tensor([[1.0, 0.5, z2]]))
        losses.append(float(_loss(y_true, p)[0]))
    np.testing.assert_allclose(losses, losses[0], rtol=1e-5)
    np.testing.assert_allclose(losses[0], -math.log(math.exp(1) / (math.exp(1) + math.exp(0.5))))
    with pytest.raises(ValueError, match="shape"):
        with_mask(np.ones((2, 3)), np.ones((2, 4)))


def _utts(corpus: str, speakers: list[str], n: int = 2) -> list[Utterance]:
    return [
        Utterance(f"/{corpus}/{s}_{k}.wav", "anger", s, extra={"corpus": corpus})
        for s in speakers
        for k in range(n)
    ]


def test_leave_one_corpus_out_folds_and_leak_checks():
    utts = [
        *namespace_speakers(_utts("emodb", ["03", "08"]), "emodb"),
        *namespace_speakers(_utts("ravdess", ["03", "04", "05"]), "ravdess"),
    ]
    assert utts[0].speaker == "emodb/03" and utts[4].speaker == "ravdess/03"
    folds = list(leave_one_corpus_out(utts))
    assert [f.name for f in folds] == ["corpus-emodb", "corpus-ravdess"]
    assert folds[0].test.tolist() == [0, 1, 2, 3] and folds[0].train.tolist() == [4, 5, 6, 7, 8, 9]
    assert folds[0].val.size == 0 and folds[0].group == "corpus"
    for fold in folds:
        assert_no_leak(fold, utts)
    # Validation speakers come from the training corpora only.
    (first, second) = leave_one_corpus_out(utts, val_speakers=1)
    assert {utts[i].extra["corpus"] for i in first.val} == {"ravdess"} and first.val.size == 2
    assert {utts[i].extra["corpus"] for i in second.val} == {"emodb"}
    # A test corpus in training is a leak even when its speakers are renamed.
    renamed = [*utts[:4], *[u for u in utts[4:]]]
    renamed[5] = Utterance("/x.wav", "anger", "other", extra={"corpus": "emodb"})
    with pytest.raises(LeakageError, match="test corpora"):
        assert_no_leak(folds[0], renamed)
    with pytest.raises(ValueError, match="namespace"):
        list(leave_one_corpus_out([*_utts("emodb", ["03"]), *_utts("ravdess", ["03"])]))
    with pytest.raises(ValueError, match="two corpora"):
        list(leave_one_corpus_out(_utts("emodb", ["03", "08"])))
