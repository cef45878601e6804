"""Edge benchmark: end-to-end latency, memory and streaming cost of every engine and mode.

Exports one trained `.keras` model (`export.pipeline.export_model`) to TFLite and ONNX in
every quantization mode and to the numpy graph, then measures what the device runs, the
`edge_runtime` package, each model in a fresh single-threaded process (OMP/BLAS threads 1,
interpreter threads 1), so that peak RSS is that process's own and one engine's imports do
not weigh on another:

* `EmotionRecognizer.predict_file` on a 3 s EmoDB clip (16-bit WAV): WAV decode + frontend +
  windows + inference; median and p90 wall time, median CPU time, and the split into
  decode / frontend / inference; load time; RSS after `import edge_runtime` and peak RSS;
* `StreamRecognizer` at a 0.5 s hop fed EmoDB speech in 0.1 s chunks: CPU seconds per
  second of audio (real-time factor, share of one core), and RSS after 60 s and 600 s of
  audio (bounded memory);
* the same predict under an emulated arm64 userland (`/work/shared/tools/arm64-run`, QEMU
  pinned to a Cortex-A72, the Raspberry Pi 4's core) with only numpy and the interpreters
  installed: a check that the runtime needs nothing else, and x86-vs-emulated ratios.

    python bench/bench_edge.py [--model runs/default-model/model.keras] [--quick]

Saves every number to docs/results/bench/edge.json, then renders the "edge" section of
docs/benchmarks.md from it (bench/render_edge.py; re-render alone with
`python bench/_report.py render edge`).

`--worker ...` is the internal entry point of the measuring processes: it imports only
the standard library, numpy and `edge_runtime` (it also runs inside the emulator).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _report import add_output_options, environment, output_targets, publish

REPO = Path(__file__).resolve().parent.parent
EMODB_WAV = Path("/work/shared/datasets/emodb/wav")
ARM64_RUN = Path("/work/shared/tools/arm64-run")
#: The Raspberry Pi 4's core: QEMU then offers only its features (ARMv8.0 NEON, no dot
#: product), so the libraries pick the kernels a Pi 4 would run.
EMULATED_CPU = "cortex-a72"
MARK = "BENCH_EDGE_JSON "
#: What LiteRT logs (stderr) when its default XNNPACK delegate takes the graph.
XNNPACK_LOG = "Created TensorFlow Lite XNNPACK delegate"
SINGLE_THREAD_ENV = {
    name: "1"
    for name in (
        "OMP_NUM_THREADS",
        "OPENBLAS_NUM_THREADS",
        "MKL_NUM_THREADS",
        "BLIS_NUM_THREADS",
        "NUMEXPR_NUM_THREADS",
        "VECLIB_MAXIMUM_THREADS",
    )
}
HEAVY_MODULES = ("tensorflow", "keras", "tf_keras", "torch", "jax", "scipy", "librosa", "sklearn")
CLIP_SECONDS = 3.0
HOP_S, CHUNK_S = 0.5, 0.1
#: Untimed predicts before the timed ones, in each x86 measuring process.
WARMUP = 3

QUICK_EXPORTS = [("tflite", "none"), ("tflite", "int8"), ("onnx", "int8"), ("numpy", "none")]
#: Models streamed and run under emulation: the two int8 interpreters and the numpy engine.
KEY_EXPORTS = [("tflite", "int8"), ("onnx", "int8"), ("numpy", "none")]


# ----------------------------------------------------------------- measuring processes
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
    """Time `predict_file(clip)` and its parts in this (fresh) process; print JSON."""
    t0 = time.perf_counter()
    import edge_runtime  # noqa: F401  (the baseline: the package alone)

    import_ms = 1e3 * (time.perf_counter() - t0)
    rss_import = _rss_mb()
    from edge_runtime.recognizer import EmotionRecognizer
    from edge_runtime.wav import read_wav
    from edge_runtime.windows import split_windows

    t0 = time.perf_counter()
    recognizer = EmotionRecognizer(model, threads=1)
    load_ms = 1e3 * (time.perf_counter() - t0)
    rss_loaded = _rss_mb()
    for _ in range(warmup):
        prediction = recognizer.predict_file(clip)

    parts = ("e2e", "e2e_cpu", "decode", "frontend", "inference")
    times: dict[str, list[float]] = {name: [] for name in parts}
    clock, cpu = time.perf_counter_ns, time.process_time_ns
    for _ in range(runs):  # whole call and its parts interleaved, so load hits all alike
        w0, c0 = clock(), cpu()
        prediction = recognizer.predict_file(clip)
        w1, c1 = clock(), cpu()
        samples, rate = read_wav(clip)
        w2 = clock()
        feats = recognizer.frontend(samples, rate)
        w3 = clock()
        windows = split_windows(feats, recognizer.policy).astype(np.float32)
        w4 = clock()
        recognizer.engine.predict(windows)
        w5 = clock()
        for name, ns in zip(parts, (w1 - w0, c1 - c0, w2 - w1, w3 - w2, w5 - w4), strict=True):
            times[name].append(ns / 1e6)
    peak = _peak_rss_mb()  # before the extra interpreters below
    heavy_loaded = sorted(m for m in HEAVY_MODULES if m in sys.modules)
    delegate_ms = _litert_window_ms(recognizer, windows[:1], runs)
    _emit(
        {
            "machine": platform.machine(),
            "engine": recognizer.engine.name,
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


def _litert_window_ms(recognizer, window: np.ndarray, runs: int) -> dict[str, float]:
    """Median invoke (ms) of one window in fresh LiteRT interpreters with the default
    delegates (XNNPACK) and with the builtin kernels only; {} for other engines."""
    if not recognizer.engine.name.startswith("litert ("):
        return {}
    try:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType
    except ImportError:
        return {}
    from edge_runtime.engines import quantize

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
            "short": checkpoints[short_s],
            "long": checkpoints[long_s],
            "decision_ms_median": float(np.median(decision_ms)),
            "decision_ms_p90": float(np.percentile(decision_ms, 90)),
            "peak_rss_mb": _peak_rss_mb(),
        }
    )


# ----------------------------------------------------------------- orchestration
def _parse(output: str, what: str) -> list[dict]:
    """The JSON results in `output`, each with "xnnpack": whether the log lines printed
    since the previous result say that LiteRT created its XNNPACK delegate."""
    found, log = [], []
    for line in output.splitlines():
        if line.startswith(MARK):
            found.append({**json.loads(line[len(MARK) :]), "xnnpack": XNNPACK_LOG in "".join(log)})
            log = []
        else:
            log.append(line)
    if not found:
        raise RuntimeError(f"{what}: the measuring process printed no result:\n{output[-3000:]}")
    return found


def run_worker(args: list[str], timeout: float) -> dict:
    """Run this script's worker in a fresh single-threaded x86 process."""
    proc = subprocess.run(
        [sys.executable, __file__, "--worker", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **SINGLE_THREAD_ENV, "PYTHONPATH": str(REPO)},
    )
    if proc.returncode:
        raise RuntimeError(f"worker {args[0]} failed:\n{proc.stderr[-3000:]}")
    (result,) = _parse(proc.stdout, f"worker {args}")
    return {**result, "xnnpack": XNNPACK_LOG in proc.stderr}


def run_emulated(commands: list[str], timeout: float) -> str:
    """Run shell commands (from the repo root, /project inside) in the arm64 userland."""
    env_prefix = " ".join(f"{k}={v}" for k, v in SINGLE_THREAD_ENV.items())
    script = " && ".join(f"env PYTHONPATH=/project {env_prefix} {c} 2>&1" for c in commands)
    proc = subprocess.run(
        [str(ARM64_RUN), "bash", "-c", script],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "QEMU_CPU": EMULATED_CPU},
    )
    if proc.returncode:
        raise RuntimeError(f"arm64 emulator failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    return proc.stdout


def pool(results: list[dict]) -> dict:
    """One model's predict results from several processes: times pooled (median, p90),
    peak RSS the largest, the other figures their median."""
    labels = {r["label"] for r in results}
    if len(labels) != 1:
        raise RuntimeError(f"the same model gave different labels in different runs: {labels}")
    times = {name: [t for r in results for t in r["times"][name]] for name in results[0]["times"]}
    merged = {
        **results[0],
        "runs": sum(r["runs"] for r in results),
        "processes": len(results),
        "median": {name: float(np.median(v)) for name, v in times.items()},
        "p90": {name: float(np.percentile(v, 90)) for name, v in times.items()},
        "peak_rss_mb": max(r["peak_rss_mb"] for r in results),
        "xnnpack": all(r["xnnpack"] for r in results),
    }
    for name in ("import_ms", "load_ms", "rss_import_mb", "rss_loaded_mb"):
        merged[name] = float(np.median([r[name] for r in results]))
    merged["window_ms"] = {
        name: float(np.median([r["window_ms"][name] for r in results]))
        for name in results[0]["window_ms"]
    }
    del merged["times"]
    return merged


def _write_wav16(path: Path, samples: np.ndarray, rate: int) -> Path:
    pcm = np.clip(np.round(samples * 32768.0), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(rate)
        f.writeframes(pcm.tobytes())
    return path


def make_audio(workdir: Path, stream_s: float, audio: Path) -> tuple[Path, Path, str]:
    """(3 s clip, `stream_s` s of concatenated speech, clip source name), as 16-bit WAVs,
    from the WAV files of folder `audio`."""
    from edge_runtime.wav import read_wav

    files = sorted(audio.glob("*.wav"))
    clip = source = None
    pieces, total, rate = [], 0, None
    for path in files:
        samples, rate = read_wav(path)
        n = round(CLIP_SECONDS * rate)
        if clip is None and len(samples) >= n:
            clip, source = _write_wav16(workdir / "clip-3s.wav", samples[:n], rate), path.name
        if total < stream_s * rate:
            pieces.append(samples)
            total += len(samples)
        if clip is not None and total >= stream_s * rate:
            break
    speech = np.concatenate(pieces)[: int(stream_s * rate)]
    return clip, _write_wav16(workdir / "stream.wav", speech, rate), source


def calibration_folder(workdir: Path, every: int, audio: Path) -> Path:
    """A folder of links to every `every`-th WAV file of `audio` (export_model holds out
    25%)."""
    folder = workdir / "calibration"
    folder.mkdir()
    for path in sorted(audio.glob("*.wav"))[::every]:
        (folder / path.name).symlink_to(path)
    return folder


def export_all(model: Path, exports: list, workdir: Path, calibration: Path) -> dict:
    """{(fmt, mode): dict(path, size_kb, agreement, export_s) or dict(error)}."""
    from edge_runtime.formats import model_format
    from export.pipeline import ExportError, export_model

    results = {}
    for fmt, mode in exports:
        out = workdir / f"model.{mode}{model_format(fmt).suffix}"
        t0 = time.perf_counter()
        try:
            r = export_model(
                model,
                fmt,
                mode,
                calibration=calibration,
                out=out,
                progress=False,
                latency_runs=5,
            )
        except ExportError as err:
            print(f"export {fmt}/{mode} failed: {err}", file=sys.stderr)
            results[fmt, mode] = {"error": str(err)}
            continue
        results[fmt, mode] = {
            "path": r.output,
            "size_kb": r.parity.size_bytes / 1024,
            "agreement": r.parity.agreement,
            "export_s": time.perf_counter() - t0,
        }
        print(f"exported {fmt}/{mode} in {results[fmt, mode]['export_s']:.0f} s", file=sys.stderr)
    return results


def _emu_path(path: Path) -> str:
    return "/project/" + str(Path(path).resolve().relative_to(REPO))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=REPO / "runs/default-model/model.keras")
    parser.add_argument(
        "--audio", type=Path, default=EMODB_WAV, help="folder of speech WAVs (default: EmoDB)"
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: 4 exports, few runs")
    parser.add_argument("--runs", type=int, default=None, help="timed predicts per process")
    parser.add_argument("--no-emulator", action="store_true", help="skip the arm64 part")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    add_output_options(parser, "edge")
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        kind, *rest = args.worker
        if kind == "predict":
            worker_predict(rest[0], rest[1], int(rest[2]), int(rest[3]))
        else:
            worker_stream(rest[0], rest[1], float(rest[2]), float(rest[3]))
        return

    if not args.model.is_file():
        sys.exit(
            f"{args.model}: no such model; build it (scripts/build_default_model.sh) or pass "
            "--model (e.g. from dyser-demo)"
        )
    if not args.audio.is_dir():
        sys.exit(f"{args.audio} not found: the benchmark needs EmoDB (or --audio)")
    quick = args.quick
    from edge_runtime.formats import REGISTRY

    every = [(f.name, mode) for f in REGISTRY.values() for mode in f.quantizations]
    exports = QUICK_EXPORTS if quick else every
    runs = args.runs or (10 if quick else 40)
    n_rounds = 1 if quick else 3
    emu_runs = 2 if quick else 10
    short_s, long_s = (20.0, 120.0) if quick else (60.0, 600.0)
    calibration_every = 20 if quick else 6
    env = environment(("numpy", "ai-edge-litert", "onnxruntime"))
    started = time.perf_counter()

    # In the repo's ignored runs/ folder: the emulator sees only the repo (as /project).
    (REPO / "runs").mkdir(exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="edgebench-", dir=REPO / "runs"))
    try:
        clip, stream_wav, clip_source = make_audio(workdir, short_s, args.audio)
        calibration = calibration_folder(workdir, calibration_every, args.audio)
        exported = export_all(args.model, exports, workdir, calibration)
        ok = {key: r for key, r in exported.items() if "path" in r}

        # Round-robin over the models, a fresh process each time, so that a burst of load
        # from other jobs spreads over all of them instead of skewing one.
        rounds: dict = {key: [] for key in ok}
        for _ in range(n_rounds):
            for key, r in ok.items():
                rounds[key].append(
                    run_worker(["predict", str(r["path"]), str(clip), str(runs), str(WARMUP)], 900)
                )
        predict = {key: pool(results) for key, results in rounds.items()}
        for key, p in predict.items():
            print(
                f"{key}: e2e {p['median']['e2e']:.2f} ms, cpu {p['median']['e2e_cpu']:.2f} ms, "
                f"peak {p['peak_rss_mb']:.0f} MB",
                file=sys.stderr,
            )
        stream = {}
        for key in KEY_EXPORTS:
            if key in ok:
                stream[key] = run_worker(
                    ["stream", str(ok[key]["path"]), str(stream_wav), str(short_s), str(long_s)],
                    1800,
                )
                print(f"stream {key}: {stream[key]['long']}", file=sys.stderr)

        emulated, cli_line = {}, None
        if not args.no_emulator and ARM64_RUN.exists():
            keys = [key for key in KEY_EXPORTS if key in ok]
            commands = [
                f"python bench/bench_edge.py --worker predict {_emu_path(ok[key]['path'])} "
                f"{_emu_path(clip)} {emu_runs} 1"
                for key in keys
            ]
            if ("tflite", "int8") in ok:
                commands.append(
                    "python -m edge_runtime predict "
                    f"{_emu_path(ok['tflite', 'int8']['path'])} {_emu_path(clip)}"
                )
            output = run_emulated(commands, 1800)
            emulated = {
                key: pool([result])
                for key, result in zip(keys, _parse(output, "emulator"), strict=True)
            }
            cli_line = next(
                (
                    line.replace(_emu_path(workdir) + "/", "")
                    for line in output.splitlines()
                    if line.startswith("/project/")
                ),
                None,
            )
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)

    data = {
        "environment": env,
        "settings": {
            "quick": quick,
            "model": _display(args.model),
            "exports": [list(key) for key in exports],
            "calibration_every": calibration_every,
            "clip_seconds": CLIP_SECONDS,
            "audio": str(args.audio),
            "clip_source": clip_source,
            "runs": runs,
            "rounds": n_rounds,
            "warmup": WARMUP,
            "hop_s": HOP_S,
            "chunk_s": CHUNK_S,
            "stream_short_s": short_s,
            "stream_long_s": long_s,
            "emulator_runs": emu_runs,
            "emulated_cpu": EMULATED_CPU,
            "heavy_modules": list(HEAVY_MODULES),
        },
        "load_1min": [env["load_1min"], os.getloadavg()[0]],
        "elapsed_s": time.perf_counter() - started,
        "models": [
            {
                "format": fmt,
                "quantize": mode,
                "export": {k: v for k, v in r.items() if k != "path"},
                "predict": predict.get((fmt, mode)),
                "stream": stream.get((fmt, mode)),
                "emulated": emulated.get((fmt, mode)),
            }
            for (fmt, mode), r in exported.items()
        ],
        "cli_line": cli_line,
    }
    print(publish("edge", data, **output_targets(args)))


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return str(path)


if __name__ == "__main__":
    main()
