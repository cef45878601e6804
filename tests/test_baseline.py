"""The eGeMAPS + linear SVM baseline on a few dozen short synthetic clips, and its bench."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from keras_dyconv import baseline, egemaps
from keras_dyconv.corpora import Utterance, load_manifest
from keras_dyconv.protocols import leave_one_speaker_out, stratified_kfold
from keras_dyconv.synthetic import write_corpus

pytest.importorskip("opensmile")
pytest.importorskip("sklearn")

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """4 speakers x 2 emotions x 4 clips of 0.5-0.8 s (32 clips) and their functionals."""
    root = tmp_path_factory.mktemp("synthetic") / "corpus"
    manifest = write_corpus(
        root,
        n_speakers=4,
        utterances_per_emotion_per_speaker=4,
        emotions=("anger", "sadness"),
        duration=(0.5, 0.8),
    )
    utts = load_manifest(manifest)
    cache = tmp_path_factory.mktemp("cache")
    feats = egemaps.extract_egemaps([u.path for u in utts], cache_dir=cache)
    return utts, feats, cache


def test_extraction_gives_88_finite_functionals_and_is_cached(corpus, tmp_path, monkeypatch):
    utts, feats, cache = corpus
    assert feats.shape == (len(utts), egemaps.N_FEATURES) == (32, 88)
    assert feats.dtype == np.float32 and np.all(np.isfinite(feats))
    assert len(np.unique(feats, axis=0)) == len(utts)
    # In two worker processes: the same numbers.
    two = egemaps.extract_egemaps([u.path for u in utts[:4]], n_jobs=2)
    np.testing.assert_array_equal(two, feats[:4])
    # Cached by content: a renamed copy is read back without running openSMILE.
    copy = tmp_path / "renamed.wav"
    shutil.copy(utts[0].path, copy)

    def refuse(path):
        raise AssertionError(f"cache miss for {path}")

    monkeypatch.setattr(egemaps, "file_egemaps", refuse)
    np.testing.assert_array_equal(egemaps.extract_egemaps([copy], cache_dir=cache)[0], feats[0])


def test_extraction_survives_tensorflow_loaded_first(corpus, tmp_path):
    """TensorFlow exports a double-precision `rdft` that a later-loaded openSMILE bound to,
    aborting the process (test_multicorpus before test_baseline in one session did)."""
    pytest.importorskip("tensorflow")
    utts, feats, _ = corpus
    out = tmp_path / "feats.npy"
    code = (
        "import sys; import tensorflow; import numpy as np; from keras_dyconv import egemaps; "
        "np.save(sys.argv[1], egemaps.extract_egemaps(sys.argv[2:]))"
    )
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": str(root), "TF_CPP_MIN_LOG_LEVEL": "3"}
    run = subprocess.run(
        [sys.executable, "-c", code, str(out), *(u.path for u in utts[:2])],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    np.testing.assert_array_equal(np.load(out), feats[:2])


def test_unreadable_audio_names_the_file(tmp_path):
    bad = tmp_path / "not-audio.wav"
    bad.write_bytes(b"RIFF nonsense")
    with pytest.raises(ValueError, match=r"not-audio\.wav: cannot load audio"):
        egemaps.file_egemaps(bad)


def test_normalize_by_group_uses_each_group_alone():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(5, 2, (6, 3)), rng.normal(-1, 0.5, (4, 3))])
    x[:, 2] = 7.0  # constant feature -> 0
    groups = ["a"] * 6 + ["b"] * 4
    z = baseline.normalize_by_group(x, groups)
    for g in ("a", "b"):
        rows = np.array(groups) == g
        np.testing.assert_allclose(z[rows, :2].mean(axis=0), 0, atol=1e-12)
        np.testing.assert_allclose(z[rows, :2].std(axis=0), 1, atol=1e-12)
    assert np.all(z[:, 2] == 0)
    # Group b's rows do not change when group a's do.
    x2 = x.copy()
    x2[:6] *= 10
    np.testing.assert_array_equal(baseline.normalize_by_group(x2, groups)[6:], z[6:])


@pytest.mark.parametrize("normalization", ["none", "speaker"])
@pytest.mark.parametrize("protocol", ["loso", "stratified"])
def test_no_test_utterance_reaches_scaler_or_inner_cv(corpus, monkeypatch, protocol, normalization):
    """Every row any scaler/SVM is fitted on is a training row of its fold; the inner CV
    splits only training speakers, by speaker; the refit scaler is the training part's."""
    utts, feats, _ = corpus
    folds = (
        list(leave_one_speaker_out(utts))
        if protocol == "loso"
        else list(stratified_kfold(utts, k=4))
    )
    x = baseline._normalized(feats, utts, normalization, None)
    row_of = {row.tobytes(): i for i, row in enumerate(x)}
    assert len(row_of) == len(utts)
    real_pipeline, real_fit = baseline._pipeline, baseline.fit_svm
    calls: list[dict] = []

    class Spy:
        def __init__(self, c):
            self.inner = real_pipeline(c)

        def fit(self, X, y):
            calls[-1]["fitted"].append({row_of[np.asarray(r).tobytes()] for r in X})
            self.inner.fit(X, y)
            return self

        def predict(self, X):
            return self.inner.predict(X)

    def spy_fit(X, y, groups, *args):
        calls.append({"groups": set(groups), "fitted": []})
        model = real_fit(X, y, groups, *args)
        calls[-1]["model"], calls[-1]["X"] = model, X
        return model

    monkeypatch.setattr(baseline, "_pipeline", Spy)
    monkeypatch.setattr(baseline, "fit_svm", spy_fit)
    records = baseline.run_baseline(utts, feats, folds, normalization=normalization)["folds"]
    assert len(calls) == len(folds) == len(records)
    for fold, call, record in zip(folds, calls, records, strict=True):
        train = set(np.union1d(fold.train, fold.val).tolist())
        test_speakers = {utts[i].speaker for i in fold.test}
        assert all(rows <= train for rows in call["fitted"])  # scaler + SVM: training rows
        assert call["fitted"][-1] == train  # the final refit sees the whole training part
        model = call["model"]
        assert set(model.inner_groups) == call["groups"] == {utts[i].speaker for i in train}
        if fold.speaker_independent:
            assert not test_speakers & set(model.inner_groups)
        assert len(model.inner_splits) == min(baseline.INNER_SPLITS, len(model.inner_groups))
        for inner_train, inner_val in model.inner_splits:
            assert not set(inner_train) & set(inner_val)  # grouped by speaker
            assert set(inner_train) | set(inner_val) == set(model.inner_groups)
        scaler = model.pipeline.inner.steps[0][1]
        np.testing.assert_allclose(scaler.mean_, call["X"].mean(axis=0))
        np.testing.assert_allclose(call["X"], x[sorted(train)])
        assert record["c"] in baseline.C_GRID
        assert f"{record['c']:g}" in record["inner_ua"]


def test_predictions_cover_every_test_utterance_once(corpus):
    utts, feats, _ = corpus
    folds = list(leave_one_speaker_out(utts))
    records = baseline.run_baseline(utts, feats, folds, normalization="speaker")["folds"]
    predicted = [p["path"] for r in records for p in r["predictions"]]
    assert sorted(predicted) == sorted(str(u.path) for u in utts)
    for fold, record in zip(folds, records, strict=True):
        assert [p["path"] for p in record["predictions"]] == [str(utts[i].path) for i in fold.test]
        assert record["test_speakers"] == sorted({utts[i].speaker for i in fold.test})
    # Anger vs sadness of the synthetic generator is easy: well above chance.
    correct = np.mean([p["label"] == p["predicted"] for r in records for p in r["predictions"]])
    assert correct >= 0.75


def test_bad_inputs_are_refused(corpus):
    utts, feats, _ = corpus
    folds = list(leave_one_speaker_out(utts))
    with pytest.raises(ValueError, match=r"feats must be \(32, 88\)"):
        baseline.run_baseline(utts, feats[:-1], folds)
    with pytest.raises(ValueError, match="normalization must be one of"):
        baseline.run_baseline(utts, feats, folds, normalization="global")
    with pytest.raises(ValueError, match="needs the corpus of every utterance"):
        baseline.run_baseline(utts, feats, folds, normalization="corpus")
    with pytest.raises(ValueError, match="not in"):
        baseline.run_baseline(utts, feats, folds, labels=["anger"])


# ------------------------------------------------------------------------------------ the bench


def _fake_corpus(n_speakers: int = 4, per_class: int = 3) -> tuple[list[Utterance], np.ndarray]:
    """Utterances (no audio needed) named like EmoDB's files and separable features."""
    rng = np.random.default_rng(1)
    utts, feats = [], []
    for s in range(n_speakers):
        for c, label in enumerate(("anger", "sadness")):
            for k in range(per_class):
                name = f"/corpus/wav/{s:02d}a{k:02d}{'WT'[c]}a.wav"
                utts.append(Utterance(path=Path(name), label=label, speaker=f"{s:02d}"))
                feats.append(rng.normal(2.0 * c, 1.0, egemaps.N_FEATURES))
    return utts, np.array(feats, dtype=np.float32)


def test_render_from_saved_json_reproduces_the_run_step(tmp_path, monkeypatch):
    import _report
    import bench_baseline

    utts, feats = _fake_corpus()
    run = [bench_baseline.evaluate("emodb-loso", utts, feats, n, 1.0) for n in ("none", "speaker")]
    # Whether a neural run tested the same folds is checked when rendering, not saved.
    assert "neural_same_folds" not in run[0]
    # A neural run on the same folds, read for comparison (not re-trained).
    neural = {
        **{k: run[0][k] for k in ("folds", "folds_run", "pooled", "pooled_ci95", "labels")},
        "protocol": run[0]["protocol"],
        "recipe": {"name": "default"},
        "seeds": [0],
    }
    neural_dir = tmp_path / "neural"
    neural_dir.mkdir()
    (neural_dir / "emodb-loso-default.json").write_text(json.dumps(neural))

    monkeypatch.setattr(_report, "BENCHMARKS_MD", tmp_path / "benchmarks.md")
    monkeypatch.setattr(bench_baseline, "NEURAL", neural_dir)
    monkeypatch.setattr(bench_baseline, "run_job", lambda name, workers: run)
    results = tmp_path / "results"
    bench_baseline.main(["--jobs", "emodb-loso", "--results-dir", str(results)])
    written = (tmp_path / "benchmarks.md").read_text()
    assert sorted(p.name for p in results.iterdir()) == [
        "emodb-loso-none.json",
        "emodb-loso-speaker.json",
    ]
    # The body rendered from the run's dicts in memory is the one rendered from disk.
    assert bench_baseline.render_body(run, neural_dir) in written

    # Later, on another day, with only the JSON: byte-identical section.
    class Tomorrow:
        @staticmethod
        def today():
            return __import__("datetime").date(2099, 1, 1)

    monkeypatch.setattr(bench_baseline, "date", Tomorrow)
    (tmp_path / "benchmarks.md").write_text("# Benchmarks\n")
    bench_baseline.main(["--render-only", "--results-dir", str(results)])
    assert (tmp_path / "benchmarks.md").read_text() == written
    assert "<!-- bench:baseline:start -->" in written and "2099" not in written

    # The numbers in the table are the pooled ones with their intervals.
    none = run[0]
    lo, hi = none["pooled_ci95"]["ua"]
    cell = f"{100 * none['pooled']['ua']:.1f} [{100 * lo:.1f}, {100 * hi:.1f}]"
    row = next(line for line in written.splitlines() if line.startswith("| EmoDB | leave-one"))
    assert cell in row and "| 4 | 24 / 2 |" in row
    assert "ours, neural: default recipe (same folds)" in written
    assert "89.29" in written and "59.08" in written and "71.25" in written


def test_leave_one_corpus_out_on_common_classes(monkeypatch):
    """Three fake corpora in their own label names: each held out once, trained on the
    other two, on the classes all three share; no speaker or utterance crosses over."""
    import bench_baseline

    from keras_dyconv.labels import original_label

    rng = np.random.default_rng(2)
    common = ["anger", "fear", "happiness", "neutral", "sadness"]
    extra_class = {"emodb": "boredom", "casia": "surprise", "ravdess": "calm"}
    corpora, feats_of = {}, {}
    for c, corpus in enumerate(bench_baseline.LOCO_CORPORA):
        utts = []
        for s in range(3):  # speaker ids "00".."02" in every corpus: unique only per corpus
            for k, label in enumerate([*common, extra_class[corpus]]):
                path = Path(f"/{corpus}/{s}/{k}.wav")
                own = original_label(corpus, label)
                utts.append(Utterance(path=path, label=own, speaker=f"{s:02d}"))
                feats_of[str(path)] = rng.normal(k + 10 * c, 1.0, egemaps.N_FEATURES)
        corpora[corpus] = utts
    monkeypatch.setattr(bench_baseline, "load", lambda corpus: corpora[corpus])
    monkeypatch.setattr(
        egemaps,
        "extract_egemaps",
        lambda paths, **kw: np.array([feats_of[str(p)] for p in paths], np.float32),
    )
    runs = bench_baseline.run_loco(workers=1)
    assert [(r["job"], r["normalization"]) for r in runs] == [
        (f"loco-{c}", n)
        for n in bench_baseline.LOCO_NORMALIZATIONS
        for c in bench_baseline.LOCO_CORPORA
    ]
    for r in runs:
        assert r["labels"] == common and r["corpus"] not in r["train_corpora"]
        (fold,) = r["folds"]
        tested = {p["path"] for p in fold["predictions"]}
        assert len(tested) == r["pooled"]["n"] == 15  # 3 speakers x 5 common classes
        assert all(p.startswith(f"/{r['corpus']}/") for p in tested)
        assert {s.split("/")[0] for s in fold["train_speakers"]} == set(r["train_corpora"])
        assert all(s.startswith(f"{r['corpus']}/") for s in fold["test_speakers"])
    # The section renders the leave-one-corpus-out table from these results.
    body = bench_baseline.render_body(runs)
    assert "| EmoDB | CASIA, RAVDESS | anger, fear, happiness, neutral, sadness | 15 |" in body


@pytest.mark.slow
@pytest.mark.skipif(
    not (Path("/work/shared/datasets/emodb") / "wav").is_dir(), reason="EmoDB not shared here"
)
def test_emodb_loso_reproduces_the_committed_results(tmp_path, monkeypatch):
    """The committed EmoDB LOSO row comes back prediction for prediction from the audio."""
    import bench_baseline

    monkeypatch.setattr(bench_baseline, "DATASETS", Path("/work/shared/datasets"))
    saved = json.loads((bench_baseline.RESULTS / "emodb-loso-none.json").read_text())
    utts = bench_baseline.load("emodb")
    feats = egemaps.extract_egemaps([u.path for u in utts], cache_dir=tmp_path, n_jobs=2)
    again = bench_baseline.evaluate("emodb-loso", utts, feats, "none", 0.0)
    assert [r["c"] for r in again["folds"]] == [r["c"] for r in saved["folds"]]
    assert [p["predicted"] for r in again["folds"] for p in r["predictions"]] == [
        p["predicted"] for r in saved["folds"] for p in r["predictions"]
    ]
    assert again["pooled"] == saved["pooled"]
