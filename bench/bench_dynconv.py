"""DynamicConv2D vs Conv2D of the same shape, per Keras backend, and the default model's step.

Usage: ``python bench/bench_dynconv.py [--quick] [--backends tensorflow,jax,torch,torch:1]``

Each backend runs in its own subprocess (the Keras backend is fixed at import); ``torch:1``
is PyTorch limited to one intra-op thread, whose ratios show the cost of each path without
thread synchronisation, which a CPU shared with other jobs makes noisy. In each subprocess a
tiny model ``Input(300 frames, 64 mels, 16 ch) -> conv(32, 3x3, same) -> GAP -> Dense(7)``
is built with a static ``Conv2D`` and with ``DynamicConv2D`` (K=4) once per computation
path, and timed side by side in interleaved rounds:

* training: ``train_on_batch`` (forward + backward + Adam, the backend's compiled train step)
  on a batch of 32;
* inference: ``predict_on_batch`` on a batch of 1 through a model built with
  ``batch_size=1``, the shape the exporter and the edge runtime use.

Each ratio is the median over rounds of (dynamic time / Conv2D time in the same round), so
load from other processes hits both sides alike. A second table times one training step of
the default `build_dycnn_bilstm()` (batch 32, 300 frames x 64 mels) per backend and path.
``--quick`` runs few repeats and prints without writing (unless ``--results`` or
``--markdown`` says where to). A full run saves every number to
docs/results/bench/dynconv.json, then renders the "dynconv" section of docs/benchmarks.md from
it (bench/render_dynconv.py; re-render alone with ``python bench/_report.py render dynconv``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import (
    BENCHMARKS_MD,
    add_output_options,
    environment,
    output_targets,
    publish,
)

CONFIGS = ("tensorflow", "jax", "torch", "torch:1")
PATHS = ("aggregate", "branches")
MODEL_MODES = ("auto", "branches")
BATCH, FRAMES, MELS, CIN, FILTERS, K = 32, 300, 64, 16, 32, 4
#: Interleaved rounds per measurement, full run and --quick.
ROUNDS = {
    False: {"train": 7, "infer": 40, "model": 5},
    True: {"train": 3, "infer": 5, "model": 3},
}


# ------------------------------------------------------------------- worker (one backend)
def _thread_setting() -> str:
    """The backend's intra-op thread setting, as the backend reports it."""
    import keras

    backend = keras.backend.backend()
    if backend == "torch":
        import torch

        return f"torch.get_num_threads() = {torch.get_num_threads()}"
    if backend == "tensorflow":
        import tensorflow as tf

        intra = tf.config.threading.get_intra_op_parallelism_threads()
        return f"intra_op = {intra or 'default (all cores)'}"
    return "XLA CPU default (all cores)"


def _layer_models() -> dict[str, tuple]:
    """Per variant: (compiled train model with batch None, inference model with batch 1)."""
    import keras

    from keras_dyconv import DynamicConv2D

    models = {}
    for variant in ("Conv2D", *PATHS):
        if variant == "Conv2D":
            conv = keras.layers.Conv2D(FILTERS, 3, padding="same")
        else:
            conv = DynamicConv2D(FILTERS, 3, padding="same", num_kernels=K, mode=variant)
        pool, dense = keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(7)
        pair = []
        for batch_size in (None, 1):  # the two models share the layers (and weights)
            inputs = keras.Input((FRAMES, MELS, CIN), batch_size=batch_size)
            pair.append(keras.Model(inputs, dense(pool(conv(inputs)))))
        pair[0].compile(
            optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        )
        models[variant] = tuple(pair)
    # Same weights on both dynamic paths: their outputs must agree (checked in `_worker`).
    models["branches"][0].set_weights(models["aggregate"][0].get_weights())
    return models


def _time_rounds(calls: dict[str, Callable[[], object]], rounds: int) -> dict[str, list[float]]:
    """Wall seconds of each call, interleaved round by round (order reversed every round)."""
    names = list(calls)
    times = {name: [] for name in names}
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            start = time.perf_counter()
            calls[name]()
            times[name].append(time.perf_counter() - start)
    return times


def _summary(times: dict[str, list[float]], base: str) -> dict[str, dict[str, float]]:
    """Median ms, relative half interquartile range and median per-round ratio to `base`."""
    out = {}
    for name, ts in times.items():
        q1, median, q3 = statistics.quantiles(ts, n=4)
        ratios = [t / b for t, b in zip(ts, times[base], strict=True)]
        out[name] = {
            "ms": 1e3 * median,
            "spread": (q3 - q1) / (2 * median),
            "ratio": statistics.median(ratios),
        }
    return out


def _layer_bench(quick: bool) -> dict:
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.normal(size=(BATCH, FRAMES, MELS, CIN)).astype("float32")
    y = rng.integers(0, 7, size=BATCH)
    x1 = x[:1]
    models = _layer_models()
    agg, br = (np.asarray(models[p][1].predict_on_batch(x1)) for p in PATHS)
    agreement = float(np.abs(agg - br).max() / np.abs(br).max())
    if agreement > 1e-5:
        raise AssertionError(f"aggregate and branches disagree: max rel. diff {agreement:.1e}")
    warmup = {}
    for name, (train, infer) in models.items():
        start = time.perf_counter()
        for _ in range(2):
            train.train_on_batch(x, y)
            infer.predict_on_batch(x1)
        warmup[name] = time.perf_counter() - start
    train_calls = {n: (lambda m=m: m[0].train_on_batch(x, y)) for n, m in models.items()}
    cpu0, wall0 = time.process_time(), time.perf_counter()
    train_times = _time_rounds(train_calls, ROUNDS[quick]["train"])
    cpu_use = (time.process_time() - cpu0) / (time.perf_counter() - wall0)
    infer_calls = {n: (lambda m=m: m[1].predict_on_batch(x1)) for n, m in models.items()}
    infer_times = _time_rounds(infer_calls, ROUNDS[quick]["infer"])
    return {
        "cpu_use": cpu_use,
        "agreement": agreement,
        "warmup_s": warmup,
        "train": _summary(train_times, "Conv2D"),
        "infer": _summary(infer_times, "Conv2D"),
    }


def _model_bench(quick: bool) -> dict:
    """One `train_on_batch` of the default model per conv_mode, interleaved; first-call s."""
    import numpy as np

    import keras_dyconv

    rng = np.random.default_rng(1)
    x = rng.normal(size=(BATCH, FRAMES, MELS)).astype("float32")
    y = rng.integers(0, 7, size=BATCH)
    models, first = {}, {}
    for mode in MODEL_MODES:
        model = keras_dyconv.build_dycnn_bilstm(conv_mode=mode)
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        start = time.perf_counter()
        model.train_on_batch(x, y)
        first[mode] = time.perf_counter() - start
        model.train_on_batch(x, y)
        models[mode] = model
    calls = {mode: (lambda m=m: m.train_on_batch(x, y)) for mode, m in models.items()}
    summary = _summary(_time_rounds(calls, ROUNDS[quick]["model"]), MODEL_MODES[-1])
    return {mode: {**summary[mode], "first_s": first[mode]} for mode in MODEL_MODES}


def _worker(quick: bool, threads: int | None, model: bool) -> dict:
    import keras

    from keras_dyconv.layers import auto_mode

    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    keras.utils.set_random_seed(0)
    return {
        "backend": keras.backend.backend(),
        "auto": auto_mode(),
        "threads": _thread_setting(),
        **_layer_bench(quick),
        "model": _model_bench(quick) if model else None,
    }


# ------------------------------------------------------------------------ driver (parent)
def _run_config(config: str, quick: bool) -> dict:
    """Run the worker for `config` ("backend" or "torch:THREADS") in a fresh interpreter."""
    backend, _, threads = config.partition(":")
    if backend not in ("tensorflow", "jax", "torch") or (threads and backend != "torch"):
        raise ValueError(f"unknown config {config!r}: expected one of {', '.join(CONFIGS)}")
    cmd = [sys.executable, __file__, "--worker", *(["--quick"] if quick else [])]
    if threads:  # a thread-limited run is for the layer ratios only
        cmd += ["--threads", threads, "--no-model"]
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        tail = proc.stderr[-3000:]
        raise RuntimeError(f"{config} worker failed (exit {proc.returncode}):\n{tail}")
    result = json.loads(lines[-1][len("RESULT ") :])
    result["label"] = backend + (f" ({threads} thread{'s' * (threads != '1')})" if threads else "")
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="few repeats; print only unless told where to write"
    )
    parser.add_argument("--backends", default=",".join(CONFIGS), help="comma-separated")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--no-model", action="store_true", help=argparse.SUPPRESS)
    add_output_options(parser, "dynconv")
    args = parser.parse_args(argv)
    if args.worker:
        result = _worker(args.quick, args.threads, model=not args.no_model)
        print("RESULT " + json.dumps(result), flush=True)
        return
    env, results = environment(("keras", "tensorflow", "jax", "torch", "numpy")), []
    for config in args.backends.split(","):
        start = time.perf_counter()
        results.append(_run_config(config, args.quick))
        print(f"{config}: {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    data = {
        "environment": env,
        "settings": {
            "quick": args.quick,
            "backends": args.backends.split(","),
            "batch": BATCH,
            "frames": FRAMES,
            "mels": MELS,
            "in_channels": CIN,
            "filters": FILTERS,
            "num_kernels": K,
            "paths": list(PATHS),
            "model_modes": list(MODEL_MODES),
            "rounds": ROUNDS[args.quick],
        },
        "load_1min": [env["load_1min"], os.getloadavg()[0]],
        "results": results,
    }
    targets = output_targets(args)
    if args.quick and args.results is None and args.markdown == BENCHMARKS_MD:
        targets = {"results": None, "markdown": None}  # a smoke run: print only
    print(publish("dynconv", data, **targets))


if __name__ == "__main__":
    main()
