"""Render the "export" section of docs/benchmarks.md from bench_export.py's JSON.

`render(data)` reads only `data` (docs/results/bench/export.json): the tables and the
targets checked against them. What the numbers mean is written by hand after the section
in docs/benchmarks.md.
"""

from __future__ import annotations

from _report import machine_line, markdown_table, verdict

NAME = "export"
TITLE = "Export: TFLite and ONNX, sizes, latency, parity (EmoDB)"
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
#: The parts of the TFLite time split, in table order.
SPLIT_PARTS = ("whole", "convolutions", "Bi-LSTM + head")


def checks(exports: dict) -> list[tuple[str, bool]]:
    """The int8 TFLite targets, each with whether it holds."""
    int8, f32 = exports["tflite", "int8"], exports["tflite", "none"]
    return [
        ("int8 TFLite size <= 30% of float32", int8["size_bytes"] <= 0.30 * f32["size_bytes"]),
        ("int8 TFLite latency < float32", int8["latency_ms"] < f32["latency_ms"]),
        (
            "int8 TFLite window accuracy within 1 point of Keras",
            abs(int8["export_accuracy"] - int8["keras_accuracy"]) <= 0.01,
        ),
        (
            "int8 TFLite utterance accuracy within 1 point of Keras",
            abs(int8["export_utterance_accuracy"] - int8["keras_utterance_accuracy"]) <= 0.01,
        ),
        ("int8 TFLite top-1 agreement >= 98%", int8["agreement"] >= 0.98),
    ]


def render(data: dict) -> str:
    """The section's Markdown body from the saved results."""
    s, model = data["settings"], data["model"]
    exports = {(e["format"], e["quantize"]): e for e in data["exports"]}
    rows = []
    for (fmt, mode), p in exports.items():
        base = exports[fmt, "none"]
        rows.append(
            [
                fmt,
                mode,
                f"{p['size_bytes'] / 1024:.0f}",
                f"{100 * p['size_bytes'] / base['size_bytes']:.0f}%",
                f"{p['latency_ms']:.2f}",
                f"{p['latency_ms'] / base['latency_ms']:.2f}",
                f"{100 * p['agreement']:.1f}",
                f"{p['max_abs_diff']:.3f}",
                f"{100 * p['keras_accuracy']:.1f} / {100 * p['export_accuracy']:.1f}",
                f"{100 * p['keras_utterance_accuracy']:.1f} / "
                f"{100 * p['export_utterance_accuracy']:.1f}",
                "yes" if p["passed"] else "**no**",
                f"{p['export_s']:.0f}",
            ]
        )
    int8 = exports["tflite", "int8"]
    window_s, hop_s = s["window_frames"] * s["frame_s"], s["hop_frames"] * s["frame_s"]
    parts = [
        f"`bench/bench_export.py --epochs {s['epochs']}`: the default `build_dycnn_bilstm()` "
        f"({model['parameters']:,} parameters) trained {s['epochs']} epochs "
        f"({model['train_s']:.0f} s) on EmoDB speakers other than "
        f"{'/'.join(s['heldout_speakers'])}; exported with `export.pipeline.export_model` "
        "(what `dyser-export` runs); int8 calibrated on "
        f"{s['calibration_utterances']} training-speaker utterances; parity on the "
        f"{data['heldout_utterances']} utterances ({int8['windows']} windows of "
        f"{window_s:g} s, {hop_s:g} s hop) of the two held-out speakers, run by the "
        "`edge_runtime` engines (LiteRT with its default XNNPACK delegate, onnxruntime "
        f"CPU). Latency: single-thread time of one {window_s:g} s window (batch 1), all "
        "models timed round-robin in the same loop (median over "
        f"{s['latency_rounds']} rounds of the median of {s['latency_runs']} invokes); the "
        f"Keras 3 model itself (TensorFlow, eager): {data['keras_latency_ms']:.2f} ms. "
        "Accuracy: Keras / export; utterance = mean of its windows' probabilities.",
        markdown_table(HEADER, rows),
        "Targets: " + "; ".join(f"{name}: {verdict(ok)}" for name, ok in checks(exports)) + ".",
        machine_line(data["environment"]) + " Load average (1 min) at the start: "
        f"{data['environment']['load_1min']:.1f}. Absolute latencies are noisy on a shared "
        "machine; the ratios come from the interleaved loop.",
    ]
    split = data["split"]
    coarse, fine = split["models"]
    split_rows = [
        [m["pooling"], part, f"{f32:.2f}", f"{i8:.2f}", f"{i8 / f32:.2f}"]
        for m in split["models"]
        for part in SPLIT_PARTS
        for f32, i8 in [m["parts"][part]]
    ]
    frames = s["window_frames"]
    parts += [
        f"**Where the TFLite time goes.** The default model pools time "
        f"{coarse['time_reduction']}x, so its Bi-LSTM runs "
        f"{frames // coarse['time_reduction']} steps per {window_s:g} s window; the same "
        f"model pooling time {fine['time_reduction']}x (trained the same way, "
        f"{split['fine_train_s']:.0f} s) runs {frames // fine['time_reduction']}. Each is "
        "converted whole and cut before the Bi-LSTM (the convolutions alone); the Bi-LSTM + "
        f"head row is the difference. All {4 * len(split['models'])} interpreters (one "
        "thread, XNNPACK) timed round-robin in one loop, median ms per "
        f"{window_s:g} s window.",
        markdown_table(
            ["time pooling", "part", "float32 ms", "int8 ms", "int8 / float32"], split_rows
        ),
    ]
    return "\n\n".join(parts)
