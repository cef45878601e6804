"""Canned benchmark results, as each bench saves them to docs/results/bench/<name>.json:
the inputs of the renderer tests (tests/test_bench_render.py) and the report CLI tests
(`RESULTS`: every bench; the enrollment bench's own are in bench_results_enrollment.py)."""

from __future__ import annotations

from pathlib import Path

from bench_results_enrollment import enrollment_results

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


RESULTS = {
    "frontend": frontend_results,
    "dynconv": dynconv_results,
    "export": export_results,
    "edge": edge_results,
    "speech_gate": speech_gate_results,
    "memory": memory_results,
    "fuzz": fuzz_results,
    "enrollment": enrollment_results,
}
