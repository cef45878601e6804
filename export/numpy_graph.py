"""Write the inference twin as a `.npz` graph for `edge_runtime.numpy_engine`.

The numpy export is the twin's layer chain (the same folded weights the TFLite and ONNX
exports get) written as arrays ``"<layer index>/<weight name>"`` plus a JSON description
under ``"graph"``; see `edge_runtime.numpy_engine` for the format and the supported layers.
"""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
import tf_keras

from edge_runtime.artifact import TensorSpec
from edge_runtime.numpy_engine import GRAPH_VERSION
from export.twin import TwinAttentionPooling, TwinDynamicConv2D, TwinError


def _activation(layer: Any) -> str:
    return tf_keras.activations.serialize(layer.activation)


def _lstm_spec(layer: tf_keras.layers.LSTM) -> dict[str, Any]:
    return {
        "type": "lstm",
        "name": layer.name,
        "units": layer.units,
        "activation": tf_keras.activations.serialize(layer.activation),
        "recurrent_activation": tf_keras.activations.serialize(layer.recurrent_activation),
        "return_sequences": layer.return_sequences,
        "go_backwards": layer.go_backwards,
    }


def _lstm_weights(layer: tf_keras.layers.LSTM) -> dict[str, np.ndarray]:
    names = ["kernel", "recurrent_kernel", "bias"][: len(layer.get_weights())]
    return dict(zip(names, layer.get_weights(), strict=True))


def _describe(layer: tf_keras.layers.Layer) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(JSON spec, named weights) of one twin layer."""
    name = layer.name
    if isinstance(layer, TwinDynamicConv2D):
        spec = {
            "type": "dynamic_conv2d", "num_kernels": layer.num_kernels,
            "strides": list(layer.strides), "padding": layer.padding.lower(),
            "dilation_rate": list(layer.dilation_rate), "activation": _activation(layer),
        }  # fmt: skip
        weights = {v.name.split("/")[-1].split(":")[0]: v.numpy() for v in layer.weights}
    elif isinstance(layer, TwinAttentionPooling):
        spec = {"type": "attention_pooling"}
        weights = {v.name.split("/")[-1].split(":")[0]: v.numpy() for v in layer.weights}
    elif isinstance(layer, tf_keras.layers.Reshape):
        spec, weights = {"type": "reshape", "target_shape": list(layer.target_shape)}, {}
    elif isinstance(layer, tf_keras.layers.Flatten):
        spec, weights = {"type": "flatten"}, {}
    elif isinstance(layer, tf_keras.layers.ReLU):
        spec = {
            "type": "relu",
            "max_value": None if layer.max_value is None else float(layer.max_value),
            "negative_slope": float(layer.negative_slope),
            "threshold": float(layer.threshold),
        }
        weights = {}
    elif isinstance(layer, tf_keras.layers.Activation):
        spec, weights = {"type": "activation", "activation": _activation(layer)}, {}
    elif isinstance(layer, tf_keras.layers.Dense):
        spec = {"type": "dense", "activation": _activation(layer)}
        weights = dict(zip(["kernel", "bias"], layer.get_weights(), strict=False))
    elif isinstance(layer, tf_keras.layers.BatchNormalization):
        spec = {"type": "batch_norm", "epsilon": float(layer.epsilon)}
        gamma, beta, mean, var = (layer.gamma, layer.beta, layer.moving_mean, layer.moving_variance)
        channels = mean.shape[-1]
        weights = {
            "gamma": gamma.numpy() if gamma is not None else np.ones(channels, np.float32),
            "beta": beta.numpy() if beta is not None else np.zeros(channels, np.float32),
            "moving_mean": mean.numpy(),
            "moving_variance": var.numpy(),
        }
    elif isinstance(layer, tf_keras.layers.MaxPooling2D | tf_keras.layers.AveragePooling2D):
        kind = "max_pool2d" if isinstance(layer, tf_keras.layers.MaxPooling2D) else "avg_pool2d"
        spec = {
            "type": kind,
            "pool_size": list(layer.pool_size),
            "strides": list(layer.strides),
            "padding": layer.padding,
        }
        weights = {}
    elif isinstance(layer, tf_keras.layers.LSTM):
        spec, weights = _lstm_spec(layer), _lstm_weights(layer)
    elif isinstance(layer, tf_keras.layers.Bidirectional):
        spec = {
            "type": "bidirectional",
            "merge_mode": layer.merge_mode,
            "forward": _lstm_spec(layer.forward_layer),
            "backward": _lstm_spec(layer.backward_layer),
        }
        weights = {f"forward/{k}": v for k, v in _lstm_weights(layer.forward_layer).items()}
        weights |= {f"backward/{k}": v for k, v in _lstm_weights(layer.backward_layer).items()}
    else:
        raise TwinError(f"layer {name!r} ({type(layer).__name__}) has no numpy-graph form")
    return {**spec, "name": name}, weights


def numpy_graph_bytes(twin: tf_keras.Model) -> bytes:
    """The `.npz` bytes of a twin model (float32 weights + JSON layer chain)."""
    layers, arrays = [], {}
    for layer in twin.layers:
        if isinstance(layer, tf_keras.layers.InputLayer):
            continue
        spec, weights = _describe(layer)
        index = len(layers)
        layers.append(spec)
        arrays |= {f"{index}/{k}": np.asarray(v, np.float32) for k, v in weights.items()}
    graph = json.dumps({"version": GRAPH_VERSION, "layers": layers}).encode()
    buffer = io.BytesIO()
    np.savez_compressed(buffer, graph=np.frombuffer(graph, dtype=np.uint8), **arrays)
    return buffer.getvalue()


def numpy_graph_io(twin: tf_keras.Model) -> tuple[TensorSpec, TensorSpec]:
    """Input and output tensor specs of the graph: float32, batch 1 (as the twin)."""
    return (
        TensorSpec("log_mel", tuple(twin.input_shape), "float32"),
        TensorSpec("probabilities", tuple(twin.output_shape), "float32"),
    )
