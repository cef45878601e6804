"""Edge (numpy) audio frontend vs the librosa reference on the real EmoDB corpus.

Measures, for the default FrontendConfig (16 kHz, 25 ms / 10 ms, 64 mels, n_fft 512):

1. Parity at the file's own rate: edge (read_wav + Frontend) vs librosa (librosa.load +
   keras_dyconv.features.librosa_features), log-mel dB and MFCC-39, max and mean |diff|.
2. Parity after resampling: each file is converted in memory (soxr_hq) to 8, 22.05, 44.1
   and 48 kHz, then brought back to 16 kHz by edge_runtime.resample (edge) and by soxr_hq
   (librosa). Reports the resampler SNR (edge vs soxr_hq) and the feature difference it
   causes, next to the frontend-only difference on the same soxr output.
3. Speed, side by side in one run: edge Frontend vs librosa_features on a 3 s clip (median
   of many interleaved runs) and over the whole corpus.

BLAS is pinned to one thread (both sides) unless OPENBLAS_NUM_THREADS/OMP_NUM_THREADS are
set: small edge CPUs and a shared benchmark machine are better modelled that way.

    python bench/bench_frontend.py [--corpus DIR] [--limit N] [--runs 300]
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import librosa  # noqa: E402
import numpy as np  # noqa: E402
from _report import machine_line, markdown_table, write_section  # noqa: E402

from edge_runtime import Frontend, FrontendConfig, read_wav, resample  # noqa: E402
from keras_dyconv.features import RESAMPLER, librosa_features  # noqa: E402

DEFAULT_CORPUS = Path("/work/shared/datasets/emodb/wav")
COPY_RATES = (8000, 22050, 44100, 48000)
FEATURES = ("logmel", "mfcc39")


class DiffStats:
    """Running max and mean of |a - b| over many arrays."""

    def __init__(self) -> None:
        self.max, self.total, self.count = 0.0, 0.0, 0

    def add(self, a: np.ndarray, b: np.ndarray) -> None:
        if a.shape != b.shape:
            raise AssertionError(f"shape mismatch {a.shape} vs {b.shape}")
        d = np.abs(a.astype(np.float64) - b)
        self.max = max(self.max, float(d.max()))
        self.total += float(d.sum())
        self.count += d.size

    @property
    def mean(self) -> float:
        return self.total / self.count


def snr_db(reference: np.ndarray, estimate: np.ndarray) -> float:
    ref = reference.astype(np.float64)
    return float(10 * np.log10(np.sum(ref**2) / np.sum((ref - estimate) ** 2)))


def soxr(x: np.ndarray, orig: int, target: int) -> np.ndarray:
    return librosa.resample(x, orig_sr=orig, target_sr=target, res_type=RESAMPLER)


def load_corpus(paths: list[Path]) -> tuple[list[np.ndarray], int]:
    """Decode every file both ways; the two decoders must agree bit for bit."""
    signals, mismatches = [], 0
    for path in paths:
        edge, edge_sr = read_wav(path)
        ref, ref_sr = librosa.load(path, sr=None, mono=True)
        if edge_sr != ref_sr or not np.array_equal(edge, ref):
            mismatches += 1
        signals.append(ref)
    return signals, mismatches


def native_parity(signals, frontends, configs) -> dict[str, DiffStats]:
    stats = {f: DiffStats() for f in FEATURES}
    for x in signals:
        for f in FEATURES:
            stats[f].add(frontends[f](x), librosa_features(x, configs[f]))
    return stats


def resampled_parity(signals, frontends, configs, sr: int) -> list[list[object]]:
    rows = []

    def ms_per_file(seconds: float) -> float:
        return 1e3 * seconds / len(signals)

    for rate in COPY_RATES:
        snrs, edge_seconds, soxr_seconds = [], 0.0, 0.0
        num, den = 0.0, 0.0
        via_edge = {f: DiffStats() for f in FEATURES}
        frontend_only = {f: DiffStats() for f in FEATURES}
        for x in signals:
            copy = soxr(x, sr, rate)
            t0 = time.perf_counter()
            back_ref = soxr(copy, rate, sr)
            t1 = time.perf_counter()
            back_edge = resample(copy, rate, sr)
            t2 = time.perf_counter()
            soxr_seconds += t1 - t0
            edge_seconds += t2 - t1
            snrs.append(snr_db(back_ref, back_edge))
            num += float(np.sum(back_ref.astype(np.float64) ** 2))
            den += float(np.sum((back_ref.astype(np.float64) - back_edge) ** 2))
            for f in FEATURES:
                reference = librosa_features(back_ref, configs[f])
                via_edge[f].add(frontends[f](back_edge), reference)
                frontend_only[f].add(frontends[f](back_ref), reference)
        rows.append(
            [
                f"{rate / 1000:g} kHz",
                f"{10 * np.log10(num / den):.1f}",
                f"{statistics.median(snrs):.1f} / {min(snrs):.1f}",
                f"{via_edge['logmel'].max:.3g} / {via_edge['logmel'].mean:.2g}",
                f"{via_edge['mfcc39'].max:.3g} / {via_edge['mfcc39'].mean:.2g}",
                f"{frontend_only['logmel'].max:.2g} / {frontend_only['mfcc39'].max:.2g}",
                f"{ms_per_file(edge_seconds):.2f} / {ms_per_file(soxr_seconds):.2f}",
            ]
        )
    return rows


def time_pair(edge_fn, librosa_fn, runs: int) -> tuple[float, float]:
    """Median seconds of each, interleaved so both see the same machine state."""
    edge_fn(), librosa_fn()  # warm caches (filters, plans, allocator)
    edge_t, lib_t = [], []
    for _ in range(runs):
        t0 = time.perf_counter()
        edge_fn()
        t1 = time.perf_counter()
        librosa_fn()
        t2 = time.perf_counter()
        edge_t.append(t1 - t0)
        lib_t.append(t2 - t1)
    return statistics.median(edge_t), statistics.median(lib_t)


def corpus_speed(signals, frontend, config, passes: int = 3) -> tuple[float, float]:
    """Total seconds over the corpus per side (median of `passes` interleaved passes)."""
    edge_totals, lib_totals = [], []
    for _ in range(passes):
        edge_total = lib_total = 0.0
        for x in signals:
            t0 = time.perf_counter()
            frontend(x)
            t1 = time.perf_counter()
            librosa_features(x, config)
            t2 = time.perf_counter()
            edge_total += t1 - t0
            lib_total += t2 - t1
        edge_totals.append(edge_total)
        lib_totals.append(lib_total)
    return statistics.median(edge_totals), statistics.median(lib_totals)


def file_speed(paths, frontend, config) -> tuple[float, float]:
    """Total seconds from WAV file to features: read_wav + Frontend vs librosa.load + ref."""
    edge_total = lib_total = 0.0
    for path in paths:
        t0 = time.perf_counter()
        frontend(read_wav(path)[0])
        t1 = time.perf_counter()
        librosa_features(librosa.load(path, sr=None)[0], config)
        t2 = time.perf_counter()
        edge_total += t1 - t0
        lib_total += t2 - t1
    return edge_total, lib_total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--limit", type=int, default=None, help="use only the first N files")
    parser.add_argument("--runs", type=int, default=300, help="timed runs on the 3 s clip")
    args = parser.parse_args()

    paths = sorted(args.corpus.glob("*.wav"))[: args.limit]
    if not paths:
        sys.exit(f"no WAV files in {args.corpus}")
    configs = {f: FrontendConfig(feature=f) for f in FEATURES}
    frontends = {f: Frontend(configs[f]) for f in FEATURES}
    sr = configs["logmel"].sample_rate

    signals, decode_mismatches = load_corpus(paths)
    if any(read_wav(p)[1] != sr for p in paths[:1]):
        sys.exit(f"expected a {sr} Hz corpus")
    seconds = sum(len(x) for x in signals) / sr
    print(f"{len(paths)} files, {seconds / 60:.1f} min of audio", file=sys.stderr)

    native = native_parity(signals, frontends, configs)
    print("native parity done", file=sys.stderr)
    resampled = resampled_parity(signals, frontends, configs, sr)
    print("resampled parity done", file=sys.stderr)

    clip = next(x for x in signals if len(x) >= 3 * sr)[: 3 * sr]
    speed_rows = []
    for f in FEATURES:
        e, lib = time_pair(
            lambda f=f: frontends[f](clip),
            lambda f=f: librosa_features(clip, configs[f]),
            args.runs,
        )
        speed_rows.append([f"3 s clip, {f} (median of {args.runs})", e * 1e3, lib * 1e3])
        e, lib = corpus_speed(signals, frontends[f], configs[f])
        speed_rows.append([f"corpus, {f} ({len(signals)} files, median of 3 passes)", e, lib])
    e, lib = file_speed(paths, frontends["logmel"], configs["logmel"])
    speed_rows.append(["corpus from WAV files, logmel (decode + features)", e, lib])

    body = "\n\n".join(
        [
            f"Script: `bench/bench_frontend.py`. {machine_line()} numpy {np.__version__}, "
            f"librosa {librosa.__version__}; BLAS threads: "
            f"{os.environ['OPENBLAS_NUM_THREADS']} (both sides). Corpus: EmoDB, "
            f"{len(paths)} files, {seconds / 60:.1f} min at {sr} Hz. Config: default "
            "`FrontendConfig` (25 ms Hann / 10 ms hop, n_fft 512, 64 Slaney mels, "
            f"pre-emphasis 0.97, power_to_db top_db {FrontendConfig().top_db}), `feature` "
            "as named.",
            "**Parity at the native rate** (edge `read_wav` + `Frontend` vs `librosa.load` "
            f"+ `librosa_features`; the two WAV decoders differed on {decode_mismatches} "
            "files). Target: log-mel max |diff| <= 1e-3 dB.",
            markdown_table(
                ["feature", "max abs diff", "mean abs diff"],
                [
                    ["log-mel (dB)", f"{native['logmel'].max:.3g}", f"{native['logmel'].mean:.3g}"],
                    ["MFCC-39", f"{native['mfcc39'].max:.3g}", f"{native['mfcc39'].mean:.3g}"],
                ],
            ),
            "**After resampling.** Each file is converted in memory with soxr_hq to the "
            "rate shown, then back to 16 kHz by `edge_runtime.resample` (edge) and by "
            "soxr_hq (librosa's default). SNR = energy of the soxr_hq output over the "
            "energy of the difference, for the whole corpus and per file (median / "
            "worst). Feature diffs are max / mean |edge - librosa| with each side using "
            "its own resampler; the frontend-only column runs the edge frontend on the "
            "soxr_hq output (max |diff| log-mel / MFCC), so the rest is the resampler's. "
            "Copies at 8 kHz have nothing above 4 kHz: the upper mel bands then hold "
            "only the two resamplers' residues, far below the speech bands, and dominate "
            "the max.",
            markdown_table(
                [
                    "copy rate",
                    "SNR corpus (dB)",
                    "SNR per file median / min (dB)",
                    "log-mel diff max / mean (dB)",
                    "MFCC-39 diff max / mean",
                    "frontend-only max",
                    "resample ms/file edge / soxr",
                ],
                resampled,
            ),
            "**Speed**, edge `Frontend` vs `librosa_features` on the same in-memory "
            "samples, interleaved run by run (3 s clip: ms per call; corpus: s in total). "
            "Measured after the parity passes, with the allocator warmed up: in a fresh "
            "process librosa's large temporaries page-fault on every call and it runs "
            "2-3x slower, so these ratios are the conservative ones. About half the edge "
            "time is numpy's float64 rfft (librosa uses scipy's faster FFT); numpy "
            f"{np.__version__}'s float32 FFT is several times slower still, and float32 "
            "windowing costs ~100x in accuracy, so the edge stays in float64 up to |X|^2.",
            markdown_table(
                ["workload", "edge", "librosa", "speed-up (librosa / edge)"],
                [
                    [name, f"{e:.3f}", f"{lib:.3f}", f"{lib / e:.2f}x"]
                    for name, e, lib in speed_rows
                ],
            ),
        ]
    )
    print(body)
    write_section("frontend", "Audio frontend: edge (numpy) vs librosa", body)


if __name__ == "__main__":
    main()
