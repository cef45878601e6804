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
"""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import csv
import sys
import tempfile
import time
from pathlib import Path

import click
import keras
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _report import machine_line, markdown_table, verdict, write_section

from edge_runtime.config import FrontendConfig, with_dataset_stats
from edge_runtime.engines import open_engine
from edge_runtime.features import normalize
from edge_runtime.formats import QUANTIZATIONS
from edge_runtime.metadata import ModelMetadata
from edge_runtime.windows import WindowPolicy, aggregate, random_window, split_windows
from export.parity import keras_probabilities, median_latency_ms
from export.pipeline import export_model
from export.tflite import convert_tflite
from keras_dyconv.callbacks import TemperatureAnnealing
from keras_dyconv.corpora import EMODB_EMOTIONS, load_emodb
from keras_dyconv.features import extract_corpus
from keras_dyconv.modelio import save_model
from keras_dyconv.models import build_dycnn_bilstm, time_reduction

ROOT = Path(__file__).resolve().parent.parent
EMODB = ROOT.parent / "shared" / "datasets" / "emodb"
HELDOUT_SPEAKERS = ("03", "08")
LABELS = tuple(EMODB_EMOTIONS.values())


def write_manifest(utts, path: Path) -> Path:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "label", "speaker"])
        for u in utts:
            writer.writerow([str(u.path), u.label, u.speaker])
    return path


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
def main(epochs: int, seed: int, workdir: Path | None, calibration_utterances: int, cache: str):
    if not (EMODB / "wav").is_dir():
        raise click.ClickException(f"{EMODB}/wav not found: the benchmark needs EmoDB")
    utts = load_emodb(EMODB)
    train_utts = [u for u in utts if u.speaker not in HELDOUT_SPEAKERS]
    held_utts = [u for u in utts if u.speaker in HELDOUT_SPEAKERS]
    raw_config = FrontendConfig()
    raw = extract_corpus([u.path for u in train_utts], raw_config, cache_dir=cache, n_jobs=2)
    config = with_dataset_stats(raw_config, raw)
    train_feats = [normalize(f.copy(), config) for f in raw]
    held_raw = extract_corpus([u.path for u in held_utts], raw_config, cache_dir=cache, n_jobs=2)
    held_feats = [normalize(f.copy(), config) for f in held_raw]
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

    results, export_s = {}, {}
    for fmt, mode in EXPORTS:
        t0 = time.perf_counter()
        results[fmt, mode] = export_model(
            model_path,
            fmt,
            mode,
            calibration=calib,
            holdout=held,
            out=workdir / f"emodb.{mode}.{fmt}",
            progress=False,
            log=lambda message: print(message, file=sys.stderr),
        )
        export_s[fmt, mode] = time.perf_counter() - t0
    window = split_windows(held_feats[0], policy)[:1]
    predictors = {key: open_engine(r.output, threads=1).predict for key, r in results.items()}
    predictors["keras"] = lambda w: model(w, training=False)
    latency = interleaved_latency(predictors, window)

    rows = []
    for fmt, mode in EXPORTS:
        p, base = results[fmt, mode].parity, results[fmt, "none"].parity
        rows.append(
            [
                fmt,
                mode,
                f"{p.size_bytes / 1024:.0f}",
                f"{100 * p.size_bytes / base.size_bytes:.0f}%",
                f"{latency[fmt, mode]:.2f}",
                f"{latency[fmt, mode] / latency[fmt, 'none']:.2f}",
                f"{100 * p.agreement:.1f}",
                f"{p.max_abs_diff:.3f}",
                f"{100 * p.keras_accuracy:.1f} / {100 * p.export_accuracy:.1f}",
                f"{100 * p.keras_utterance_accuracy:.1f} / {100 * p.export_utterance_accuracy:.1f}",
                "yes" if p.passed else "**no**",
                f"{export_s[fmt, mode]:.0f}",
            ]
        )
    int8, f32 = results["tflite", "int8"].parity, results["tflite", "none"].parity
    checks = [
        ("int8 TFLite size <= 30% of float32", int8.size_bytes <= 0.30 * f32.size_bytes),
        ("int8 TFLite latency < float32", latency["tflite", "int8"] < latency["tflite", "none"]),
        (
            "int8 TFLite window accuracy within 1 point of Keras",
            abs(int8.export_accuracy - int8.keras_accuracy) <= 0.01,
        ),
        (
            "int8 TFLite utterance accuracy within 1 point of Keras",
            abs(int8.export_utterance_accuracy - int8.keras_utterance_accuracy) <= 0.01,
        ),
        ("int8 TFLite top-1 agreement >= 98%", int8.agreement >= 0.98),
    ]
    body = "\n\n".join(
        [
            f"`bench/bench_export.py --epochs {epochs}`: the default `build_dycnn_bilstm()` "
            f"({model.count_params():,} parameters) trained {epochs} epochs ({train_s:.0f} s) on "
            f"EmoDB speakers other than {'/'.join(HELDOUT_SPEAKERS)}; exported with "
            "`export.pipeline.export_model` (what `dyser-export` runs); int8 calibrated on "
            f"{calibration_utterances} training-speaker utterances; parity on the "
            f"{len(held_utts)} utterances ({int8.windows} windows of 3 s, 1 s hop) of the two "
            "held-out speakers, run by the `edge_runtime` engines (LiteRT with its default "
            "XNNPACK delegate, onnxruntime CPU). Latency: single-thread time of one 3 s window "
            "(batch 1), all models timed round-robin in the same loop (median over "
            f"{LATENCY_ROUNDS} rounds of the median of {LATENCY_RUNS} invokes); the Keras 3 "
            f"model itself (TensorFlow, eager): {latency['keras']:.2f} ms. "
            "Accuracy: Keras / export; utterance = mean of its windows' probabilities.",
            markdown_table(HEADER, rows),
            "Targets: " + "; ".join(f"{name}: {verdict(ok)}" for name, ok in checks) + ".",
            machine_line() + " The machine is shared with other jobs (2 cores): absolute "
            "latencies are noisy; the ratios come from the interleaved loop.",
        ]
    )
    start = time.perf_counter()
    fine = train(train_utts, train_feats, config, epochs, seed, pool_size=(2, 2))
    fine_s = time.perf_counter() - start
    calibration = [random_window(train_feats[i], 300, rng)[None] for i in sorted(pick)]
    coarse_x, fine_x = time_reduction(model), time_reduction(fine)
    split = lstm_split({f"{coarse_x}x (default)": model, f"{fine_x}x": fine}, calibration, window)
    split_rows = [
        [pooling, part, f"{f32:.2f}", f"{i8:.2f}", f"{i8 / f32:.2f}"]
        for (pooling, part), (f32, i8) in split.items()
    ]
    body += "\n\n" + "\n\n".join(
        [
            f"**Where the TFLite time goes.** The default model pools time {coarse_x}x, so "
            f"its Bi-LSTM runs {policy.frames // coarse_x} steps per 3 s window; the same "
            f"model pooling time {fine_x}x (trained the same way, {fine_s:.0f} s) runs "
            f"{policy.frames // fine_x}. Each is converted whole "
            "and cut before the Bi-LSTM (the convolutions alone); the Bi-LSTM + head row is "
            "the difference. All 8 interpreters (one thread, XNNPACK) timed round-robin in "
            "one loop, median ms per 3 s window. XNNPACK does not take "
            "UNIDIRECTIONAL_SEQUENCE_LSTM, so the LSTM runs LiteRT's own kernels, and the "
            "integer one costs more per step than the float one: halving the steps is what "
            "brings int8 under float32.",
            markdown_table(
                ["time pooling", "part", "float32 ms", "int8 ms", "int8 / float32"], split_rows
            ),
        ]
    )
    print(body)
    write_section("export", "Export: TFLite and ONNX, sizes, latency, parity (EmoDB)", body)


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
HEADER = [
    "format",
    "quantize",
    "size KB",
    "size vs fp32",
    "latency ms",
    "vs fp32",
    "agreement %",
    "max abs dp",
    "window acc %",
    "utterance acc %",
    "parity ok",
    "export s",
]

if __name__ == "__main__":
    main()
