"""Scaling past one corpus in memory and one device: features memory-mapped from the
cache (bit-identical to the in-memory path), and data-parallel training with Keras's
distribution API (`keras_dyconv.distribute`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from edge_runtime.config import FrontendConfig
from edge_runtime.normalization import with_dataset_stats
from edge_runtime.windows import WindowPolicy
from keras_dyconv import feeding
from keras_dyconv.augment import Augmentation
from keras_dyconv.distribute import DivisibleBatches, data_parallel_scope, data_shards, predict
from keras_dyconv.experiment import ProtocolSpec, run_experiment
from keras_dyconv.features import FeatureCache
from keras_dyconv.feeding import WindowSequence, predict_utterances, utterance_windows
from keras_dyconv.normalization import load_features
from keras_dyconv.recipes import Recipe
from keras_dyconv.training import train_model

REPO = Path(__file__).resolve().parent.parent
CONFIG = FrontendConfig(n_mels=16)
TINY = Recipe(
    name="tiny",
    epochs=2,
    batch_size=4,
    learning_rate=3e-3,
    temperature=(10.0, 1.0, 1),
    patience=None,
    min_epochs=0,
    model={"conv_filters": (4,), "lstm_units": 8, "attention_units": 8},
)
POLICY = WindowPolicy(frames=40, hop_frames=20)


def _cached(tmp_path: Path, n: int = 11, seed: int = 0) -> tuple[list[np.ndarray], list[Path]]:
    """`n` random utterances (20-120 frames) stored in a FeatureCache: the arrays and the
    cache's .npy files."""
    rng = np.random.default_rng(seed)
    cache = FeatureCache(tmp_path / "cache", CONFIG)
    arrays = []
    for i in range(n):
        feats = rng.normal(-40, 12, (int(rng.integers(20, 120)), CONFIG.n_features))
        cache.store(f"{i:064x}", feats.astype(np.float32))
        arrays.append(cache.load(f"{i:064x}"))
    return arrays, [cache.path(f"{i:064x}") for i in range(n)]


def test_cache_entries_memory_map_and_refuse_bad_shapes(tmp_path):
    arrays, paths = _cached(tmp_path, n=2)
    cache = FeatureCache(tmp_path / "cache", CONFIG)
    mapped = cache.load(paths[0].stem, mmap=True)
    assert isinstance(mapped, np.memmap) and mapped.dtype == np.float32
    assert mapped.flags.c_contiguous and not mapped.flags.writeable
    np.testing.assert_array_equal(mapped, arrays[0])
    assert isinstance(load_features(paths[1]), np.memmap)
    assert cache.load("0" * 63 + "f", mmap=True) is None  # a miss
    with pytest.raises(ValueError, match=r"expected features of shape \(frames, 16\)"):
        cache.store("bad", np.zeros((10, 15), np.float32))
    assert not cache.path("bad").exists()


def test_memory_mapped_features_feed_the_same_windows(tmp_path):
    """Training statistics, two epochs of training windows (perturbed, masked and mixed)
    and the evaluation windows are bit-identical from the memory map and from RAM."""
    arrays, paths = _cached(tmp_path)
    stats = [with_dataset_stats(CONFIG, map(load_features, s), "dataset") for s in (arrays, paths)]
    assert stats[0] == stats[1]
    config = stats[0]
    labels = np.arange(len(arrays)) % 3
    augmentation = Augmentation(vtlp=0.1, speed=0.1, snr_db=(10, 30), gain_db=2, rt60_s=(0.3, 0.6))

    def epochs(sources):
        data = WindowSequence(
            sources,
            labels,
            3,
            config,
            50,
            4,
            seed=3,
            spec_augment=(1, 5, 1, 3),
            mixup_alpha=0.2,
            augmentation=augmentation,
        )
        batches = []
        for _ in range(2):
            batches += [data[i] for i in range(len(data))]
            data.on_epoch_end()
        return batches

    in_memory, mapped = epochs(arrays), epochs(paths)
    assert len(in_memory) == 6
    for a, b in zip(in_memory, mapped, strict=True):
        for part_a, part_b in zip(a, b, strict=True):
            np.testing.assert_array_equal(part_a, part_b)
    windows = [utterance_windows(s, config, POLICY) for s in (arrays, paths)]
    for a, b in zip(*windows, strict=True):
        np.testing.assert_array_equal(a, b)


def test_predictions_stream_in_chunks_with_the_batches_of_one_predict(tmp_path, monkeypatch):
    """`predict_utterances` cuts and predicts the windows a few batches at a time (bounded
    memory) and gives exactly what one `model.predict` over all of them gives."""
    arrays, paths = _cached(tmp_path, n=11)
    config = with_dataset_stats(CONFIG, arrays, "dataset")
    model = keras.Sequential(
        [keras.Input((40, 16)), keras.layers.GlobalAveragePooling1D(), keras.layers.Dense(3)]
    )
    windows = list(utterance_windows(paths, config, POLICY))
    probs = model.predict(np.concatenate(windows), batch_size=4, verbose=0)
    bounds = np.cumsum([len(w) for w in windows])[:-1]
    expected = np.stack([p.mean(axis=0, dtype=np.float64) for p in np.split(probs, bounds)])
    calls = []
    predict_once = model.predict

    def spy(x, batch_size, verbose):
        calls.append(len(x))
        return predict_once(x, batch_size=batch_size, verbose=verbose)

    monkeypatch.setattr(model, "predict", spy)
    monkeypatch.setattr(feeding, "PREDICT_BATCHES", 2)
    got = predict_utterances(model, paths, config, POLICY, batch_size=4)
    np.testing.assert_array_equal(got, expected)
    assert sum(calls) == len(probs) and len(calls) > 2
    assert all(n % 4 == 0 and n < 2 * 4 + max(map(len, windows)) for n in calls[:-1])


def test_training_from_the_memory_map_equals_training_from_ram(tmp_path):
    arrays, paths = _cached(tmp_path, n=12)
    labels, names = np.arange(12) % 2, ["a", "b"]
    runs = []
    for sources in (arrays, paths):
        result = train_model(
            sources[:8],
            labels[:8],
            names,
            CONFIG,
            TINY,
            POLICY,
            val_sources=sources[8:],
            val_labels=labels[8:],
            verbose=0,
        )
        probs = predict_utterances(result.model, sources, result.config, POLICY)
        runs.append((result.history, probs, result.config))
        keras.backend.clear_session()
    assert runs[0][0] == runs[1][0]  # every epoch's loss and validation UA
    np.testing.assert_array_equal(runs[0][1], runs[1][1])
    assert runs[0][2] == runs[1][2]


def test_divisible_batches_cut_the_last_batch_to_the_device_count(tmp_path):
    arrays, _ = _cached(tmp_path, n=11)
    config = with_dataset_stats(CONFIG, arrays, "dataset")

    def batches(n: int, shards: int) -> list[int]:
        data = WindowSequence(arrays[:n], np.arange(n) % 2, 2, config, 30, 4, seed=0)
        split = DivisibleBatches(data, shards, n, 4)
        return [len(split[i][0]) for i in range(len(split))]

    assert batches(11, 2) == [4, 4, 2]  # 11 = 4 + 4 + 3: the last cut to 2
    assert batches(9, 2) == [4, 4]  # 9 = 4 + 4 + 1: nothing left of the last one
    assert batches(8, 4) == [4, 4]
    data = WindowSequence(arrays, np.arange(11) % 2, 2, config, 30, 4, seed=0)
    np.testing.assert_array_equal(DivisibleBatches(data, 2, 11, 4)[0][1], data[0][1])
    with pytest.raises(ValueError, match="not a multiple of 4 shards"):
        DivisibleBatches(data, 4, 11, 6)
    with pytest.raises(ValueError, match="fewer than the 4 devices"):
        DivisibleBatches(data, 4, 3, 4)


def test_without_a_distribution_nothing_changes():
    assert data_shards() == 1
    with data_parallel_scope(False, 5) as shards:
        assert shards == 1 and keras.distribution.distribution() is None
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    x = np.random.default_rng(0).normal(size=(7, 3)).astype(np.float32)
    np.testing.assert_array_equal(predict(model, x, 4), model.predict(x, batch_size=4, verbose=0))


@pytest.mark.skipif(keras.backend.backend() == "jax", reason="the refusal of other backends")
def test_data_parallel_refuses_backends_without_a_distribution_api(tmp_path):
    backend = keras.backend.backend()
    message = rf"for the jax backend only; this process runs '{backend}': set KERAS_BACKEND=jax"
    with pytest.raises(ValueError, match=message), data_parallel_scope(True, 4):
        pass
    # A run is refused before it extracts any feature or writes anything.
    recipe = TINY.with_overrides(data_parallel=True)
    with pytest.raises(ValueError, match=message):
        run_experiment([], tmp_path / "run", CONFIG, recipe, ProtocolSpec())
    assert not (tmp_path / "run").exists()


#: Trains the tiny recipe data-parallel on the host CPU devices, then on one device, and
#: prints what it saw as JSON: the devices, the shards of every training batch given to
#: JAX, the distribution active during each training step, and each run's results.
DATA_PARALLEL_SCRIPT = """
import json, sys
import keras, numpy as np
from keras.src.backend.jax import distribution_lib
from edge_runtime.config import FrontendConfig
from edge_runtime.windows import WindowPolicy
from keras_dyconv import distribute, training
from keras_dyconv.feeding import predict_utterances
from keras_dyconv.recipes import Recipe

recipe = Recipe(**json.loads(sys.argv[1]))
config, policy = FrontendConfig(n_mels=16), WindowPolicy(frames=40, hop_frames=20)
rng = np.random.default_rng(0)
lengths = [*rng.integers(30, 90, 8), *[40] * 5]  # 5 validation utterances, 1 window each
feats = [rng.normal(-40, 12, (int(n), 16)).astype(np.float32) for n in lengths]
labels = np.arange(13) % 2
for f, y in zip(feats, labels):
    f[:, 8:] += 6 * y  # something to learn
shards, steps = [], []
distribute_data_input = distribution_lib.distribute_data_input


def recording(batch, layout, batch_dim_name):
    array = distribute_data_input(batch, layout, batch_dim_name)
    shards.append([list(s.data.shape) for s in array.addressable_shards])
    return array


class Spy(training.TemperatureAnnealing):
    def on_train_batch_begin(self, batch, logs=None):
        dist = keras.distribution.distribution()
        kernel = self.model.get_layer("dyconv1").kernel.value
        devices = len(kernel.sharding.device_set)
        steps.append([type(dist).__name__, distribute.data_shards(), devices])


try:
    distribute.data_parallel_devices(3)
except ValueError as err:
    refusal = str(err)
distribution_lib.distribute_data_input = recording
training.TemperatureAnnealing = Spy
runs = {}
for parallel in (True, False):
    result = training.train_model(
        feats[:8], labels[:8], ["a", "b"], config,
        Recipe(**{**recipe.to_dict(), "data_parallel": parallel}), policy,
        val_sources=feats[8:], val_labels=labels[8:], verbose=0,
    )
    probs = predict_utterances(result.model, feats, result.config, policy)
    runs[str(parallel)] = {"history": result.history, "probs": probs.tolist(), "steps": steps[:]}
    steps.clear()
    keras.backend.clear_session()
devices = keras.distribution.list_devices()
print(json.dumps({"devices": devices, "refusal": refusal, "shards": shards, "runs": runs}))
"""


def _run_jax(recipe: Recipe, devices: int) -> dict:
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "KERAS_BACKEND": "jax",
        "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}",
        "JAX_PLATFORMS": "cpu",
    }
    proc = subprocess.run(
        [sys.executable, "-c", DATA_PARALLEL_SCRIPT, json.dumps(recipe.to_dict())],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(sys.platform != "linux", reason="JAX host CPU devices")
def test_data_parallel_training_on_two_cpu_devices():
    """`Recipe.data_parallel` trains under `DataParallel` over the two host CPU devices:
    every training batch of 4 windows reaches JAX as 2 shards of 2, the variables live on
    both devices, and the result matches one-device training within float tolerance."""
    out = _run_jax(TINY, devices=2)
    assert out["devices"] == ["cpu:0", "cpu:1"]
    assert "batch_size must be a multiple of 2, got 3" in out["refusal"]
    parallel, single = out["runs"]["True"], out["runs"]["False"]
    assert len(parallel["steps"]) == 4  # 2 epochs of 8 utterances in batches of 4
    assert all(s == ["DataParallel", 2, 2] for s in parallel["steps"])
    assert all(s == ["NoneType", 1, 1] for s in single["steps"])
    # Every array JAX received was split in two equal shards: the training batches of 4
    # windows and their labels (Keras also distributes the first one once to build the
    # step), and each epoch's 5 validation windows padded to 6.
    shards = [tuple(map(tuple, s)) for s in out["shards"]]
    assert set(shards) == {
        ((2, 40, 16), (2, 40, 16)),
        ((2, 2), (2, 2)),
        ((3, 40, 16), (3, 40, 16)),
    }
    assert shards.count(((2, 40, 16), (2, 40, 16))) >= 4
    assert shards.count(((3, 40, 16), (3, 40, 16))) == 2
    for key in ("loss", "val_ua"):
        np.testing.assert_allclose(parallel["history"][key], single["history"][key], atol=1e-5)
    np.testing.assert_allclose(parallel["probs"], single["probs"], atol=1e-5)
