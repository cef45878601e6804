"""Render the "memory" section of docs/benchmarks.md from bench_memory.py's JSON.

`render(data)` reads only `data` (docs/results/bench/memory.json): peak RSS and epoch time
of each mode per corpus size, and the growth of peak RSS per hour of features.
"""

from __future__ import annotations

from _report import machine_line, markdown_table

NAME = "memory"
TITLE = "Training memory against corpus size: features in RAM vs memory-mapped"


def _growth(sizes: list[dict], mode: str, key: str = "peak_rss_mb") -> float:
    """Growth of `key` (a peak RSS, MB) per hour of features between the smallest and the
    largest size."""
    first, last = sizes[0], sizes[-1]
    peak = {s["hours"]: next(r for r in s["runs"] if r["mode"] == mode) for s in (first, last)}
    span = last["hours"] - first["hours"]
    if span <= 0:
        return float("nan")
    return (peak[last["hours"]][key] - peak[first["hours"]][key]) / span


def render(data: dict) -> str:
    settings, sizes = data["settings"], data["sizes"]
    rows = []
    for size in sizes:
        runs = {r["mode"]: r for r in size["runs"]}
        mem, stream = runs["memory"], runs["stream"]
        scoring = [f"{r['scoring_peak_rss_mb']:.0f}" for r in (mem, stream)]
        rows.append(
            [
                f"{size['hours']:g}",
                size["utterances"],
                f"{size['bytes'] / 2**20:.0f}",
                f"{mem['peak_rss_mb']:.0f}",
                f"{stream['peak_rss_mb']:.0f}",
                *scoring,
                f"{mem['total_s']:.1f}",
                f"{stream['total_s']:.1f}",
                "yes" if size["identical"] else "**no**",
            ]
        )
    header = [
        "hours",
        "utterances",
        "features on disk (MiB)",
        "peak RSS, epoch, in RAM (MB)",
        "peak RSS, epoch, memory-mapped (MB)",
        "peak RSS with scoring, in RAM (MB)",
        "peak RSS with scoring, memory-mapped (MB)",
        "epoch s, in RAM",
        "epoch s, memory-mapped",
        "same batches and scores",
    ]
    floors = [r["floor_rss_mb"] for s in sizes for r in s["runs"]]
    lo, hi = settings["utterance_s"]
    text = [
        machine_line(data["environment"]),
        "",
        f"Synthetic feature caches ({settings['n_features']} features x 100 frames/s, "
        f"float32, utterances of {lo:g}-{hi:g} s) in the `FeatureCache` format; each mode "
        "runs in its own process: the training set's normalisation statistics, then one "
        f"epoch of `WindowSequence` ({settings['window_frames']}-frame windows, batch "
        f"{settings['batch_size']}), then every utterance scored as a test set is "
        f"(`predict_utterances`: {settings['window_frames']}-frame windows every "
        f"{settings['window_hop_frames']} frames, a minimal Keras model; the peak after "
        'it is the "with scoring" column). '
        '"In RAM" holds every utterance in memory (`dyser-train` without `--cache`); '
        '"memory-mapped" reads each window from the cache\'s `.npy` files (`dyser-train '
        '--cache DIR`). Epoch seconds include loading and the statistics. "Same batches and '
        'scores": SHA-256 of every batch and of the predictions equal in both modes. The '
        "machine was shared (1-min load average "
        f"{data['environment']['load_1min']:.1f} at the start): the seconds are indicative, "
        "the memory is not affected.",
        "",
        markdown_table(header, rows),
        "",
        f"Peak RSS grows by {_growth(sizes, 'memory'):.0f} MB per hour of features in RAM "
        f"and by {_growth(sizes, 'stream'):.1f} MB per hour memory-mapped; with the "
        f"scoring, by {_growth(sizes, 'memory', 'scoring_peak_rss_mb'):.0f} and "
        f"{_growth(sizes, 'stream', 'scoring_peak_rss_mb'):.1f} MB per hour (RSS after the "
        f"imports alone: {min(floors):.0f}-{max(floors):.0f} MB).",
    ]
    return "\n".join(text)
