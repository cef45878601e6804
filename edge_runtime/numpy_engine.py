"""A pure-numpy engine: runs an exported model's weights directly, no interpreter needed.

For boards with no LiteRT or onnxruntime wheel (32-bit Raspberry Pi OS, Pi Zero), the
exporter writes the inference graph as a `.npz` file (`dyser-export --format numpy`): the
same folded weights the TFLite/ONNX exports use (BatchNorm folded into the dynamic convs,
the attention temperature folded into the attention layer) plus a JSON description of the
layer chain under the key ``"graph"``. This module evaluates that chain in float32.

Supported layer types: reshape, flatten, dynamic_conv2d, batch_norm, relu, activation,
max_pool2d, avg_pool2d, dense, lstm, bidirectional (LSTM), attention_pooling.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

GRAPH_VERSION = 1


class GraphError(ValueError):
    """The `.npz` graph is malformed or uses a layer type this engine does not know."""


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (np.tanh(0.5 * x) + 1.0)  # overflow-free logistic


def _softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


ACTIVATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "linear": lambda x: x,
    "relu": lambda x: np.maximum(x, 0),
    "sigmoid": _sigmoid,
    "tanh": np.tanh,
    "softmax": _softmax,
    "elu": lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0))),
    "swish": lambda x: x * _sigmoid(x),
}


def _activation(name: str) -> Callable[[np.ndarray], np.ndarray]:
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise GraphError(f"activation {name!r} is not supported by the numpy engine") from None


def _same_padding(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """TensorFlow "SAME" padding (extra element after) of one axis."""
    effective = (kernel - 1) * dilation + 1
    out = -(-size // stride)
    total = max((out - 1) * stride + effective - size, 0)
    return total // 2, total - total // 2


def conv2d(
    x: np.ndarray,
    kernel: np.ndarray,
    strides: tuple[int, int],
    padding: str,
    dilation: tuple[int, int],
) -> np.ndarray:
    """2-D convolution (cross-correlation) by im2col + matmul.

    Args:
        x: input (batch, rows, cols, cin).
        kernel: (kh, kw, cin, filters), or per sample (batch, kh, kw, cin, filters).
        strides: stride per spatial axis.
        padding: "same" or "valid" (TensorFlow semantics).
        dilation: dilation rate per spatial axis.

    Returns:
        (batch, out_rows, out_cols, filters) float32.
    """
    kh, kw = kernel.shape[-4:-2]
    if padding == "same":
        pads = [
            _same_padding(x.shape[1 + i], k, strides[i], dilation[i])
            for i, k in enumerate((kh, kw))
        ]
        x = np.pad(x, [(0, 0), pads[0], pads[1], (0, 0)])
    eff_h, eff_w = (kh - 1) * dilation[0] + 1, (kw - 1) * dilation[1] + 1
    # (batch, out_rows', out_cols', cin, eff_h, eff_w) views, then dilation/stride subsampling.
    patches = np.lib.stride_tricks.sliding_window_view(x, (eff_h, eff_w), axis=(1, 2))
    patches = patches[:, :: strides[0], :: strides[1], :, :: dilation[0], :: dilation[1]]
    b, oh, ow = patches.shape[:3]
    # -> (batch, oh*ow, kh*kw*cin) in the kernel's (kh, kw, cin) order.
    cols = patches.transpose(0, 1, 2, 4, 5, 3).reshape(b, oh * ow, -1)
    if kernel.ndim == 4:
        y = cols @ kernel.reshape(-1, kernel.shape[-1])
    else:
        y = np.matmul(cols, kernel.reshape(b, -1, kernel.shape[-1]))
    return y.reshape(b, oh, ow, -1)


def _pool2d(x: np.ndarray, layer: dict, reduce: Callable) -> np.ndarray:
    (ph, pw), (sh, sw) = layer["pool_size"], layer["strides"]
    if layer["padding"] != "valid":
        raise GraphError(f"{layer['name']}: only 'valid' pooling is supported")
    if (ph, pw) == (sh, sw):  # the usual case: non-overlapping blocks, a reshape away
        b, h, w, c = x.shape
        oh, ow = h // ph, w // pw
        blocks = x[:, : oh * ph, : ow * pw].reshape(b, oh, ph, ow, pw, c)
        return reduce(blocks, axis=(2, 4))
    windows = np.lib.stride_tricks.sliding_window_view(x, (ph, pw), axis=(1, 2))
    return reduce(windows[:, ::sh, ::sw], axis=(-2, -1))


def _lstm(x: np.ndarray, specs: list[dict], weights: list[dict[str, np.ndarray]]) -> list:
    """Keras LSTMs (gates i, f, c, o) over the same (batch, time, features) input.

    Several LSTMs (the two directions of a Bidirectional) step together, stacked on a
    leading axis, so the Python loop over time runs once for all of them.
    """
    units = specs[0]["units"]
    if any(
        s["units"] != units or s["activation"] != "tanh" or s["recurrent_activation"] != "sigmoid"
        for s in specs
    ):
        raise GraphError("the numpy engine runs tanh/sigmoid LSTMs of equal width")
    inputs = np.stack([x[:, ::-1] if s.get("go_backwards") else x for s in specs])
    # Reorder gate columns (i, f, c, o) -> (i, f, o, c): one sigmoid and one tanh per step.
    order = np.r_[0 : 2 * units, 3 * units : 4 * units, 2 * units : 3 * units]
    kernel = np.stack([w["kernel"][:, order] for w in weights])
    recurrent = np.stack([w["recurrent_kernel"][:, order] for w in weights])
    bias = np.stack(
        [w["bias"][order] if "bias" in w else np.zeros(4 * units, np.float32) for w in weights]
    )
    projected = inputs @ kernel[:, None] + bias[:, None, None, :]  # (L, batch, time, 4u)
    h = np.zeros((len(specs), x.shape[0], units), np.float32)
    c = np.zeros_like(h)
    steps = []
    for t in range(x.shape[1]):
        z = projected[:, :, t] + h @ recurrent
        gates = _sigmoid(z[..., : 3 * units])
        c = gates[..., units : 2 * units] * c + gates[..., :units] * np.tanh(z[..., 3 * units :])
        h = gates[..., 2 * units :] * np.tanh(c)
        steps.append(h)
    return [
        np.stack([step[i] for step in steps], axis=1) if spec["return_sequences"] else h[i]
        for i, spec in enumerate(specs)
    ]


class NumpyModel:
    """The layer chain of a `.npz` graph, evaluated with numpy (float32).

    Args:
        path: the `.npz` file written by the exporter.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {key: data[key] for key in data.files}
        except (OSError, ValueError) as err:
            raise GraphError(f"{path}: not a readable .npz model ({err})") from None
        if "graph" not in arrays:
            raise GraphError(f"{path}: no 'graph' entry (not a dyser numpy export)")
        try:
            graph = json.loads(arrays.pop("graph").tobytes().decode())
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise GraphError(f"{path}: the graph description is not JSON ({err})") from None
        if graph.get("version") != GRAPH_VERSION:
            raise GraphError(f"{path}: graph version {graph.get('version')!r} is not supported")
        self.layers: list[dict[str, Any]] = graph["layers"]
        self.weights: list[dict[str, np.ndarray]] = []
        for index, layer in enumerate(self.layers):
            prefix = f"{index}/"
            self.weights.append(
                {
                    k[len(prefix) :]: v.astype(np.float32)
                    for k, v in arrays.items()
                    if k.startswith(prefix)
                }
            )
            if layer["type"] not in self._OPS:
                raise GraphError(
                    f"{path}: layer {layer.get('name')!r} has unknown type {layer['type']!r}"
                )

    def ops(self) -> list[str]:
        """The layer types of the graph, in order."""
        return [layer["type"] for layer in self.layers]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Run the chain on a batch (batch, frames, features) float32 -> (batch, classes)."""
        x = np.asarray(x, dtype=np.float32)
        for layer, w in zip(self.layers, self.weights, strict=True):
            x = self._OPS[layer["type"]](self, x, layer, w)
        return x

    # ------------------------------------------------------------------ layers
    def _reshape(self, x, layer, w):
        return x.reshape(x.shape[0], *layer["target_shape"])

    def _flatten(self, x, layer, w):
        return x.reshape(x.shape[0], -1)

    def _dynamic_conv2d(self, x, layer, w):
        k = layer["num_kernels"]
        if k == 1:  # a static convolution: no attention weights
            pi = np.ones((x.shape[0], 1), x.dtype)
        else:
            pooled = x.mean(axis=(1, 2))
            hidden = np.maximum(pooled @ w["attention_kernel1"], 0)
            pi = _softmax(hidden @ w["attention_kernel2"] + w["attention_bias2"])  # (B, K)
        kh, kw, kcin, f = w["kernel"].shape
        stacked = w["kernel"].reshape(kh, kw, k, kcin // k, f)
        # The exported kernel stacks the K kernels on input channels (input-side mix); in
        # numpy mixing the kernels per sample first is K times cheaper and exactly equal.
        mixed = np.einsum("bk,hwkcf->bhwcf", pi, stacked)
        y = conv2d(
            x, mixed, tuple(layer["strides"]), layer["padding"], tuple(layer["dilation_rate"])
        )
        y = y + w["bias"]
        if "bias_delta" in w:
            y = y + (pi @ w["bias_delta"])[:, None, None, :]
        return _activation(layer["activation"])(y)

    def _batch_norm(self, x, layer, w):
        scale = w["gamma"] / np.sqrt(w["moving_variance"] + layer["epsilon"])
        return (x - w["moving_mean"]) * scale + w["beta"]

    def _relu(self, x, layer, w):
        y = np.where(x >= layer["threshold"], x, layer["negative_slope"] * (x - layer["threshold"]))
        return y if layer["max_value"] is None else np.minimum(y, layer["max_value"])

    def _activation_layer(self, x, layer, w):
        return _activation(layer["activation"])(x)

    def _max_pool2d(self, x, layer, w):
        return _pool2d(x, layer, np.max)

    def _avg_pool2d(self, x, layer, w):
        return _pool2d(x, layer, np.mean)

    def _dense(self, x, layer, w):
        y = x @ w["kernel"] + (w["bias"] if "bias" in w else 0.0)
        return _activation(layer["activation"])(y)

    def _lstm_layer(self, x, layer, w):
        return _lstm(x, [layer], [w])[0]

    def _bidirectional(self, x, layer, w):
        split = [
            {k.split("/", 1)[1]: v for k, v in w.items() if k.startswith(f"{side}/")}
            for side in ("forward", "backward")
        ]
        forward, backward = _lstm(x, [layer["forward"], layer["backward"]], split)
        if layer["backward"]["return_sequences"]:
            backward = backward[:, ::-1]  # back to forward time order, as Keras does
        merge = layer["merge_mode"]
        if merge == "concat":
            return np.concatenate([forward, backward], axis=-1)
        if merge == "sum":
            return forward + backward
        if merge == "mul":
            return forward * backward
        if merge == "ave":
            return (forward + backward) / 2
        raise GraphError(f"{layer['name']}: merge_mode {merge!r} is not supported")

    def _attention_pooling(self, x, layer, w):
        hidden = np.tanh(x @ w["score_kernel"] + w["score_bias"])
        weights = _softmax(hidden @ w["score_vector"], axis=1)  # (B, T, 1)
        return (weights * x).sum(axis=1)

    _OPS: ClassVar[dict[str, Callable]] = {
        "reshape": _reshape,
        "flatten": _flatten,
        "dynamic_conv2d": _dynamic_conv2d,
        "batch_norm": _batch_norm,
        "relu": _relu,
        "activation": _activation_layer,
        "max_pool2d": _max_pool2d,
        "avg_pool2d": _avg_pool2d,
        "dense": _dense,
        "lstm": _lstm_layer,
        "bidirectional": _bidirectional,
        "attention_pooling": _attention_pooling,
    }
