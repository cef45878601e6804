"""The tf_keras inference twin: the trained Keras 3 network rebuilt for the TFLite/ONNX converters.

Why a twin: Keras 3's LSTM converts to a TFLite WHILE loop (or Flex TensorList ops through
`model.export(format="litert")`), which full-int8 calibration cannot handle, and the
converters fail on a dynamic batch. The same network written in tf_keras (Keras 2, the
`tf_keras` package, importable next to Keras 3) with batch 1 and a fixed window converts to
builtin ops only, with each LSTM direction fused into one UNIDIRECTIONAL_SEQUENCE_LSTM.

The twin is an inference graph, not a training one:

* weights are copied one to one (Keras 3 and tf_keras share the LSTM, Bidirectional,
  BatchNormalization and Dense layouts); dropout-like layers are left out;
* each `DynamicConv2D` is written in the input-side-mix form: K copies of the input scaled
  by their attention weight, concatenated on channels, one convolution with the K kernels
  stacked on input channels (kh, kw, K*Cin, F), so the sum over k happens in the conv
  accumulator (one int8 requantisation instead of a MUL/ADD chain);
* a `BatchNormalization` right after a dynamic conv is folded into it: with
  s = gamma / sqrt(var + eps), kernel_k <- s * kernel_k and bias_k <- s * (bias_k - mean)
  + beta; because the attention weights sum to 1, a bias that is the same for all k is
  exact as a plain conv bias;
* the attention temperature is folded into the second attention matrix and bias;
* `AttentionPooling` is written for batch 1: frames become rows of 2-D matmuls.

`build_twin(model, frames)` raises `TwinError` naming the first layer it cannot rebuild.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import tensorflow as tf
import tf_keras

from keras_dyconv.layers import DynamicConv2D
from keras_dyconv.models import AttentionPooling

__all__ = ["TwinError", "build_twin", "supported_layers"]

#: Layers that are the identity at inference and are left out of the twin.
_INFERENCE_IDENTITY = (
    keras.layers.Identity,  # keras_dyconv.models.ModelInfo among them
    keras.layers.Dropout,
    keras.layers.SpatialDropout1D,
    keras.layers.SpatialDropout2D,
    keras.layers.GaussianNoise,
    keras.layers.GaussianDropout,
    keras.layers.AlphaDropout,
    keras.layers.ActivityRegularization,
)
_ACTIVATIONS = ("linear", "relu", "sigmoid", "tanh", "softmax", "elu", "gelu", "swish")


class TwinError(ValueError):
    """The Keras model holds something the inference twin cannot rebuild (names the layer)."""


class TwinDynamicConv2D(tf_keras.layers.Layer):
    """Inference form of `DynamicConv2D` (batch 1, channels_last) with BatchNorm folded in.

    Weights (set by `build_twin`): attention_kernel1 (Cin, H), attention_kernel2 (H, K) and
    attention_bias2 (K,) already divided by the temperature; kernel (kh, kw, K*Cin, F) with
    channel index k*Cin + c; bias (F,); bias_delta (K, F) only when the biases differ per k.
    With K=1 (a static convolution) there are no attention weights and no input scaling.
    """

    def __init__(
        self,
        num_kernels: int,
        attention_units: int,
        filters: int,
        kernel_size: tuple[int, int],
        strides: tuple[int, int],
        padding: str,
        dilation_rate: tuple[int, int],
        activation: str,
        mixed_bias: bool,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.num_kernels = num_kernels
        self.attention_units = attention_units
        self.filters = filters
        self.kernel_size = kernel_size
        self.strides = strides
        self.padding = padding.upper()
        self.dilation_rate = dilation_rate
        self.activation = tf_keras.activations.get(activation)
        self.mixed_bias = mixed_bias

    def build(self, input_shape: tf.TensorShape) -> None:
        cin, k = int(input_shape[-1]), self.num_kernels
        if k > 1:
            self.attention_kernel1 = self.add_weight(
                "attention_kernel1", (cin, self.attention_units)
            )
            self.attention_kernel2 = self.add_weight("attention_kernel2", (self.attention_units, k))
            self.attention_bias2 = self.add_weight("attention_bias2", (k,))
        self.kernel = self.add_weight("kernel", (*self.kernel_size, k * cin, self.filters))
        self.bias = self.add_weight("bias", (self.filters,))
        if self.mixed_bias:
            self.bias_delta = self.add_weight("bias_delta", (k, self.filters))

    def call(self, x: tf.Tensor) -> tf.Tensor:
        if self.num_kernels > 1:
            pooled = tf.reduce_mean(x, axis=[1, 2])
            hidden = tf.nn.relu(tf.matmul(pooled, self.attention_kernel1))
            pi = tf.nn.softmax(tf.matmul(hidden, self.attention_kernel2) + self.attention_bias2)
            # (1, 1) attention weights broadcast over (1, rows, cols, Cin): K MULs and a CONCAT.
            x = tf.concat([x * p for p in tf.split(pi, self.num_kernels, axis=-1)], axis=-1)
        y = tf.nn.conv2d(
            x,
            self.kernel,
            strides=(1, *self.strides, 1),
            padding=self.padding,
            dilations=(1, *self.dilation_rate, 1),
        )
        y = tf.nn.bias_add(y, self.bias)
        if self.mixed_bias:
            y = y + tf.reshape(tf.matmul(pi, self.bias_delta), (1, 1, 1, self.filters))
        return self.activation(y)


class TwinAttentionPooling(tf_keras.layers.Layer):
    """Inference form of `AttentionPooling` for batch 1: (1, T, F) -> (1, F) with 2-D matmuls."""

    def __init__(self, units: int, **kwargs: Any):
        super().__init__(**kwargs)
        self.units = units

    def build(self, input_shape: tf.TensorShape) -> None:
        features = int(input_shape[-1])
        self.score_kernel = self.add_weight("score_kernel", (features, self.units))
        self.score_bias = self.add_weight("score_bias", (self.units,))
        self.score_vector = self.add_weight("score_vector", (self.units, 1))

    def call(self, x: tf.Tensor) -> tf.Tensor:
        rows = tf.reshape(x, (-1, x.shape[-1]))  # (T, F)
        hidden = tf.tanh(tf.matmul(rows, self.score_kernel) + self.score_bias)
        weights = tf.nn.softmax(tf.reshape(tf.matmul(hidden, self.score_vector), (1, -1)))
        return tf.matmul(weights, rows)  # (1, T) @ (T, F)


# ----------------------------------------------------------------------------- conversion


def _activation_name(layer: keras.layers.Layer, activation: Any) -> str:
    name = keras.activations.serialize(activation) if activation is not None else "linear"
    if not isinstance(name, str) or name not in _ACTIVATIONS:
        raise TwinError(
            f"layer {layer.name!r} ({type(layer).__name__}): activation {name!r} is not one "
            f"the twin knows ({', '.join(_ACTIVATIONS)})"
        )
    return name


def _require(layer: keras.layers.Layer, condition: bool, problem: str) -> None:
    if not condition:
        raise TwinError(f"layer {layer.name!r} ({type(layer).__name__}): {problem}")


def _fold_batchnorm(
    kernel: np.ndarray, bias: np.ndarray, bn: keras.layers.BatchNormalization
) -> tuple[np.ndarray, np.ndarray]:
    """Fold inference BatchNorm into K kernels (K, ..., F) and biases (K, F), per channel."""
    _require(bn, bn.axis in (-1, 3, [-1], [3]), f"BatchNorm over axis {bn.axis} cannot fold")
    channels = kernel.shape[-1]
    gamma = bn.gamma.numpy() if bn.scale else np.ones(channels, np.float32)
    beta = bn.beta.numpy() if bn.center else np.zeros(channels, np.float32)
    mean, var = bn.moving_mean.numpy(), bn.moving_variance.numpy()
    scale = gamma / np.sqrt(var + bn.epsilon)
    return kernel * scale, (bias - mean) * scale + beta


def _dynamic_conv(
    layer: DynamicConv2D, bn: keras.layers.BatchNormalization | None
) -> tuple[tf_keras.layers.Layer, Callable[[tf_keras.layers.Layer], None]]:
    _require(layer, layer.data_format == "channels_last", "only channels_last is supported")
    k, cin, f = layer.num_kernels, layer.in_channels, layer.filters
    kernel = layer.kernel.numpy().astype(np.float64)  # (K, kh, kw, Cin, F)
    bias = layer.bias.numpy().astype(np.float64) if layer.use_bias else np.zeros((k, f))
    if bn is not None:
        kernel, bias = _fold_batchnorm(kernel, bias, bn)
    # (K, kh, kw, Cin, F) -> (kh, kw, K, Cin, F) -> (kh, kw, K*Cin, F): channel k*Cin + c.
    stacked = np.transpose(kernel, (1, 2, 0, 3, 4)).reshape(*layer.kernel_size, k * cin, f)
    delta = bias - bias[0]
    mixed_bias = bool(np.any(np.abs(delta) > 0))
    temperature = float(layer.temperature.numpy())
    twin = TwinDynamicConv2D(
        k,
        layer.attention_units,
        f,
        layer.kernel_size,
        layer.strides,
        layer.padding,
        layer.dilation_rate,
        _activation_name(layer, layer.activation),
        mixed_bias,
        name=layer.name,
    )

    def assign(t: TwinDynamicConv2D) -> None:
        if k > 1:
            t.attention_kernel1.assign(layer.attention_kernel1.numpy())
            t.attention_kernel2.assign(layer.attention_kernel2.numpy() / temperature)
            t.attention_bias2.assign(layer.attention_bias2.numpy() / temperature)
        t.kernel.assign(stacked.astype(np.float32))
        t.bias.assign(bias[0].astype(np.float32))
        if mixed_bias:
            t.bias_delta.assign(delta.astype(np.float32))

    return twin, assign


def _lstm(layer: keras.layers.LSTM) -> tf_keras.layers.LSTM:
    _require(layer, not layer.stateful, "stateful LSTMs are not supported")
    _require(layer, not layer.return_state, "return_state=True is not supported")
    return tf_keras.layers.LSTM(
        layer.units,
        activation=_activation_name(layer, layer.activation),
        recurrent_activation=_activation_name(layer, layer.recurrent_activation),
        use_bias=layer.use_bias,
        return_sequences=layer.return_sequences,
        go_backwards=layer.go_backwards,
        name=layer.name,
    )


def _bidirectional(layer: keras.layers.Bidirectional) -> tf_keras.layers.Bidirectional:
    for inner in (layer.forward_layer, layer.backward_layer):
        _require(
            layer,
            isinstance(inner, keras.layers.LSTM),
            f"wraps a {type(inner).__name__}; the twin converts Bidirectional(LSTM) only",
        )
    _require(layer, layer.merge_mode is not None, "merge_mode=None (two outputs) unsupported")
    return tf_keras.layers.Bidirectional(
        _lstm(layer.forward_layer),
        backward_layer=_lstm(layer.backward_layer),
        merge_mode=layer.merge_mode,
        name=layer.name,
    )


def _pooling(layer: keras.layers.Layer) -> tf_keras.layers.Layer:
    _require(layer, layer.data_format == "channels_last", "only channels_last is supported")
    is_max = isinstance(layer, keras.layers.MaxPooling2D)
    cls = tf_keras.layers.MaxPooling2D if is_max else tf_keras.layers.AveragePooling2D
    return cls(layer.pool_size, layer.strides, layer.padding, name=layer.name)


def _simple(layer: keras.layers.Layer) -> tf_keras.layers.Layer | None:
    """Twin of a layer without special handling (weights copied by get/set_weights)."""
    if isinstance(layer, keras.layers.Reshape):
        return tf_keras.layers.Reshape(layer.target_shape, name=layer.name)
    if isinstance(layer, keras.layers.ReLU):
        return tf_keras.layers.ReLU(
            layer.max_value, layer.negative_slope, layer.threshold, name=layer.name
        )
    if isinstance(layer, keras.layers.Activation):
        return tf_keras.layers.Activation(
            _activation_name(layer, layer.activation), name=layer.name
        )
    if isinstance(layer, keras.layers.Dense):
        return tf_keras.layers.Dense(
            layer.units,
            activation=_activation_name(layer, layer.activation),
            use_bias=layer.use_bias,
            name=layer.name,
        )
    if isinstance(layer, keras.layers.BatchNormalization):
        return tf_keras.layers.BatchNormalization(
            axis=layer.axis,
            epsilon=layer.epsilon,
            center=layer.center,
            scale=layer.scale,
            name=layer.name,
        )
    if isinstance(layer, keras.layers.Flatten):
        return tf_keras.layers.Flatten(name=layer.name)
    if isinstance(layer, keras.layers.MaxPooling2D | keras.layers.AveragePooling2D):
        return _pooling(layer)
    if isinstance(layer, keras.layers.Bidirectional):
        return _bidirectional(layer)
    if isinstance(layer, keras.layers.LSTM):
        return _lstm(layer)
    if isinstance(layer, AttentionPooling):
        return TwinAttentionPooling(layer.units, name=layer.name)
    return None


def supported_layers() -> list[str]:
    """Class names of the Keras 3 layers `build_twin` can rebuild."""
    names = [
        "InputLayer",
        "Reshape",
        "DynamicConv2D",
        "BatchNormalization",
        "ReLU",
        "Activation",
        "Dense",
        "Flatten",
        "MaxPooling2D",
        "AveragePooling2D",
        "LSTM",
        "Bidirectional(LSTM)",
        "AttentionPooling",
    ]
    return names + [cls.__name__ for cls in _INFERENCE_IDENTITY]


def _chain(model: keras.Model) -> list[keras.layers.Layer]:
    """The model's layers in order, checking that each one feeds only the next."""
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise TwinError(
            f"model {model.name!r} has {len(model.inputs)} inputs and {len(model.outputs)} "
            "outputs; the twin supports one of each"
        )
    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    previous = model.inputs[0]
    for layer in layers:
        inputs = layer.input if isinstance(layer.input, list | tuple) else [layer.input]
        if len(inputs) != 1 or inputs[0] is not previous:
            raise TwinError(
                f"layer {layer.name!r} ({type(layer).__name__}) does not take the previous "
                "layer's output as its only input; the twin supports chains of layers"
            )
        previous = layer.output
    if previous is not model.outputs[0]:
        raise TwinError(f"model {model.name!r}: the output is not the last layer's output")
    return layers


def build_twin(model: keras.Model, frames: int, fold_batchnorm: bool = True) -> tf_keras.Model:
    """The tf_keras inference twin of a Keras 3 chain model, for a (1, frames, features) input.

    Args:
        model: a trained Keras 3 model whose layers form a chain (like `build_dycnn_bilstm`).
        frames: the fixed window length of the twin's input, in feature frames.
        fold_batchnorm: fold a BatchNormalization that directly follows a DynamicConv2D into
            the conv (exact maths, better int8); False keeps it as a separate layer.

    Returns:
        An uncompiled tf_keras model, input (1, frames, n_features) float32, output
        (1, n_classes): the same function as `model` in inference mode (up to float
        rounding, about 1e-6).

    Raises:
        TwinError: naming the first layer that cannot be rebuilt, or a window length that
            does not fit the model's input.
    """
    in_shape = tuple(model.inputs[0].shape)
    if len(in_shape) != 3 or in_shape[2] is None:
        raise TwinError(
            f"model {model.name!r}: expected an input (batch, frames, features), got {in_shape}"
        )
    if in_shape[1] is not None and in_shape[1] != frames:
        raise TwinError(
            f"model {model.name!r} has a fixed input of {in_shape[1]} frames; cannot export a "
            f"{frames}-frame window"
        )
    if frames < 1:
        raise TwinError(f"window must be at least 1 frame, got {frames}")
    layers = _chain(model)
    x = inputs = tf_keras.Input(
        shape=(frames, in_shape[2]), batch_size=1, name=model.inputs[0].name
    )
    assignments: list[tuple[tf_keras.layers.Layer, Callable[[tf_keras.layers.Layer], None]]] = []
    skip_next = False
    for i, layer in enumerate(layers):
        if skip_next:
            skip_next = False
            continue
        if isinstance(layer, _INFERENCE_IDENTITY):
            continue
        if isinstance(layer, DynamicConv2D):
            following = layers[i + 1] if i + 1 < len(layers) else None
            linear = _activation_name(layer, layer.activation) == "linear"
            foldable = isinstance(following, keras.layers.BatchNormalization) and linear
            bn = following if foldable and fold_batchnorm else None
            twin, assign = _dynamic_conv(layer, bn)
            skip_next = bn is not None
        else:
            twin = _simple(layer)
            if twin is None:
                raise TwinError(
                    f"layer {layer.name!r} ({type(layer).__name__}) has no tf_keras twin; "
                    f"supported layers: {', '.join(supported_layers())}"
                )
            weights = layer.get_weights()

            def assign(t: tf_keras.layers.Layer, weights: list[np.ndarray] = weights) -> None:
                t.set_weights(weights)

        try:
            x = twin(x)
        except (ValueError, TypeError) as err:
            raise TwinError(
                f"layer {layer.name!r} ({type(layer).__name__}) cannot take a "
                f"{frames}-frame window: {err}"
            ) from None
        assignments.append((twin, assign))
    twin_model = tf_keras.Model(inputs, x, name=f"{model.name}_twin")
    for twin, assign in assignments:
        assign(twin)
    return twin_model
