"""Render the "frontend" section of docs/benchmarks.md from bench_frontend.py's JSON.

`render(data)` reads only `data` (docs/results/bench/frontend.json); what the numbers
mean is written by hand after the section in docs/benchmarks.md.
"""

from __future__ import annotations

from _report import machine_line, markdown_table, verdict

NAME = "frontend"
TITLE = "Audio frontend: edge (numpy) vs librosa"
#: The parity target at the native rate (dB).
LOGMEL_TARGET_DB = 1e-3


def _max_mean(d: dict, digits: tuple[str, str]) -> str:
    return f"{d['max']:{digits[0]}} / {d['mean']:{digits[1]}}"


def render(data: dict) -> str:
    """The section's Markdown body from the saved results."""
    env, settings, corpus = data["environment"], data["settings"], data["corpus"]
    native, load = data["native"], data["load_1min"]
    versions = env["versions"]
    logmel_max = native["logmel"]["max"]
    return "\n\n".join(
        [
            f"Script: `bench/bench_frontend.py`. {machine_line(env)} numpy "
            f"{versions.get('numpy', '?')}, librosa {versions.get('librosa', '?')}; BLAS "
            f"threads: {settings['blas_threads']} (both sides). Corpus: `{settings['corpus']}`, "
            f"{corpus['files']} files, {corpus['seconds'] / 60:.1f} min at "
            f"{corpus['sample_rate']} Hz. Config: default `FrontendConfig` (25 ms Hann / 10 ms "
            f"hop, n_fft 512, 64 Slaney mels, pre-emphasis 0.97, power_to_db top_db "
            f"{settings['top_db']}), `feature` as named.",
            "**Parity at the native rate** (edge `read_wav` + `Frontend` vs `librosa.load` "
            f"+ `librosa_features`; the two WAV decoders differed on "
            f"{corpus['decode_mismatches']} files). Target: log-mel max |diff| <= "
            f"{LOGMEL_TARGET_DB:g} dB: {verdict(logmel_max <= LOGMEL_TARGET_DB)}.",
            markdown_table(
                ["feature", "max abs diff", "mean abs diff"],
                [
                    [label, f"{native[f]['max']:.3g}", f"{native[f]['mean']:.3g}"]
                    for f, label in (("logmel", "log-mel (dB)"), ("mfcc39", "MFCC-39"))
                ],
            ),
            "**After resampling.** Each file is converted in memory with "
            f"{settings['resampler']} to the rate shown, then back to "
            f"{corpus['sample_rate'] / 1000:g} kHz by `edge_runtime.resample` (edge) and by "
            f"{settings['resampler']} (librosa's default). SNR = energy of the "
            f"{settings['resampler']} output over the energy of the difference, for the whole "
            "corpus and per file (median / worst). Feature diffs are max / mean |edge - "
            "librosa| with each side using its own resampler; the frontend-only column runs "
            f"the edge frontend on the {settings['resampler']} output (max |diff| log-mel / "
            "MFCC), so the rest is the resampler's.",
            resampled_table(data["resampled"], settings["resampler"]),
            "**Speed**, edge `Frontend` vs `librosa_features` on the same in-memory "
            "samples, interleaved run by run (3 s clip: ms per call; corpus: s in total), "
            "measured after the parity passes; the last row times WAV file to features "
            "(`read_wav` + `Frontend` vs `librosa.load` + `librosa_features`). Times (and the "
            f"resampling ms above) are {settings['clock']}, which waiting for a core does not "
            f"inflate; load average (1 min) at start / end of the run: {load[0]:.1f} / "
            f"{load[1]:.1f}.",
            speed_table(data["speed"], settings, corpus["files"]),
        ]
    )


def resampled_table(resampled: list[dict], resampler: str) -> str:
    """One row per copy rate: resampler SNR, feature differences, resampling time."""
    header = [
        "copy rate",
        "SNR corpus (dB)",
        "SNR per file median / min (dB)",
        "log-mel diff max / mean (dB)",
        "MFCC-39 diff max / mean",
        "frontend-only max",
        f"resample ms/file edge / {resampler}",
    ]
    rows = [
        [
            f"{r['rate'] / 1000:g} kHz",
            f"{r['snr_corpus_db']:.1f}",
            f"{r['snr_file_median_db']:.1f} / {r['snr_file_min_db']:.1f}",
            _max_mean(r["via_edge"]["logmel"], (".3g", ".2g")),
            _max_mean(r["via_edge"]["mfcc39"], (".3g", ".2g")),
            f"{r['frontend_only']['logmel']['max']:.2g} / "
            f"{r['frontend_only']['mfcc39']['max']:.2g}",
            f"{r['resample_ms_per_file']['edge']:.2f} / {r['resample_ms_per_file']['soxr']:.2f}",
        ]
        for r in resampled
    ]
    return markdown_table(header, rows)


def speed_table(speed: dict, settings: dict, files: int) -> str:
    """Edge vs librosa times and the speed-up: clip and corpus per feature, then files."""
    rows = []
    for feature in settings["features"]:
        clip, whole = speed["clip"][feature], speed["corpus"][feature]
        rows.append(
            [
                f"3 s clip, {feature} (median of {settings['runs']})",
                1e3 * clip["edge_s"],
                1e3 * clip["librosa_s"],
            ]
        )
        rows.append(
            [
                f"corpus, {feature} ({files} files, median of {settings['corpus_passes']} passes)",
                whole["edge_s"],
                whole["librosa_s"],
            ]
        )
    from_files = speed["files"]
    rows.append(
        [
            f"corpus from WAV files, {from_files['feature']} (decode + features)",
            from_files["edge_s"],
            from_files["librosa_s"],
        ]
    )
    return markdown_table(
        ["workload", "edge", "librosa", "speed-up (librosa / edge)"],
        [[name, f"{e:.3f}", f"{lib:.3f}", f"{lib / e:.2f}x"] for name, e, lib in rows],
    )
