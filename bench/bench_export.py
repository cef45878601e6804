"""Export benchmark: size, latency, agreement and accuracy of every format and mode on EmoDB.

Trains the default `build_dycnn_bilstm()` for a few epochs on real EmoDB features (3 s
random crops, dataset normalisation, temperature annealing) with two speakers held out
(03 male, 08 female), saves it with its metadata, then runs `export.pipeline.export_model`
(what `dyser-export` runs) for TFLite and ONNX in every quantization mode: calibration on
training-speaker audio, parity on the held-out speakers, engines from `edge_runtime`.
Single-thread median latency of one 3 s window; all exports measured in one run.

Then where the TFLite time goes, for the default time pooling (16x) and for pooling time 8x
(a second model trained the same way): the convolutions alone (the twin cut before the
Bi-LSTM) and the whole network, float32 and int8, timed side by side.

    KERAS_BACKEND=tensorflow python bench/bench_export.py [--epochs 20] [--workdir DIR]

Saves every number to docs/results/bench/export.json, then renders the "export" section of
docs/benchmarks.md from it (bench/render_export.py; re-render alone with
`python bench/_report.py render export`).
"""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import sys
import tempfile
import time
from pathlib import Path

import click
import keras
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _report import BENCHMARKS_MD, environment, publish
from render_export import SPLIT_PARTS

from edge_runtime.config import FrontendConfig
from edge_runtime.engines import open_engine
from edge_runtime.formats import QUANTIZATIONS
from edge_runtime.metadata import ModelMetadata
from edge_runtime.normalization import normalize, with_dataset_stats
from edge_runtime.windows import WindowPolicy, aggregate, random_window, split_windows
from export.parity import keras_probabilities, median_latency_ms
from export.pipeline import export_model
from export.tflite import convert_tflite
from keras_dyconv.callbacks import TemperatureAnnealing
from keras_dyconv.corpora import EMODB_EMOTIONS, load_emodb, write_manifest
from keras_dyconv.features import extract_corpus
from keras_dyconv.modelio import save_model
from keras_dyconv.models import build_dycnn_bilstm, time_reduction

ROOT = Path(__file__).resolve().parent.parent
EMODB = ROOT.parent / "shared" / "datasets" / "emodb"
HELDOUT_SPEAKERS = ("03", "08")
LABELS = tuple(EMODB_EMOTIONS.values())


def train(utts, feats, config, epochs: int, seed: int, **model_args) -> keras.Model:
    """The default model (or with `model_args` changed) trained on random 3 s crops of the
    training speakers."""
    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    y = np.array([LABELS.index(u.label) for u in utts])
    model = build_dycnn_bilstm(num_classes=len(LABELS), n_mels=config.n_mels, **model_args)
    # A short run has ~15 steps per epoch and the annealed temperature moves the conv
    # outputs: with Keras's default momentum 0.99 the BatchNorm moving statistics lag far
    # behind and the inference-mode model falls to chance level. 0.9 tracks them.
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.9
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    annealing = TemperatureAnnealing(30.0, 1.0, epochs=max(1, epochs // 2))
    for epoch in range(epochs):
        x = np.stack([random_window(f, 300, rng) for f in feats])
        model.fit(
            x,
            y,
            batch_size=32,
            epochs=epoch + 1,
            initial_epoch=epoch,
            verbose=0,
            callbacks=[annealing],
            shuffle=True,
        )
        logs = model.history.history
        print(
            f"epoch {epoch + 1}/{epochs}: loss {logs['loss'][-1]:.3f} "
            f"acc {logs['accuracy'][-1]:.3f}",
            file=sys.stderr,
        )
    return model


def utterance_accuracy(model: keras.Model, feats, labels, policy: WindowPolicy) -> float:
    hits = [
        int(aggregate(keras_probabilities(model, split_windows(f, policy))).argmax() == label)
        for f, label in zip(feats, labels, strict=True)
    ]
    return float(np.mean(hits))


@click.command()
@click.option("--epochs", default=20, show_default=True, help="Training epochs.")
@click.option("--seed", default=0, show_default=True)
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Keep the model and exports here (default: a temporary folder).",
)
@click.option(
    "--calibration-utterances",
    default=120,
    show_default=True,
    help="Training-speaker utterances used for int8 calibration.",
)
@click.option(
    "--cache",
    type=click.Path(file_okay=False),
    default="/tmp/dyser-feature-cache",
    show_default=True,
    help="Feature cache folder.",
)
@click.option(
    "--emodb",
    type=click.Path(file_okay=False, path_type=Path),
    default=EMODB,
    show_default=True,
    help="EmoDB folder (with wav/).",
)
@click.option(
    "--results",
    "results_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Raw results JSON (default: docs/results/bench/export.json).",
)
@click.option(
    "--markdown",
    type=click.Path(dir_okay=False, path_type=Path),
    default=BENCHMARKS_MD,
    help="The Markdown file whose section is rewritten (default: docs/benchmarks.md).",
)
def main(
    epochs: int,
    seed: int,
    workdir: Path | None,
    calibration_utterances: int,
    cache: str,
    emodb: Path,
    results_file: Path | None,
    markdown: Path,
):
    if not (emodb / "wav").is_dir():
        raise click.ClickException(f"{emodb}/wav not found: the benchmark needs EmoDB")
    env = environment(("numpy", "keras", "tensorflow", "ai-edge-litert", "onnxruntime"))
    train_utts, train_feats, held_utts, held_feats, config = prepare(emodb, cache)
    policy = WindowPolicy(300, 100)
    workdir = workdir or Path(tempfile.mkdtemp(prefix="dyser-bench-export-"))
    workdir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    model = train(train_utts, train_feats, config, epochs, seed)
    train_s = time.perf_counter() - start
    held_labels = [LABELS.index(u.label) for u in held_utts]
    keras_acc = utterance_accuracy(model, held_feats, held_labels, policy)
    print(
        f"trained in {train_s:.0f} s; held-out utterance accuracy {keras_acc:.3f}", file=sys.stderr
    )
    metadata = ModelMetadata(
        labels=LABELS,
        frontend=config,
        window=policy,
        info={"corpus": "emodb", "heldout_speakers": list(HELDOUT_SPEAKERS), "epochs": epochs},
    )
    model_path = save_model(model, workdir / "emodb.keras", metadata)
    rng = np.random.default_rng(seed)
    pick = rng.choice(
        len(train_utts), size=min(calibration_utterances, len(train_utts)), replace=False
    )
    calib = write_manifest([train_utts[i] for i in sorted(pick)], workdir / "calibration.csv")
    held = write_manifest(held_utts, workdir / "heldout.csv")
    results, export_s = export_every_mode(model_path, calib, held, workdir)
    window = split_windows(held_feats[0], policy)[:1]
    predictors = {key: open_engine(r.output, threads=1).predict for key, r in results.items()}
    predictors["keras"] = lambda w: model(w, training=False)
    latency = interleaved_latency(predictors, window)
    calibration = [random_window(train_feats[i], 300, rng)[None] for i in sorted(pick)]
    data = {
        "environment": env,
        "settings": {
            "epochs": epochs,
            "seed": seed,
            "calibration_utterances": calibration_utterances,
            "heldout_speakers": list(HELDOUT_SPEAKERS),
            "window_frames": policy.frames,
            "hop_frames": policy.hop_frames,
            "frame_s": config.hop_length / config.sample_rate,
            "latency_rounds": LATENCY_ROUNDS,
            "latency_runs": LATENCY_RUNS,
        },
        "model": {
            "parameters": model.count_params(),
            "train_s": train_s,
            "heldout_utterance_accuracy": keras_acc,
        },
        "heldout_utterances": len(held_utts),
        "exports": [
            {
                "format": fmt,
                "quantize": mode,
                **results[fmt, mode].parity.to_dict(),
                "latency_ms": latency[fmt, mode],
                "export_s": export_s[fmt, mode],
            }
            for fmt, mode in EXPORTS
        ],
        "keras_latency_ms": latency["keras"],
        "split": pooling_split(
            model, (train_utts, train_feats, config), epochs, seed, calibration, window
        ),
    }
    print(publish("export", data, results=results_file, markdown=markdown))


def prepare(emodb: Path, cache: str) -> tuple[list, list, list, list, FrontendConfig]:
    """EmoDB's utterances split into training and held-out speakers, with their log-mel
    features normalised by the training speakers' statistics: (training utterances, their
    features, held-out utterances, their features, the frontend configuration)."""
    utts = load_emodb(emodb)
    train_utts = [u for u in utts if u.speaker not in HELDOUT_SPEAKERS]
    held_utts = [u for u in utts if u.speaker in HELDOUT_SPEAKERS]
    raw_config = FrontendConfig()
    raw = extract_corpus([u.path for u in train_utts], raw_config, cache_dir=cache, n_jobs=2)
    config = with_dataset_stats(raw_config, raw)
    train_feats = [normalize(f.copy(), config) for f in raw]
    held_raw = extract_corpus([u.path for u in held_utts], raw_config, cache_dir=cache, n_jobs=2)
    held_feats = [normalize(f.copy(), config) for f in held_raw]
    return train_utts, train_feats, held_utts, held_feats, config


def export_every_mode(
    model_path: Path, calibration: Path, holdout: Path, workdir: Path
) -> tuple[dict, dict]:
    """`export_model` for every (format, mode) of `EXPORTS`: ({key: ExportResult},
    {key: seconds the export took})."""
    results, export_s = {}, {}
    for fmt, mode in EXPORTS:
        t0 = time.perf_counter()
        results[fmt, mode] = export_model(
            model_path,
            fmt,
            mode,
            calibration=calibration,
            holdout=holdout,
            out=workdir / f"emodb.{mode}.{fmt}",
            progress=False,
            log=lambda message: print(message, file=sys.stderr),
        )
        export_s[fmt, mode] = time.perf_counter() - t0
    return results, export_s


def pooling_split(
    model: keras.Model,
    training: tuple,
    epochs: int,
    seed: int,
    calibration: list[np.ndarray],
    window: np.ndarray,
) -> dict:
    """The "split" results: a second model pooling time 8x trained like `model` on
    `training` (utterances, features, frontend configuration), and both timed whole and
    cut before the Bi-LSTM (`lstm_split`)."""
    start = time.perf_counter()
    fine = train(*training, epochs, seed, pool_size=(2, 2))
    fine_s = time.perf_counter() - start
    coarse_x, fine_x = time_reduction(model), time_reduction(fine)
    names = {f"{coarse_x}x (default)": coarse_x, f"{fine_x}x": fine_x}
    split = lstm_split(dict(zip(names, (model, fine), strict=True)), calibration, window)
    return {
        "fine_train_s": fine_s,
        "models": [
            {
                "pooling": pooling,
                "time_reduction": reduction,
                "parts": {part: list(split[pooling, part]) for part in SPLIT_PARTS},
            }
            for pooling, reduction in names.items()
        ],
    }


def lstm_split(models: dict, calibration: list[np.ndarray], window: np.ndarray) -> dict:
    """(pooling, part) -> (float32 ms, int8 ms) per window: whole network, convolutions
    only (the twin cut before the Bi-LSTM), and the difference (Bi-LSTM + head)."""
    import tf_keras
    from ai_edge_litert.interpreter import Interpreter

    from export.twin import build_twin

    def runner(flatbuffer: bytes):
        interpreter = Interpreter(model_content=flatbuffer, num_threads=1)
        interpreter.allocate_tensors()
        (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
        scale, zero = inp["quantization"]
        x = window if not scale else np.round(window / scale + zero).clip(-128, 127)
        x = x.astype(inp["dtype"])

        def predict(_window: np.ndarray) -> np.ndarray:
            interpreter.set_tensor(inp["index"], x)
            interpreter.invoke()
            return interpreter.get_tensor(out["index"])

        return predict

    predictors = {}
    for pooling, model in models.items():
        twin = build_twin(model, frames=window.shape[1])
        convolutions = tf_keras.Model(twin.input, twin.get_layer("frames_to_sequence").output)
        for part, graph in (("whole", twin), ("convolutions", convolutions)):
            for mode in ("none", "int8"):
                flatbuffer = convert_tflite(graph, mode, lambda: ([w] for w in calibration))
                predictors[pooling, part, mode] = runner(flatbuffer)
    ms = interleaved_latency(predictors, window)
    split = {}
    for pooling in models:
        for part in ("whole", "convolutions"):
            split[pooling, part] = (ms[pooling, part, "none"], ms[pooling, part, "int8"])
        whole, conv = split[pooling, "whole"], split[pooling, "convolutions"]
        split[pooling, "Bi-LSTM + head"] = (whole[0] - conv[0], whole[1] - conv[1])
    return split


def interleaved_latency(predictors: dict, window: np.ndarray) -> dict:
    """Median single-window latency (ms) of each predictor, timed round-robin."""
    times: dict = {key: [] for key in predictors}
    for _ in range(LATENCY_ROUNDS):
        for key, predict in predictors.items():
            times[key].append(median_latency_ms(predict, window, LATENCY_RUNS))
    return {key: float(np.median(values)) for key, values in times.items()}


EXPORTS = [(fmt, mode) for fmt in ("tflite", "onnx") for mode in QUANTIZATIONS]
LATENCY_ROUNDS, LATENCY_RUNS = 15, 20
if __name__ == "__main__":
    main()
