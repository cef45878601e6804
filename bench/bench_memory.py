"""Peak memory of a training epoch against corpus size: features in memory vs memory-mapped.

For each size (hours of features), a synthetic feature cache is written in the format
`keras_dyconv.features.FeatureCache` keeps (one `.npy` per utterance under the frontend
config's fingerprint; random log-mel-like values, 1.5-5 s utterances; no audio needed).
Then, in a fresh process per mode, the feeding side of one training epoch runs exactly as
`keras_dyconv.training` does it: the training set's normalisation statistics
(`with_dataset_stats` over every utterance), then one epoch of `WindowSequence` batches
(one random 3 s window per utterance, batch 32), then every utterance is scored as a test
set is (`predict_utterances`: 3 s windows every 1 s, a minimal Keras model). Modes:

* "memory": every utterance loaded into RAM (`FeatureCache.load`, what `extract_corpus`
  returns without `as_paths`: `dyser-train` without `--cache`);
* "stream": the `.npy` files, memory-mapped (`dyser-train --cache DIR`): a window reads
  its own frames from the file.

Each child reports its peak resident set size (`ru_maxrss`) after the epoch and after the
scoring, the RSS after its imports (the floor: Python, numpy, Keras), the seconds, and a
SHA-256 of every batch and of the predictions; the two modes must give the same digest
(bit-identical windows and scores), or the bench fails.

    python bench/bench_memory.py [--hours 1 4 16] [--cache DIR]

Saves the numbers to docs/results/bench/memory.json, then renders the "memory" section of
docs/benchmarks.md from it (bench/render_memory.py; re-render alone with
`python bench/_report.py render memory`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _report import add_output_options, environment, output_targets, publish

MODES = ("memory", "stream")
#: Synthetic utterance lengths, uniform in this range (seconds).
UTTERANCE_S = (1.5, 5.0)
#: Window and batch of the default recipe and window policy.
WINDOW_FRAMES, WINDOW_HOP, BATCH_SIZE, NUM_CLASSES = 300, 100, 32, 4


def _config():
    from edge_runtime.config import FrontendConfig

    return FrontendConfig()


def write_cache(root: Path, hours: float, seed: int = 0) -> dict:
    """A synthetic feature cache of `hours` of features under `root`: its keys (one per
    utterance, listed in `root/keys.json`), frames and bytes on disk."""
    from keras_dyconv.features import FeatureCache

    config = _config()
    cache = FeatureCache(root, config)
    rng = np.random.default_rng(seed)
    frames_per_s = config.sample_rate / config.hop_length
    target = hours * 3600 * frames_per_s
    keys, total = [], 0
    while total < target:
        frames = int(rng.uniform(*UTTERANCE_S) * frames_per_s)
        feats = rng.standard_normal((frames, config.n_features), dtype=np.float32)
        key = f"{len(keys):064x}"
        cache.store(key, feats * 12.0 - 40.0)  # dB-like range
        keys.append(key)
        total += frames
    (root / "keys.json").write_text(json.dumps(keys))
    size = sum(cache.path(k).stat().st_size for k in keys)
    return {"utterances": len(keys), "frames": total, "bytes": size}


def run_epoch(root: Path, mode: str) -> dict:
    """The child: statistics + one WindowSequence epoch over the cache at `root`."""
    import keras

    from edge_runtime.normalization import with_dataset_stats
    from edge_runtime.windows import WindowPolicy
    from keras_dyconv.features import FeatureCache
    from keras_dyconv.feeding import WindowSequence, predict_utterances
    from keras_dyconv.normalization import load_features

    floor = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    config = _config()
    cache = FeatureCache(root, config)
    keys = json.loads((root / "keys.json").read_text())
    t0 = time.perf_counter()
    if mode == "stream":
        sources = [cache.path(k) for k in keys]
    else:
        sources = [cache.load(k) for k in keys]
    t_load = time.perf_counter() - t0
    config = with_dataset_stats(config, (load_features(s) for s in sources), "dataset")
    t_stats = time.perf_counter() - t0 - t_load
    labels = np.arange(len(sources)) % NUM_CLASSES
    data = WindowSequence(sources, labels, NUM_CLASSES, config, WINDOW_FRAMES, BATCH_SIZE)
    digest = hashlib.sha256()
    for i in range(len(data)):
        x, y = data[i]
        digest.update(x.tobytes())
        digest.update(y.tobytes())
    seconds = time.perf_counter() - t0
    train_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Scoring every utterance as a test set would be (a minimal model: the feeding, not
    # the network, is measured; the same weights in both modes).
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((WINDOW_FRAMES, config.n_features)),
            keras.layers.GlobalAveragePooling1D(),
            keras.layers.Dense(NUM_CLASSES, activation="softmax"),
        ]
    )
    policy = WindowPolicy(frames=WINDOW_FRAMES, hop_frames=WINDOW_HOP)
    t1 = time.perf_counter()
    probs = predict_utterances(model, sources, config, policy)
    digest.update(probs.tobytes())
    return {
        "mode": mode,
        "floor_rss_mb": floor / 1024,
        "peak_rss_mb": train_peak / 1024,
        "scoring_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "load_s": t_load,
        "stats_s": t_stats,
        "epoch_s": seconds - t_load - t_stats,
        "total_s": seconds,
        "scoring_s": time.perf_counter() - t1,
        "batches": len(data),
        "sha256": digest.hexdigest(),
    }


def measure(root: Path, mode: str) -> dict:
    """`run_epoch` in a fresh Python process, so each peak RSS is that mode's alone."""
    proc = subprocess.run(
        [sys.executable, __file__, "--child", mode, str(root)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
    )
    if proc.returncode != 0:
        sys.exit(f"bench_memory child ({mode}, {root}) failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--hours", type=float, nargs="+", default=[1.0, 4.0, 16.0], help="corpus sizes"
    )
    parser.add_argument(
        "--cache", type=Path, help="where to write the synthetic caches (default: a temp dir)"
    )
    parser.add_argument("--child", nargs=2, metavar=("MODE", "ROOT"), help=argparse.SUPPRESS)
    add_output_options(parser, "memory")
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(run_epoch(Path(args.child[1]), args.child[0])))
        return
    env = environment(("numpy", "keras"))
    workdir = Path(tempfile.mkdtemp(prefix="bench-memory-", dir=args.cache))
    sizes = []
    try:
        for hours in args.hours:
            root = workdir / f"{hours:g}h"
            corpus = write_cache(root, hours)
            runs = {mode: measure(root, mode) for mode in MODES}
            digests = {r["sha256"] for r in runs.values()}
            if len(digests) != 1:
                sys.exit(f"{hours:g} h: the modes fed different windows: {runs}")
            print(
                f"{hours:g} h, {corpus['bytes'] / 2**20:.0f} MiB: "
                + ", ".join(f"{m} peak {r['peak_rss_mb']:.0f} MB" for m, r in runs.items()),
                file=sys.stderr,
            )
            sizes.append({"hours": hours, **corpus, "identical": True, "runs": list(runs.values())})
            shutil.rmtree(root)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    data = {
        "environment": env,
        "settings": {
            "hours": args.hours,
            "utterance_s": list(UTTERANCE_S),
            "window_frames": WINDOW_FRAMES,
            "window_hop_frames": WINDOW_HOP,
            "batch_size": BATCH_SIZE,
            "n_features": _config().n_features,
            "backend": os.environ.get("KERAS_BACKEND", "tensorflow"),
        },
        "sizes": sizes,
    }
    print(publish("memory", data, **output_targets(args)))


if __name__ == "__main__":
    main()
