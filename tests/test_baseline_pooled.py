"""The eGeMAPS + linear SVM floor of the pooled multi-corpus protocol (`dyser-train --target
all`): the same folds as the neural run, one SVM over the common classes, each corpus scored
in its own label set, and the tables that read it against the neural pooled run."""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from keras_dyconv import baseline, egemaps
from keras_dyconv.corpora import Utterance
from keras_dyconv.labels import COMMON_LABELS, class_mask, corpus_classes, original_label

pytest.importorskip("sklearn")

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

CORPORA = ("emodb", "casia", "ravdess")
SPEAKERS = {"emodb": 5, "casia": 4, "ravdess": 8}
SHARED = Path("/work/shared/datasets")


# ------------------------------------------------------------------------ restricted_scores


def _fitted(n_classes: int, seed: int = 0):
    """`fit_svm` on 4 speakers x 6 noisy utterances per class (88 features), and its data."""
    rng = np.random.default_rng(seed)
    y = np.tile(np.repeat(np.arange(n_classes), 6), 4)
    groups = np.repeat([f"s{k}" for k in range(4)], 6 * n_classes)
    x = rng.normal(0, 1, (len(y), egemaps.N_FEATURES)) + 0.8 * y[:, None] * (
        rng.random(egemaps.N_FEATURES) > 0.5
    )
    return baseline.fit_svm(x, y, groups, c_grid=(0.1,)), x


def test_restricted_scores_with_every_class_are_sklearns_decision_function():
    model, x = _fitted(5)
    scores = baseline.restricted_scores(model, x, np.ones(5, dtype=bool))
    ovr = copy.deepcopy(model.pipeline)
    ovr[-1].set_params(decision_function_shape="ovr")
    np.testing.assert_allclose(scores, ovr.decision_function(x), atol=1e-12)
    np.testing.assert_array_equal(scores.argmax(axis=1), model.predict(x))
    # Two classes: one column, the same rule.
    binary, xb = _fitted(2, seed=1)
    both = baseline.restricted_scores(binary, xb, np.ones(2, dtype=bool))
    np.testing.assert_array_equal(both.argmax(axis=1), binary.predict(xb))


def test_restricted_scores_count_only_the_allowed_pairs():
    """Among classes {0, 2, 3}: the votes and confidences of the 3 classifiers between
    them alone, as scikit-learn combines them for a 3-class SVM; other classes -inf."""
    from sklearn.utils.multiclass import _ovr_decision_function

    model, x = _fitted(5)
    allowed = np.array([True, False, True, True, False])
    scores = baseline.restricted_scores(model, x, allowed)
    assert np.all(np.isneginf(scores[:, ~allowed]))
    pairs = [(i, j) for i in range(5) for j in range(i + 1, 5)]
    dec = model.pipeline.decision_function(x)  # one-vs-one, pairs in this order
    sub = dec[:, [pairs.index(p) for p in [(0, 2), (0, 3), (2, 3)]]]
    np.testing.assert_allclose(scores[:, allowed], _ovr_decision_function(sub < 0, -sub, 3))
    # Per row: each row its own classes.
    rows = np.array([[True, True, False, False, False], [False, False, False, True, True]])
    two = baseline.restricted_scores(model, x[:2], rows)
    assert two[0].argmax() in (0, 1) and two[1].argmax() in (3, 4)
    first_pair = 0 if dec[0, pairs.index((0, 1))] >= 0 else 1
    assert two[0].argmax() == first_pair


# ---------------------------------------------------------------------- fake pooled corpora


def _fake_corpora() -> tuple[dict[str, list[Utterance]], dict[str, np.ndarray]]:
    """Three corpora in their own label names, speakers "00".. in each (unique only per
    corpus), two utterances per speaker and class, features shifted per common class and
    per corpus (so per-corpus normalisation matters)."""
    rng = np.random.default_rng(3)
    corpora, feats = {}, {}
    for c, corpus in enumerate(CORPORA):
        utts = []
        for s in range(SPEAKERS[corpus]):
            gender = "female" if s % 2 else "male"
            for common in corpus_classes(corpus):
                k = COMMON_LABELS.index(common)
                for r in range(2):
                    path = Path(f"/{corpus}/{s:02d}/{common}/{r}.wav")
                    label = original_label(corpus, common)
                    utts.append(
                        Utterance(path=path, label=label, speaker=f"{s:02d}", gender=gender)
                    )
                    shift = np.zeros(egemaps.N_FEATURES)
                    shift[k * 4 : k * 4 + 4] = 3.0
                    feats[str(path)] = rng.normal(5.0 * c, 1.0, egemaps.N_FEATURES) + shift
        corpora[corpus] = utts
    return corpora, feats


@pytest.fixture
def fake(monkeypatch):
    import bench_baseline

    corpora, feats = _fake_corpora()
    monkeypatch.setattr(bench_baseline, "load", lambda corpus: corpora[corpus])
    monkeypatch.setattr(
        egemaps,
        "extract_egemaps",
        lambda paths, **kw: np.array([feats[str(p)] for p in paths], np.float32),
    )
    return corpora


def test_pooled_folds_are_those_of_the_neural_pooled_run(fake):
    """The bench's folds are `dyser-train --target all`'s: same test (and validation)
    speakers, fold by fold, as `run_experiment` plans them for the same corpora."""
    import bench_baseline

    from keras_dyconv.experiment import _planned_folds
    from keras_dyconv.multicorpus import POOLED, join_corpora, multi_corpus

    utts, folds, spec = bench_baseline.pooled_folds("pooled-group4")
    assert (spec.name, spec.k) == ("group-kfold", 4)
    neural_utts, target, n = join_corpora(*multi_corpus(fake, POOLED), POOLED, spec.name)
    neural, _ = _planned_folds(neural_utts, n, target, spec, None, None)
    assert [u.path for u in utts] == [u.path for u in neural_utts]

    def speakers(fs, part):
        return [(f.name, sorted({utts[i].speaker for i in getattr(f, part)})) for f in fs]

    assert len(folds) == 4
    for part in ("test", "val", "train"):
        assert speakers(folds, part) == speakers(neural, part)
    for fold in folds:  # balanced by corpus: every corpus tested in every fold
        assert {utts[i].extra["corpus"] for i in fold.test} == set(CORPORA)


def _neural_run(svm: dict) -> dict:
    """A pooled neural results.json on the SVM's folds: right on every utterance except
    EmoDB's first (calm in the common space, fear among EmoDB's own classes)."""
    from keras_dyconv.results import corpus_scores

    labels = svm["labels"]
    folds = []
    for r in svm["folds"]:
        preds = []
        for p in r["predictions"]:
            prob = np.full(len(labels), 0.01)
            prob[labels.index(p["label"])] = 0.5
            preds.append({**p, "probabilities": prob.tolist()})
        folds.append({**r, "seed": 0, "seconds": 60.0, "predictions": preds})
    wrong = folds[0]["predictions"][0]
    assert wrong["corpus"] == "emodb"
    wrong["probabilities"] = [0.01] * len(labels)
    wrong["probabilities"][labels.index("calm")] = 0.9  # not EmoDB's: own arg-max next
    wrong["probabilities"][labels.index("fear")] = 0.5
    return {
        "protocol": {**svm["protocol"], "speaker_independent": True},
        "target_corpus": "all",
        "labels": labels,
        "seeds": [0],
        "recipe": {"name": "default"},
        "corpora": {c: {**e, "role": "pooled"} for c, e in svm["corpora"].items()},
        "folds": folds,
        "folds_run": len(folds),
        "corpus_scores": corpus_scores(folds, labels),
    }


def test_pooled_svm_scored_per_corpus_and_read_against_the_neural_run(fake, tmp_path, monkeypatch):
    import bench_baseline
    import bench_multicorpus
    import multicorpus_pooled
    import multicorpus_scores

    from keras_dyconv.labels import score_both

    runs = bench_baseline.run_pooled("pooled-group4", workers=1, neural_dir=tmp_path)
    assert [r["normalization"] for r in runs] == list(bench_baseline.POOLED_NORMALIZATIONS)
    for r in runs:
        assert r["labels"] == sorted({c for k in CORPORA for c in corpus_classes(k)})
        assert r["folds_run"] == 4 and r["speaker_independent"]
        assert r["corpora"] == {
            c: {"utterances": 2 * SPEAKERS[c] * len(corpus_classes(c)), "speakers": SPEAKERS[c]}
            for c in CORPORA
        }
        for fold in r["folds"]:
            assert not set(fold["test_speakers"]) & set(fold["train_speakers"])
            # Trained on every corpus's training speakers.
            assert {s.split("/")[0] for s in fold["train_speakers"]} == set(CORPORA)
        for corpus in CORPORA:
            preds = [p for f in r["folds"] for p in f["predictions"] if p["corpus"] == corpus]
            assert len(preds) == r["corpora"][corpus]["utterances"]
            lacks = ~class_mask(corpus, r["labels"])
            for p in preds:
                assert [v is None for v in p["scores_own"]] == lacks.tolist()
                assert None not in p["scores"]
            own = r["corpus_scores"][corpus]["own"]
            assert own["labels"] == sorted(
                original_label(corpus, c) for c in corpus_classes(corpus)
            )
            assert own["n"] == len(preds) and set(own["ci95"]) == {"wa", "ua", "macro_f1"}
            # "own": votes among the corpus's classes only, scored by score_both.
            rows = baseline.score_rows(preds, "scores_own")
            again = score_both(rows, r["labels"], [p["original_label"] for p in preds], corpus)
            assert again["own"]["ua"] == own["ua"]
            # "common": the SVM's prediction (most votes), vote ties broken by confidence.
            predicted = np.array([r["labels"].index(p["predicted"]) for p in preds])
            full = baseline.score_rows(preds, "scores")
            votes = np.round(full)
            tied = votes[np.arange(len(preds)), predicted] == votes.max(axis=1)
            assert np.all(tied) and np.all((full.argmax(1) == predicted) | tied)
        # Easy fake data: far above chance in every corpus.
        assert all(s["own"]["ua"] > 0.8 for s in r["corpus_scores"].values())

    # Saved, a neural pooled run on the same folds is recognised as such.
    neural = _neural_run(runs[0])
    (tmp_path / "multicorpus").mkdir()
    (tmp_path / "multicorpus" / "pooled-group-kfold-seed0.json").write_text(json.dumps(neural))
    again = bench_baseline.run_pooled("pooled-group4", workers=1, neural_dir=tmp_path)
    assert again[0]["neural_same_folds"] == ["multicorpus/pooled-group-kfold-seed0.json"]
    assert again[0]["corpus_scores"] == runs[0]["corpus_scores"]  # deterministic

    # The baseline section renders the pooled table.
    body = bench_baseline.render_body(runs, tmp_path)
    assert "**Pooled** (pooled-group4): EmoDB, CASIA, RAVDESS trained and tested" in body
    emodb = runs[0]["corpus_scores"]["emodb"]["own"]
    row = next(line for line in body.splitlines() if line.startswith("| EmoDB | 70 | 7 |"))
    assert f"{100 * emodb['ua']:.1f} [{100 * emodb['ci95']['ua'][0]:.1f}" in row

    # The multi-corpus section: the SVM next to the neural pooled run, paired per corpus.
    svm_dir = tmp_path / "baseline"
    for r in runs:
        bench_baseline.save(r, svm_dir)
    monkeypatch.setattr(multicorpus_scores, "SVM", svm_dir)
    text = bench_multicorpus.render(tmp_path / "multicorpus")
    assert "(docs/results/baseline/pooled-group4-corpus.json, pooled-group4-speaker.json," in text
    for corpus in CORPORA:
        row = next(line for line in text.splitlines() if line.startswith(f"| {corpus} | "))
        cells = []
        for svm in runs:  # per-corpus z, then per-speaker z
            svm_own = svm["corpus_scores"][corpus]["own"]
            neural_ua = neural["corpus_scores"][corpus]["own"]["ua"]
            d, (lo, hi) = multicorpus_pooled.pooled_paired(neural, svm, corpus)
            assert d == pytest.approx(neural_ua - svm_own["ua"])
            assert lo <= d <= hi
            ua_lo, ua_hi = svm_own["ci95"]["ua"]
            cells.append(
                f"{100 * svm_own['wa']:.1f} / {100 * svm_own['ua']:.1f} "
                f"[{100 * ua_lo:.1f}, {100 * ua_hi:.1f}]; "
                f"{100 * d:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}]"
            )
        assert row.endswith(f"| {cells[0]} | {cells[1]} |")
    # The neural run got EmoDB's first utterance wrong in its own labels (fear), nothing else.
    assert neural["corpus_scores"]["emodb"]["own"]["ua"] < 1.0
    assert neural["corpus_scores"]["casia"]["own"]["ua"] == 1.0

    # An SVM on other folds or classes is not paired with the run.
    moved = copy.deepcopy(runs[0])
    moved["folds"][0]["test_speakers"] = moved["folds"][1]["test_speakers"]
    for r in (moved, {**runs[1], "labels": runs[1]["labels"][:-1]}):
        bench_baseline.save(r, svm_dir)
    assert multicorpus_pooled._pooled_svms(neural) == {}
    row = next(
        line
        for line in bench_multicorpus.render(tmp_path / "multicorpus").splitlines()
        if line.startswith("| emodb | ")
    )
    assert row.endswith("| - | - |")


def test_pooled_svm_refuses_folds_other_than_the_neural_runs(fake, tmp_path):
    """A saved pooled neural run of the same protocol that tested other speakers in a fold
    stops the job before any SVM is fitted; one of another protocol is not compared."""
    import bench_baseline

    utts, folds, _ = bench_baseline.pooled_folds("pooled-group4")
    records = [
        {"fold": f.name, "seed": 0, "test_speakers": sorted({utts[i].speaker for i in f.test})}
        for f in folds
    ]
    swapped = copy.deepcopy(records)
    swapped[2]["test_speakers"][0], swapped[3]["test_speakers"][0] = (
        records[3]["test_speakers"][0],
        records[2]["test_speakers"][0],
    )
    (tmp_path / "multicorpus").mkdir()
    run = {"protocol": {"name": "group-kfold", "k": 4}, "folds": swapped}
    (tmp_path / "multicorpus" / "pooled-group-kfold-seed0.json").write_text(json.dumps(run))
    other = {"protocol": {"name": "group-kfold", "k": 6}, "folds": records[:1]}
    (tmp_path / "multicorpus" / "pooled-group-kfold6-seed0.json").write_text(json.dumps(other))

    def no_fit(*args, **kwargs):
        raise AssertionError("fitted before checking the folds")

    with pytest.MonkeyPatch.context() as m:
        m.setattr(baseline, "run_baseline", no_fit)
        m.setattr(egemaps, "extract_egemaps", no_fit)
        with pytest.raises(
            ValueError,
            match=r"multicorpus/pooled-group-kfold-seed0\.json: the SVM's folds are not the "
            r"neural run's: fold speaker-3of4 tests",
        ):
            bench_baseline.run_pooled("pooled-group4", workers=1, neural_dir=tmp_path)
    # Only its own folds compared: the same records pass, and a missing fold is named.
    bench_baseline.assert_same_test_speakers(records, {"folds": records}, "x")
    with pytest.raises(ValueError, match=r"x: .* fold speaker-4of4 tests .* and nobody there"):
        bench_baseline.assert_same_test_speakers(records, {"folds": records[:3]}, "x")


@pytest.mark.slow
@pytest.mark.skipif(
    not all((SHARED / c).is_dir() for c in CORPORA), reason="the shared corpora are absent"
)
def test_real_pooled_folds_test_the_committed_neural_runs_speakers(monkeypatch):
    """On the shared corpora, the bench's 4 folds test exactly the speakers the committed
    pooled neural run (seed 0) tested, fold by fold, and so does the committed SVM."""
    import bench_baseline

    monkeypatch.setattr(bench_baseline, "DATASETS", SHARED)
    utts, folds, _ = bench_baseline.pooled_folds("pooled-group4")
    results = bench_baseline.ROOT / "docs" / "results"
    neural = json.loads((results / "multicorpus" / "pooled-group-kfold-seed0.json").read_text())
    records = [
        {"fold": f.name, "test_speakers": sorted({utts[i].speaker for i in f.test})} for f in folds
    ]
    bench_baseline.assert_same_test_speakers(records, neural, "pooled-group-kfold-seed0.json")
    for norm in bench_baseline.POOLED_NORMALIZATIONS:
        path = bench_baseline.RESULTS / f"pooled-group4-{norm}.json"
        svm = json.loads(path.read_text())
        bench_baseline.assert_same_test_speakers(records, svm, path.name)
        assert svm["neural_same_folds"] == ["multicorpus/pooled-group-kfold-seed0.json"]
