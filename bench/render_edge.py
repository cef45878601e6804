"""Render the "edge" section of docs/benchmarks.md from bench_edge.py's JSON.

`render(data)` reads only `data` (docs/results/bench/edge.json): the tables, the targets,
the Raspberry Pi 4 estimate (x86 CPU times scaled by `PI4_FACTOR`) and the derived figures
(shares, speed-ups, ratios). Why the numbers are what they are, and what to do about them,
is written by hand after the section in docs/benchmarks.md.
"""

from __future__ import annotations

from _report import machine_line, markdown_table, verdict

NAME = "edge"
TITLE = "Edge runtime: end-to-end latency, memory, streaming"
#: The issue's targets on the x86 CPU, one thread.
TARGETS = {"litert_int8_ms": 10.0, "numpy_ms": 100.0, "stream_core_pct": 5.0}
#: Published single-thread gap between a Cortex-A72 (Pi 4, 1.5-1.8 GHz) and a current x86
#: server core for this kind of work (the reasoning is in the text after the section).
PI4_FACTOR = (5.0, 10.0)
#: The models of the Pi 4 estimate, in its order, with their names there.
PI4_MODELS = ((("tflite", "int8"), "int8 LiteRT"), (("onnx", "int8"), "int8 onnxruntime"))
PI4_MODELS += ((("numpy", "none"), "numpy"),)


def _fmt(x: float, digits: int = 2) -> str:
    return f"{x:.{digits}f}" if x < 100 else f"{x:.0f}"


def _engine(result: dict) -> str:
    """The engine, and for LiteRT whether XNNPACK took part of the graph: read from the
    DELEGATE nodes of its interpreter (results saved before they were counted say
    neither)."""
    nodes = result.get("delegate_nodes")
    if nodes:
        return f"{result['engine']} + XNNPACK ({nodes} partitions)"
    return result["engine"] + (", builtin kernels only" if nodes == 0 else "")


def _wall_cpu(median: dict, part: str) -> str:
    """A part's median wall / CPU ms, "-" where the run did not time it (results saved
    before the part was timed)."""
    if part not in median:
        return "-"
    return f"{_fmt(median[part])} / {_fmt(median[part + '_cpu'])}"


def _by_model(data: dict, part: str) -> dict[tuple[str, str], dict]:
    """(format, quantize) -> that model's `part` ("export", "predict", "stream",
    "emulated"), for the models that have it, in the order they were measured."""
    return {
        (m["format"], m["quantize"]): m[part] for m in data["models"] if m.get(part) is not None
    }


def _core_pct(stream: dict) -> float:
    """% of one core over all of the audio fed."""
    s = stream["long"]
    return 100 * s["cpu_s"] / s["audio_s"]


def render(data: dict) -> str:
    """The section's Markdown body from the saved results."""
    s = data["settings"]
    exported, predict = _by_model(data, "export"), _by_model(data, "predict")
    stream, emulated = _by_model(data, "stream"), _by_model(data, "emulated")
    windows = next(iter(predict.values()))["windows"] if predict else 0
    parts = [
        _intro(s, windows),
        predict_table(exported, predict),
        "Targets (this x86 CPU, one thread): " + "; ".join(targets(predict, stream, s)) + ".",
        f"**Streaming**: `StreamRecognizer` at a {s['hop_s']} s hop, speech fed in "
        f"{s['chunk_s']} s chunks ({s['stream_short_s']:.0f} s of speech, looped to "
        f"{s['stream_long_s']:.0f} s), one fresh process per model. RTF = process CPU seconds "
        "per second of audio; % of one core = 100 x RTF; decision ms = wall time of a `push` "
        "that produced a decision. RSS is read after the first and after all of the audio: "
        "memory is bounded if it does not grow.",
        stream_table(stream, s),
    ]
    parts += emulator_part(data, predict, emulated)
    parts.append(pi4_estimate(predict, stream, s))
    parts.append(derived(predict, stream, emulated, s))
    env, load = data["environment"], data["load_1min"]
    parts.append(
        machine_line(env) + f" CPU: {env['cpu']}. Load average (1 min) at start / end: "
        f"{load[0]:.1f} / {load[1]:.1f}. Whole run: {data['elapsed_s'] / 60:.1f} min."
    )
    return "\n\n".join(part for part in parts if part)


def _intro(s: dict, windows: int) -> str:
    """What was exported and how each model was measured."""
    n_rounds = s["rounds"]
    return (
        f"`bench/bench_edge.py{' --quick' if s['quick'] else ''}`: model "
        f"`{s['model']}` exported with `export.pipeline.export_model` (int8 "
        f"calibrated on every {s['calibration_every']}th file of `{s['audio']}`, 25% of them "
        f"held out for the parity column). Clip: the first {s['clip_seconds']:g} s of "
        f"`{s['clip_source']}` as a 16-bit WAV. Each model is measured in fresh processes, "
        "single-threaded (interpreter threads 1, OMP/BLAS threads 1): "
        "`EmotionRecognizer(model).predict_file(clip)` = WAV decode + speech gate + "
        f"frontend + windows + inference; {n_rounds} process{'es' * (n_rounds > 1)} per model, "
        f"round-robin over the models, each {s['runs']} timed runs after {s['warmup']} warm-up "
        "runs (every run followed by the parts timed alone); medians and p90 over all runs. "
        "Speech gate: `detect_speech` on the decoded clip; model path: the same "
        "`predict_file` with the gate off (decode + frontend + windows + inference), so end to "
        "end = gate + model path. "
        f"The clip gives {windows} model windows. CPU ms = process CPU time of one call "
        "(not inflated by waiting for a core, unlike wall time; cache sharing with other "
        "jobs still shows). RSS after import: the process after "
        "`import edge_runtime` (numpy + stdlib); peak RSS: VmHWM after all runs "
        "(not `ru_maxrss`, which Linux carries over from the parent through fork + exec). "
        "Load ms: `EmotionRecognizer(...)` (manifest, sha256, interpreter import and setup). "
        'Engine: for LiteRT, "+ XNNPACK (n partitions)" when its interpreter\'s graph holds '
        "DELEGATE nodes (`_get_ops_details()`: one per partition a delegate took; the runtime "
        "passes no delegate, so they are XNNPACK, LiteRT's default one)."
    )


def predict_table(exported: dict, predict: dict) -> str:
    """One row per exported model: size, load, end-to-end and part times, memory, parity."""
    header = [
        "format",
        "quantize",
        "engine",
        "size KB",
        "load ms",
        "end-to-end median ms",
        "p90 ms",
        "CPU ms",
        "decode ms",
        "speech gate ms / CPU ms",
        "frontend ms",
        "inference ms",
        "model path (no gate) ms / CPU ms",
        "RSS after import MB",
        "peak RSS MB",
        "parity agreement %",
        "label",
    ]
    rows = []
    for (fmt, mode), r in exported.items():
        if "error" in r:
            rows.append([fmt, mode, "export failed", *["-"] * (len(header) - 3)])
            continue
        p = predict[fmt, mode]
        m = p["median"]
        rows.append(
            [
                fmt,
                mode,
                _engine(p),
                f"{r['size_kb']:.0f}",
                f"{p['load_ms']:.0f}",
                f"**{_fmt(m['e2e'])}**",
                _fmt(p["p90"]["e2e"]),
                _fmt(m["e2e_cpu"]),
                _fmt(m["decode"], 3),
                _wall_cpu(m, "gate"),
                _fmt(m["frontend"]),
                _fmt(m["inference"]),
                _wall_cpu(m, "model_path"),
                f"{p['rss_import_mb']:.0f}",
                f"{p['peak_rss_mb']:.0f}",
                f"{100 * r['agreement']:.1f}",
                p["label"],
            ]
        )
    return markdown_table(header, rows)


def stream_table(stream: dict, s: dict) -> str:
    """One row per streamed model: real-time factor, decision time, memory growth."""
    short_s, long_s = s["stream_short_s"], s["stream_long_s"]
    header = [
        "model",
        "engine",
        "audio fed s",
        "decisions",
        f"RTF first {short_s:.0f} s (CPU s / audio s)",
        f"RTF all {long_s:.0f} s",
        "% of one core",
        "decision ms median / p90",
        f"RSS after {short_s:.0f} s MB",
        f"RSS after {long_s:.0f} s MB",
        "growth MB",
    ]
    rows = []
    for (fmt, mode), st in stream.items():
        short, long = st["short"], st["long"]
        rows.append(
            [
                f"{fmt} {mode}",
                _engine(st),
                f"{long['audio_s']:.0f}",
                long["decisions"],
                f"{short['cpu_s'] / short['audio_s']:.4f}",
                f"{long['cpu_s'] / long['audio_s']:.4f}",
                f"**{100 * long['cpu_s'] / long['audio_s']:.2f}**",
                f"{st['decision_ms_median']:.2f} / {st['decision_ms_p90']:.2f}",
                f"{short['rss_mb']:.1f}",
                f"{long['rss_mb']:.1f}",
                f"{long['rss_mb'] - short['rss_mb']:+.1f}",
            ]
        )
    return markdown_table(header, rows)


def targets(predict: dict, stream: dict, s: dict) -> list[str]:
    """Each target met or missed, with the measured value."""
    checks = []
    if ("tflite", "int8") in predict:
        m, target = predict["tflite", "int8"]["median"], TARGETS["litert_int8_ms"]
        v = m["e2e"]
        line = f"int8 LiteRT end-to-end <= {target:g} ms: {verdict(v <= target)} ({v:.2f} ms"
        if "gate" in m:
            line += (
                f": the speech gate {m['gate']:.2f} ms, the model path (the same call "
                f"without the gate) {m['model_path']:.2f} ms"
            )
        checks.append(line + ")")
    if ("numpy", "none") in predict:
        v, target = predict["numpy", "none"]["median"]["e2e"], TARGETS["numpy_ms"]
        checks.append(f"numpy engine <= {target:g} ms: {verdict(v <= target)} ({v:.1f} ms)")
    if ("tflite", "int8") in stream:
        pct, target = _core_pct(stream["tflite", "int8"]), TARGETS["stream_core_pct"]
        checks.append(
            f"streaming (int8 LiteRT, {s['hop_s']} s hop) < {target:g}% of one core: "
            f"{verdict(pct < target)} ({pct:.2f}%)"
        )
    return checks


def emulator_part(data: dict, predict: dict, emulated: dict) -> list[str]:
    """The arm64 (emulated) paragraph and table."""
    if not emulated:
        return ["(arm64 emulation skipped.)"]
    s = data["settings"]
    rows = []
    for (fmt, mode), e in emulated.items():
        x = predict[fmt, mode]
        ratio = e["median"]["e2e_cpu"] / x["median"]["e2e_cpu"]
        rows.append(
            [
                f"{fmt} {mode}",
                _engine(e),
                _fmt(x["median"]["e2e_cpu"]),
                _fmt(e["median"]["e2e_cpu"]),
                f"{ratio:.0f}x",
                f"{_fmt(e['median']['frontend'])} / {_fmt(e['median']['inference'])}",
                f"{e['label']} / {x['label']}",
            ]
        )
    first = next(iter(emulated.values()))
    installed = ", ".join(first["heavy_installed"]) or "none"
    loaded = sorted({m for e in emulated.values() for m in e["heavy_loaded"]}) or ["none"]
    return [
        "**arm64 (emulated)**: the same predict in Debian bookworm arm64 (Python 3.11, "
        "numpy, ai-edge-litert, onnxruntime only) under QEMU user mode with "
        f"`QEMU_CPU={s['emulated_cpu']}`, {s['emulator_runs']} runs after one warm-up, in the "
        f"same run as the x86 table (machine: {first['machine']}). Of "
        f"{', '.join(s['heavy_modules'])}, installed there: {installed}; imported by the "
        f"runtime: {', '.join(loaded)}. CLI check: `python -m edge_runtime predict` printed "
        f"`{data['cli_line'] or 'nothing'}`.",
        markdown_table(
            [
                "model",
                "engine (arm64)",
                "x86 CPU ms",
                "emulated CPU ms",
                "emulated / x86",
                "emulated frontend / inference ms",
                "label arm64 / x86",
            ],
            rows,
        ),
    ]


def pi4_estimate(predict: dict, stream: dict, s: dict) -> str:
    """The x86 CPU times scaled by `PI4_FACTOR`: a table and the streaming budget check."""
    lo, hi = PI4_FACTOR
    rows = []
    for key, name in PI4_MODELS:
        if key in predict:
            cpu_ms = predict[key]["median"]["e2e_cpu"]
            pct = _core_pct(stream[key]) if key in stream else None
            rows.append(
                [
                    name,
                    f"{cpu_ms * lo:.0f}-{cpu_ms * hi:.0f}",
                    f"{cpu_ms * hi / (10 * s['clip_seconds']):.1f}",
                    "-" if pct is None else f"{pct * lo:.1f}-{pct * hi:.1f}",
                ]
            )
    text = (
        "**Raspberry Pi 4 (estimate, not measured)**: the x86 CPU times above scaled by "
        f"{lo:.0f}-{hi:.0f}x."
    )
    if ("tflite", "int8") in stream:
        pct, target = _core_pct(stream["tflite", "int8"]), TARGETS["stream_core_pct"]
        text += (
            f" Streaming with int8 LiteRT at the slow end ({pct * hi:.1f}% of one core) "
            f"within the {target:g}% budget: {verdict(pct * hi < target)}."
        )
    header = [
        "model",
        f"ms per {s['clip_seconds']:g} s clip",
        "% of the clip's duration (slow end)",
        "% of one core streaming",
    ]
    return text + "\n\n" + markdown_table(header, rows)


def derived(predict: dict, stream: dict, emulated: dict, s: dict) -> str:
    """Figures computed from the tables: shares, speed-ups, rankings."""
    items = []
    key = ("tflite", "int8") if ("tflite", "int8") in predict else next(iter(predict), None)
    if key is not None:
        m = predict[key]["median"]
        gate = f", the speech gate {100 * m['gate'] / m['e2e']:.0f}%" if "gate" in m else ""
        items.append(
            f"Model windows per {s['clip_seconds']:g} s clip: {predict[key]['windows']}; "
            f"inference is {100 * m['inference'] / m['e2e']:.0f}%{gate} of the {key[0]} "
            f"{key[1]} end-to-end time."
        )
    litert = {
        q: predict["tflite", q]["window_ms"]
        for q in ("none", "int8")
        if predict.get(("tflite", q), {}).get("window_ms")
    }
    if len(litert) == 2:
        f32, i8 = litert["none"], litert["int8"]
        if "default_nodes" in i8:
            items.append(
                "DELEGATE nodes in the LiteRT graph (one per partition a delegate took), "
                "default delegates / builtin kernels only: float32 "
                f"{f32['default_nodes']} / {f32['builtin_nodes']}, int8 {i8['default_nodes']} / "
                f"{i8['builtin_nodes']}. The runtime passes no delegate, so the default "
                "graph's are XNNPACK's."
            )
        items.append(
            "One window through LiteRT, default delegates (XNNPACK) / builtin kernels only: "
            f"float32 {f32['default']:.2f} / {f32['builtin']:.2f} ms (XNNPACK "
            f"{f32['builtin'] / f32['default']:.1f}x faster), int8 {i8['default']:.2f} / "
            f"{i8['builtin']:.2f} ms (XNNPACK {i8['builtin'] / i8['default']:.1f}x faster); "
            f"int8 / float32 with XNNPACK: {i8['default'] / f32['default']:.2f}x. "
            f"`reset_all_variables()` (called before each invoke, included): "
            f"{i8['reset_us']:.1f} us."
        )
    if predict:
        fastest = min(predict, key=lambda k: predict[k]["median"]["e2e"])
        line = (
            f"Fastest end to end: {fastest[0]} {fastest[1]} "
            f"({predict[fastest]['median']['e2e']:.2f} ms)."
        )
        litert_modes = {k[1]: v["median"]["e2e"] for k, v in predict.items() if k[0] == "tflite"}
        best = min(litert_modes, key=litert_modes.get, default=None)
        if best not in (None, "int8") and "int8" in litert_modes:
            line += (
                f" Fastest LiteRT model: {best} ({litert_modes[best]:.2f} ms), against "
                f"{litert_modes['int8']:.2f} ms for the int8 model the runtime ships."
            )
        items.append(line)
    if ("tflite", "int8") in stream and ("tflite", "int8") in predict:
        frontend = predict["tflite", "int8"]["median"]["frontend"]
        decision = stream["tflite", "int8"]["decision_ms_median"]
        items.append(
            f"Streaming decision with int8 LiteRT: {decision:.2f} ms median, of which the "
            f"features of the {s['clip_seconds']:g} s window take about {frontend:.2f} ms "
            "(the predict's frontend time)."
        )
    lost = [
        k
        for k, e in emulated.items()
        if predict[k].get("delegate_nodes") and e.get("delegate_nodes") == 0
    ]
    like = []
    for k in lost:
        x, e = predict[k]["window_ms"], emulated[k]["window_ms"]
        if x and e:
            like.append(
                f"{k[0]} {k[1]} one window on builtin kernels: x86 {x['builtin']:.2f} ms, "
                f"emulated {e['builtin']:.0f} ms ({e['builtin'] / x['builtin']:.0f}x)"
            )
    if lost:
        names = ", ".join(f"{k[0]} {k[1]}" for k in lost)
        items.append(
            f"XNNPACK on x86 but not under emulation: {names}. Like for like: "
            + ("; ".join(like) or "no builtin-kernel timing")
            + "."
        )
    return "**Derived figures.**\n\n" + "\n".join(f"- {item}" for item in items) if items else ""
