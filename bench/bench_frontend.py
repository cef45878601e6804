"""Edge (numpy) audio frontend vs the librosa reference on the real EmoDB corpus.

Measures, for the default FrontendConfig (16 kHz, 25 ms / 10 ms, 64 mels, n_fft 512):

1. Parity at the file's own rate: edge (read_wav + Frontend) vs librosa (librosa.load +
   keras_dyconv.features.librosa_features), log-mel dB and MFCC-39, max and mean |diff|.
2. Parity after resampling: each file is converted in memory (soxr_hq) to 8, 22.05, 44.1
   and 48 kHz, then brought back to 16 kHz by edge_runtime.resample (edge) and by soxr_hq
   (librosa). Reports the resampler SNR (edge vs soxr_hq) and the feature difference it
   causes, next to the frontend-only difference on the same soxr output.
3. Speed, side by side in one run: edge Frontend vs librosa_features on a 3 s clip (median
   of many interleaved runs) and over the whole corpus, in process CPU time (`clock`), so
   that time spent waiting for a core on a shared machine does not count.

BLAS is pinned to one thread (both sides) unless OPENBLAS_NUM_THREADS/OMP_NUM_THREADS are
set: small edge CPUs and a shared benchmark machine are better modelled that way.

    python bench/bench_frontend.py [--corpus DIR] [--limit N] [--runs 300]

Saves every number to docs/results/bench/frontend.json, then renders the "frontend" section
of docs/benchmarks.md from it (bench/render_frontend.py; re-render alone with
`python bench/_report.py render frontend`).
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
from _report import add_output_options, environment, output_targets, publish  # noqa: E402

from edge_runtime import Frontend, FrontendConfig, read_wav, resample  # noqa: E402
from keras_dyconv.features import RESAMPLER, librosa_features  # noqa: E402

DEFAULT_CORPUS = Path("/work/shared/datasets/emodb/wav")
COPY_RATES = (8000, 22050, 44100, 48000)
FEATURES = ("logmel", "mfcc39")
CORPUS_PASSES = 3
#: The speed and resampling timings: this process's CPU seconds (BLAS pinned to one thread,
#: so one core's work), not wall time, which a shared machine inflates by the wait for a core.
clock = time.process_time


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

    def as_dict(self) -> dict[str, float]:
        return {"max": self.max, "mean": self.mean}


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


def resampled_parity(signals, frontends, configs, sr: int) -> list[dict]:
    """Per copy rate: resampler SNR, feature differences and resampling time."""
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
            t0 = clock()
            back_ref = soxr(copy, rate, sr)
            t1 = clock()
            back_edge = resample(copy, rate, sr)
            t2 = clock()
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
            {
                "rate": rate,
                "snr_corpus_db": float(10 * np.log10(num / den)),
                "snr_file_median_db": statistics.median(snrs),
                "snr_file_min_db": min(snrs),
                "via_edge": {f: via_edge[f].as_dict() for f in FEATURES},
                "frontend_only": {f: frontend_only[f].as_dict() for f in FEATURES},
                "resample_ms_per_file": {
                    "edge": ms_per_file(edge_seconds),
                    "soxr": ms_per_file(soxr_seconds),
                },
            }
        )
    return rows


def time_pair(edge_fn, librosa_fn, runs: int) -> tuple[float, float]:
    """Median seconds of each, interleaved so both see the same machine state."""
    edge_fn(), librosa_fn()  # warm caches (filters, plans, allocator)
    edge_t, lib_t = [], []
    for _ in range(runs):
        t0 = clock()
        edge_fn()
        t1 = clock()
        librosa_fn()
        t2 = clock()
        edge_t.append(t1 - t0)
        lib_t.append(t2 - t1)
    return statistics.median(edge_t), statistics.median(lib_t)


def corpus_speed(signals, frontend, config, passes: int = CORPUS_PASSES) -> tuple[float, float]:
    """Total seconds over the corpus per side (median of `passes` interleaved passes)."""
    edge_totals, lib_totals = [], []
    for _ in range(passes):
        edge_total = lib_total = 0.0
        for x in signals:
            t0 = clock()
            frontend(x)
            t1 = clock()
            librosa_features(x, config)
            t2 = clock()
            edge_total += t1 - t0
            lib_total += t2 - t1
        edge_totals.append(edge_total)
        lib_totals.append(lib_total)
    return statistics.median(edge_totals), statistics.median(lib_totals)


def file_speed(paths, frontend, config) -> tuple[float, float]:
    """Total seconds from WAV file to features: read_wav + Frontend vs librosa.load + ref."""
    edge_total = lib_total = 0.0
    for path in paths:
        t0 = clock()
        frontend(read_wav(path)[0])
        t1 = clock()
        librosa_features(librosa.load(path, sr=None)[0], config)
        t2 = clock()
        edge_total += t1 - t0
        lib_total += t2 - t1
    return edge_total, lib_total


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--limit", type=int, default=None, help="use only the first N files")
    parser.add_argument("--runs", type=int, default=300, help="timed runs on the 3 s clip")
    add_output_options(parser, "frontend")
    args = parser.parse_args(argv)

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
    env = environment(("numpy", "librosa", "soxr"))

    native = native_parity(signals, frontends, configs)
    print("native parity done", file=sys.stderr)
    resampled = resampled_parity(signals, frontends, configs, sr)
    print("resampled parity done", file=sys.stderr)

    clip = next(x for x in signals if len(x) >= 3 * sr)[: 3 * sr]
    speed: dict = {"clip": {}, "corpus": {}}
    for f in FEATURES:
        e, lib = time_pair(
            lambda f=f: frontends[f](clip),
            lambda f=f: librosa_features(clip, configs[f]),
            args.runs,
        )
        speed["clip"][f] = {"edge_s": e, "librosa_s": lib}
        e, lib = corpus_speed(signals, frontends[f], configs[f], CORPUS_PASSES)
        speed["corpus"][f] = {"edge_s": e, "librosa_s": lib}
    e, lib = file_speed(paths, frontends["logmel"], configs["logmel"])
    speed["files"] = {"feature": "logmel", "edge_s": e, "librosa_s": lib}

    data = {
        "environment": env,
        "settings": {
            "corpus": str(args.corpus),
            "limit": args.limit,
            "runs": args.runs,
            "corpus_passes": CORPUS_PASSES,
            "features": list(FEATURES),
            "copy_rates": list(COPY_RATES),
            "resampler": RESAMPLER,
            "blas_threads": os.environ["OPENBLAS_NUM_THREADS"],
            "top_db": FrontendConfig().top_db,
            "clock": "process CPU time",
        },
        "corpus": {
            "files": len(paths),
            "seconds": seconds,
            "sample_rate": sr,
            "decode_mismatches": decode_mismatches,
        },
        "native": {f: native[f].as_dict() for f in FEATURES},
        "resampled": resampled,
        "speed": speed,
        "load_1min": [env["load_1min"], os.getloadavg()[0]],
    }
    print(publish("frontend", data, **output_targets(args)))


if __name__ == "__main__":
    main()
