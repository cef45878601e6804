"""bench/bench_multicorpus.py (with bench/multicorpus_scores.py, multicorpus_loco.py and
multicorpus_pooled.py) renders a saved multi-corpus run against its references."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import bench_multicorpus
import multicorpus_loco
import multicorpus_pooled
import multicorpus_scores

from keras_dyconv.labels import score_both
from keras_dyconv.results import ONLINE_ORDER, corpus_scores

LABELS = ["anger", "calm", "neutral", "sadness"]  # the common space; EmoDB lacks calm


def _metrics(true, pred, labels):
    cm = np.zeros((len(labels), len(labels)), int)
    for t, p in zip(true, pred, strict=True):
        cm[t, p] += 1
    recall = np.diag(cm) / cm.sum(1)
    return {"wa": np.trace(cm) / cm.sum(), "ua": recall.mean(), "confusion": cm.tolist()}


def _fold(name, true, scores):
    """A multi-corpus fold record: EmoDB utterances of classes `true` (own names) and the
    model's probabilities over `LABELS`."""
    return {
        "fold": name,
        "seed": 0,
        "seconds": 60.0,
        "best_epoch": 3,
        "predictions": [
            {"corpus": "emodb", "original_label": t, "probabilities": p}
            for t, p in zip(true, scores, strict=True)
        ],
    }


@pytest.fixture
def saved(tmp_path, monkeypatch):
    # Fold a: "calm" wins the common arg-max of the 2nd utterance, "neutral" its own one.
    a = _fold(
        "loso-03",
        ["anger", "neutral", "sadness"],
        [[0.7, 0.1, 0.1, 0.1], [0.1, 0.6, 0.2, 0.1], [0.1, 0.1, 0.1, 0.7]],
    )
    b = _fold(
        "loso-08", ["anger", "neutral", "sadness"], [[0.4, 0, 0.5, 0.1], [0, 0, 1, 0], [0, 0, 0, 1]]
    )
    run = {
        "target_corpus": "emodb",
        "labels": LABELS,
        "seeds": [0],
        "recipe": {"name": "default", "pretrain_extra": True},
        "corpora": {"emodb": {"role": "target"}, "ravdess": {"role": "extra training"}},
        "folds": [a, b],
        "pooled": {"wa": 4 / 6, "ua": 0.5},
        "timings": {"total_s": 600.0},
        "pretraining": {
            "seeds": {
                "0": {
                    "seconds": 480.0,
                    "n_train": 100,
                    "n_val": 20,
                    "train_speakers": ["ravdess/01", "ravdess/02"],
                    "val_speakers": ["ravdess/03"],
                    "best_epoch": 7,
                    "epochs_run": 20,
                }
            }
        },
    }
    runs = tmp_path / "multicorpus"
    runs.mkdir()
    (runs / "emodb-loso-pretrain.json").write_text(json.dumps(run))
    own = ["anger", "neutral", "sadness"]
    ref = {
        "folds": [
            {"fold": "loso-03", "seed": 0, "metrics": _metrics([0, 1, 2], [0, 0, 2], own)},
            {"fold": "loso-08", "seed": 0, "metrics": _metrics([0, 1, 2], [0, 1, 2], own)},
        ]
    }
    (tmp_path / "emodb-loso-default.json").write_text(json.dumps(ref))
    monkeypatch.setattr(bench_multicorpus, "NEURAL", tmp_path)
    monkeypatch.setattr(multicorpus_scores, "SVM", tmp_path / "none")  # no SVM saved
    return runs


def test_scored_in_the_target_labels_against_the_single_corpus_run(saved):
    folds = multicorpus_scores.own_scores(
        json.loads((saved / "emodb-loso-pretrain.json").read_text())
    )
    # Own labels: fold a all right (calm is not EmoDB's), fold b 2 of 3 right.
    assert [f["metrics"]["wa"] for f in folds] == pytest.approx([1.0, 2 / 3])
    body = bench_multicorpus.render(saved)
    assert "| loso-03 | 100.0 / 100.0 | 66.7 / 66.7 | - | 60 | 3 |" in body
    assert body.count("**83.3 / 83.3**") == 2  # both pooled
    # Paired: fold a +33.3, fold b -33.3 -> mean 0.
    assert "single-corpus default: WA +0.0" in body
    assert "pretraining seed 0: 8.0 min on 100 utterances of 2 speakers" in body
    assert "in one process: 10.0 min" in body  # 8 min + 2 folds of 60 s
    assert "common label space (arg-max over all 4 classes): WA 66.7" in body
    assert bench_multicorpus.render(saved.parent / "nothing") == "No multi-corpus run saved yet."


# ------------------------------------------------------------------ leave one corpus out
LOCO_LABELS = ["anger", "sadness"]


def _loco_fold(corpus, seed, true, pred, root="data"):
    """A loco fold record: held-out `corpus`, utterances <root>/<corpus>/<k>.wav."""
    return {
        "fold": f"corpus-{corpus}",
        "seed": seed,
        "seconds": 30.0,
        "test_speakers": [f"{corpus}/01"],
        "predictions": [
            {"path": f"{root}/{corpus}/{k}.wav", "corpus": corpus, "label": t, "predicted": p}
            for k, (t, p) in enumerate(zip(true, pred, strict=True))
        ],
    }


EMODB_TRUE = ["anger", "anger", "sadness", "sadness"]
LOCO_FOLDS = [
    # EmoDB: seed 0 WA 75 / UA 75, seed 1 all right -> mean 87.5 / 87.5.
    _loco_fold("emodb", 0, EMODB_TRUE, ["anger", "anger", "sadness", "anger"]),
    _loco_fold("emodb", 1, EMODB_TRUE, EMODB_TRUE),
    # RAVDESS: both seeds say "sadness" for both -> 50 / 50.
    _loco_fold("ravdess", 0, ["anger", "sadness"], ["sadness", "sadness"]),
    _loco_fold("ravdess", 1, ["anger", "sadness"], ["sadness", "sadness"]),
]


def _loco_run(folds):
    return {
        "protocol": {"name": "loco", "speaker_independent": True},
        "target_corpus": None,
        "labels": LOCO_LABELS,
        "seeds": sorted({f["seed"] for f in folds}),
        "recipe": {"name": "default"},
        "corpora": {"emodb": {"role": "loco"}, "ravdess": {"role": "loco"}},
        "folds": folds,
        "folds_run": len({f["fold"] for f in folds}),
        "timings": {"total_s": 120.0},
    }


def _svm(train_corpora, predicted, labels=LOCO_LABELS):
    """An eGeMAPS+SVM LOCO result on the EmoDB utterances of `LOCO_FOLDS`."""
    return {
        "labels": labels,
        "train_corpora": train_corpora,
        "pooled": {"wa": 0.5, "ua": 0.5},
        "pooled_ci95": {"wa": [0.25, 0.75], "ua": [0.2, 0.8]},
        "folds": [
            {
                "fold": "corpus-emodb",
                "predictions": [
                    # Given as an absolute path, the run a relative one: the same files.
                    {"path": f"/work/data/emodb/{k}.wav", "label": t, "predicted": p}
                    for k, (t, p) in enumerate(zip(EMODB_TRUE, predicted, strict=True))
                ],
            }
        ],
    }


@pytest.fixture
def loco_dirs(tmp_path, monkeypatch):
    runs, svm = tmp_path / "multicorpus", tmp_path / "baseline"
    runs.mkdir()
    svm.mkdir()
    monkeypatch.setattr(multicorpus_scores, "SVM", svm)
    return runs, svm


def test_leave_one_corpus_out_rows_against_the_svm_and_the_target(loco_dirs):
    runs, svm = loco_dirs
    (runs / "loco.json").write_text(json.dumps(_loco_run(LOCO_FOLDS)))
    # Per-corpus z: WA 50 / UA 50 on the same 4 utterances (2 right); per-speaker z was
    # trained on another corpus set, so it is not this run's reference.
    svm_pred = ["sadness", "anger", "sadness", "anger"]
    (svm / "loco-emodb-corpus.json").write_text(json.dumps(_svm(["ravdess"], svm_pred)))
    (svm / "loco-emodb-speaker.json").write_text(json.dumps(_svm(["casia"], svm_pred)))
    run = json.loads((runs / "loco.json").read_text())
    assert bench_multicorpus.run_kind(run) == "loco"
    paths, true, preds = multicorpus_loco.held_out(run, "emodb")
    assert paths[0] == "data/emodb/0.wav" and true.tolist() == [0, 0, 1, 1]
    assert preds[0].tolist() == [0, 0, 1, 0] and list(preds) == [0, 1]

    body = bench_multicorpus.render(runs)
    assert "the 2 classes they share (anger, sadness); seeds [0, 1]" in body
    emodb = next(line for line in body.splitlines() if line.startswith("| emodb |"))
    cells = [c.strip() for c in emodb.strip("|").split("|")]
    assert cells[:3] == ["emodb", "ravdess", "4"]
    assert cells[3].startswith("87.5 [") and cells[4].startswith("87.5 [")
    assert cells[5] == "0: 75.0 / 75.0, 1: 100.0 / 100.0"
    # Neural minus SVM UA: 87.5 - 50 = +37.5, paired over the same utterances.
    assert cells[6].startswith("50.0 / 50.0 [20.0, 80.0]; +37.5 [")
    assert cells[7] == "-"
    assert cells[8:] == ["50.0 / 50.0", "met"]
    # UA 50 reaches the first bar, but no SVM was saved for RAVDESS: not judged met.
    assert "| ravdess | emodb | 2 | 50.0 [" in body
    assert "| 50.0 / 50.0 | **missed** (no matching SVM) |" in body
    assert "emodb 1.0 min, ravdess 1.0 min; 2.0 min in all" in body

    # The bootstrap interval of the seed mean holds the mean and stays within [0, 100].
    lo, hi = (float(x) for x in cells[4].split("[")[1].rstrip("]").split(","))
    assert 0 <= lo <= 87.5 <= hi <= 100

    # Another class set: the SVM is not comparable either.
    (svm / "loco-emodb-corpus.json").write_text(
        json.dumps(_svm(["ravdess"], svm_pred, labels=["anger", "neutral"]))
    )
    assert "| 50.0 / 50.0 | **missed** (no matching SVM) |" in bench_multicorpus.render(runs)


def test_seed_files_of_one_loco_run_are_merged(loco_dirs):
    runs, _ = loco_dirs
    for seed in (0, 1):
        part = _loco_run([f for f in LOCO_FOLDS if f["seed"] == seed])
        (runs / f"loco-seed{seed}.json").write_text(json.dumps(part))
    ((name, run),) = bench_multicorpus.load_runs(runs)
    assert name == "loco" and run["seeds"] == [0, 1] and len(run["folds"]) == 4
    assert "| emodb | ravdess | 4 | 87.5 [" in bench_multicorpus.render(runs)

    # Runs on other classes are not seeds of one run.
    other = _loco_run([_loco_fold("emodb", 2, ["anger"], ["anger"])])
    (runs / "loco-seed2.json").write_text(json.dumps({**other, "labels": ["anger", "fear"]}))
    with pytest.raises(ValueError, match=r"loco-seed2\.json: cannot merge runs that differ in"):
        bench_multicorpus.load_runs(runs)


def test_loco_seeds_must_test_the_same_utterances():
    folds = [*LOCO_FOLDS[:1], _loco_fold("emodb", 1, EMODB_TRUE[:3], EMODB_TRUE[:3])]
    with pytest.raises(ValueError, match="corpus-emodb: seed 1 tested other utterances"):
        multicorpus_loco.held_out(_loco_run(folds), "emodb")
    bad = [_loco_fold("emodb", 0, ["anger"], ["boredom"])]
    with pytest.raises(ValueError, match=r"corpus-emodb seed 0: labels \['boredom'\]"):
        multicorpus_loco.held_out(_loco_run(bad), "emodb")
    with pytest.raises(ValueError, match="no fold 'corpus-ravdess'"):
        multicorpus_loco.held_out(_loco_run(bad), "ravdess")
    with pytest.raises(
        ValueError, match="neither a pooled, a target-corpus nor a leave-one-corpus-out run"
    ):
        bench_multicorpus.run_kind({**_loco_run(bad), "protocol": {"name": "loso"}})


def _loco_stream_variant():
    """`LOCO_FOLDS`' run as a stream variant (online CMVN), its utterances given under
    another root and in another order (the same files: `utterance_key`), and RAVDESS with a
    third utterance the default run did not test."""
    said = {  # (corpus, seed) -> online, on each clip alone, with the speaker's statistics
        ("emodb", 0): (EMODB_TRUE, ["anger"] * 4, ["anger", "sadness", "sadness", "sadness"]),
        ("emodb", 1): (EMODB_TRUE, ["anger"] * 4, ["anger", "sadness", "sadness", "sadness"]),
        ("ravdess", 0): (["anger", "sadness", "anger"], None, ["sadness"] * 3),
        ("ravdess", 1): (["anger", "sadness", "anger"], None, ["sadness"] * 3),
    }
    folds = []
    for (corpus, seed), (online, alone, own) in said.items():
        true = EMODB_TRUE if corpus == "emodb" else ["anger", "sadness", "sadness"]
        fold = _loco_fold(corpus, seed, true, online, root="/mnt/corpora/data")
        for p, a, o in zip(fold["predictions"], alone or true, own, strict=True):
            p.update(predicted_independent=a, predicted_speaker_norm=o)
            p["predicted_corpus_order"] = p["label"]
        fold["predictions"].reverse()
        folds.append(fold)
    run = _loco_run(folds)
    run["recipe"] = {"name": "default", "normalization": "stream", "stream_training": "online"}
    run["online_order"] = ONLINE_ORDER
    return run


def test_loco_stream_variant_names_its_variant_and_is_paired_with_the_default_run(loco_dirs):
    runs, _ = loco_dirs
    for seed in (0, 1):  # the default run, saved one file per seed
        part = _loco_run([f for f in LOCO_FOLDS if f["seed"] == seed])
        (runs / f"loco-seed{seed}.json").write_text(json.dumps(part))
    variant = _loco_stream_variant()
    for seed in (0, 1):
        part = {**variant, "folds": [f for f in variant["folds"] if f["seed"] == seed]}
        part["seeds"] = [seed]
        (runs / f"loco-streamonline-seed{seed}.json").write_text(json.dumps(part))
    body = bench_multicorpus.render(runs)
    default = body[body.index("**loco**:") : body.index("**loco-streamonline**:")]
    mine = body[body.index("**loco-streamonline**:") :]
    # The default run renders as before: no variant, no stream text, no paired column.
    assert "seeds [0, 1], recipe `default`. WA / UA" in default
    assert 'Normalisation "stream"' not in default and "minus loco" not in default
    assert "seeds [0, 1], recipe `default`, normalization stream, stream_training online." in mine
    # Both seeds pooled (8 EmoDB, 6 RAVDESS predictions). Each clip alone: EmoDB "anger"
    # for all (anger 4/4, sadness 0/4: WA 50, UA 50), RAVDESS right (100 / 100). With each
    # speaker's own statistics: EmoDB wrong on the 2nd anger of each seed (anger 2/4,
    # sadness 4/4: WA 6/8 = 75, UA (50 + 100) / 2 = 75); RAVDESS "sadness" for all (anger
    # 0/2, sadness 4/4: WA 4/6 = 66.7, UA 50).
    assert (
        "one stream in a random order per speaker, seeded by the training seed; in corpus "
        "order (emotion-blocked where a corpus lists a speaker's files by emotion) the "
        "common-label WA / UA are emodb 100.0 / 100.0, ravdess 100.0 / 100.0; on each "
        "utterance alone (a fresh stream from the training prior, as a device scores one "
        "clip) the common-label WA / UA are emodb 50.0 / 50.0, ravdess 100.0 / 100.0; with "
        "each test speaker's own statistics (all of their audio, transductive) the "
        "common-label WA / UA are emodb 75.0 / 75.0, ravdess 66.7 / 50.0"
    ) in mine
    assert "Last column: UA minus that of loco (the default recipe, seeds" in mine
    assert mine.count("| minus loco: UA [paired 95%] |") == 1
    emodb = next(line for line in mine.splitlines() if line.startswith("| emodb |"))
    cells = [c.strip() for c in emodb.strip("|").split("|")]
    # Online, the variant is right on all 4 EmoDB utterances with both seeds (UA 100); the
    # default run's seeds score UA 75 and 100 on them: 100 - 87.5 = +12.5. Only the default
    # seed 0's 4th utterance differs, so no resample makes the variant worse.
    assert cells[3].startswith("100.0 [") and cells[5] == "0: 100.0 / 100.0, 1: 100.0 / 100.0"
    assert cells[-1].startswith("+12.5 [")
    lo, hi = (float(x) for x in cells[-1][len("+12.5 [") : -1].split(","))
    assert 0 <= lo <= 12.5 <= hi <= 25
    # RAVDESS: the variant tested an utterance the default run did not: no pairing. Online
    # it is right on 2 of 3 (anger 1/1, sadness 1/2): WA 66.7, UA 75.
    ravdess = next(line for line in mine.splitlines() if line.startswith("| ravdess |"))
    assert ravdess.startswith("| ravdess | emodb | 3 | 66.7 [") and ravdess.endswith("| - |")
    assert "| 75.0 [" in ravdess

    # A default run on other classes is not the variant's reference; none saved, none.
    for seed in (0, 1):
        other = _loco_run([f for f in LOCO_FOLDS if f["seed"] == seed])
        other["labels"] = [*LOCO_LABELS, "fear"]
        (runs / f"loco-seed{seed}.json").write_text(json.dumps(other))
    assert "minus loco" not in bench_multicorpus.render(runs)
    for seed in (0, 1):
        (runs / f"loco-seed{seed}.json").unlink()
    alone = bench_multicorpus.render(runs)
    assert "minus loco" not in alone and "normalization stream, stream_training online." in alone


def test_a_default_loco_run_is_paired_with_another_default_run_never_with_itself(loco_dirs):
    runs, _ = loco_dirs
    (runs / "loco.json").write_text(json.dumps(_loco_run(LOCO_FOLDS)))
    assert "minus loco" not in bench_multicorpus.render(runs)
    # Another default-recipe run on the same utterances (e.g. validated by another rule):
    # right on every EmoDB utterance with both seeds, RAVDESS as the first run.
    again = [_loco_fold("emodb", s, EMODB_TRUE, EMODB_TRUE) for s in (0, 1)] + LOCO_FOLDS[2:]
    (runs / "loco-again.json").write_text(json.dumps(_loco_run(again)))
    body = bench_multicorpus.render(runs)
    # Files in name order: loco-again.json before loco.json.
    mine, theirs = body[: body.index("**loco**:")], body[body.index("**loco**:") :]
    assert "| minus loco: UA [paired 95%] |" in mine and "minus loco-again" not in mine
    assert "| minus loco-again: UA [paired 95%] |" in theirs and "minus loco:" not in theirs
    # EmoDB UA 100 against the first run's seed mean 87.5; RAVDESS the same predictions.
    emodb = [line for line in body.splitlines() if line.startswith("| emodb |")]
    assert [line.rsplit("|", 2)[1].strip()[:6] for line in emodb] == ["+12.5 ", "-12.5 "]
    assert body.count("| +0.0 [+0.0, +0.0] |") == 2


def test_stream_run_saved_without_some_scores_says_only_what_it_saved(loco_dirs):
    runs, _ = loco_dirs
    variant = _loco_stream_variant()
    for fold in variant["folds"]:  # an older file: online and corpus order only
        for p in fold["predictions"]:
            del p["predicted_independent"], p["predicted_speaker_norm"]
    (runs / "loco-streamonline.json").write_text(json.dumps(variant))
    assert (
        "one stream in a random order per speaker, seeded by the training seed; in corpus "
        "order (emotion-blocked where a corpus lists a speaker's files by emotion) the "
        "common-label WA / UA are emodb 100.0 / 100.0, ravdess 100.0 / 100.0 (see the "
        "section on stream normalisation)."
    ) in bench_multicorpus.render(runs)
    # Each clip alone saved, but one utterance lacks its speaker-statistics prediction.
    variant = _loco_stream_variant()
    del variant["folds"][0]["predictions"][0]["predicted_speaker_norm"]
    text = multicorpus_scores.speaker_norm_text(variant)
    assert "on each utterance alone" in text and "own statistics" not in text
    # A stream run written before "online_order": neither the online order's alternative
    # nor the others saved.
    old = _loco_run(LOCO_FOLDS)
    old["recipe"] = {"name": "default", "normalization": "stream"}
    assert multicorpus_scores.speaker_norm_text(old) == (
        ' Normalisation "stream": the scores above are online, each test speaker\'s '
        "utterances one stream in corpus order (see the section on stream normalisation)."
    )


def test_a_retired_recipe_is_named_as_such_and_read_against_the_default(loco_dirs):
    runs, _ = loco_dirs
    retired = {"recipe": {"name": "loco-v0", "epochs": 30}}  # not in keras_dyconv.recipes
    assert multicorpus_scores.recipe_text(retired) == (
        "`loco-v0` (retired recipe; `default`, epochs 30)"
    )
    assert multicorpus_scores.recipe_text({"recipe": {"name": "loco-v0"}}) == (
        "`loco-v0` (retired recipe; `default`)"
    )
    # Rendered, and not taken for the default-recipe run another run is read against.
    (runs / "loco.json").write_text(json.dumps({**_loco_run(LOCO_FOLDS), **retired}))
    (runs / "loco-streamonline.json").write_text(json.dumps(_loco_stream_variant()))
    body = bench_multicorpus.render(runs)
    assert "seeds [0, 1], recipe `loco-v0` (retired recipe; `default`, epochs 30)." in body
    assert "minus loco" not in body


# ------------------------------------------------------------------ pooled (--target all)
def _pooled_fold(seed, emodb_scores, ravdess_scores):
    """A pooled fold testing EmoDB utterances (anger, neutral) and RAVDESS ones (angry,
    calm), probabilities over `LABELS`."""
    tested = [("emodb", "anger", s) for s in emodb_scores[:1]]
    tested += [("emodb", "neutral", s) for s in emodb_scores[1:]]
    tested += [("ravdess", o, s) for o, s in zip(["angry", "calm"], ravdess_scores, strict=True)]
    return {
        "fold": "speaker-1of1",
        "seed": seed,
        "seconds": 90.0,
        "test_speakers": ["emodb/03", "ravdess/01"],
        "predictions": [
            {
                "corpus": c,
                "path": f"/data/{c}/{o}/{i}.wav",
                "original_label": o,
                "label": {"angry": "anger"}.get(o, o),
                "probabilities": s,
            }
            for i, (c, o, s) in enumerate(tested)
        ],
    }


def _pooled_run():
    # EmoDB: seed 0 right on both; seed 1 says "calm" (not EmoDB's: its own arg-max is
    # "neutral", right) for the 2nd and "sadness" for the 1st. RAVDESS right on both seeds.
    folds = [
        _pooled_fold(0, [[0.9, 0, 0.1, 0], [0, 0, 1, 0]], [[1, 0, 0, 0], [0, 1, 0, 0]]),
        _pooled_fold(1, [[0.1, 0, 0, 0.9], [0, 0.8, 0.2, 0]], [[1, 0, 0, 0], [0, 1, 0, 0]]),
    ]
    scores = {}
    for corpus in ("emodb", "ravdess"):
        preds = [p for f in folds for p in f["predictions"] if p["corpus"] == corpus]
        scores[corpus] = score_both(
            [p["probabilities"] for p in preds],
            LABELS,
            [p["original_label"] for p in preds],
            corpus,
        )
        # The seed ensemble (probabilities averaged): EmoDB and RAVDESS right on all.
        scores[corpus]["ensemble"] = corpus_scores(folds, LABELS)[corpus]["ensemble"]
    scores["emodb"]["own"]["ci95"] = {"wa": [0.5, 1.0], "ua": [0.4, 0.9]}
    return {
        "protocol": {"name": "loso", "k": 5, "speaker_independent": True},
        "target_corpus": "all",
        "labels": LABELS,
        "seeds": [0, 1],
        "recipe": {"name": "default"},
        "corpora": {
            "emodb": {"role": "pooled", "utterances": 2, "speakers": 2},
            "ravdess": {"role": "pooled", "utterances": 3, "speakers": 1},
        },
        "folds": folds,
        "folds_run": 1,
        "corpus_scores": scores,
    }


def test_pooled_run_one_row_per_corpus_in_own_and_common_labels(loco_dirs):
    runs, svm = loco_dirs
    run = _pooled_run()
    assert bench_multicorpus.run_kind(run) == "pooled"
    (runs / "pooled.json").write_text(json.dumps(run))
    # An SVM on one corpus alone, even on the same protocol, is not on the pooled folds:
    # the SVM columns are those of a pooled SVM on the same folds only
    # (tests/test_baseline_pooled.py), "-" here.
    saved = {
        "corpus": "emodb",
        "protocol": {"name": "loso", "k": 5},
        "labels": ["anger", "neutral", "sadness"],  # EmoDB's classes among LABELS
        "pooled": {"wa": 0.6, "ua": 0.55},
        "pooled_ci95": {"wa": [0.5, 0.7], "ua": [0.45, 0.65]},
    }
    (svm / "emodb-loso-none.json").write_text(json.dumps(saved))

    body = bench_multicorpus.render(runs)
    assert "emodb, ravdess trained and tested at once (protocol loso on their union" in body
    # EmoDB own labels: 3 of 4 right (WA 75, UA (1/2 + 1) / 2 = 75), the recorded
    # intervals; common: seed 1's "calm" is wrong too (WA 50, UA (1/2 + 1/2) / 2 = 50),
    # no interval recorded. Per seed (own UA): 100 and 50; the seed ensemble 100, +25 on
    # their mean. No pooled SVM saved.
    assert (
        "| emodb | 1 of 2 | 2 of 2 | 3 | 75.0 [50.0, 100.0] | 75.0 [40.0, 90.0] | 50.0 | 50.0 "
        "| 0: 100.0 / 100.0, 1: 50.0 / 50.0 | 100.0 [100.0, 100.0]; +25.0 [+0.0, +50.0] | - | - |"
    ) in body
    assert (
        "| ravdess | 1 of 1 | 2 of 3 | 4 | 100.0 | 100.0 | 100.0 | 100.0 "
        "| 0: 100.0 / 100.0, 1: 100.0 / 100.0 | 100.0 [100.0, 100.0]; +0.0 [+0.0, +0.0] | - | - |"
    ) in body
    assert "folds 3.0 min in all (90-90 s each)" in body

    with pytest.raises(ValueError, match="without test folds"):
        bench_multicorpus.run_kind({**run, "folds": []})
    # Rendering names the file that is not a run it can score.
    (runs / "pooled-all.json").write_text(json.dumps({**run, "folds": []}))
    with pytest.raises(ValueError, match=r"pooled-all\[-seed<N>\]\.json: a pooled run without"):
        bench_multicorpus.render(runs)


def test_pooled_variant_is_read_against_the_default_run_on_the_same_folds(loco_dirs):
    runs, _ = loco_dirs
    default = _pooled_run()
    variant = json.loads(json.dumps(default))
    variant["recipe"] = {"name": "default", "class_weighting": True}
    # The variant gets seed 1's first EmoDB utterance right too: own UA 100 on both seeds,
    # against 100 and 50 for the default run: +25 on EmoDB, RAVDESS unchanged.
    variant["folds"][1]["predictions"][0]["probabilities"] = [0.9, 0, 0.1, 0]
    (runs / "pooled.json").write_text(json.dumps(default))
    (runs / "pooled-weighted.json").write_text(json.dumps(variant))
    body = bench_multicorpus.render(runs)
    # Files in name order: pooled-weighted.json before pooled.json.
    mine = body[body.index("**pooled-weighted**") : body.index("**pooled**:")]
    assert "| minus pooled: own UA [paired 95%] |" in mine
    assert (
        "| 0: 100.0 / 100.0, 1: 100.0 / 100.0 | 100.0 [100.0, 100.0]; +0.0 [+0.0, +0.0] "
        "| - | - | +25.0 ["
    ) in mine
    assert "| - | - | +0.0 [+0.0, +0.0] |" in mine
    # The default run itself has no such column, nor a run on other folds.
    assert "minus pooled" not in body[body.index("**pooled**:") :]
    # Of two default runs on these folds, the one that validated by the same rule.
    ruled = json.loads(json.dumps(variant))
    for record in ruled["folds"]:
        record["val_rule"] = {"description": "another rule"}
    (runs / "pooled-ruled.json").write_text(json.dumps({**default, "folds": ruled["folds"]}))
    body = bench_multicorpus.render(runs)
    mine = body[body.index("**pooled-weighted**") : body.index("**pooled**:")]
    assert "| minus pooled: own UA [paired 95%] |" in mine
    (runs / "pooled-weighted.json").write_text(json.dumps(ruled))
    mine = bench_multicorpus.render(runs)
    mine = mine[mine.index("**pooled-weighted**") : mine.index("**pooled**:")]
    assert "| minus pooled-ruled: own UA [paired 95%] |" in mine
    (runs / "pooled-ruled.json").unlink()
    variant["folds"][0]["test_speakers"] = ["emodb/04", "ravdess/01"]
    (runs / "pooled-weighted.json").write_text(json.dumps(variant))
    assert "minus pooled" not in bench_multicorpus.render(runs)


def test_pooled_seed_ensemble_column_pairs_the_ensemble_with_its_seeds():
    run = _pooled_run()
    header = "| seed ensemble: own UA [95%]; minus seeds' mean [paired 95%] |"
    # EmoDB: seed 1 wrong on the anger utterance, the mean of the seeds' probabilities
    # right: ensemble UA 100 against the seeds' mean (100 + 50) / 2.
    d, ci = multicorpus_pooled.ensemble_paired(run, "emodb")
    assert d == pytest.approx(1.0 - 0.75) and ci[0] <= d <= ci[1]
    table = multicorpus_pooled.pooled_table("pooled", run)
    assert header in table
    assert "| 100.0 [100.0, 100.0]; +25.0 [" in table
    # A multi-seed results.json saved before "ensemble" was recorded: scored when rendered.
    old = {
        **run,
        "corpus_scores": {
            c: {k: v for k, v in s.items() if k != "ensemble"}
            for c, s in run["corpus_scores"].items()
        },
    }
    assert multicorpus_pooled.pooled_table("pooled", old) == table
    assert (
        "Seed ensemble: each fold's class probabilities averaged over its seeds, arg-max over "
        "the corpus's own classes: its own-label UA [95% bootstrap over utterances]; after the "
        '";": minus the seeds\' mean own-label UA, every seed scored on the same utterances '
        "[paired 95% bootstrap over them]."
    ) in table
    # A stream run averages its online probabilities, each seed's streams in its own order.
    stream = {**run, "recipe": {"name": "default", "normalization": "stream"}}
    assert (
        "each fold's online class probabilities (as scored above: each test speaker's "
        "utterances one stream in a random order per speaker, seeded by the training seed) "
        "averaged over its seeds"
    ) in multicorpus_pooled.ensemble_text({**stream, "online_order": ONLINE_ORDER})
    # One seed: the column is there, without an ensemble.
    one = {**run, "seeds": [0], "folds": run["folds"][:1]}
    one["corpus_scores"] = corpus_scores(one["folds"], LABELS)
    assert "ensemble" not in one["corpus_scores"]["emodb"]
    table = multicorpus_pooled.pooled_table("pooled", one)
    assert header in table and "Seed ensemble: none with one seed (—)." in table
    assert "| 1 of 1 | 2 of 3 | 4 | 100.0 [100.0, 100.0] " in table
    assert table.count("| — | - | - |") == 2
    # The ensemble is paired over the utterances every seed tested.
    run["folds"][1]["predictions"][0]["path"] = "/data/emodb/anger/9.wav"
    with pytest.raises(ValueError, match="seeds tested other utterances"):
        multicorpus_pooled.ensemble_paired(run, "emodb")


def test_pooled_caption_says_how_many_speakers_of_each_corpus_validated():
    run = _pooled_run()
    assert multicorpus_pooled.validation_text(run) == ""  # not recorded per corpus
    for fold, (emodb, ravdess) in zip(run["folds"], [(2, 0), (1, 0)], strict=True):
        per_corpus = {"emodb": {"val_speakers": emodb}, "ravdess": {"val_speakers": ravdess}}
        fold["val_rule"] = {"rule": "auto", "per_corpus": per_corpus}
    assert multicorpus_pooled.validation_text(run) == (
        " Validation speakers per fold: emodb 1-2, ravdess 0."
    )


def test_pooled_stream_run_names_its_variant_and_the_speaker_statistics_scores():
    run = _pooled_run()
    assert multicorpus_scores.recipe_text(run) == "`default`"
    assert multicorpus_scores.speaker_norm_text(run) == ""
    run["recipe"] = {"name": "default", "normalization": "stream", "stream_training": "online"}
    assert multicorpus_scores.recipe_text(run) == (
        "`default`, normalization stream, stream_training online"
    )
    # With each speaker's own statistics: EmoDB right on 3 of its 4 (WA 75; anger 1/2,
    # neutral 2/2: UA 75), RAVDESS wrong on 1 of 4 (angry 2/2, calm 1/2 -> WA 75, UA 75).
    said = iter(["anger", "neutral", "anger", "calm", "sadness", "neutral", "anger", "angry"])
    for fold in run["folds"]:
        for p in fold["predictions"]:
            p["label"] = {"angry": "anger"}.get(p["original_label"], p["original_label"])
            p["predicted_speaker_norm"] = next(said)
            # Each clip alone: EmoDB all right, RAVDESS all wrong.
            p["predicted_independent"] = p["label"] if p["corpus"] == "emodb" else "sadness"
    text = multicorpus_scores.speaker_norm_text(run)
    assert "common-label WA / UA are emodb 75.0 / 75.0, ravdess 75.0 / 75.0" in text
    assert (
        "on each utterance alone (a fresh stream from the training prior, as a device scores "
        "one clip) the common-label WA / UA are emodb 100.0 / 100.0, ravdess 0.0 / 0.0; with"
    ) in text
    # A run written before "online_order" scored its headline in corpus order ...
    assert "utterances one stream in corpus order; on each utterance alone" in text
    # ... a newer one in a seeded random order, its corpus order beside it.
    run["online_order"] = ONLINE_ORDER
    for fold in run["folds"]:
        for p in fold["predictions"]:
            p["predicted_corpus_order"] = p["label"] if p["corpus"] == "emodb" else "sadness"
    text = multicorpus_scores.speaker_norm_text(run)
    assert (
        "one stream in a random order per speaker, seeded by the training seed; in corpus "
        "order (emotion-blocked where a corpus lists a speaker's files by emotion) the "
        "common-label WA / UA are emodb 100.0 / 100.0, ravdess 0.0 / 0.0; on each utterance "
        "alone (a fresh stream from the training prior, as a device scores one clip) the "
        "common-label WA / UA are emodb 100.0 / 100.0, ravdess 0.0 / 0.0; with each test "
        "speaker's own statistics (all of their audio, transductive) the common-label WA / "
        "UA are emodb 75.0 / 75.0, ravdess 75.0 / 75.0"
    ) in text
