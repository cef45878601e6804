"""Render the "fuzz" section of docs/benchmarks.md from bench_fuzz.py's JSON.

`render(data)` reads only `data` (docs/results/bench/fuzz.json): the outcome counts, the
targets, the case kinds and the reasons for refusing files soundfile reads.
"""

from __future__ import annotations

from _report import markdown_table, verdict

NAME = "fuzz"
TITLE = "Fuzzing the edge input path"


def render(report: dict) -> str:
    """The Markdown body of the "fuzz" section of docs/benchmarks.md."""
    slow, sf = report["slowest_case"], report["soundfile"]
    outcomes = report["outcomes"]
    unexpected = report["cases"] - outcomes.get("ok", 0) - outcomes.get("WavError", 0)
    rows = [
        ("cases", f"{report['cases']:,}", ">= 100,000"),
        ("classified", f"{outcomes.get('ok', 0):,}", ""),
        *(
            [("of them 'no speech' (gated; the model did not run)", f"{gated:,}", "")]
            if (gated := report.get("no_speech")) is not None
            else []
        ),
        ("refused with WavError (file named)", f"{outcomes.get('WavError', 0):,}", ""),
        ("unexpected exceptions", str(unexpected), f"0: {verdict(unexpected == 0)}"),
        (
            "slowest case",
            f"{slow['seconds']:.3f} s ({slow['kind']}, {slow['bytes']} bytes)",
            f"< 2 s: {verdict(slow['seconds'] < 2)}",
        ),
        ("peak RSS", f"{report['peak_rss_mib']:.0f} MiB", ""),
        (
            "identical to soundfile where both read",
            f"{sf.get('identical', 0):,} of {sf.get('identical', 0) + sf.get('different', 0):,}",
            "all",
        ),
        (
            "refused where soundfile reads audio",
            f"{sf.get('refused, soundfile reads it', 0):,}",
            "each with its reason",
        ),
        ("total time", f"{report['seconds']:.0f} s", ""),
    ]
    kinds = markdown_table(
        ("case kind: outcome", "cases"), [(k, f"{v:,}") for k, v in report["by_kind"].items()]
    )
    refused = markdown_table(
        ("refused, though soundfile reads audio: reason", "cases"),
        [(f"`{k}`", f"{v:,}") for k, v in report["refused_where_soundfile_reads"].items()],
    )
    gate = report.get("speech_gate")
    gate_text = "" if gate is None else f", speech gate {'on' if gate else 'off'}"
    flag = " --no-speech-gate" if gate is False else ""
    return (
        f"`bench/bench_fuzz.py --cases {report['cases']} --seed {report['seed']}{flag}` "
        f"(model: {report['model']}{gate_text}, one process). Every case is a generated "
        "WAV-ish byte string written to a file and classified with "
        "`EmotionRecognizer.predict_file`; see the script's docstring for the generator. "
        "Raw numbers: `docs/results/bench/fuzz.json`. "
        f"{report['machine']}\n\n"
        + markdown_table(("measure", "value", "target"), rows)
        + "\n\n"
        + kinds
        + "\n\n"
        + refused
        + "\n"
    )
