"""The measuring processes of bench/bench_edge.py: one model, one fresh process, JSON out.

    python bench/edge_worker.py predict MODEL CLIP RUNS WARMUP
    python bench/edge_worker.py stream MODEL AUDIO SHORT_S LONG_S

Each prints one line: `MARK`, then its results as JSON. Imports only the standard library,
numpy and `edge_runtime` (an interpreter inside the engine that needs it), so that it runs
on the device's userland as well: bench_edge.py starts it in single-threaded x86 processes
and under the arm64 emulator, whose Python has nothing else installed.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import sys
import time
from typing import Any

import numpy as np

MARK = "BENCH_EDGE_JSON "
HEAVY_MODULES = ("tensorflow", "keras", "tf_keras", "torch", "jax", "scipy", "librosa", "sklearn")
HOP_S, CHUNK_S = 0.5, 0.1


def _rss_mb() -> float:
    """Current resident set size (MB) from /proc (Linux)."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_rss_mb() -> float:
    """Peak resident set size (MB) of this process image: VmHWM from /proc (Linux).

    Not `ru_maxrss`: Linux carries the parent's high-water mark over fork + exec, so a
    worker started by this (TensorFlow-sized) parent would report the parent's peak.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _emit(result: dict) -> None:
    print(MARK + json.dumps(result), flush=True)


def worker_predict(model: str, clip: str, runs: int, warmup: int) -> None:
    """Time `predict_file(clip)` and its parts in this (fresh) process; print JSON.

    Parts, each timed alone after every whole call: WAV decode, the speech gate
    (`detect_speech`, wall and CPU), frontend, inference; and `predict_file` with the gate
    off (`model_path`: decode + frontend + windows + inference, wall and CPU), so that the
    gate's share of the end to end is measured, not inferred.
    """
    t0 = time.perf_counter()
    import edge_runtime  # noqa: F401  (the baseline: the package alone)

    import_ms = 1e3 * (time.perf_counter() - t0)
    rss_import = _rss_mb()
    from edge_runtime.recognizer import EmotionRecognizer

    t0 = time.perf_counter()
    recognizer = EmotionRecognizer(model, threads=1)
    load_ms = 1e3 * (time.perf_counter() - t0)
    rss_loaded = _rss_mb()
    for _ in range(warmup):
        recognizer.predict_file(clip)
    times, prediction, windows = time_parts(recognizer, clip, runs)
    peak = _peak_rss_mb()  # before the extra interpreters below
    heavy_loaded = sorted(m for m in HEAVY_MODULES if m in sys.modules)
    delegate_ms = _litert_window_ms(recognizer, windows[:1], runs)
    _emit(
        {
            "machine": platform.machine(),
            "engine": recognizer.engine.name,
            "delegate_nodes": delegate_nodes(recognizer.engine),
            "gate": recognizer.speech_gate is not None,
            "label": prediction.label,
            "windows": len(windows),
            "runs": runs,
            "import_ms": import_ms,
            "load_ms": load_ms,
            "rss_import_mb": rss_import,
            "rss_loaded_mb": rss_loaded,
            "peak_rss_mb": peak,
            "times": times,
            "window_ms": delegate_ms,
            "heavy_loaded": heavy_loaded,
            "heavy_installed": sorted(m for m in HEAVY_MODULES if _installed(m)),
        }
    )


def time_parts(recognizer, clip: str, runs: int) -> tuple[dict[str, list[float]], Any, np.ndarray]:
    """`runs` timings (ms) of `recognizer.predict_file(clip)` and of its parts, interleaved
    run by run so that load hits all alike: (times by part, the last prediction, the clip's
    model windows).

    Parts: "e2e" (the whole call), "model_path" (the same call with the gate off), "decode",
    "frontend", "inference", and "gate" (`detect_speech`) only when the recognizer has a
    speech gate; "e2e", "model_path" and "gate" also as process CPU time ("<part>_cpu").
    """
    from edge_runtime.speech import detect_speech
    from edge_runtime.wav import read_wav
    from edge_runtime.windows import split_windows

    gate = recognizer.speech_gate
    parts = ["e2e", "e2e_cpu", "model_path", "model_path_cpu", "decode"]
    parts += ["gate", "gate_cpu"] if gate is not None else []
    parts += ["frontend", "inference"]
    times: dict[str, list[float]] = {name: [] for name in parts}
    clock, cpu = time.perf_counter_ns, time.process_time_ns
    for _ in range(runs):
        w0, c0 = clock(), cpu()
        prediction = recognizer.predict_file(clip)
        w1, c1 = clock(), cpu()
        recognizer.speech_gate = None  # the same call without the gate
        try:
            recognizer.predict_file(clip)
        finally:
            recognizer.speech_gate = gate
        w2, c2 = clock(), cpu()
        samples, rate = read_wav(clip)
        w3, c3 = clock(), cpu()
        if gate is not None:
            detect_speech(samples, rate, gate)
        w4, c4 = clock(), cpu()
        feats = recognizer.frontend(samples, rate)
        w5 = clock()
        windows = split_windows(feats, recognizer.policy).astype(np.float32)
        w6 = clock()
        recognizer.engine.predict(windows)
        w7 = clock()
        spans = {
            "e2e": w1 - w0,
            "e2e_cpu": c1 - c0,
            "model_path": w2 - w1,
            "model_path_cpu": c2 - c1,
            "decode": w3 - w2,
            "gate": w4 - w3,
            "gate_cpu": c4 - c3,
            "frontend": w5 - w4,
            "inference": w7 - w6,
        }
        for name in parts:
            times[name].append(spans[name] / 1e6)
    return times, prediction, windows


def delegate_nodes(engine) -> int | None:
    """DELEGATE nodes in a LiteRT engine's graph, None for other engines.

    The interpreter's node list, not a log line: a delegate that takes part of the graph
    adds one DELEGATE node per partition it took. This runtime passes no delegates, so
    these are LiteRT's default delegate, XNNPACK (with `OpResolverType.
    BUILTIN_WITHOUT_DEFAULT_DELEGATES` the same graph has none: `_litert_window_ms`).
    """
    from edge_runtime.engines import LiteRTEngine

    if not isinstance(engine, LiteRTEngine):
        return None
    return engine.ops().count("DELEGATE")


def _litert_window_ms(recognizer, window: np.ndarray, runs: int) -> dict[str, float]:
    """Median invoke (ms) of one window in fresh LiteRT interpreters with the default
    delegates (XNNPACK) and with the builtin kernels only, and the DELEGATE nodes of each
    graph ("default_nodes", "builtin_nodes"); {} for other engines."""
    from edge_runtime.engines import LiteRTEngine, litert_ops, quantize

    if not isinstance(recognizer.engine, LiteRTEngine):
        return {}
    try:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType
    except ImportError:
        return {}

    spec = recognizer.artifact.artifact_info.input
    x = quantize(window, spec)
    result = {}
    for name, resolver in (
        ("default", OpResolverType.AUTO),
        ("builtin", OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES),
    ):
        interpreter = Interpreter(
            model_path=str(recognizer.artifact.model_path),
            num_threads=1,
            experimental_op_resolver_type=resolver,
        )
        interpreter.allocate_tensors()
        result[f"{name}_nodes"] = litert_ops(interpreter).count("DELEGATE")
        index = interpreter.get_input_details()[0]["index"]
        times = []
        for _ in range(runs + 3):
            t = time.perf_counter_ns()
            interpreter.reset_all_variables()
            interpreter.set_tensor(index, x)
            interpreter.invoke()
            times.append((time.perf_counter_ns() - t) / 1e6)
        result[name] = float(np.median(times[3:]))
    t = time.perf_counter_ns()
    for _ in range(1000):
        interpreter.reset_all_variables()
    result["reset_us"] = (time.perf_counter_ns() - t) / 1e6
    return result


def _installed(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def worker_stream(model: str, audio: str, short_s: float, long_s: float) -> None:
    """Feed `long_s` seconds (the audio file, looped) in 0.1 s chunks; print JSON."""
    from edge_runtime.recognizer import EmotionRecognizer, StreamRecognizer
    from edge_runtime.wav import read_wav

    recognizer = EmotionRecognizer(model, threads=1)
    samples, rate = read_wav(audio)
    stream = StreamRecognizer(recognizer, sample_rate=rate, hop_s=HOP_S)
    chunk = round(CHUNK_S * rate)
    samples = samples[: len(samples) // chunk * chunk]  # whole chunks, so the loop is exact
    n_chunks = len(samples) // chunk
    checkpoints = {}
    decision_ms: list[float] = []
    decisions = fed = 0
    c0, w0 = time.process_time(), time.perf_counter()
    for i in range(round(long_s / CHUNK_S)):
        start = (i % n_chunks) * chunk
        t = time.perf_counter()
        made = stream.push(samples[start : start + chunk])
        if made:
            decision_ms.append(1e3 * (time.perf_counter() - t))
            decisions += len(made)
        fed += chunk
        for mark in (short_s, long_s):
            if mark not in checkpoints and fed >= mark * rate:
                checkpoints[mark] = {
                    "audio_s": fed / rate,
                    "cpu_s": time.process_time() - c0,
                    "wall_s": time.perf_counter() - w0,
                    "decisions": decisions,
                    "rss_mb": _rss_mb(),
                }
    _emit(
        {
            "engine": recognizer.engine.name,
            "delegate_nodes": delegate_nodes(recognizer.engine),
            "short": checkpoints[short_s],
            "long": checkpoints[long_s],
            "decision_ms_median": float(np.median(decision_ms)),
            "decision_ms_p90": float(np.percentile(decision_ms, 90)),
            "peak_rss_mb": _peak_rss_mb(),
        }
    )


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    kinds = {"predict": (worker_predict, int), "stream": (worker_stream, float)}
    if len(argv) != 5 or argv[0] not in kinds:
        sys.exit(__doc__.split("\n\n")[1])
    worker, number = kinds[argv[0]]
    model, audio, first, second = argv[1:]
    worker(model, audio, number(first), number(second))


if __name__ == "__main__":
    main()
