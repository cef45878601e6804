"""The tf_keras inference twin (export.twin) and the numpy graph match the Keras model, with
BatchNorm folded or not and on layer chains the factory never builds; the twin names the layer
it does not know and refuses a window the model cannot take."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from export_fixtures import bias_lstm_model
from tone_corpus import POLICY, RAW_CONFIG, tiny_model

from edge_runtime.numpy_engine import NumpyModel
from export.numpy_graph import numpy_graph_bytes
from export.twin import TwinError, build_twin
from keras_dyconv.layers import DynamicConv2D


def randomize_statistics(model: keras.Model, rng: np.random.Generator) -> None:
    """Non-trivial BatchNorm statistics and biases, so folding is really exercised."""
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.gamma.shape[0]
            layer.set_weights(
                [
                    rng.uniform(0.5, 2, n),
                    rng.normal(0, 0.3, n),
                    rng.normal(0, 0.3, n),
                    rng.uniform(0.2, 3, n),
                ]
            )
        if isinstance(layer, DynamicConv2D) and layer.use_bias:
            layer.bias.assign(rng.normal(0, 0.5, layer.bias.shape))


@pytest.mark.parametrize("fold", [True, False], ids=["folded-bn", "separate-bn"])
def test_twin_matches_keras_model(trained, fold):
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, (4, POLICY.frames, RAW_CONFIG.n_mels)).astype(np.float32)
    twin = build_twin(trained.model, POLICY.frames, fold_batchnorm=fold)
    got = np.concatenate([twin(w[None], training=False).numpy() for w in x])
    np.testing.assert_allclose(got, trained.model(x, training=False).numpy(), atol=1e-5)
    names = {layer.name for layer in twin.layers}
    assert "dyconv1" in names and ("bn1" in names) != fold


def test_twin_and_numpy_graph_match_biased_conv_static_conv_and_plain_lstm(tmp_path):
    keras.utils.set_random_seed(1)
    model = bias_lstm_model()
    randomize_statistics(model, np.random.default_rng(1))
    x = np.random.default_rng(2).normal(0, 1, (3, 20, 16)).astype(np.float32)
    expected = model(x, training=False).numpy()
    twin = build_twin(model, 20)
    got = np.concatenate([twin(w[None], training=False).numpy() for w in x])
    np.testing.assert_allclose(got, expected, atol=1e-5)
    path = tmp_path / "model.npz"
    path.write_bytes(numpy_graph_bytes(twin))
    np.testing.assert_allclose(NumpyModel(path)(x), expected, atol=1e-5)


def test_twin_names_the_layer_it_does_not_know():
    inputs = keras.Input((None, 16))
    x = keras.layers.LayerNormalization(name="my_layernorm")(inputs)
    x = keras.layers.LSTM(4)(x)
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(x))
    with pytest.raises(TwinError, match=r"'my_layernorm' \(LayerNormalization\)"):
        build_twin(model, 10)


def test_twin_refuses_a_window_the_model_cannot_take(trained):
    fixed = tiny_model(frames=32)
    with pytest.raises(TwinError, match="fixed input of 32 frames"):
        build_twin(fixed, 40)
