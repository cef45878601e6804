"""DynamicConv1D/2D, TemperatureAnnealing and the DyCNN-BiLSTM factory, on every backend.

tests/run.sh runs this module once per KERAS_BACKEND (tensorflow, jax, torch).
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import warnings
from pathlib import Path

import keras
import numpy as np
import pytest
from keras import ops

from edge_runtime.config import FrontendConfig
from edge_runtime.metadata import ModelMetadata
from keras_dyconv import (
    DynamicConv,
    DynamicConv1D,
    DynamicConv2D,
    TemperatureAnnealing,
    build_dycnn_bilstm,
    model_cost,
)
from keras_dyconv.callbacks import annealed_temperature, dynamic_conv_layers
from keras_dyconv.losses import MaskedCrossEntropy, masked_accuracy
from keras_dyconv.modelio import save_model
from keras_dyconv.models import time_reduction

pytestmark = pytest.mark.backends

MODES = ("aggregate", "branches")


def to_np(x) -> np.ndarray:
    return np.asarray(ops.convert_to_numpy(x), dtype=np.float64)


def rng_array(shape, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


# --------------------------------------------------------------------------- numpy reference
def ref_attention(layer, x_last: np.ndarray) -> np.ndarray:
    pooled = x_last.mean(axis=tuple(range(1, x_last.ndim - 1)))
    hidden = np.maximum(pooled @ to_np(layer.attention_kernel1), 0.0)
    logits = hidden @ to_np(layer.attention_kernel2) + to_np(layer.attention_bias2)
    logits = logits / float(to_np(layer.temperature))
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def ref_dynamic_conv(layer, x: np.ndarray) -> np.ndarray:
    """Eq. (1) computed literally: per-sample mixed kernel, direct convolution with loops."""
    x = np.asarray(x, np.float64)
    channels_first = layer.data_format == "channels_first"
    if channels_first:
        x = np.moveaxis(x, 1, -1)
    rank = layer.rank
    pi = ref_attention(layer, x)
    kernel = to_np(layer.kernel)  # (K, *ks, Cin, F)
    mixed = np.tensordot(pi, kernel, axes=1)  # (B, *ks, Cin, F)
    ks, st, dl = layer.kernel_size, layer.strides, layer.dilation_rate
    pads = []
    for n, k, s, d in zip(x.shape[1:-1], ks, st, dl, strict=True):
        eff = (k - 1) * d + 1
        if layer.padding == "valid":
            pads.append((0, 0))
        elif layer.padding == "causal":
            pads.append((eff - 1, 0))
        else:
            out = -(-n // s)
            total = max((out - 1) * s + eff - n, 0)
            pads.append((total // 2, total - total // 2))
    xp = np.pad(x, [(0, 0), *pads, (0, 0)])
    out_shape = [(xp.shape[1 + i] - (ks[i] - 1) * dl[i] - 1) // st[i] + 1 for i in range(rank)]
    y = np.zeros((x.shape[0], *out_shape, layer.filters))
    for pos in itertools.product(*(range(n) for n in out_shape)):
        for offs in itertools.product(*(range(k) for k in ks)):
            idx = tuple(p * s + o * d for p, s, o, d in zip(pos, st, offs, dl, strict=True))
            patch = xp[(slice(None), *idx)]  # (B, Cin)
            y[(slice(None), *pos)] += np.einsum("bc,bcf->bf", patch, mixed[(slice(None), *offs)])
    if layer.use_bias:
        y += (pi @ to_np(layer.bias)).reshape((x.shape[0],) + (1,) * rank + (layer.filters,))
    if channels_first:
        y = np.moveaxis(y, -1, 1)
    return y


CASES_2D = [
    dict(filters=5, kernel_size=3, padding="same"),
    dict(filters=4, kernel_size=(3, 2), padding="valid", strides=(2, 1)),
    dict(filters=3, kernel_size=3, padding="same", dilation_rate=2, use_bias=False),
    dict(filters=4, kernel_size=3, padding="same", strides=2, num_kernels=2),
    dict(filters=3, kernel_size=2, padding="valid", data_format="channels_first"),
]
CASES_1D = [
    dict(filters=4, kernel_size=3, padding="same"),
    dict(filters=4, kernel_size=3, padding="causal", dilation_rate=2),
    dict(filters=2, kernel_size=5, padding="valid", strides=3),
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", range(len(CASES_2D)))
@pytest.mark.parametrize("batch", [1, 3])
def test_conv2d_matches_numpy_reference(case, mode, batch):
    kwargs = CASES_2D[case]
    layer = DynamicConv2D(temperature=1.7, bias_initializer="random_normal", **kwargs)
    shape = (batch, 3, 9, 7) if kwargs.get("data_format") == "channels_first" else (batch, 9, 7, 3)
    x = rng_array(shape, seed=case)
    y = to_np(layer(x, mode=mode))
    expected = ref_dynamic_conv(layer, x)
    assert y.shape == expected.shape == layer.compute_output_shape(shape)
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", range(len(CASES_1D)))
def test_conv1d_matches_numpy_reference(case, mode):
    layer = DynamicConv1D(temperature=0.8, bias_initializer="random_normal", **CASES_1D[case])
    x = rng_array((2, 17, 3), seed=10 + case)
    y = to_np(layer(x, mode=mode))
    expected = ref_dynamic_conv(layer, x)
    assert y.shape == expected.shape == layer.compute_output_shape(x.shape)
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4)


def test_paths_agree_and_auto_is_one_of_them():
    layer = DynamicConv2D(6, 3, padding="same", num_kernels=4, activation="relu")
    x = rng_array((4, 12, 10, 5))
    a, b, auto = (to_np(layer(x, mode=m)) for m in ("aggregate", "branches", "auto"))
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(auto, a, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mode", MODES)
def test_single_kernel_equals_conv2d(mode):
    layer = DynamicConv2D(6, 3, padding="same", num_kernels=1, mode=mode)
    conv = keras.layers.Conv2D(6, 3, padding="same")
    x = rng_array((3, 10, 8, 4))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "softmax over an axis of size 1" warning
        layer(x), conv(x)
    # A static convolution: the kernel and bias only, no attention branch.
    assert [w.name for w in layer.trainable_weights] == ["kernel", "bias"]
    conv.set_weights([to_np(layer.kernel)[0], to_np(layer.bias)[0] + 0.5])
    layer.bias.assign(ops.convert_to_tensor(to_np(layer.bias) + 0.5, "float32"))
    np.testing.assert_allclose(to_np(layer(x)), to_np(conv(x)), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mode", MODES)
def test_single_kernel_equals_conv1d(mode):
    layer = DynamicConv1D(5, 3, padding="causal", dilation_rate=2, num_kernels=1, mode=mode)
    conv = keras.layers.Conv1D(5, 3, padding="causal", dilation_rate=2)
    x = rng_array((2, 16, 3))
    layer(x), conv(x)
    conv.set_weights([to_np(layer.kernel)[0], to_np(layer.bias)[0]])
    np.testing.assert_allclose(to_np(layer(x)), to_np(conv(x)), rtol=1e-5, atol=1e-5)


def test_attention_sums_to_one_and_depends_on_input():
    strong = keras.initializers.RandomNormal(stddev=1.0, seed=4)
    layer = DynamicConv2D(4, 3, num_kernels=5, attention_initializer=strong)
    x = np.concatenate([rng_array((1, 8, 8, 3), 1), 3.0 * rng_array((1, 8, 8, 3), 2) + 1.0])
    layer(x)
    pi = to_np(layer.attention(x))
    assert pi.shape == (2, 5)
    np.testing.assert_allclose(pi.sum(axis=1), 1.0, atol=1e-6)
    assert np.all(pi > 0)
    assert np.abs(pi[0] - pi[1]).max() > 1e-3
    np.testing.assert_allclose(pi, ref_attention(layer, x), atol=1e-6)


def test_temperature_flattens_attention():
    strong = keras.initializers.RandomNormal(stddev=1.0, seed=5)
    layer = DynamicConv2D(4, 3, num_kernels=4, attention_initializer=strong)
    x = 5.0 * rng_array((2, 8, 8, 3)) + np.array([2.0, -1.0, 0.5], "float32")
    layer(x)
    sharp = to_np(layer.attention(x))
    layer.temperature.assign(1000.0)
    flat = to_np(layer.attention(x))
    assert np.abs(flat - 0.25).max() < 0.01 < np.abs(sharp - 0.25).max()


@pytest.mark.parametrize("initializer", ["glorot_uniform", keras.initializers.HeNormal(7)])
def test_kernels_are_initialised_independently(initializer):
    keras.utils.set_random_seed(0)
    layer = DynamicConv2D(4, 3, num_kernels=4, kernel_initializer=initializer)
    layer.build((None, 8, 8, 16))
    kernel = to_np(layer.kernel)
    assert all(np.abs(kernel[i] - kernel[j]).max() > 0.1 for i, j in [(0, 1), (1, 2), (2, 3)])
    # Each kernel keeps its initializer's variance (fans of one kernel, not K kernels).
    expected = 2 / (9 * 16) if initializer != "glorot_uniform" else 2 / (9 * 16 + 9 * 4)
    np.testing.assert_allclose(kernel.std(), np.sqrt(expected), rtol=0.15)


def test_sgd_step_updates_every_kernel_and_the_attention():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((10, 8, 3))
    conv = DynamicConv2D(4, 3, padding="same", num_kernels=3, temperature=1.0)
    x = keras.layers.GlobalAveragePooling2D()(conv(inputs))
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(x))
    model.compile(keras.optimizers.SGD(0.5), "sparse_categorical_crossentropy")
    before = {v.path: to_np(v) for v in conv.weights}
    # Per-sample channel offsets: the attention's pooled input must differ between samples.
    offsets = np.random.default_rng(2).uniform(-2, 2, size=(16, 1, 1, 3))
    data = (rng_array((16, 10, 8, 3)) + offsets).astype("float32")
    model.train_on_batch(data, np.arange(16) % 2)
    after = {v.path: to_np(v) for v in conv.weights}
    delta = {path: np.abs(after[path] - before[path]) for path in before}
    kernel_path = conv.kernel.path
    for k in range(3):
        assert delta[kernel_path][k].max() > 1e-6, f"kernel {k} got no gradient"
    for name in ("attention_kernel1", "attention_kernel2", "attention_bias2", "bias"):
        assert delta[getattr(conv, name).path].max() > 1e-7, f"{name} got no gradient"
    assert delta[conv.temperature.path].max() == 0  # non-trainable


def test_fitting_reduces_loss():
    keras.utils.set_random_seed(1)
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, size=64)
    x = rng.normal(size=(64, 12, 6, 1)).astype("float32")
    x[y == 1, ::2] += 1.5  # class 1 has a striped time pattern
    model = keras.Sequential(
        [
            keras.Input((12, 6, 1)),
            DynamicConv2D(8, 3, padding="same", activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(2, activation="softmax"),
        ]
    )
    model.compile(keras.optimizers.Adam(0.02), "sparse_categorical_crossentropy")
    history = model.fit(x, y, epochs=15, batch_size=16, verbose=0).history["loss"]
    assert history[-1] < 0.6 * history[0]


def test_temperature_annealing_schedule_reaches_train_step():
    assert [annealed_temperature(e, 30, 1, 10) for e in (0, 5, 10, 20)] == [30, 15.5, 1, 1]

    def attention_update(start: float) -> float:
        keras.utils.set_random_seed(3)
        inputs = keras.Input((6, 6, 2))
        strong = keras.initializers.RandomNormal(stddev=1.0, seed=6)
        conv = DynamicConv2D(3, 3, attention_initializer=strong, name="dy")
        h = keras.layers.GlobalAveragePooling2D()(conv(inputs))
        model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(h))
        model.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
        before = to_np(conv.attention_kernel2)
        annealing = TemperatureAnnealing(start=start, end=start, epochs=1)
        offsets = np.random.default_rng(3).uniform(-2, 2, size=(32, 1, 1, 2))
        data = (rng_array((32, 6, 6, 2)) + offsets).astype("float32")
        model.fit(data, np.arange(32) % 2, epochs=2, verbose=0, callbacks=[annealing])
        assert annealing.history == [start, start]
        assert float(to_np(conv.temperature)) == pytest.approx(start)
        return float(np.abs(to_np(conv.attention_kernel2) - before).max())

    # dpi/dlogits scales with 1/T: a huge temperature set by the callback must starve the
    # attention of gradient *inside the compiled train step* (JAX keeps state outside).
    assert attention_update(1e5) < 1e-3 * attention_update(1.0)


def test_annealing_finds_nested_layers():
    inner = keras.Sequential([keras.Input((8, 8, 1)), DynamicConv2D(2, 3, name="a")])
    outer = keras.Sequential([inner, DynamicConv2D(2, 3, name="b")])
    assert [layer.name for layer in dynamic_conv_layers(outer)] == ["a", "b"]


def test_save_and_load_round_trip(tmp_path):
    model = build_dycnn_bilstm(num_classes=4, n_mels=16, conv_filters=(4, 8), lstm_units=8)
    model.get_layer("dyconv1").temperature.assign(3.5)
    x = rng_array((2, 40, 16))
    expected = to_np(model(x, training=False))
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_array_equal(to_np(loaded(x, training=False)), expected)
    assert float(to_np(loaded.get_layer("dyconv1").temperature)) == 3.5
    assert loaded.get_layer("dyconv1").get_config() == model.get_layer("dyconv1").get_config()


#: Run in a fresh interpreter: the documented loader alone restores a compiled model.
FRESH_LOAD = """
import sys
import numpy as np
from keras import ops
from keras_dyconv.modelio import load_model

model, metadata = load_model(sys.argv[1], compile=True)
assert type(model.loss).__name__ == "MaskedCrossEntropy", model.loss
assert model.loss.label_smoothing == 0.1
assert metadata.labels == ("a", "b", "c", "d"), metadata.labels
x = np.load(sys.argv[2])
got = np.asarray(ops.convert_to_numpy(model(x, training=False)))
np.testing.assert_allclose(got, np.load(sys.argv[3]), atol=1e-6)
y = np.concatenate([np.eye(4)[[0, 1]], np.ones((2, 4))], -1)
print("trained", sorted(model.fit(x, y, epochs=1, verbose=0).history))
"""


def test_a_fresh_interpreter_loads_a_compiled_model_through_modelio(tmp_path):
    """`keras_dyconv.modelio.load_model` is the documented loader: in a fresh interpreter it
    restores a model compiled with our loss and metric (registered only by importing
    `keras_dyconv.losses`), and the restored model trains."""
    model = build_dycnn_bilstm(num_classes=4, n_mels=16, conv_filters=(4, 8), lstm_units=8)
    accuracy = keras.metrics.MeanMetricWrapper(masked_accuracy, name="categorical_accuracy")
    model.compile(optimizer="adam", loss=MaskedCrossEntropy(0.1), metrics=[accuracy])
    x = rng_array((2, 40, 16))
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "expected.npy", to_np(model(x, training=False)))
    metadata = ModelMetadata(labels=("a", "b", "c", "d"), frontend=FrontendConfig(n_mels=16))
    path = save_model(model, tmp_path / "model.keras", metadata)
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root), "TF_CPP_MIN_LOG_LEVEL": "3"}
    args = [path, tmp_path / "x.npy", tmp_path / "expected.npy"]
    run = subprocess.run(
        [sys.executable, "-c", FRESH_LOAD, *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "categorical_accuracy" in run.stdout


def test_config_round_trip():
    layer = DynamicConv2D(
        7,
        (3, 5),
        strides=(1, 2),
        padding="same",
        activation="relu",
        num_kernels=3,
        reduction=2,
        temperature=30.0,
        mode="branches",
        kernel_regularizer=keras.regularizers.L2(1e-4),
        kernel_constraint=keras.constraints.MaxNorm(3.0),
    )
    clone = DynamicConv2D.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    assert DynamicConv is DynamicConv2D


def test_functional_sequential_and_subclassed_models_with_variable_time():
    class Subclassed(keras.Model):
        def __init__(self):
            super().__init__()
            self.conv = DynamicConv2D(4, 3, padding="same")
            self.pool = keras.layers.GlobalAveragePooling2D()

        def call(self, x):
            return self.pool(self.conv(x))

    inputs = keras.Input((None, 8, 1))
    functional = keras.Model(inputs, DynamicConv2D(4, 3, padding="same", strides=2)(inputs))
    assert functional.output_shape == (None, None, 4, 4)
    sequential = keras.Sequential([keras.Input((None, 8, 1)), DynamicConv2D(4, 3)])
    assert sequential.output_shape == (None, None, 6, 4)
    subclassed = Subclassed()
    for frames in (9, 23):
        x = rng_array((2, frames, 8, 1))
        assert tuple(functional.predict(x, verbose=0).shape) == (2, -(-frames // 2), 4, 4)
        assert tuple(sequential.predict(x, verbose=0).shape) == (2, frames - 2, 6, 4)
        assert tuple(subclassed(x).shape) == (2, 4)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision(policy):
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        layer = DynamicConv2D(4, 3, padding="same")
        x = rng_array((2, 8, 8, 3))
        y = layer(x, mode="branches")
        assert keras.backend.standardize_dtype(y.dtype) == policy.split("_")[1]
        assert keras.backend.standardize_dtype(layer.kernel.dtype) == "float32"
        reference = ref_dynamic_conv(layer, x)
        np.testing.assert_allclose(to_np(y), reference, rtol=0.05, atol=0.05)
        np.testing.assert_allclose(to_np(layer(x, mode="aggregate")), reference, atol=0.05)
    finally:
        keras.config.set_dtype_policy(previous)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(filters=0, kernel_size=3), "filters"),
        (dict(filters=2, kernel_size=3, padding="causal"), "padding"),
        (dict(filters=2, kernel_size=(3, 3, 3)), "kernel_size"),
        (dict(filters=2, kernel_size=3, mode="fast"), "mode"),
        (dict(filters=2, kernel_size=3, temperature=0), "temperature"),
        (dict(filters=2, kernel_size=3, strides=2, dilation_rate=2), "dilation_rate"),
    ],
)
def test_bad_arguments_name_the_problem(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DynamicConv2D(**kwargs)


def test_dycnn_bilstm_factory_shapes_and_cost():
    model = build_dycnn_bilstm()
    assert model.input_shape == (None, None, 64)
    assert model.output_shape == (None, 7)
    cost = model_cost(model)
    assert 300_000 < cost["parameters"] < 500_000
    assert cost["macs_per_second"] > 1e6
    probs = to_np(model(rng_array((2, 150, 64)), training=False))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    small = build_dycnn_bilstm(
        num_classes=3, n_mels=32, frames=100, conv_filters=(8,), attention_pooling=False
    )
    assert small.input_shape == (None, 100, 32) and small.output_shape == (None, 3)
    with pytest.raises(ValueError, match="n_mels"):
        build_dycnn_bilstm(n_mels=8, conv_filters=(4, 4, 4, 4))
    # The default pools time 4x in the last block (16x in all); one (2, 2) pair for every
    # block pools 8x: the same parameters, twice the Bi-LSTM steps (and twice its cost).
    assert to_np(model.get_layer("pool3")(rng_array((1, 75, 16, 64)))).shape == (1, 18, 8, 64)
    fine = build_dycnn_bilstm(pool_size=(2, 2))
    assert fine.count_params() == model.count_params()
    assert to_np(fine.get_layer("pool3")(rng_array((1, 75, 16, 64)))).shape == (1, 37, 8, 64)
    explicit = build_dycnn_bilstm(pool_size=[[2, 2], [2, 2], [4, 2]])  # as read from JSON
    assert model_cost(explicit) == cost
    assert model.get_layer("frames_to_sequence").output.shape[1] is None
    extra = model_cost(fine)["macs_per_second"] - cost["macs_per_second"]
    extra_steps = 100 / 8 - 100 / 16  # per second of audio
    lstm_and_attention = 2 * 4 * 64 * (8 * 64 + 64) + 128 * (64 + 1)
    assert extra == pytest.approx(extra_steps * lstm_and_attention)
    assert time_reduction(model) == 16 and time_reduction(fine) == 8
    with pytest.raises(ValueError, match="frames=12 is shorter than the blocks' time pooling"):
        build_dycnn_bilstm(frames=12)
    deeper = build_dycnn_bilstm(conv_filters=(8, 8, 8, 8))  # the last block pools time 4x
    assert [layer.pool_size for layer in deeper.layers if layer.name.startswith("pool")] == [
        (2, 2),
        (2, 2),
        (2, 2),
        (4, 2),
    ]
    with pytest.raises(ValueError, match="one per block"):
        build_dycnn_bilstm(pool_size=[(2, 2), (2, 2)])
