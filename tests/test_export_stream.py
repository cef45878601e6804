"""dyser-export of a model trained with normalization "stream" (online CMVN), and that export
run by the edge runtime as a device runs it.

A tiny model is trained here on the synthetic tones of tests/tone_corpus.py, each speaker's
utterances normalised by the running statistics of their stream (what `--normalization
stream --stream-training online` trains on). Calibration and parity windows must be
normalised the same way (`export.calibration.extract_windows`); the manifest must keep the
normalization and its prior; `EmotionRecognizer` and `StreamRecognizer` must carry the
statistics from one file to the next through the real LiteRT interpreter.
"""

from __future__ import annotations

import csv
from pathlib import Path
from types import SimpleNamespace

import keras
import numpy as np
import pytest
from export_fixtures import run_cli
from tone_corpus import LABELS, POLICY, RAW_CONFIG, tiny_model, write_corpus

from edge_runtime.artifact import load_artifact
from edge_runtime.config import STREAM_PRIOR_FRAMES
from edge_runtime.features import Frontend
from edge_runtime.metadata import ModelMetadata
from edge_runtime.normalization import StreamStatistics, normalize, with_dataset_stats
from edge_runtime.recognizer import EmotionRecognizer, StreamRecognizer
from edge_runtime.wav import read_wav
from edge_runtime.windows import split_windows
from export.calibration import STREAM_ORDER_SEED, extract_windows, list_audio
from keras_dyconv.modelio import save_model
from keras_dyconv.normalization import normalize_utterances, stream_order


def manifest_rows(manifest: Path) -> list[tuple[Path, str, str]]:
    """(file, label, speaker) of each row of a tone corpus manifest."""
    with open(manifest) as f:
        return [(manifest.parent / r["path"], r["label"], r["speaker"]) for r in csv.DictReader(f)]


@pytest.fixture(scope="module")
def stream_model(tmp_path_factory) -> SimpleNamespace:
    """A tiny model trained on per-speaker online-normalised tone windows, saved with its
    "stream" frontend (the within-speaker prior of `with_dataset_stats`)."""
    root = tmp_path_factory.mktemp("stream-model")
    train = write_corpus(root / "train", per_class=10, seed=1)
    heldout = write_corpus(root / "heldout", per_class=8, seed=2)
    rows = manifest_rows(train)
    frontend = Frontend(RAW_CONFIG)
    raw = [frontend.wav_features(path) for path, _, _ in rows]
    speakers = [speaker for _, _, speaker in rows]
    config = with_dataset_stats(RAW_CONFIG, raw, "stream", speakers=speakers)
    assert config.normalization == "stream" and config.stream_prior_frames == STREAM_PRIOR_FRAMES
    order = stream_order(speakers, np.random.default_rng(0))  # mixed emotions per stream
    normalised = normalize_utterances([raw[i] for i in order], config, [speakers[i] for i in order])
    cuts = [split_windows(f, POLICY) for f in normalised]
    x = np.concatenate(cuts)
    y = np.concatenate(
        [[LABELS.index(rows[i][1])] * len(c) for i, c in zip(order, cuts, strict=True)]
    )
    keras.utils.set_random_seed(0)
    model = tiny_model()
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=16, epochs=30, verbose=0)
    metadata = ModelMetadata(labels=LABELS, frontend=config, window=POLICY)
    path = save_model(model, root / "stream.keras", metadata)
    return SimpleNamespace(
        root=root, path=path, model=model, metadata=metadata, train=train, heldout=heldout
    )


def test_calibration_windows_are_normalised_as_per_speaker_streams(stream_model):
    metadata = stream_model.metadata
    config = metadata.frontend
    items = list_audio(stream_model.heldout, LABELS)
    assert {item.stream for item in items} == {f"{stream_model.heldout}#spk{k}" for k in range(3)}
    got = extract_windows(items, metadata, POLICY, origin="held-out", progress=False)
    # By hand: each speaker one StreamStatistics, in the seeded order, carried across files.
    order = stream_order([item.stream for item in items], np.random.default_rng(STREAM_ORDER_SEED))
    frontend, streams, cuts = Frontend(config), {}, [None] * len(items)
    for i in order:
        stream = streams.setdefault(items[i].stream, StreamStatistics(config))
        cuts[i] = split_windows(frontend(*read_wav(items[i].path), stream), POLICY)
    np.testing.assert_allclose(got.windows, np.concatenate(cuts), atol=1e-5)
    np.testing.assert_array_equal(
        got.utterance, np.repeat(range(len(items)), [len(c) for c in cuts])
    )
    # Not each file as a fresh stream (the prior plus itself): only a stream's first file is.
    fresh = np.concatenate(
        [
            split_windows(normalize(frontend.unnormalized(*read_wav(i.path)), config), POLICY)
            for i in items
        ]
    )
    differs = [
        not np.allclose(got.windows[got.utterance == k], fresh[got.utterance == k])
        for k in range(len(items))
    ]
    firsts = {next(i for i in order if items[i].stream == s) for s in streams}
    assert [k for k, d in enumerate(differs) if not d] == sorted(firsts)
    # A folder names no speakers: its files are one stream.
    folder = list_audio(stream_model.heldout.parent, LABELS)
    assert {item.stream for item in folder} == {str(stream_model.heldout.parent)}


def test_stream_model_exports_to_int8_tflite_and_adapts_on_the_device(stream_model, tmp_path):
    out = tmp_path / "stream.int8.tflite"
    code, report, stderr = run_cli(
        stream_model.path,
        "--format", "tflite", "--quantize", "int8", "--out", out,
        "--calibration", stream_model.train, "--holdout", stream_model.heldout,
    )  # fmt: skip
    assert code == 0, stderr
    parity = report["parity"]
    assert report["passed"] and parity["agreement"] >= 0.98
    assert parity["keras_accuracy"] > 0.9 and parity["export_accuracy"] > 0.9
    artifact = load_artifact(out)
    saved, trained = artifact.metadata.frontend, stream_model.metadata.frontend
    assert saved.normalization == "stream"
    assert (saved.mean, saved.std) == (trained.mean, trained.std)
    assert saved.stream_prior_frames == trained.stream_prior_frames == STREAM_PRIOR_FRAMES

    # Two files of different classes: the second, heard after the first, is normalised
    # with statistics that hold the first; after reset_stream() with the prior alone.
    rows = manifest_rows(stream_model.heldout)
    first = next(path for path, label, _ in rows if label == "low")
    second = next(path for path, label, _ in rows if label == "mid")
    recognizer = EmotionRecognizer(artifact, engine="litert", speech_gate=None)
    assert recognizer.engine.name.startswith("litert")
    recognizer.predict_file(first)
    carried = recognizer.predict_file(second)
    heard = recognizer.stream.count - recognizer.stream.prior_frames
    assert heard == sum(len(Frontend(saved)(*read_wav(p))) for p in (first, second))
    recognizer.reset_stream()
    alone = recognizer.predict_file(second)
    # The tiny model is sure of its tones: the int8 outputs move by a step or two of 1/256.
    assert not np.array_equal(carried.window_probabilities, alone.window_probabilities)
    recognizer.reset_stream()
    assert np.array_equal(recognizer.predict_file(second).window_probabilities,
                          alone.window_probabilities)  # fmt: skip

    # The same for a live stream: the decisions over the second file depend on the first.
    rate = saved.sample_rate
    a, b = (read_wav(p)[0] for p in (first, second))

    def decisions_over_b(after_a: bool) -> list[list[float]]:
        live = EmotionRecognizer(artifact, engine="litert", speech_gate=None)
        stream = StreamRecognizer(live, sample_rate=rate, hop_s=0.1, smoothing=0)
        if after_a:
            stream.push(a)
        return [list(d.probabilities.values()) for d in stream.push(np.tile(b, 2))]

    streamed, fresh = decisions_over_b(True), decisions_over_b(False)
    # a is a whole number of hops long: the last decisions see the same windows of b.
    assert len(a) % round(0.1 * rate) == 0 and len(streamed) > len(fresh) > 0
    assert not np.array_equal(streamed[-len(fresh) :], fresh)


def test_stream_model_exports_to_onnx_with_its_normalization(stream_model, tmp_path):
    out = tmp_path / "stream.int8.onnx"
    code, report, stderr = run_cli(
        stream_model.path,
        "--format", "onnx", "--quantize", "int8", "--out", out,
        "--calibration", stream_model.train.parent,  # a folder: one stream, split for parity
    )  # fmt: skip
    assert code == 0, stderr
    assert report["passed"] and report["parity"]["heldout"] == "held-out calibration"
    artifact = load_artifact(out)
    assert artifact.metadata.frontend == stream_model.metadata.frontend
    recognizer = EmotionRecognizer(artifact, speech_gate=None)
    assert recognizer.stream is not None
    rows = manifest_rows(stream_model.heldout)
    labels = [recognizer.predict_file(path).label for path, _, _ in rows]
    assert np.mean([got == want for got, (_, want, _) in zip(labels, rows, strict=True)]) > 0.8
