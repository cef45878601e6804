"""Edge benchmark: end-to-end latency, memory and streaming cost of every engine and mode.

Exports one trained `.keras` model (`export.pipeline.export_model`) to TFLite and ONNX in
every quantization mode and to the numpy graph, then measures what the device runs, the
`edge_runtime` package, each model in a fresh single-threaded process (OMP/BLAS threads 1,
interpreter threads 1), so that peak RSS is that process's own and one engine's imports do
not weigh on another:

* `EmotionRecognizer.predict_file` on a 3 s EmoDB clip (16-bit WAV): WAV decode + speech
  gate + frontend + windows + inference; median and p90 wall time, median CPU time, the
  split into decode / speech gate / frontend / inference, and the same call with the gate
  off (the model path); load time; RSS after `import edge_runtime` and peak RSS; for LiteRT,
  the DELEGATE nodes in the interpreter's graph (XNNPACK, its default delegate);
* `StreamRecognizer` at a 0.5 s hop fed EmoDB speech in 0.1 s chunks: CPU seconds per
  second of audio (real-time factor, share of one core), and RSS after 60 s and 600 s of
  audio (bounded memory);
* the same predict under an emulated arm64 userland (`/work/shared/tools/arm64-run`, QEMU
  pinned to a Cortex-A72, the Raspberry Pi 4's core) with only numpy and the interpreters
  installed: a check that the runtime needs nothing else, and x86-vs-emulated ratios.

    python bench/bench_edge.py [--model runs/multi-model/model.keras] [--quick]

Saves every number to docs/results/bench/edge.json, then renders the "edge" section of
docs/benchmarks.md from it (bench/render_edge.py; re-render alone with
`python bench/_report.py render edge`). The measuring processes are bench/edge_worker.py,
which imports only the standard library, numpy and `edge_runtime` (it also runs inside the
emulator).
"""

from __future__ import annotations

import argparse
import json
import os
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
from edge_worker import CHUNK_S, HEAVY_MODULES, HOP_S, MARK

REPO = Path(__file__).resolve().parent.parent
WORKER = Path(__file__).resolve().parent / "edge_worker.py"
EMODB_WAV = Path("/work/shared/datasets/emodb/wav")
ARM64_RUN = Path("/work/shared/tools/arm64-run")
#: The Raspberry Pi 4's core: QEMU then offers only its features (ARMv8.0 NEON, no dot
#: product), so the libraries pick the kernels a Pi 4 would run.
EMULATED_CPU = "cortex-a72"
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
CLIP_SECONDS = 3.0
#: Untimed predicts before the timed ones, in each x86 measuring process.
WARMUP = 3

QUICK_EXPORTS = [("tflite", "none"), ("tflite", "int8"), ("onnx", "int8"), ("numpy", "none")]
#: Models streamed and run under emulation: the two int8 interpreters and the numpy engine.
KEY_EXPORTS = [("tflite", "int8"), ("onnx", "int8"), ("numpy", "none")]


# ----------------------------------------------------------------- orchestration
def _parse(output: str, what: str) -> list[dict]:
    """The JSON results in `output` (the lines that start with `MARK`), in order."""
    found = [json.loads(line[len(MARK) :]) for line in output.splitlines() if line.startswith(MARK)]
    if not found:
        raise RuntimeError(f"{what}: the measuring process printed no result:\n{output[-3000:]}")
    return found


def run_worker(args: list[str], timeout: float) -> dict:
    """Run bench/edge_worker.py with `args` in a fresh single-threaded x86 process."""
    proc = subprocess.run(
        [sys.executable, str(WORKER), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **SINGLE_THREAD_ENV, "PYTHONPATH": str(REPO)},
    )
    if proc.returncode:
        raise RuntimeError(f"worker {args[0]} failed:\n{proc.stderr[-3000:]}")
    (result,) = _parse(proc.stdout, f"worker {args}")
    return result


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
    for field in ("label", "delegate_nodes"):
        seen = {r[field] for r in results}
        if len(seen) != 1:
            raise RuntimeError(f"the same model gave different {field}s in different runs: {seen}")
    times = {name: [t for r in results for t in r["times"][name]] for name in results[0]["times"]}
    merged = {
        **results[0],
        "runs": sum(r["runs"] for r in results),
        "processes": len(results),
        "median": {name: float(np.median(v)) for name, v in times.items()},
        "p90": {name: float(np.percentile(v, 90)) for name, v in times.items()},
        "peak_rss_mb": max(r["peak_rss_mb"] for r in results),
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


def plan(args: argparse.Namespace) -> dict:
    """What a run measures, from the options: the "settings" of the saved results (the
    clip's source file is added once the clip is cut)."""
    from edge_runtime.formats import REGISTRY

    quick = args.quick
    every = [(f.name, mode) for f in REGISTRY.values() for mode in f.quantizations]
    short_s, long_s = (20.0, 120.0) if quick else (60.0, 600.0)
    return {
        "quick": quick,
        "model": _display(args.model),
        "exports": [list(key) for key in (QUICK_EXPORTS if quick else every)],
        "calibration_every": 20 if quick else 6,
        "clip_seconds": CLIP_SECONDS,
        "audio": str(args.audio),
        "clip_source": None,
        "runs": args.runs or (10 if quick else 40),
        "rounds": 1 if quick else 3,
        "warmup": WARMUP,
        "hop_s": HOP_S,
        "chunk_s": CHUNK_S,
        "stream_short_s": short_s,
        "stream_long_s": long_s,
        "emulator_runs": 2 if quick else 10,
        "emulated_cpu": EMULATED_CPU,
        "heavy_modules": list(HEAVY_MODULES),
    }


def measure_predict(ok: dict, clip: Path, s: dict) -> dict:
    """{(fmt, mode): pooled predict results}: `s["rounds"]` fresh processes per model,
    round-robin over the models, so that a burst of load from other jobs spreads over all
    of them instead of skewing one."""
    rounds: dict = {key: [] for key in ok}
    for _ in range(s["rounds"]):
        for key, r in ok.items():
            rounds[key].append(
                run_worker(["predict", str(r["path"]), str(clip), str(s["runs"]), str(WARMUP)], 900)
            )
    predict = {key: pool(results) for key, results in rounds.items()}
    for key, p in predict.items():
        print(
            f"{key}: e2e {p['median']['e2e']:.2f} ms, cpu {p['median']['e2e_cpu']:.2f} ms, "
            f"peak {p['peak_rss_mb']:.0f} MB",
            file=sys.stderr,
        )
    return predict


def measure_stream(ok: dict, stream_wav: Path, s: dict) -> dict:
    """{(fmt, mode): streaming results} of the `KEY_EXPORTS` models, one process each."""
    stream = {}
    for key in KEY_EXPORTS:
        if key in ok:
            short_s, long_s = str(s["stream_short_s"]), str(s["stream_long_s"])
            stream[key] = run_worker(
                ["stream", str(ok[key]["path"]), str(stream_wav), short_s, long_s], 1800
            )
            print(f"stream {key}: {stream[key]['long']}", file=sys.stderr)
    return stream


def measure_emulated(ok: dict, clip: Path, workdir: Path, s: dict) -> tuple[dict, str | None]:
    """The `KEY_EXPORTS` models' predict in the arm64 userland, and what the CLI's
    `predict` printed there: ({(fmt, mode): results}, line)."""
    keys = [key for key in KEY_EXPORTS if key in ok]
    commands = [
        f"python bench/edge_worker.py predict {_emu_path(ok[key]['path'])} "
        f"{_emu_path(clip)} {s['emulator_runs']} 1"
        for key in keys
    ]
    if ("tflite", "int8") in ok:
        commands.append(
            "python -m edge_runtime predict "
            f"{_emu_path(ok['tflite', 'int8']['path'])} {_emu_path(clip)}"
        )
    output = run_emulated(commands, 1800)
    emulated = {
        key: pool([result]) for key, result in zip(keys, _parse(output, "emulator"), strict=True)
    }
    cli_line = next(
        (
            line.replace(_emu_path(workdir) + "/", "")
            for line in output.splitlines()
            if line.startswith("/project/")
        ),
        None,
    )
    return emulated, cli_line


def measure(args: argparse.Namespace, s: dict, workdir: Path) -> dict:
    """Export, then measure every model: the "models" and "cli_line" of the results."""
    clip, stream_wav, s["clip_source"] = make_audio(workdir, s["stream_short_s"], args.audio)
    calibration = calibration_folder(workdir, s["calibration_every"], args.audio)
    exports = [tuple(key) for key in s["exports"]]
    exported = export_all(args.model, exports, workdir, calibration)
    ok = {key: r for key, r in exported.items() if "path" in r}
    predict = measure_predict(ok, clip, s)
    stream = measure_stream(ok, stream_wav, s)
    emulated, cli_line = {}, None
    if not args.no_emulator and ARM64_RUN.exists():
        emulated, cli_line = measure_emulated(ok, clip, workdir, s)
    models = [
        {
            "format": fmt,
            "quantize": mode,
            "export": {k: v for k, v in r.items() if k != "path"},
            "predict": predict.get((fmt, mode)),
            "stream": stream.get((fmt, mode)),
            "emulated": emulated.get((fmt, mode)),
        }
        for (fmt, mode), r in exported.items()
    ]
    return {"models": models, "cli_line": cli_line}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=REPO / "runs/multi-model/model.keras")
    parser.add_argument(
        "--audio", type=Path, default=EMODB_WAV, help="folder of speech WAVs (default: EmoDB)"
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: 4 exports, few runs")
    parser.add_argument("--runs", type=int, default=None, help="timed predicts per process")
    parser.add_argument("--no-emulator", action="store_true", help="skip the arm64 part")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    add_output_options(parser, "edge")
    args = parser.parse_args(argv)
    if not args.model.is_file():
        sys.exit(
            f"{args.model}: no such model; build it (scripts/build_default_model.sh) or pass "
            "--model (e.g. from dyser-demo)"
        )
    if not args.audio.is_dir():
        sys.exit(f"{args.audio} not found: the benchmark needs EmoDB (or --audio)")
    settings = plan(args)
    env = environment(("numpy", "ai-edge-litert", "onnxruntime"))
    started = time.perf_counter()
    # In the repo's ignored runs/ folder: the emulator sees only the repo (as /project).
    (REPO / "runs").mkdir(exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="edgebench-", dir=REPO / "runs"))
    try:
        measured = measure(args, settings, workdir)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    data = {
        "environment": env,
        "settings": settings,
        "load_1min": [env["load_1min"], os.getloadavg()[0]],
        "elapsed_s": time.perf_counter() - started,
        **measured,
    }
    print(publish("edge", data, **output_targets(args)))


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return str(path)


if __name__ == "__main__":
    main()
