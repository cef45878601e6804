"""Render the "speech_gate" section of docs/benchmarks.md from bench_speech_gate.py's JSON.

`render(data)` reads only `data` (docs/results/bench/speech_gate.json): the thresholds,
the false rejections on the corpora with the margins left, and the detection of each class
of generated non-speech. What the numbers mean (which signals are hard, how the thresholds
were set) is written by hand after the section in docs/benchmarks.md.
"""

from __future__ import annotations

from _report import machine_line, markdown_table, verdict

NAME = "speech_gate"
TITLE = "Speech gate: real speech kept, non-speech gated"


CORPUS_HEADER = [
    "corpus",
    "utterances",
    "gated out",
    "false rejection",
    "voiced s, min",
    "voiced s, median",
    "voiced fraction, min",
    "pitch range st, min",
    "2-8 Hz modulation, min",
    "quietest peak dBFS",
    "gate ms per s of audio",
]


def _corpus_rows(corpora: dict) -> list[list[object]]:
    rows = []
    for name, c in corpora.items():
        partial = "" if c["utterances"] == c["expected"] else f" (of {c['expected']})"
        rows.append(
            [
                name,
                f"{c['utterances']}{partial}",
                c["rejected"],
                f"{100 * c['rejected'] / c['utterances']:.2f} %",
                c["voiced_s"]["min"],
                c["voiced_s"]["median"],
                c["voiced_fraction"]["min"],
                c["pitch_range_st"]["min"],
                c["modulation"]["min"],
                c["quietest_peak_dbfs"],
                f"{1000 * c['gate_s'] / c['audio_s']:.1f}",
            ]
        )
    return rows


def render(data: dict) -> str:
    """The section's Markdown body from the saved results."""
    settings, corpora, nonspeech = data["settings"], data["corpora"], data["nonspeech"]
    cfg = settings["config"]
    total = sum(c["utterances"] for c in corpora.values())
    expected = sum(c["expected"] for c in corpora.values())
    rejected = sum(c["rejected"] for c in corpora.values())
    quiet = sum(c["quiet_files_peak_below_-37dBFS"] for c in corpora.values())
    reasons = [
        f"- `{r['file']}`: {r['reason']} ({r['seconds']} s voiced)"
        for c in corpora.values()
        for r in c["rejections"]
    ]
    ns_total = sum(e["signals"] for e in nonspeech.values())
    ns_gated = sum(e["gated"] for e in nonspeech.values())
    passed = [f"- {cls}: {p}" for cls, e in nonspeech.items() for p in e["passed"]]
    return "\n\n".join(
        [
            _intro(data["environment"], settings),
            f"**Real speech gated out: {rejected} of {total}** (target 0 of {expected}: "
            f"{verdict(rejected == 0 and total == expected)}). {quiet} files peak below "
            "-37 dBFS. The voiced, fraction, pitch-range and modulation columns are the "
            "statistics the gate thresholds, at their lowest in the corpus: the margin left.",
            markdown_table(CORPUS_HEADER, _corpus_rows(corpora)),
            "\n".join(reasons) if reasons else "No utterance was gated out.",
            f'**Generated non-speech detected as "no speech": {ns_gated} of {ns_total}** '
            f"({settings['seeds']} seeds per signal; 3 s at 16 kHz unless named otherwise). "
            "The last column is the most voiced speech the gate found in one clip of the class "
            f"(speech needs {cfg['min_speech_s']} s).",
            markdown_table(
                ["class", "signals", "clips", "gated (no speech)", "voiced s, max"],
                [
                    [
                        cls,
                        "; ".join(e["kinds"]),
                        e["signals"],
                        f"{e['gated']} ({100 * e['gated'] / e['signals']:.0f} %)",
                        e["max_voiced_s"],
                    ]
                    for cls, e in nonspeech.items()
                ],
            ),
            ("Taken for speech:\n\n" + "\n".join(passed)) if passed else "None taken for speech.",
            _synthetic(data["synthetic_speech"], data["wall_s"]),
            _cost(data["cost"]),
        ]
    )


def _intro(env: dict, settings: dict) -> str:
    """Where it ran, and the gate's thresholds in words."""
    cfg = settings["config"]
    every = cfg.get("pitch_every", 1)  # results saved before it existed measured every frame
    held = (
        f"; periodicity, pitch and harmonics every {every * cfg['hop_s'] * 1000:g} ms, held between"
        if every > 1
        else ""
    )
    return (
        f"Script: `bench/bench_speech_gate.py`. {machine_line(env)} numpy "
        f"{env['versions'].get('numpy', '?')}, {settings['processes']} process. "
        "`edge_runtime.speech.detect_speech` with the default `SpeechGateConfig`: voiced "
        f"frames ({cfg['frame_s'] * 1000:g} ms every {cfg['hop_s'] * 1000:g} ms{held}) above "
        f"{cfg['floor_db']:g} dBFS and {cfg['noise_margin_db']:g} dB above the clip's "
        f"{cfg['noise_percentile']:g}th-percentile frame energy, whitened autocorrelation "
        f">= {cfg['min_periodicity']} at a pitch of {cfg['f0_min_hz']:g}-"
        f"{cfg['f0_max_hz']:g} Hz, >= {cfg['min_harmonics']} harmonics, in runs of "
        f">= {cfg['min_voiced_run_s']} s; speech: >= {cfg['min_speech_s']} s voiced, a "
        f"voiced fraction >= {cfg['min_voiced_fraction']}, a pitch range >= "
        f"{cfg['min_pitch_range_st']} semitones and a 2-8 Hz modulation >= "
        f"{cfg['min_modulation']}. Every utterance at its own rate, untrimmed; WAV read "
        "with `read_wav`, RAVDESS's FLAC with soundfile."
    )


def _synthetic(synth: dict, wall_s: float) -> str:
    """The synthetic voiced speech gated out, and the bench's wall time."""
    return (
        f"**Synthetic voiced speech** (`keras_dyconv.synthetic`, the dev set): "
        f"{synth['rejected']} of {synth['utterances']} utterances gated out"
        + (
            ": " + "; ".join(f"{r['utterance']} ({r['reason']})" for r in synth["rejections"])
            if synth["rejections"]
            else ""
        )
        + f". Measured in {wall_s:.0f} s."
    )


def _cost(cost: dict) -> str:
    """The gate's CPU cost per clip (and against the frontend's) and per stream hop."""
    frontend = (
        f"; the edge frontend (log-mel, `Frontend`) on the same clips, timed alternately "
        f"before and after the gate in the same run ({cost['clips_timed']} of each), "
        f"{cost['frontend_clip_ms']:.2f} ms: the gate costs "
        f"**{cost['gate_over_frontend']:.2f}x the frontend**"
        if "frontend_clip_ms" in cost  # results saved before it was timed lack it
        else ""
    )
    threads = "process CPU time, BLAS threads included" if frontend else "CPU, one thread"
    return (
        f"**Cost** ({threads}, synthetic speech at 16 kHz): "
        f"{cost['clip_ms']:.1f} ms to gate a {cost['window_s']:g} s clip "
        f"(`detect_speech`, what `predict` adds per file of that length){frontend}; "
        f"{cost['hop_ms']:.1f} ms per {cost['hop_s']:g} s hop of a stream "
        f"(`SpeechTracker`: new frames only, a decision on the last "
        f"{cost['window_s']:g} s), "
        f"{100 * cost['hop_ms'] / 1000 / cost['hop_s']:.1f} % of a core."
    )
