"""The benchmark scripts' wiring (their runs need EmoDB and hours; this checks the calls),
and their two steps: measure -> JSON, JSON -> Markdown."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import wave
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import _report
import bench_ablation
import bench_training
import render_dynconv
import render_edge
import render_export
import render_frontend
import render_fuzz
import render_memory
import render_speech_gate
from test_speech_gate import speech_like


def test_ablation_calls_bench_training_with_every_option(monkeypatch, tmp_path):
    calls = []

    def fake_run(args: bench_training.BenchRun) -> Path:
        calls.append(args)
        raise SystemExit("stop before training")

    monkeypatch.setattr(bench_training, "run", fake_run)
    monkeypatch.setattr(bench_ablation, "ABLATION", tmp_path)
    with pytest.raises(SystemExit, match="stop before training"):
        bench_ablation.run_variant("dataset-norm+window2s", [0, 1], 2, "tensorflow", resume=True)
    options = {
        action.dest
        for action in bench_training.build_parser()._actions
        if action.help != argparse.SUPPRESS and action.dest not in ("help", "table_only")
    }
    (args,) = calls
    fields = {f.name for f in dataclasses.fields(args)}
    assert options <= fields, options - fields
    assert args.seeds == [0, 1] and args.resume and args.window == {"frames": 200, "hop_frames": 50}
    assert args.overrides["model"]["pool_size"] == [2, 2]  # ABLATION_MODEL pins the 8x model


@pytest.mark.parametrize("name", list(bench_ablation.VARIANTS))
def test_every_ablation_variant_is_a_valid_recipe(name):
    from edge_runtime.config import FrontendConfig
    from edge_runtime.windows import WindowPolicy
    from keras_dyconv.models import model_arguments
    from keras_dyconv.recipes import get_recipe

    overrides = dict(bench_ablation.VARIANTS[name][0])
    FrontendConfig(**overrides.pop("frontend", {}))
    WindowPolicy(**overrides.pop("window", {}))
    recipe = get_recipe("default").with_overrides(**overrides)  # unknown fields raise
    model_arguments(num_classes=7, **{**bench_ablation.ABLATION_MODEL, **recipe.model})
    paired = bench_ablation.PAIRED_WITH.get(name, bench_ablation.BASELINE)
    assert paired in bench_ablation.VARIANTS


def test_seconds_per_epoch_counts_refit_epochs():
    folds = [
        {"seconds": 90.0, "epochs_run": 30, "refit_epochs": 0},
        {"seconds": 200.0, "epochs_run": 30, "refit_epochs": 20},  # 4 s: the median
        {"seconds": 500.0, "epochs_run": 45},  # older results have no refit_epochs
    ]
    assert bench_ablation.seconds_per_epoch({"folds": folds}) == pytest.approx(4.0)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_killing_the_bench_stops_its_workers(tmp_path):
    """A killed parent used to leave its workers training into the checkpoints that the
    restarted run resumed from."""
    worker = "import os, sys, time; open(sys.argv[1], 'w').write(str(os.getpid())); time.sleep(60)"
    pid_files = [tmp_path / "worker0.pid", tmp_path / "worker1.pid"]
    parent = textwrap.dedent(
        f"""
        import os, sys
        sys.path.insert(0, {str(Path(bench_training.__file__).parent)!r})
        import bench_training
        bench_training.exit_on_sigterm()
        workers = [[sys.executable, "-c", {worker!r}, p] for p in {list(map(str, pid_files))!r}]
        bench_training.run_workers(workers, dict(os.environ))
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", parent])
    deadline = time.monotonic() + 60
    while not all(p.exists() and p.read_text() for p in pid_files):
        assert time.monotonic() < deadline and proc.poll() is None, "workers did not start"
        time.sleep(0.1)
    proc.terminate()
    assert proc.wait(timeout=30) == 128 + signal.SIGTERM
    for p in pid_files:
        with pytest.raises(ProcessLookupError):
            os.kill(int(p.read_text()), 0)


# ------------------------------------------------------------ results JSON -> Markdown
# Each bench saves its raw results to docs/results/bench/<name>.json and renders its section
# of docs/benchmarks.md from that file alone (bench/render_<name>.py).
REPO = Path(__file__).resolve().parent.parent
ENV = {
    "date": "2026-01-02",
    "machine": "x86_64",
    "cores": 2,
    "cpu": "Test CPU",
    "python": "3.11.7",
    "versions": {"numpy": "2.4.6", "librosa": "0.11.0"},
    "load_1min": 0.5,
}
MACHINE = "Measured 2026-01-02 on x86_64 (2 cores), Python 3.11.7."


def _speed(edge_s: float, librosa_s: float) -> dict:
    return {"edge_s": edge_s, "librosa_s": librosa_s}


def frontend_results() -> dict:
    diff = {"logmel": {"max": 0.406, "mean": 0.0015}, "mfcc39": {"max": 0.131, "mean": 0.0038}}
    only = {"logmel": {"max": 1.5e-5, "mean": 1e-7}, "mfcc39": {"max": 1.2e-4, "mean": 1e-6}}
    return {
        "environment": ENV,
        "settings": {
            "corpus": "/data/emodb/wav",
            "limit": None,
            "runs": 300,
            "corpus_passes": 3,
            "features": ["logmel", "mfcc39"],
            "copy_rates": [8000],
            "resampler": "soxr_hq",
            "blas_threads": "1",
            "top_db": None,
            "clock": "process CPU time",
        },
        "corpus": {"files": 2, "seconds": 90.0, "sample_rate": 16000, "decode_mismatches": 0},
        "native": {
            "logmel": {"max": 1.5e-5, "mean": 2.5e-7},
            "mfcc39": {"max": 1.22e-4, "mean": 1.5e-6},
        },
        "resampled": [
            {
                "rate": 8000,
                "snr_corpus_db": 82.24,
                "snr_file_median_db": 84.4,
                "snr_file_min_db": 70.2,
                "via_edge": diff,
                "frontend_only": only,
                "resample_ms_per_file": {"edge": 0.9, "soxr": 0.14},
            }
        ],
        "speed": {
            "clip": {"logmel": _speed(0.0005, 0.0015), "mfcc39": _speed(0.0004, 0.0016)},
            "corpus": {"logmel": _speed(0.2, 0.5), "mfcc39": _speed(0.25, 1.0)},
            "files": {"feature": "logmel", **_speed(0.25, 0.75)},
        },
        "load_1min": [1.5, 2.25],
    }


def test_render_frontend():
    text = render_frontend.render(frontend_results())
    assert text.startswith(f"Script: `bench/bench_frontend.py`. {MACHINE} numpy 2.4.6, ")
    assert "Corpus: `/data/emodb/wav`, 2 files, 1.5 min at 16000 Hz." in text
    assert "decoders differed on 0 files). Target: log-mel max |diff| <= 0.001 dB: met." in text
    assert (
        "| feature | max abs diff | mean abs diff |\n|---|---|---|\n"
        "| log-mel (dB) | 1.5e-05 | 2.5e-07 |\n| MFCC-39 | 0.000122 | 1.5e-06 |"
    ) in text
    assert (
        "| 8 kHz | 82.2 | 84.4 / 70.2 | 0.406 / 0.0015 | 0.131 / 0.0038 | 1.5e-05 / 0.00012 "
        "| 0.90 / 0.14 |"
    ) in text
    assert "are process CPU time, which waiting for a core does not inflate; load average" in text
    assert "(1 min) at start / end of the run: 1.5 / 2.2." in text
    assert text.endswith(
        "| workload | edge | librosa | speed-up (librosa / edge) |\n|---|---|---|---|\n"
        "| 3 s clip, logmel (median of 300) | 0.500 | 1.500 | 3.00x |\n"
        "| corpus, logmel (2 files, median of 3 passes) | 0.200 | 0.500 | 2.50x |\n"
        "| 3 s clip, mfcc39 (median of 300) | 0.400 | 1.600 | 4.00x |\n"
        "| corpus, mfcc39 (2 files, median of 3 passes) | 0.250 | 1.000 | 4.00x |\n"
        "| corpus from WAV files, logmel (decode + features) | 0.250 | 0.750 | 3.00x |"
    )
    worse = frontend_results()
    worse["native"]["logmel"]["max"] = 0.002
    assert "<= 0.001 dB: **missed**." in render_frontend.render(worse)


def _layer(conv_ms: float, aggregate_ratio: float, branches_ratio: float) -> dict:
    return {
        "Conv2D": {"ms": conv_ms, "spread": 0.1, "ratio": 1.0},
        "aggregate": {"ms": conv_ms * aggregate_ratio, "spread": 0.2, "ratio": aggregate_ratio},
        "branches": {"ms": conv_ms * branches_ratio, "spread": 0.05, "ratio": branches_ratio},
    }


def dynconv_results() -> dict:
    common = {"auto": "aggregate", "agreement": 1.5e-6, "cpu_use": 0.64}
    return {
        "environment": ENV,
        "settings": {
            "quick": False,
            "backends": ["tensorflow", "torch:1"],
            "batch": 32,
            "frames": 300,
            "mels": 64,
            "in_channels": 16,
            "filters": 32,
            "num_kernels": 4,
            "paths": ["aggregate", "branches"],
            "model_modes": ["auto", "branches"],
            "rounds": {"train": 7, "infer": 40, "model": 5},
        },
        "load_1min": [5.7, 5.5],
        "results": [
            {
                **common,
                "backend": "tensorflow",
                "label": "tensorflow",
                "threads": "intra_op = default (all cores)",
                "warmup_s": {"Conv2D": 0.7, "aggregate": 1.6, "branches": 2.1},
                "train": _layer(200.0, 0.5, 3.0),
                "infer": _layer(2.0, 1.1, 3.0),
                "model": {
                    "auto": {"ms": 264.0, "spread": 0.13, "ratio": 0.85, "first_s": 5.4},
                    "branches": {"ms": 310.0, "spread": 0.15, "ratio": 1.0, "first_s": 2.4},
                },
            },
            {
                **common,
                "backend": "torch",
                "label": "torch (1 thread)",
                "threads": "torch.get_num_threads() = 1",
                "warmup_s": {"Conv2D": 0.4, "aggregate": 0.4, "branches": 1.8},
                "train": _layer(200.0, 1.6, 1.5),  # branches faster, both over target
                "infer": _layer(2.0, 1.0, 1.1),
                "model": None,
            },
        ],
    }


def test_render_dynconv():
    text = render_dynconv.render(dynconv_results())
    assert text.startswith(
        f"`bench/bench_dynconv.py`. {MACHINE} Load average (1 min) at start / end of the run: "
        "5.7 / 5.5.\n\n**Summary.** Fastest path per backend: tensorflow aggregate (0.50x "
        "training, 1.10x inference); torch (1 thread) branches (1.50x training, 1.10x "
        "inference). Target (at most 1.5x a static Conv2D for training and 1.2x for batch-1 "
        "inference on at least one backend): met on tensorflow, torch (1 thread). Default "
        "model, mode auto: fastest backend tensorflow (264 ms per training step).\n\n"
    )
    assert "| tensorflow | aggregate (auto) | 100 ±20% | 0.50x | 2.2 ±20% | 1.10x |" in text
    assert "| torch (1 thread) | branches | 300 ±5% | 1.50x | 2.2 ±5% | 1.10x |" in text
    assert (
        "| tensorflow | intra_op = default (all cores) | 0.64 | 1.5e-06 | "
        "Conv2D 0.7, aggregate 1.6, branches 2.1 |"
    ) in text
    assert text.endswith(
        "| backend | conv_mode | train step ms | step / branches step | "
        "first step s (incl. compile) |\n|---|---|---|---|---|\n"
        "| tensorflow | auto (aggregate) | 264 ±13% | 0.85x | 5.4 |\n"
        "| tensorflow | branches | 310 ±15% | 1.00x | 2.4 |"
    )
    slow = dynconv_results()
    slow["results"][0]["infer"]["aggregate"]["ratio"] = 1.3
    slow["results"][0]["infer"]["branches"]["ratio"] = 1.3
    slow["results"][1]["train"]["branches"]["ratio"] = 1.6
    assert "inference on at least one backend): not met on any backend." in (
        render_dynconv.render(slow)
    )


def _parity(size_kb: float, latency_ms: float, agreement: float = 1.0, **accuracy) -> dict:
    return {
        "size_bytes": int(size_kb * 1024),
        "latency_ms": latency_ms,
        "agreement": agreement,
        "max_abs_diff": 0.0123,
        "keras_accuracy": 0.61,
        "export_accuracy": 0.61,
        "keras_utterance_accuracy": 0.542,
        "export_utterance_accuracy": 0.542,
        "windows": 172,
        "passed": agreement >= 0.98,
        "export_s": 8.4,
        **accuracy,
    }


def export_results() -> dict:
    return {
        "environment": ENV,
        "settings": {
            "epochs": 20,
            "seed": 0,
            "calibration_utterances": 120,
            "heldout_speakers": ["03", "08"],
            "window_frames": 300,
            "hop_frames": 100,
            "frame_s": 0.01,
            "latency_rounds": 15,
            "latency_runs": 20,
        },
        "model": {"parameters": 398234, "train_s": 47.2, "heldout_utterance_accuracy": 0.54},
        "heldout_utterances": 107,
        "exports": [
            {"format": "tflite", "quantize": "none", **_parity(1600, 2.0)},
            {
                "format": "tflite",
                "quantize": "int8",
                **_parity(400, 1.6, 0.97, export_accuracy=0.59),
            },
            {"format": "onnx", "quantize": "none", **_parity(1600, 1.8)},
        ],
        "keras_latency_ms": 42.391,
        "split": {
            "fine_train_s": 48.0,
            "models": [
                {
                    "pooling": "16x (default)",
                    "time_reduction": 16,
                    "parts": {
                        "whole": [2.0, 1.6],
                        "convolutions": [1.75, 0.7],
                        "Bi-LSTM + head": [0.25, 0.9],
                    },
                },
                {
                    "pooling": "8x",
                    "time_reduction": 8,
                    "parts": {
                        "whole": [2.3, 2.5],
                        "convolutions": [1.8, 0.75],
                        "Bi-LSTM + head": [0.5, 1.75],
                    },
                },
            ],
        },
    }


def test_render_export():
    text = render_export.render(export_results())
    assert text.startswith(
        "`bench/bench_export.py --epochs 20`: the default `build_dycnn_bilstm()` (398,234 "
        "parameters) trained 20 epochs (47 s) on EmoDB speakers other than 03/08;"
    )
    assert "parity on the 107 utterances (172 windows of 3 s, 1 s hop)" in text
    assert "median over 15 rounds of the median of 20 invokes" in text
    assert "(TensorFlow, eager): 42.39 ms." in text
    assert (
        "| tflite | none | 1600 | 100% | 2.00 | 1.00 | 100.0 | 0.012 | 61.0 / 61.0 | "
        "54.2 / 54.2 | yes | 8 |\n"
        "| tflite | int8 | 400 | 25% | 1.60 | 0.80 | 97.0 | 0.012 | 61.0 / 59.0 | "
        "54.2 / 54.2 | **no** | 8 |\n"
        "| onnx | none | 1600 | 100% | 1.80 | 1.00 |"
    ) in text
    assert (
        "Targets: int8 TFLite size <= 30% of float32: met; int8 TFLite latency < float32: met; "
        "int8 TFLite window accuracy within 1 point of Keras: **missed**; int8 TFLite "
        "utterance accuracy within 1 point of Keras: met; int8 TFLite top-1 agreement >= 98%: "
        "**missed**."
    ) in text
    assert MACHINE in text
    assert f"Load average (1 min) at the start: {ENV['load_1min']:.1f}. Absolute" in text
    assert "so its Bi-LSTM runs 18 steps per 3 s window" in text
    assert "pooling time 8x (trained the same way, 48 s) runs 37." in text
    assert "All 8 interpreters" in text
    assert text.endswith(
        "| 16x (default) | whole | 2.00 | 1.60 | 0.80 |\n"
        "| 16x (default) | convolutions | 1.75 | 0.70 | 0.40 |\n"
        "| 16x (default) | Bi-LSTM + head | 0.25 | 0.90 | 3.60 |\n"
        "| 8x | whole | 2.30 | 2.50 | 1.09 |\n"
        "| 8x | convolutions | 1.80 | 0.75 | 0.42 |\n"
        "| 8x | Bi-LSTM + head | 0.50 | 1.75 | 3.50 |"
    )


def _times(e2e: float, inference: float) -> dict:
    gate = 0.25 * e2e
    return {
        "e2e": e2e,
        "e2e_cpu": e2e,
        "model_path": e2e - gate,
        "model_path_cpu": e2e - gate,
        "decode": 0.04,
        "gate": gate,
        "gate_cpu": gate,
        "frontend": 0.4,
        "inference": inference,
    }


def _predict(
    engine: str, e2e: float, inference: float, delegate_nodes: int | None, window_ms: dict
) -> dict:
    return {
        "machine": "x86_64",
        "engine": engine,
        "label": "fear",
        "windows": 2,
        "runs": 120,
        "processes": 3,
        "import_ms": 50.0,
        "load_ms": 10.2,
        "rss_import_mb": 34.2,
        "rss_loaded_mb": 40.0,
        "peak_rss_mb": 58.6,
        "median": _times(e2e, inference),
        "p90": _times(e2e + 0.1, inference),
        "window_ms": window_ms,
        "heavy_loaded": [],
        "heavy_installed": ["scipy"],
        "delegate_nodes": delegate_nodes,
        "gate": True,
    }


LITERT = "litert (ai_edge_litert)"


def edge_results() -> dict:
    def model(fmt, mode, export, predict=None, stream=None, emulated=None) -> dict:
        return {
            "format": fmt,
            "quantize": mode,
            "export": export,
            "predict": predict,
            "stream": stream,
            "emulated": emulated,
        }

    export = {"size_kb": 416.4, "agreement": 0.977, "export_s": 8.0}
    checkpoint = {"audio_s": 60.0, "cpu_s": 0.24, "wall_s": 0.3, "decisions": 119, "rss_mb": 58.2}
    stream = {
        "engine": LITERT,
        "delegate_nodes": 6,
        "short": checkpoint,
        "long": {**checkpoint, "audio_s": 600.0, "cpu_s": 2.4, "decisions": 1195, "rss_mb": 58.5},
        "decision_ms_median": 2.0,
        "decision_ms_p90": 2.5,
        "peak_rss_mb": 60.0,
    }
    emulated = {
        **_predict(LITERT, 600.0, 570.0, 0, {"default": 300.0, "builtin": 280.0}),
        "machine": "aarch64",
        "heavy_installed": [],
        "median": {**_times(600.0, 570.0), "frontend": 20.0},
    }
    int8_window = {"default": 1.6, "builtin": 4.0, "reset_us": 0.31}
    int8_window |= {"default_nodes": 6, "builtin_nodes": 0}
    return {
        "environment": ENV,
        "settings": {
            "quick": False,
            "model": "runs/default-model/model.keras",
            "exports": [["tflite", "none"], ["tflite", "dynamic"], ["tflite", "int8"]],
            "calibration_every": 6,
            "audio": "/data/emodb/wav",
            "clip_seconds": 3.0,
            "clip_source": "03a05Aa.wav",
            "runs": 40,
            "rounds": 3,
            "warmup": 3,
            "hop_s": 0.5,
            "chunk_s": 0.1,
            "stream_short_s": 60.0,
            "stream_long_s": 600.0,
            "emulator_runs": 10,
            "emulated_cpu": "cortex-a72",
            "heavy_modules": ["tensorflow", "scipy"],
        },
        "load_1min": [0.1, 0.9],
        "elapsed_s": 120.0,
        "models": [
            model(
                "tflite",
                "none",
                export,
                _predict(
                    LITERT,
                    4.0,
                    3.5,
                    5,
                    {"default": 2.0, "builtin": 9.0, "default_nodes": 5, "builtin_nodes": 0},
                ),
            ),
            model("tflite", "dynamic", export, _predict(LITERT, 2.5, 2.0, 6, {})),
            model(
                "tflite",
                "int8",
                export,
                _predict(LITERT, 3.0, 2.4, 6, int8_window),
                stream,
                emulated,
            ),
            model("onnx", "float16", {"error": "conversion failed"}),
            model("numpy", "none", export, _predict("numpy 2.4.6", 120.0, 110.0, None, {})),
        ],
        "cli_line": "clip-3s.wav: fear  (fear 0.93)",
    }


def test_render_edge():
    text = render_edge.render(edge_results())
    assert text.startswith(
        "`bench/bench_edge.py`: model `runs/default-model/model.keras` exported with "
        "`export.pipeline.export_model` (int8 calibrated on every 6th file of "
        "`/data/emodb/wav`, 25% of them held out for the parity column). Clip: the first 3 s "
        "of `03a05Aa.wav` as a 16-bit WAV."
    )
    assert "3 processes per model, round-robin over the models, each 40 timed runs" in text
    assert (
        "| decode ms | speech gate ms / CPU ms | frontend ms | inference ms | "
        "model path (no gate) ms / CPU ms |"
    ) in text
    assert (
        "| tflite | int8 | litert (ai_edge_litert) + XNNPACK (6 partitions) | 416 | 10 | "
        "**3.00** | 3.10 | 3.00 | 0.040 | 0.75 / 0.75 | 0.40 | 2.40 | 2.25 / 2.25 | 34 | 59 | "
        "97.7 | fear |\n"
        "| onnx | float16 | export failed | - | - | - | - | - | - | - | - | - | - | - | - | - | "
        "- |\n"
        "| numpy | none | numpy 2.4.6 | 416 | 10 | **120** | 120 | 120 | 0.040 | 30.00 / 30.00 |"
    ) in text
    assert (
        "Targets (this x86 CPU, one thread): int8 LiteRT end-to-end <= 10 ms: met (3.00 ms: the "
        "speech gate 0.75 ms, the model path (the same call without the gate) 2.25 ms); "
        "numpy engine <= 100 ms: **missed** (120.0 ms); streaming (int8 LiteRT, 0.5 s hop) < "
        "5% of one core: met (0.40%)."
    ) in text
    assert (
        "| tflite int8 | litert (ai_edge_litert) + XNNPACK (6 partitions) | 600 | 1195 | "
        "0.0040 | 0.0040 | **0.40** | 2.00 / 2.50 | 58.2 | 58.5 | +0.3 |"
    ) in text
    assert "installed there: none; imported by the runtime: none." in text
    assert "printed `clip-3s.wav: fear  (fear 0.93)`." in text
    assert (
        "| tflite int8 | litert (ai_edge_litert), builtin kernels only | 3.00 | 600 | 200x | "
        "20.00 / 570 | "
    ) in text
    assert (
        "**Raspberry Pi 4 (estimate, not measured)**: the x86 CPU times above scaled by 5-10x. "
        "Streaming with int8 LiteRT at the slow end (4.0% of one core) within the 5% budget: "
        "met.\n\n"
        "| model | ms per 3 s clip | % of the clip's duration (slow end) | "
        "% of one core streaming |\n|---|---|---|---|\n"
        "| int8 LiteRT | 15-30 | 1.0 | 2.0-4.0 |\n| numpy | 600-1200 | 40.0 | - |"
    ) in text
    assert (
        "**Derived figures.**\n\n"
        "- Model windows per 3 s clip: 2; inference is 80%, the speech gate 25% of the tflite "
        "int8 end-to-end time.\n"
        "- DELEGATE nodes in the LiteRT graph (one per partition a delegate took), default "
        "delegates / builtin kernels only: float32 5 / 0, int8 6 / 0. The runtime passes no "
        "delegate, so the default graph's are XNNPACK's.\n"
        "- One window through LiteRT, default delegates (XNNPACK) / builtin kernels only: "
        "float32 2.00 / 9.00 ms (XNNPACK 4.5x faster), int8 1.60 / 4.00 ms (XNNPACK 2.5x "
        "faster); int8 / float32 with XNNPACK: 0.80x. `reset_all_variables()` (called before "
        "each invoke, included): 0.3 us.\n"
        "- Fastest end to end: tflite dynamic (2.50 ms). Fastest LiteRT model: dynamic "
        "(2.50 ms), against 3.00 ms for the int8 model the runtime ships.\n"
        "- Streaming decision with int8 LiteRT: 2.00 ms median, of which the features of the "
        "3 s window take about 0.40 ms (the predict's frontend time).\n"
        "- XNNPACK on x86 but not under emulation: tflite int8. Like for like: tflite int8 one "
        "window on builtin kernels: x86 4.00 ms, emulated 280 ms (70x).\n\n"
    ) in text
    assert text.endswith(
        f"{MACHINE} CPU: Test CPU. Load average (1 min) at start / end: 0.1 / 0.9. "
        "Whole run: 2.0 min."
    )
    no_emulator = edge_results()
    for m in no_emulator["models"]:
        m["emulated"] = None
    assert "(arm64 emulation skipped.)" in render_edge.render(no_emulator)


def test_render_edge_results_saved_before_the_gate_was_timed():
    """Results saved before the gate and the delegate nodes were measured still render:
    their cells say "-" and the engine claims no delegate."""
    old = edge_results()
    for m in old["models"]:
        for part in ("predict", "stream", "emulated"):
            if m.get(part):
                m[part].pop("delegate_nodes")
                for stats in ("median", "p90"):
                    if stats in m[part]:
                        for name in ("gate", "gate_cpu", "model_path", "model_path_cpu"):
                            del m[part][stats][name]
        if m.get("predict"):
            for key in ("default_nodes", "builtin_nodes"):
                m["predict"]["window_ms"].pop(key, None)
    text = render_edge.render(old)
    assert "+ XNNPACK (6" not in text and "builtin kernels only |" not in text
    assert (
        "| tflite | int8 | litert (ai_edge_litert) | 416 | 10 | **3.00** | 3.10 | 3.00 | "
        "0.040 | - | 0.40 | 2.40 | - | 34 |"
    ) in text
    assert "int8 LiteRT end-to-end <= 10 ms: met (3.00 ms);" in text
    assert "inference is 80% of the tflite int8 end-to-end time." in text
    assert "- DELEGATE nodes in the LiteRT graph" not in text
    assert "XNNPACK on x86 but not under emulation" not in text


def speech_gate_results() -> dict:
    stats = {"min": 0.3, "p1": 0.5, "median": 1.2}
    corpus = {
        "utterances": 2,
        "expected": 2,
        "rejected": 1,
        "rejections": [{"file": "emodb/wav/a.wav", "seconds": 0.1, "reason": "too quiet"}],
        "quiet_files_peak_below_-37dBFS": 1,
        "quietest_peak_dbfs": -46.8,
        "voiced_s": stats,
        "pitch_range_st": stats,
        "modulation": stats,
        "voiced_fraction": stats,
        "audio_s": 6.0,
        "gate_s": 0.12,
    }
    config = {
        "frame_s": 0.06,
        "hop_s": 0.01,
        "pitch_every": 2,
        "floor_db": -75.0,
        "noise_margin_db": 3.0,
        "noise_percentile": 10.0,
        "min_periodicity": 0.3,
        "f0_min_hz": 60.0,
        "f0_max_hz": 600.0,
        "min_harmonics": 3,
        "min_voiced_run_s": 0.05,
        "min_speech_s": 0.2,
        "min_voiced_fraction": 0.1,
        "min_pitch_range_st": 0.3,
        "min_modulation": 0.1,
    }
    tone = {"signals": 2, "gated": 2, "max_voiced_s": 0.0, "passed": [], "kinds": ["100 Hz"]}
    melody = {
        "signals": 1,
        "gated": 0,
        "max_voiced_s": 2.35,
        "passed": ["harmonic notes (seed 0, 2.35 s)"],
        "kinds": ["harmonic notes"],
    }
    return {
        "environment": ENV,
        "settings": {
            "datasets": "/data",
            "limit": None,
            "seeds": 1,
            "synthetic": 2,
            "processes": 1,
            "config": config,
        },
        "corpora": {"emodb": corpus},
        "nonspeech": {"pure tone": tone, "melody": melody},
        "synthetic_speech": {"utterances": 2, "rejected": 0, "rejections": []},
        "cost": {"window_s": 3.0, "hop_s": 0.5, "clip_ms": 40.0, "hop_ms": 10.0, "stream_s": 24},
        "wall_s": 12.0,
    }


def test_render_speech_gate():
    text = render_speech_gate.render(speech_gate_results())
    assert text.startswith(f"Script: `bench/bench_speech_gate.py`. {MACHINE} numpy 2.4.6, ")
    assert "**Real speech gated out: 1 of 2** (target 0 of 2: **missed**)" in text
    assert "| emodb | 2 | 1 | 50.00 % | 0.3 | 1.2 | 0.3 | 0.3 | 0.3 | -46.8 | 20.0 |" in text
    assert "- `emodb/wav/a.wav`: too quiet (0.1 s voiced)" in text
    assert (
        '"no speech": 2 of 3**' in text and "| pure tone | 100 Hz | 2 | 2 (100 %) | 0.0 |" in text
    )
    assert "- melody: harmonic notes (seed 0, 2.35 s)" in text
    assert "40.0 ms to gate a 3 s clip" in text and "10.0 ms per 0.5 s hop" in text
    assert "2.0 % of a core" in text
    assert "(60 ms every 10 ms; periodicity, pitch and harmonics every 20 ms, held between)" in text
    before = speech_gate_results()
    del before["settings"]["config"]["pitch_every"]  # saved before it existed
    assert "(60 ms every 10 ms) above" in render_speech_gate.render(before)
    kept = speech_gate_results()
    kept["corpora"]["emodb"].update(rejected=0, rejections=[])
    assert "(target 0 of 2: met)" in render_speech_gate.render(kept)
    partial = speech_gate_results()
    partial["corpora"]["emodb"].update(expected=535, rejected=0, rejections=[])
    assert "(target 0 of 535: **missed**)" in render_speech_gate.render(partial)


def memory_results() -> dict:
    def run(mode, peak, total):
        return {
            "mode": mode,
            "floor_rss_mb": 860.0,
            "peak_rss_mb": peak,
            "scoring_peak_rss_mb": peak + 50,
            "load_s": 0.1,
            "stats_s": 0.2,
            "epoch_s": total - 0.3,
            "total_s": total,
            "scoring_s": 1.0,
            "batches": 28,
            "sha256": "ab" * 32,
        }

    return {
        "environment": {**ENV, "versions": {"numpy": "2.4.6", "keras": "3.15.1"}},
        "settings": {
            "hours": [1.0, 4.0],
            "utterance_s": [1.5, 5.0],
            "window_frames": 300,
            "window_hop_frames": 100,
            "batch_size": 32,
            "n_features": 64,
            "backend": "tensorflow",
        },
        "sizes": [
            {
                "hours": 1.0,
                "utterances": 1107,
                "frames": 360000,
                "bytes": 92_274_688,
                "identical": True,
                "runs": [run("memory", 961.0, 2.5), run("stream", 875.0, 3.0)],
            },
            {
                "hours": 4.0,
                "utterances": 4430,
                "frames": 1440000,
                "bytes": 369_098_752,
                "identical": True,
                "runs": [run("memory", 1231.0, 9.5), run("stream", 876.5, 11.0)],
            },
        ],
    }


def test_render_memory():
    text = render_memory.render(memory_results())
    assert "utterances of 1.5-5 s" in text and "batch 32" in text
    assert "300-frame windows every 100 frames" in text
    assert "| 1 | 1107 | 88 | 961 | 875 | 1011 | 925 | 2.5 | 3.0 | yes |" in text
    assert "| 4 | 4430 | 352 | 1231 | 876 | 1281 | 926 | 9.5 | 11.0 | yes |" in text
    assert "grows by 90 MB per hour of features in RAM and by 0.5 MB per hour" in text
    assert "with the scoring, by 90 and 0.5 MB per hour" in text
    assert "imports alone: 860-860 MB" in text
    assert f"load average {ENV['load_1min']:.1f} at the start" in text


def test_memory_bench_round_trip(tmp_path):
    """The bench on two tiny caches (Keras's numpy backend: the feeding is numpy), both
    modes, with the same batches."""
    out, markdown = tmp_path / "memory.json", tmp_path / "benchmarks.md"
    proc = subprocess.run(
        [
            *(sys.executable, str(REPO / "bench" / "bench_memory.py"), "--hours", "0.01", "0.03"),
            *("--cache", str(tmp_path), "--results", str(out), "--markdown", str(markdown)),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO), "KERAS_BACKEND": "numpy"},
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads(out.read_text())
    assert [s["hours"] for s in data["sizes"]] == [0.01, 0.03]
    for size in data["sizes"]:
        assert [r["mode"] for r in size["runs"]] == ["memory", "stream"]
        assert size["runs"][0]["sha256"] == size["runs"][1]["sha256"]
        assert size["frames"] >= size["hours"] * 360_000
    assert list(tmp_path.glob("bench-memory-*")) == []  # the caches are removed
    _assert_round_trip("memory", out, markdown, proc.stdout)


def fuzz_results() -> dict:
    return {
        "cases": 1000,
        "seed": 0,
        "outcomes": {"WavError": 600, "ok": 400},
        "no_speech": 390,
        "by_kind": {"random bytes: WavError": 600, "valid: ok": 400},
        "unexpected": [],
        "slowest_case": {"case": 7, "kind": "valid", "bytes": 96044, "seconds": 0.0123},
        "soundfile": {"identical": 400, "refused, soundfile reads it": 3},
        "refused_where_soundfile_reads": {"sample rate N Hz not in N Hz": 3},
        "seconds": 12.4,
        "peak_rss_mib": 80.6,
        "model": "emodb-int8.tflite",
        "speech_gate": True,
        "machine": "Measured 2026-01-02 on x86_64 (2 cores), Python 3.11.7.",
    }


def test_render_fuzz():
    text = render_fuzz.render(fuzz_results())
    assert text.startswith(
        "`bench/bench_fuzz.py --cases 1000 --seed 0` (model: emodb-int8.tflite, speech gate on"
    )
    assert "Raw numbers: `docs/results/bench/fuzz.json`." in text
    assert "| of them 'no speech' (gated; the model did not run) | 390 |  |" in text
    assert "| unexpected exceptions | 0 | 0: met |" in text
    assert "| slowest case | 0.012 s (valid, 96044 bytes) | < 2 s: met |" in text
    assert "| identical to soundfile where both read | 400 of 400 | all |" in text
    assert "| `sample rate N Hz not in N Hz` | 3 |" in text
    data = {**fuzz_results(), "outcomes": {"ok": 400, "WavError": 599}}
    assert "| unexpected exceptions | 1 | 0: **missed** |" in render_fuzz.render(data)


RESULTS = {
    "frontend": frontend_results,
    "dynconv": dynconv_results,
    "export": export_results,
    "edge": edge_results,
    "speech_gate": speech_gate_results,
    "memory": memory_results,
    "fuzz": fuzz_results,
}


def test_every_section_has_a_renderer_and_a_test():
    assert set(_report.RENDERERS) == set(RESULTS)
    for name in _report.RENDERERS:
        module = _report.renderer(name)
        assert module.NAME == name and module.TITLE


def test_render_cli_rewrites_sections_from_saved_json_only(tmp_path):
    results = tmp_path / "results"
    for name in ("frontend", "edge"):
        _report.save_json(results / f"{name}.json", RESULTS[name]())
    markdown = tmp_path / "benchmarks.md"
    prose = "\n\n**Reading the numbers.** Hand-written, kept.\n\n"
    markdown.write_text(
        "# Benchmarks\n\n<!-- bench:frontend:start -->\nold\n<!-- bench:frontend:end -->"
        + prose
        + "<!-- bench:dynconv:start -->\nold dynconv\n<!-- bench:dynconv:end -->\n"
    )
    argv = ["--results", str(results), "--markdown", str(markdown)]
    assert _report.main(["check", *argv]) == 1  # frontend differs from its JSON
    assert _report.main(["render", *argv]) == 0
    text = markdown.read_text()
    frontend = _report.section_block(
        "frontend", render_frontend.TITLE, render_frontend.render(frontend_results())
    )
    assert text.startswith("# Benchmarks\n\n" + frontend + prose)
    assert "<!-- bench:dynconv:start -->\nold dynconv\n<!-- bench:dynconv:end -->" in text
    assert _report.read_section("edge", markdown) == _report.section_block(
        "edge", render_edge.TITLE, render_edge.render(edge_results())
    )
    assert _report.main(["check", *argv]) == 0
    with pytest.raises(SystemExit, match="unknown section 'nope'"):
        _report.main(["render", "nope", *argv])


def test_saved_results_match_the_docs():
    """Every section with saved results reads in docs/benchmarks.md exactly as its
    renderer makes it from that JSON (run `python bench/_report.py render` after editing a
    renderer)."""
    assert _report.stale_sections(list(_report.RENDERERS)) == []


def test_publish_renders_what_it_saved(tmp_path):
    data = frontend_results()
    data["corpus"]["seconds"] = np.float64(90.0)  # numpy scalars are saved as numbers
    data["settings"]["corpus"] = Path("/data/emodb/wav")
    out, markdown = tmp_path / "frontend.json", tmp_path / "b.md"
    body = _report.publish("frontend", data, results=out, markdown=markdown)
    assert json.loads(out.read_text()) == frontend_results()
    assert body == render_frontend.render(frontend_results())
    assert _report.stale_sections(["frontend"], results=tmp_path, markdown=markdown) == []
    assert _report.publish("frontend", data, results=None, markdown=None) == body
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.md", "frontend.json"]


def _write_wav(path: Path, seconds: float, freq: float, rate: int = 16000) -> None:
    t = np.arange(int(rate * seconds)) / rate
    x = 0.3 * np.sin(2 * np.pi * freq * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
    x += 0.01 * np.random.default_rng(int(freq)).normal(size=t.size)
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(rate)
        f.writeframes((x * 32767).astype("<i2").tobytes())


def _run_bench(script: str, *args: str, timeout: float) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "KERAS_BACKEND": "tensorflow"}
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / script), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def _assert_round_trip(name: str, out: Path, markdown: Path, printed: str) -> None:
    """The section the measure step wrote is what its renderer makes of the saved JSON."""
    module = _report.renderer(name)
    body = module.render(_report.load_json(out))
    assert _report.read_section(name, markdown) == _report.section_block(name, module.TITLE, body)
    assert body in printed
    assert _report.stale_sections([name], results=out.parent, markdown=markdown) == []


def test_frontend_bench_round_trip(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i, freq in enumerate((200.0, 330.0)):
        _write_wav(corpus / f"s{i}.wav", 3.2, freq)
    out, markdown = tmp_path / "frontend.json", tmp_path / "benchmarks.md"
    proc = _run_bench(
        "bench_frontend.py",
        *("--corpus", str(corpus), "--runs", "3"),
        *("--results", str(out), "--markdown", str(markdown)),
        timeout=300,
    )
    data = json.loads(out.read_text())
    assert data["corpus"]["files"] == 2 and data["settings"]["runs"] == 3
    assert [r["rate"] for r in data["resampled"]] == [8000, 22050, 44100, 48000]
    assert data["native"]["logmel"]["max"] < 1e-3
    _assert_round_trip("frontend", out, markdown, proc.stdout)


@pytest.mark.slow
def test_dynconv_bench_round_trip(tmp_path):
    out, markdown = tmp_path / "dynconv.json", tmp_path / "benchmarks.md"
    proc = _run_bench(
        "bench_dynconv.py",
        *("--quick", "--backends", "tensorflow"),
        *("--results", str(out), "--markdown", str(markdown)),
        timeout=900,
    )
    data = json.loads(out.read_text())
    assert [r["label"] for r in data["results"]] == ["tensorflow"]
    assert data["settings"]["rounds"] == {"train": 3, "infer": 5, "model": 3}
    _assert_round_trip("dynconv", out, markdown, proc.stdout)


def test_dynconv_quick_writes_nothing_unless_told(tmp_path, monkeypatch):
    import bench_dynconv

    canned = dynconv_results()["results"][:1]
    monkeypatch.setattr(bench_dynconv, "_run_config", lambda config, quick: canned[0])
    written = []
    monkeypatch.setattr(_report, "save_json", lambda path, data: written.append(path))
    monkeypatch.setattr(_report, "write_section", lambda *args: written.append(args[0]))
    bench_dynconv.main(["--quick", "--backends", "tensorflow"])
    assert written == []
    out = tmp_path / "dynconv.json"
    bench_dynconv.main(["--quick", "--backends", "tensorflow", "--results", str(out)])
    assert written[0] == out


EMODB = next(
    (
        p
        for p in (REPO.parent / "shared/datasets/emodb", Path("/work/shared/datasets/emodb"))
        if (p / "wav").is_dir()
    ),
    None,
)


@pytest.mark.slow
@pytest.mark.skipif(EMODB is None, reason="no EmoDB")
def test_export_bench_round_trip(tmp_path):
    out, markdown = tmp_path / "export.json", tmp_path / "benchmarks.md"
    proc = _run_bench(
        "bench_export.py",
        *("--epochs", "1", "--calibration-utterances", "8", "--emodb", str(EMODB)),
        *("--results", str(out), "--markdown", str(markdown)),
        timeout=3600,
    )
    data = json.loads(out.read_text())
    assert len(data["exports"]) == 8 and data["settings"]["epochs"] == 1
    _assert_round_trip("export", out, markdown, proc.stdout)


@pytest.mark.slow
def test_edge_bench_round_trip(tmp_path, trained):
    audio = tmp_path / "audio"
    audio.mkdir()
    for i in range(22):  # --quick calibrates on every 20th file: 2 of them, split in two
        _write_wav(audio / f"s{i:02}.wav", 3.5 if i == 0 else 1.5, 150.0 + 20 * i)
    out, markdown = tmp_path / "edge.json", tmp_path / "benchmarks.md"
    proc = _run_bench(
        "bench_edge.py",
        *("--model", str(trained.model_path), "--audio", str(audio), "--quick"),
        *("--runs", "2", "--no-emulator"),
        *("--results", str(out), "--markdown", str(markdown)),
        timeout=1800,
    )
    data = json.loads(out.read_text())
    assert [(m["format"], m["quantize"]) for m in data["models"]] == [
        ("tflite", "none"),
        ("tflite", "int8"),
        ("onnx", "int8"),
        ("numpy", "none"),
    ]
    assert all(m["predict"]["runs"] == 2 for m in data["models"])
    for m in data["models"]:
        p = m["predict"]
        assert {"gate", "gate_cpu", "model_path", "model_path_cpu"} <= set(p["median"])
        litert = m["format"] == "tflite"
        assert (p["delegate_nodes"] is None) != litert
        if litert:  # x86: XNNPACK takes part of the graph; builtin kernels only: none
            assert p["delegate_nodes"] == p["window_ms"]["default_nodes"] > 0
            assert p["window_ms"]["builtin_nodes"] == 0
    _assert_round_trip("edge", out, markdown, proc.stdout)


def test_speech_gate_bench_round_trip(tmp_path):
    wav_dir = tmp_path / "datasets" / "emodb" / "wav"
    wav_dir.mkdir(parents=True)
    for seed in range(2):
        samples = speech_like(seed=seed) if seed else np.zeros(16000, np.float32)
        with wave.open(str(wav_dir / f"{seed}.wav"), "wb") as f:
            f.setnchannels(1)
            f.setsampwidth(2)
            f.setframerate(16000)
            f.writeframes((samples * 32767).astype("<i2").tobytes())
    out, markdown = tmp_path / "speech_gate.json", tmp_path / "benchmarks.md"
    proc = _run_bench(
        "bench_speech_gate.py",
        *("--datasets", str(tmp_path / "datasets"), "--seeds", "1", "--synthetic", "2"),
        *("--results", str(out), "--markdown", str(markdown)),
        timeout=300,
    )
    data = json.loads(out.read_text())
    (rejection,) = data["corpora"]["emodb"]["rejections"]  # the silent file
    assert rejection["file"] == "emodb/wav/0.wav" and rejection["reason"].startswith("silent")
    assert data["nonspeech"]["white noise"]["gated"] == 6 and data["settings"]["seeds"] == 1
    _assert_round_trip("speech_gate", out, markdown, proc.stdout)


def test_fuzz_bench_round_trip(tmp_path):
    out, markdown = tmp_path / "fuzz.json", tmp_path / "benchmarks.md"
    proc = _run_bench(
        "bench_fuzz.py",
        *("--cases", "40", "--results", str(out), "--markdown", str(markdown)),
        timeout=300,
    )
    data = json.loads(out.read_text())
    assert data["cases"] == 40 and data["speech_gate"] and data["unexpected"] == []
    _assert_round_trip("fuzz", out, markdown, proc.stdout)
