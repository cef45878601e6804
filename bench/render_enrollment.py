"""Render the "enrollment" section of docs/benchmarks.md from bench_enrollment.py's JSON.

`render(data)` reads only `data` (docs/results/bench/enrollment.json): per test corpus, the
WA / UA of each normalisation condition (common and own label set) with how far its
statistics are from the speaker's own (enrollment from neutral speech only too, where
measured), and the online scores by seconds heard; with a "priors" entry
(`bench_enrollment.py --priors`), the stream priors compared.
"""

from __future__ import annotations

from typing import Any

import numpy as np

NAME = "enrollment"
TITLE = "Stream normalisation: online, enrollment and the speaker's own statistics"


def _pair(s: dict[str, Any], space: str = "common") -> str:
    return f"{s[space]['wa']:.1f} / {s[space]['ua']:.1f}"


def table(summary: dict[str, Any]) -> str:
    """WA / UA (%) of each condition per corpus (common and own label set, with each
    condition's statistics error), then the online scores by seconds heard."""
    corpora = list(summary)
    conditions = list(next(iter(summary.values()))["conditions"])
    head = "| condition | " + " | ".join(f"{c} common | {c} own | {c} stats error" for c in corpora)
    lines = [head + " |", "|" + "---|" * (1 + 3 * len(corpora))]
    for c in conditions:
        cells = []
        for corpus in corpora:
            s = summary[corpus]["conditions"][c]
            e = summary[corpus]["statistics_error"].get(c)
            error = f"{e['mean_in_std']:.2f}, {e['log_std_ratio']:+.2f}" if e else "-"
            cells += [_pair(s), _pair(s, "own"), error]
        lines.append(f"| {c} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "stats error: mean |mean - speaker mean| / speaker std, mean ln(std / speaker std).",
        "",
        "| corpus | order | same-emotion share of the last 60 s | heard before (s) | n "
        "| online WA / UA | speaker WA / UA (same utterances) |",
        "|---|---|---|---|---|---|---|",
    ]
    for corpus in corpora:
        e = summary[corpus]
        for name, buckets in e["by_heard"].items():
            members = [c for c in e["same_emotion_share"] if c.startswith(name)]
            blocked = np.mean([e["same_emotion_share"][c] for c in members])
            for b in buckets:
                low, high = b["heard_s"]
                span = f"{low:g}-{high:g}" if high is not None else f">= {low:g}"
                lines.append(
                    f"| {corpus} | {name} | {blocked:.2f} | {span} | {b['n']} "
                    f"| {_pair(b['online'])} | {_pair(b['speaker'])} |"
                )
    return "\n".join(lines)


def priors_table(priors: dict[str, Any]) -> str:
    """The stream priors compared: per corpus and candidate ("KIND:FRAMES"), WA / UA (%,
    common label set) online in random orders, each utterance a fresh stream (where
    measured) and after each enrollment through a stream, and the statistics error of the
    first random order."""
    enrolls = [f"enroll_stream_{s:g}s" for s in priors["enroll_seconds"]]
    first = next(iter(next(iter(priors["corpora"].values())).values()))["conditions"]
    enrolls = ["independent"] * ("independent" in first) + enrolls
    intro = (
        f"Stream priors (`--priors`, folds {', '.join(priors['folds'])}, seed "
        f"{priors['seed']}, {priors['orders']} random orders, the same orders and enrollments "
        'for every prior): "pooled" is the training set\'s statistics over all its frames, '
        '"within" the mean of the training speakers\' means and of their variances; FRAMES '
        "is the prior's weight. WA / UA (%, common label set)."
    )
    head = "| corpus | prior | online_random | " + " | ".join(enrolls)
    head += " | online_random0 stats error |"
    lines = [intro, "", head, "|" + "---|" * (4 + len(enrolls))]
    for corpus, candidates in priors["corpora"].items():
        for spec, e in candidates.items():
            c, err = e["conditions"], e["statistics_error"]["online_random0"]
            cells = [_pair(c["online_random"]), *(_pair(c[name]) for name in enrolls)]
            cells.append(f"{err['mean_in_std']:.2f}, {err['log_std_ratio']:+.2f}")
            lines.append(f"| {corpus} | {spec} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def render(data: dict[str, Any]) -> str:
    """The Markdown body of the "enrollment" section of docs/benchmarks.md."""
    checks = data["reproduction"].values()
    reproduced = all(
        c["predicted"] == c["predicted_speaker_norm"] == c.get("predicted_corpus_order", 0) == 0
        for c in checks
    )
    intro = (
        f"The pooled `--normalization stream` run (folds {', '.join(data['folds'])}, seed "
        f"{data['seed']}) rescored without training: each fold's final model rebuilt from its "
        "checkpoint ("
        + (
            "reproduces the run's saved predictions label for label"
            if reproduced
            else "**does not reproduce** the run's saved predictions"
        )
        + f"), {data['orders']} random per-speaker orders, enrollment of "
        f"{', '.join(f'{s:g}' for s in data['enroll_seconds'])} s of the speaker's other "
        f"utterances; device prior {data['stream_prior_frames']} frames, memory "
        f"{data['stream_memory_frames']} frames. WA / UA (%), all folds pooled "
        "(`bench/bench_enrollment.py`)."
    )
    if "neutral_enroll_seconds" in data:
        seconds = ", ".join(f"{s:g}" for s in data["neutral_enroll_seconds"])
        fallback = ", ".join(
            f"{corpus} {e['no_neutral_enrollment']}" for corpus, e in data["corpora"].items()
        )
        intro += (
            f" `enroll_neutral_*`: enrollment of {seconds} s and all of the speaker's other "
            'utterances labelled "neutral" only (RAVDESS\'s "calm" not counted), what a user '
            "enrolling by speaking calmly gives a device; utterances whose speaker has no "
            f"other neutral utterance, scored as `independent`: {fallback}."
        )
    body = intro + "\n\n" + table(data["corpora"])
    if "priors" in data:
        body += "\n\n" + priors_table(data["priors"])
    return body
