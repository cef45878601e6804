"""Render the "dynconv" section of docs/benchmarks.md from bench_dynconv.py's JSON.

`render(data)` reads only `data` (docs/results/bench/dynconv.json): the tables, and the
comparisons computed from them (fastest path per backend, the targets). What the numbers
mean is written by hand after the section in docs/benchmarks.md.
"""

from __future__ import annotations

from _report import machine_line, markdown_table

NAME = "dynconv"
TITLE = "DynamicConv2D vs Conv2D"
#: Targets: dynamic time / Conv2D time, training and batch-1 inference, on one backend.
TARGET_TRAIN, TARGET_INFER = 1.5, 1.2


def summary(results: list[dict], paths: list[str]) -> str:
    """Fastest path per backend, the targets, and the fastest backend for the default
    model: computed from the results."""
    parts, met = [], []
    for r in results:
        fastest = min(paths, key=lambda p: r["train"][p]["ratio"])
        train, infer = r["train"][fastest]["ratio"], r["infer"][fastest]["ratio"]
        parts.append(f"{r['label']} {fastest} ({train:.2f}x training, {infer:.2f}x inference)")
        if train <= TARGET_TRAIN and infer <= TARGET_INFER:
            met.append(r["label"])
    verdict = f"met on {', '.join(met)}" if met else "not met on any backend"
    text = (
        f"**Summary.** Fastest path per backend: {'; '.join(parts)}. Target (at most "
        f"{TARGET_TRAIN}x a static Conv2D for training and {TARGET_INFER}x for batch-1 "
        f"inference on at least one backend): {verdict}."
    )
    timed = [r for r in results if r["model"]]
    if timed:
        best = min(timed, key=lambda r: r["model"]["auto"]["ms"])
        text += (
            f" Default model, mode auto: fastest backend {best['backend']} "
            f"({best['model']['auto']['ms']:.0f} ms per training step)."
        )
    return text


def render(data: dict) -> str:
    """The section's Markdown body from the saved results."""
    results, s = data["results"], data["settings"]
    rounds, load = s["rounds"], data["load_1min"]
    return "\n\n".join(
        [
            f"`bench/bench_dynconv.py{' --quick' if s['quick'] else ''}`. "
            f"{machine_line(data['environment'])} Load average (1 min) at start / end of the "
            f"run: {load[0]:.1f} / {load[1]:.1f}.",
            summary(results, s["paths"]),
            f"Layer: {s['frames']} frames x {s['mels']} mels x {s['in_channels']} channels -> "
            f"{s['filters']} channels, 3x3, same padding, K={s['num_kernels']}, in conv -> "
            "GlobalAveragePooling2D -> Dense(7). Times: medians over interleaved rounds "
            f"({rounds['train']} training, {rounds['infer']} inference) ± half the "
            "interquartile range; ratios: medians of per-round ratios to Conv2D.",
            layer_table(results, s),
            run_table(results),
            "Default `build_dycnn_bilstm()` (dynamic-conv blocks 16/32/64, Bi-LSTM 64): one "
            f"`train_on_batch` on {s['batch']} x {s['frames']} frames x {s['mels']} mels, "
            f"both modes in {rounds['model']} interleaved rounds:",
            model_table(results, s["model_modes"]),
        ]
    )


def layer_table(results: list[dict], settings: dict) -> str:
    """The layer alone: train step and inference time per backend and path, vs Conv2D."""
    header = [
        "backend",
        "path",
        f"train step ms (batch {settings['batch']})",
        "train / Conv2D",
        "inference ms (batch 1)",
        "inference / Conv2D",
    ]
    rows = [
        [
            r["label"],
            name + (" (auto)" if name == r["auto"] else ""),
            f"{r['train'][name]['ms']:.0f} ±{100 * r['train'][name]['spread']:.0f}%",
            f"{r['train'][name]['ratio']:.2f}x",
            f"{r['infer'][name]['ms']:.1f} ±{100 * r['infer'][name]['spread']:.0f}%",
            f"{r['infer'][name]['ratio']:.2f}x",
        ]
        for r in results
        for name in ("Conv2D", *settings["paths"])
    ]
    return markdown_table(header, rows)


def run_table(results: list[dict]) -> str:
    """Per backend: threads, CPU use, agreement of the two paths, warm-up."""
    header = [
        "backend",
        "thread setting",
        "CPU-seconds per second (training rounds)",
        "aggregate vs branches, max rel. diff",
        "warm-up s (2 train + 2 inference calls)",
    ]
    rows = [
        [
            r["label"],
            r["threads"],
            f"{r['cpu_use']:.2f}",
            f"{r['agreement']:.1e}",
            ", ".join(f"{k} {v:.1f}" for k, v in r["warmup_s"].items()),
        ]
        for r in results
    ]
    return markdown_table(header, rows)


def model_table(results: list[dict], model_modes: list[str]) -> str:
    """The default model's training step per backend and conv mode."""
    header = [
        "backend",
        "conv_mode",
        "train step ms",
        f"step / {model_modes[-1]} step",
        "first step s (incl. compile)",
    ]
    rows = [
        [
            r["label"],
            f"auto ({r['auto']})" if mode == "auto" else mode,
            f"{r['model'][mode]['ms']:.0f} ±{100 * r['model'][mode]['spread']:.0f}%",
            f"{r['model'][mode]['ratio']:.2f}x",
            f"{r['model'][mode]['first_s']:.1f}",
        ]
        for r in results
        if r["model"]
        for mode in model_modes
    ]
    return markdown_table(header, rows)
