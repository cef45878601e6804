"""Pooled multi-corpus training (`dyser-train --target all`): every corpus trained and tested."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from test_multicorpus import (
    EMODB_EMOTIONS,
    RAVDESS_EMOTIONS,
    TINY,
    _own_corpus,
    spy_losses,
    spy_sequences,
)
from tiny_training import POLICY

from edge_runtime.config import FrontendConfig
from keras_dyconv.cli import train
from keras_dyconv.corpora import Utterance, load_manifest
from keras_dyconv.experiment import ProtocolSpec, run_experiment
from keras_dyconv.folds import make_folds
from keras_dyconv.labels import CORPUS_LABELS
from keras_dyconv.losses import MaskedCrossEntropy
from keras_dyconv.multicorpus import (
    POOLED,
    check_pooled_protocol,
    corpus_record,
    join_corpora,
    multi_corpus,
)
from keras_dyconv.pooling import POOLED_MIN_TRAIN_SPEAKERS
from keras_dyconv.protocols import (
    assert_no_leak,
    assert_test_partition,
    leave_one_speaker_out,
    namespace_speakers,
    speaker_group_kfold,
)

#: Utterances per speaker in the fixtures below: (EmoDB's sizes, CASIA 300, RAVDESS 60).
EMODB_SIZES = {"03": 49, "08": 58, "09": 43, "10": 38, "11": 55, "12": 35, "13": 61, "14": 69,
               "15": 56, "16": 71}  # fmt: skip
EMODB_MALE = {"03", "10", "11", "12", "15"}
CASIA = {"liuchang": "female", "wangzhe": "male", "zhaoquanyin": "female", "ZhaoZuoxiang": "male"}


def _own(corpus: str, speakers: dict[str, str | None], sizes: dict[str, int]) -> list[Utterance]:
    """A corpus in its own labels (each speaker's utterances cycling through its classes)."""
    labels = sorted(CORPUS_LABELS[corpus])
    return [
        Utterance(Path(f"/{corpus}/{s}/{j}.wav"), labels[j % len(labels)], s, g)
        for s, g in speakers.items()
        for j in range(sizes[s])
    ]


def _three(scale: int = 1) -> dict[str, list[Utterance]]:
    """EmoDB (10 speakers), CASIA (4) and RAVDESS (24, odd male) shaped fixtures; `scale`
    divides the utterance counts (at least 8 per speaker)."""
    emodb = {s: "male" if s in EMODB_MALE else "female" for s in EMODB_SIZES}
    ravdess = {f"{i:02d}": "male" if i % 2 else "female" for i in range(1, 25)}
    return {
        "emodb": _own("emodb", emodb, {s: max(8, n // scale) for s, n in EMODB_SIZES.items()}),
        "casia": _own("casia", CASIA, dict.fromkeys(CASIA, max(8, 300 // scale))),
        "ravdess": _own("ravdess", ravdess, dict.fromkeys(ravdess, max(8, 60 // scale))),
    }


@pytest.fixture(scope="module")
def two_corpora(tmp_path_factory):
    """EmoDB (4 speakers, 4 classes) and RAVDESS (3 speakers, 3 classes) shaped manifests."""
    root = tmp_path_factory.mktemp("pooled")
    return {
        "emodb": _own_corpus(root, "emodb", EMODB_EMOTIONS, 4, seed=1),
        "ravdess": _own_corpus(root, "ravdess", RAVDESS_EMOTIONS, 3, seed=2),
    }


def _by_corpus(utts, idx) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for i in idx:
        out.setdefault(utts[i].extra["corpus"], set()).add(utts[i].speaker)
    return out


def test_pooled_union_namespaces_speakers_and_keeps_every_class():
    corpora = _three(scale=4)
    utts, extra = multi_corpus(corpora, POOLED)
    assert extra == [] and len(utts) == sum(len(us) for us in corpora.values())
    assert {u.speaker for u in utts if u.extra["corpus"] == "ravdess"} == {
        f"ravdess/{i:02d}" for i in range(1, 25)
    }
    assert utts[0].speaker == "emodb/03" and utts[0].extra["original_label"] == "anger"
    # Every class of every corpus, not only the shared ones: EmoDB's boredom, RAVDESS's
    # calm, CASIA's and RAVDESS's surprise.
    assert {"boredom", "calm", "surprise", "disgust"} <= {u.label for u in utts}
    joined, target, n_protocol = join_corpora(utts, [], POOLED, "group-kfold")
    assert target == POOLED and n_protocol == len(utts) == len(joined)
    record = corpus_record(joined, target, n_protocol)
    assert record["target_corpus"] == "all"
    assert record["corpora"]["casia"] == {"role": "pooled", "utterances": 300, "speakers": 4}
    assert set(record["label_mapping"]["corpora"]) == {"emodb", "casia", "ravdess"}
    with pytest.raises(ValueError, match="protocol 'loco' holds out one corpus"):
        join_corpora(utts, [], POOLED, "loco")
    with pytest.raises(ValueError, match="no extra corpora"):
        join_corpora(utts[:10], utts[10:], POOLED, "loso")
    with pytest.raises(ValueError, match="cannot be named 'all'"):
        multi_corpus({"all": corpora["emodb"], "casia": corpora["casia"]}, POOLED)


def test_pooled_validation_is_chosen_within_each_corpus():
    """LOSO over EmoDB (10), CASIA (4) and RAVDESS (24) pooled: every fold validates on
    2 EmoDB and 5 RAVDESS speakers, within the test speaker's corpus on exactly the speakers
    a single-corpus run of that corpus picks; CASIA, which would keep 2 or 3 training
    speakers, trains on all of them."""
    corpora = _three(scale=8)
    utts, _ = multi_corpus(corpora, POOLED)
    folds = list(leave_one_speaker_out(utts, per_corpus=True))
    assert len(folds) == 38 and folds[0].name == "loso-casia-ZhaoZuoxiang"
    assert_test_partition(folds, len(utts))
    single = {
        name: {f.name: f for f in leave_one_speaker_out(namespace_speakers(corpora[name], name))}
        for name in corpora
    }
    for fold in folds:
        assert_no_leak(fold, utts)
        val = _by_corpus(utts, fold.val)
        assert {c: len(s) for c, s in val.items()} == {"emodb": 2, "ravdess": 5}
        (test_corpus,) = _by_corpus(utts, fold.test)
        rule = fold.val_rule
        assert rule["rule"] == "auto" and rule["val_speakers"] == 7
        assert rule["candidates"] == 37 and rule["train_speakers"] == 30
        casia = rule["per_corpus"]["casia"]
        assert casia["val_speakers"] == 0 and casia["train_speakers"] == casia["candidates"]
        assert "all 3" in casia["description"] or "all 4" in casia["description"]
        if test_corpus == "casia":
            continue
        alone = single[test_corpus][fold.name]
        own = namespace_speakers(corpora[test_corpus], test_corpus)
        assert val[test_corpus] == {own[i].speaker for i in alone.val}
        assert rule["per_corpus"][test_corpus] == alone.val_rule
        # RAVDESS's genders are known: female and male alternate.
        genders = Counter(utts[i].gender for i in fold.val if utts[i].extra["corpus"] == "ravdess")
        assert sorted(genders.values()) == [2 * 8, 3 * 8]
    # A number is per corpus, and never more than a corpus's training keeps.
    fixed = next(leave_one_speaker_out(utts, val_speakers=1, per_corpus=True))
    assert {c: len(s) for c, s in _by_corpus(utts, fixed.val).items()} == {
        "emodb": 1,
        "casia": 1,
        "ravdess": 1,
    }
    assert fixed.val_rule["rule"] == "fixed"
    with pytest.raises(ValueError, match=r"fold loso-casia-ZhaoZuoxiang: corpus casia: 2 valid"):
        list(leave_one_speaker_out(utts, val_speakers=2, per_corpus=True))
    # One corpus: per corpus is the single-corpus choice.
    emodb = utts[: len(corpora["emodb"])]
    for a, b in zip(
        leave_one_speaker_out(emodb), leave_one_speaker_out(emodb, per_corpus=True), strict=True
    ):
        assert a.val.tolist() == b.val.tolist() and a.train.tolist() == b.train.tolist()
        assert b.val_rule["per_corpus"]["emodb"] == a.val_rule
    # Speakers not namespaced, one id in two corpora: refused, not tested as one speaker.
    shared = [*emodb, dataclasses.replace(utts[-1], speaker=emodb[0].speaker)]
    with pytest.raises(ValueError, match=r"is in corpora 'emodb' and 'ravdess': namespace"):
        list(leave_one_speaker_out(shared, per_corpus=True))


def test_pooled_small_corpora_validate_only_when_no_larger_one_can():
    """The pooled exception to "auto": a corpus that would keep fewer than
    `POOLED_MIN_TRAIN_SPEAKERS` training speakers trains on all of them only while another
    corpus validates; two 4-speaker corpora pooled each validate as they would alone."""
    small = _three(scale=8)["casia"]
    utts = [
        dataclasses.replace(u, speaker=f"{name}/{u.speaker}", extra={"corpus": name})
        for name in ("casia", "twin")
        for u in small
    ]
    assert 4 - 1 < POOLED_MIN_TRAIN_SPEAKERS
    for fold in leave_one_speaker_out(utts, per_corpus=True):
        assert {c: len(s) for c, s in _by_corpus(utts, fold.val).items()} == {"casia": 1, "twin": 1}
        assert fold.val_rule["val_speakers"] == 2 and fold.val_rule["rule"] == "auto"


def test_leave_one_corpus_out_validates_within_each_training_corpus():
    """LOCO over EmoDB (10), CASIA (4) and RAVDESS (24): each fold's validation is chosen
    within each training corpus as the pooled folds choose it, so no corpus gives most of
    its speakers to validation (formerly, over all training speakers in sorted order, the
    RAVDESS fold validated on 3 of CASIA's 4 speakers and the EmoDB fold on no CASIA one);
    CASIA, which would keep 3, trains on all 4 while another corpus validates."""
    utts, _ = multi_corpus(_three(scale=8), None)
    n_speakers = {c: len(s) for c, s in _by_corpus(utts, range(len(utts))).items()}
    assert n_speakers == {"emodb": 10, "casia": 4, "ravdess": 24}
    folds = make_folds(utts, ProtocolSpec("loco", val_speakers="auto"))
    assert [f.name for f in folds] == ["corpus-emodb", "corpus-casia", "corpus-ravdess"]
    assert_test_partition(folds, len(utts))
    pooled = {f.name: f for f in leave_one_speaker_out(utts, per_corpus=True)}
    auto = {"emodb": 2, "casia": 0, "ravdess": 5}  # a fifth of 10 and 24; CASIA keeps all 4
    for fold in folds:
        assert_no_leak(fold, utts)
        (test_corpus,) = _by_corpus(utts, fold.test)
        training = [c for c in n_speakers if c != test_corpus]
        val, train = _by_corpus(utts, fold.val), _by_corpus(utts, fold.train)
        assert {c: len(s) for c, s in val.items()} == {c: auto[c] for c in training if auto[c]}
        for c in training:
            assert len(train[c]) == n_speakers[c] - auto[c] >= len(val.get(c, ()))
            # Female and male alternate within the corpus.
            genders = Counter(
                next(u.gender for u in utts if u.speaker == s) for s in val.get(c, ())
            )
            assert max(genders.values(), default=0) - min(genders.values(), default=0) <= 1
            assert len(genders) == min(2, auto[c])
        # The pooled rule's picks: a pooled LOSO fold testing a speaker of the held-out
        # corpus validates on the same speakers of the other corpora.
        other = pooled[f"loso-{min(s for s in _by_corpus(utts, fold.test)[test_corpus])}"
                       .replace("/", "-")]  # fmt: skip
        assert {c: s for c, s in _by_corpus(utts, other.val).items() if c != test_corpus} == val
        rule = fold.val_rule
        assert list(rule["per_corpus"]) == training and rule["rule"] == "auto"
        assert rule["val_speakers"] == sum(auto[c] for c in training)
        assert rule["candidates"] == sum(n_speakers[c] for c in training)
        assert all(other.val_rule["per_corpus"][c] == rule["per_corpus"][c] for c in training)
    # A number is per training corpus, never more than that corpus's training keeps.
    fixed = make_folds(utts, ProtocolSpec("loco", val_speakers=2))
    for fold in fixed:
        assert all(len(s) == 2 for s in _by_corpus(utts, fold.val).values())
        assert fold.val_rule["rule"] == "fixed" and len(fold.val_rule["per_corpus"]) == 2
    with pytest.raises(ValueError, match=r"fold corpus-emodb: corpus casia: 3 validation"):
        make_folds(utts, ProtocolSpec("loco", val_speakers=3))
    # 0 (leave_one_corpus_out's default): no validation.
    assert all(f.val.size == 0 for f in make_folds(utts, ProtocolSpec("loco", val_speakers=0)))


def test_pooled_group_kfold_balances_corpora_then_genders():
    corpora = _three()
    utts, _ = multi_corpus(corpora, POOLED)
    folds = make_folds(utts, ProtocolSpec("group-kfold", k=4), per_corpus=True)
    assert_test_partition(folds, len(utts))
    emodb_sizes = []
    for fold in folds:
        assert_no_leak(fold, utts)
        test = _by_corpus(utts, fold.test)
        assert len(test["casia"]) == 1 and len(test["ravdess"]) == 6
        assert len(test["emodb"]) in (2, 3)
        ravdess = Counter(utts[i].gender for i in fold.test if utts[i].extra["corpus"] == "ravdess")
        assert ravdess == {"female": 3 * 60, "male": 3 * 60}
        emodb_sizes.append(sum(utts[i].extra["corpus"] == "emodb" for i in fold.test))
        # Validation: a fifth of EmoDB's and RAVDESS's training speakers; CASIA trains on
        # all 3 of its own.
        val = {c: len(s) for c, s in _by_corpus(utts, fold.val).items()}
        assert val == {"emodb": round(0.2 * (10 - len(test["emodb"]))), "ravdess": 4}
        assert len(_by_corpus(utts, fold.train)["casia"]) == 3
    assert max(emodb_sizes) - min(emodb_sizes) <= 71
    # Balanced by utterances and gender alone (the single-corpus rule), a fold would hold
    # 1 EmoDB and 7 RAVDESS speakers.
    plain = [_by_corpus(utts, f.test) for f in speaker_group_kfold(utts, 4)]
    assert sorted(len(t["emodb"]) for t in plain) == [1, 3, 3, 3]


def test_pooled_run_masks_each_corpus_and_ignores_pretrain_extra(
    two_corpora, tmp_path, monkeypatch
):
    sequences = spy_sequences(monkeypatch)
    losses = spy_losses(monkeypatch)
    corpora = {name: load_manifest(path) for name, path in two_corpora.items()}
    utts, extra = multi_corpus(corpora, POOLED)
    messages: list[str] = []
    recipe = dataclasses.replace(TINY, epochs=1, pretrain_extra=True)
    results = run_experiment(
        utts,
        tmp_path / "run",
        FrontendConfig(top_db=None),
        recipe,
        ProtocolSpec("group-kfold", k=2),
        policy=POLICY,
        max_folds=1,
        verbose=0,
        log=messages.append,
        extra=extra,
        target=POOLED,
    )
    # pretrain_extra: nothing to pretrain on, the folds train from scratch as without it.
    assert any("nothing to pretrain on" in m and "'all'" in m for m in messages)
    assert "pretraining" not in results
    assert len(losses) == 1 and isinstance(losses[0], MaskedCrossEntropy)
    (data,) = sequences
    labels = results["labels"]
    assert labels == ["anger", "boredom", "happiness", "neutral", "sadness"]
    (fold,) = results["folds"]
    train_corpora = [
        u.extra["corpus"]
        for u in utts
        if u.speaker not in fold["test_speakers"] + fold["val_speakers"]
    ]
    assert len(train_corpora) == fold["n_train"] == len(data.masks)
    for corpus, mask in zip(train_corpora, data.masks.astype(bool), strict=True):
        has = {"emodb": {"boredom"}, "ravdess": {"happiness"}}
        # Each corpus's own classes; the other corpus's class is never its negative.
        assert mask[labels.index("anger")] and mask[labels.index("neutral")]
        assert mask[labels.index("boredom")] == ("boredom" in has[corpus])
        assert mask[labels.index("happiness")] == ("happiness" in has[corpus])
    # Every corpus weighs the same (no target): each corpus's weights sum to the same.
    weights = data.sample_weights
    names = np.array(train_corpora)
    np.testing.assert_allclose(weights[names == "emodb"].sum(), weights[names == "ravdess"].sum())
    # Validation: speakers of both corpora; test: both corpora, each scored on its own.
    assert {s.split("/")[0] for s in fold["val_speakers"]} == {"emodb", "ravdess"}
    assert set(results["corpus_scores"]) == {"emodb", "ravdess"}
    assert set(fold["val_rule"]["per_corpus"]) == {"emodb", "ravdess"}


def test_dyser_train_target_all(two_corpora, tmp_path):
    runner = CliRunner()
    pairs = ["--corpus", "manifest", "--data", str(two_corpora["emodb"])]
    pairs += ["--corpus", "manifest", "--data", str(two_corpora["ravdess"])]
    tiny = ["--recipe", "fast", "--epochs", "1", "--window", "1.0", "--quiet"]
    tiny += ["--model", '{"conv_filters": [4], "lstm_units": 8, "attention_units": 8}']
    out = tmp_path / "pooled"
    args = [*pairs, "--target", "all", "--protocol", "group-kfold", "--folds", "2"]
    result = runner.invoke(train, [*args, "--out", str(out), *tiny])
    assert result.exit_code == 0, result.output
    run = json.loads((out / "results.json").read_text())
    assert run["target_corpus"] == "all"
    assert run["corpora"] == {
        "emodb": {"role": "pooled", "utterances": 32, "speakers": 4},
        "ravdess": {"role": "pooled", "utterances": 18, "speakers": 3},
    }
    assert run["labels"] == ["anger", "boredom", "happiness", "neutral", "sadness"]
    assert run["label_mapping"]["corpora"]["ravdess"]["mapping"]["happy"] == "happiness"
    assert run["pooled"]["n"] == 50 and len(run["folds"]) == 2
    for fold in run["folds"]:  # each fold tests speakers of both corpora
        assert {s.split("/")[0] for s in fold["test_speakers"]} == {"emodb", "ravdess"}
        assert fold["val_rule"]["per_corpus"]["emodb"]["val_speakers"] == 1
    scores = run["corpus_scores"]
    assert scores["emodb"]["common"]["n"] == 32 and scores["ravdess"]["own"]["n"] == 18
    assert scores["ravdess"]["own"]["labels"] == ["angry", "happy", "neutral", "sad"]
    # Own labels: the corpus's classes (its label table) that the model has.
    assert scores["emodb"]["own"]["labels"] == run["labels"]
    for corpus in ("emodb", "ravdess"):
        for space in ("common", "own"):
            summary = scores[corpus][space]
            for metric in ("wa", "ua", "macro_f1"):
                low, high = summary["ci95"][metric]
                assert 0.0 <= low <= summary[metric] <= high <= 1.0, (corpus, space, metric)
    # In its own label set a corpus's score is never below the common one's WA: the
    # arg-max over its own classes only can only turn errors into hits.
    assert scores["emodb"]["own"]["wa"] >= scores["emodb"]["common"]["wa"]
    # Protocol "all": one model, validation speakers of every corpus.
    out = tmp_path / "pooled-all"
    result = runner.invoke(
        train, [*pairs, "--target", "all", "--protocol", "all", "--out", str(out), *tiny]
    )
    assert result.exit_code == 0, result.output
    run = json.loads((out / "results.json").read_text())
    assert {s.split("/")[0] for s in run["val_speakers"]} == {"emodb", "ravdess"}
    assert run["corpora"]["ravdess"]["role"] == "pooled" and (out / "model.keras").is_file()


def test_dyser_train_target_all_only_folds(two_corpora, tmp_path):
    """--only-folds with --target all: the folds are those of the pooled union (validation
    speakers within each corpus), the one named runs alone, an unknown name lists them."""
    corpora = {name: load_manifest(path) for name, path in two_corpora.items()}
    utts, _ = multi_corpus(corpora, POOLED)
    folds = make_folds(utts, ProtocolSpec("group-kfold", k=2), per_corpus=True)
    runner = CliRunner()
    args = ["--corpus", "manifest", "--data", str(two_corpora["emodb"])]
    args += ["--corpus", "manifest", "--data", str(two_corpora["ravdess"])]
    args += ["--target", "all", "--protocol", "group-kfold", "--folds", "2", "--recipe", "fast"]
    args += ["--epochs", "1", "--window", "1.0", "--quiet"]
    args += ["--model", '{"conv_filters": [4], "lstm_units": 8, "attention_units": 8}']
    out = tmp_path / "second"
    result = runner.invoke(train, [*args, "--out", str(out), "--only-folds", folds[1].name])
    assert result.exit_code == 0, result.output
    run = json.loads((out / "results.json").read_text())
    assert run["protocol"]["partial"]["folds_run"] == [folds[1].name]
    (fold,) = run["folds"]
    assert fold["fold"] == folds[1].name
    assert set(fold["val_rule"]["per_corpus"]) == {"emodb", "ravdess"}
    assert sorted(fold["test_speakers"]) == sorted({utts[i].speaker for i in folds[1].test})
    assert sorted(fold["val_speakers"]) == sorted({utts[i].speaker for i in folds[1].val})
    assert set(run["corpus_scores"]) == {"emodb", "ravdess"}
    bad = runner.invoke(train, [*args, "--out", str(tmp_path / "bad"), "--only-folds", "x-9"])
    assert bad.exit_code == 2 and "no fold named x-9" in bad.output, bad.output
    assert folds[0].name in bad.output and not (tmp_path / "bad" / "results.json").exists()


def test_dyser_train_target_all_errors(two_corpora, tmp_path):
    runner = CliRunner()
    pairs = ["--corpus", "manifest", "--data", str(two_corpora["emodb"])]
    pairs += ["--corpus", "manifest", "--data", str(two_corpora["ravdess"])]
    out = ["--out", str(tmp_path / "bad")]
    # The refusal of --protocol loco with --target all: the library's wording, word for word.
    with pytest.raises(ValueError) as loco_refusal:
        check_pooled_protocol(POOLED, loco=True)
    check_pooled_protocol(POOLED, loco=False)
    check_pooled_protocol("emodb", loco=True)
    for bad_args, message in [
        ([*pairs, "--target", "all", "--protocol", "loco"], str(loco_refusal.value)),
        ([*pairs[:4], "--target", "all"], "needs several corpora"),
    ]:
        bad = runner.invoke(train, [*bad_args, *out])
        shown = " ".join(bad.output.split())
        assert bad.exit_code == 2 and " ".join(message.split()) in shown, (bad_args, bad.output)
    bad = runner.invoke(
        train,
        [*pairs, "--target", "all", "--normalization", "dataset", "--corpus-statistics", *out],
    )
    assert bad.exit_code == 1 and "pooled training (target 'all') have none" in bad.output
    assert not (tmp_path / "bad" / "results.json").exists()


SHARED = Path("/work/shared/datasets")


@pytest.mark.slow
@pytest.mark.skipif(
    not all((SHARED / c).is_dir() for c in ("emodb", "casia", "ravdess")),
    reason="the shared corpora are not at /work/shared/datasets",
)
def test_real_corpora_pooled_four_folds():
    from keras_dyconv.corpora import load_corpus

    corpora = {c: load_corpus(c, SHARED / c) for c in ("emodb", "casia", "ravdess")}
    utts, _ = multi_corpus(corpora, POOLED)
    assert len(utts) == 535 + 1200 + 1440
    folds = make_folds(utts, ProtocolSpec("group-kfold", k=4), per_corpus=True)
    assert_test_partition(folds, len(utts))
    for fold in folds:
        assert_no_leak(fold, utts)
        test = {c: len(s) for c, s in _by_corpus(utts, fold.test).items()}
        assert test["casia"] == 1 and test["ravdess"] == 6 and test["emodb"] in (2, 3)
        assert {c: len(s) for c, s in _by_corpus(utts, fold.val).items()} == {
            "emodb": 1 if test["emodb"] == 3 else 2,
            "ravdess": 4,
        }
    # Protocol "all": EmoDB validates on the speakers its single-corpus model did (08, 10).
    first = next(leave_one_speaker_out(utts, per_corpus=True))
    assert {utts[i].speaker for i in first.val if utts[i].extra["corpus"] == "emodb"} == {
        "emodb/08",
        "emodb/10",
    }
