"""ONNX export of the inference twin (tf2onnx), checked by `onnx.checker`, quantized by onnxruntime.

Modes, as `--quantize` names them for `--format onnx`:

* "none": float32 graph from `tf2onnx.convert.from_keras(twin)` (opset 17); the Bi-LSTM is
  one bidirectional ONNX `LSTM` node.
* "float16": weights stored as float16 (half the file), each followed by a `Cast` to
  float32, so compute stays float32: the ONNX counterpart of TFLite's float16 mode, built
  with onnx's own helpers (onnxconverter-common is not a dependency). onnxruntime folds the
  casts when it loads the model, so speed equals float32; the gain is size only.
* "dynamic": `onnxruntime.quantization.quantize_dynamic` on MatMul and LSTM only, per-channel
  int8 weights, activations quantized on the fly. Convolutions stay float: ConvInteger is
  slow on CPU (about 4x slower than float in the prototype).
* "int8": static QDQ quantization (`quantize_static`, QuantFormat.QDQ) of the convolutions,
  per-channel signed int8 weights and signed int8 activations calibrated with a
  CalibrationDataReader over the representative windows, then the LSTM's weights to int8
  (`quantize_dynamic`: onnxruntime has no static int8 LSTM). The small ops around them
  (attention branches, softmaxes, attention pooling, the classifier: under 1% of the
  multiply-adds) stay float: measured on EmoDB, quantizing them too cost 2 points of top-1
  agreement with the Keras model and saved no time. The input and output tensors stay
  float32 (the Q/DQ nodes are inside the graph).
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import onnx
import tensorflow as tf
import tf_keras
from onnx import TensorProto, helper, numpy_helper

from edge_runtime.artifact import TensorSpec
from export.tflite import ConversionError, explain_failure

__all__ = ["OPSET", "convert_onnx", "onnx_io", "onnx_ops", "quantize_onnx", "weights_to_float16"]

OPSET = 17
#: Initializers smaller than this stay float32 in "float16" mode (shapes, scalars, biases).
_FP16_MIN_ELEMENTS = 64


def convert_onnx(twin: tf_keras.Model, opset: int = OPSET) -> onnx.ModelProto:
    """Float32 ONNX model of a tf_keras twin, validated by `onnx.checker.check_model`.

    Raises:
        ConversionError: tf2onnx or the checker failed (naming the layer when cited).
    """
    import tf2onnx

    (inp,) = twin.inputs
    spec = (tf.TensorSpec(inp.shape, tf.float32, name=inp.name.split(":")[0]),)
    try:
        model, _ = tf2onnx.convert.from_keras(twin, input_signature=spec, opset=opset)
        onnx.checker.check_model(model, full_check=True)
    except Exception as err:  # tf2onnx and the checker raise many exception types
        raise explain_failure(
            err, [layer.name for layer in twin.layers], "ONNX conversion"
        ) from None
    return model


def onnx_ops(model: onnx.ModelProto | str | os.PathLike) -> list[str]:
    """Op types of an ONNX model's main graph, in graph order."""
    if not isinstance(model, onnx.ModelProto):
        model = onnx.load(os.fspath(model))
    return [node.op_type for node in model.graph.node]


def onnx_io(model: onnx.ModelProto) -> tuple[TensorSpec, TensorSpec]:
    """The (input, output) tensor specs of a one-input, one-output float ONNX model."""
    graph = model.graph
    inits = {init.name for init in graph.initializer}
    inputs = [i for i in graph.input if i.name not in inits]
    if len(inputs) != 1 or len(graph.output) != 1:
        raise ConversionError(
            f"expected one input and one output, got {len(inputs)} and {len(graph.output)}"
        )
    specs = []
    for value in (inputs[0], graph.output[0]):
        tensor = value.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim]
        if None in dims or tensor.elem_type != TensorProto.FLOAT:
            raise ConversionError(
                f"tensor {value.name!r}: expected a static float32 shape, got {dims} "
                f"of type {TensorProto.DataType.Name(tensor.elem_type)}"
            )
        specs.append(TensorSpec(name=value.name, shape=tuple(dims), dtype="float32"))
    return specs[0], specs[1]


def weights_to_float16(model: onnx.ModelProto) -> onnx.ModelProto:
    """Store the large float32 initializers as float16, each restored by a Cast to float32."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    casts, kept = [], []
    for init in graph.initializer:
        if init.data_type != TensorProto.FLOAT or np.prod(init.dims) < _FP16_MIN_ELEMENTS:
            kept.append(init)
            continue
        half = numpy_helper.from_array(
            numpy_helper.to_array(init).astype(np.float16), f"{init.name}__fp16"
        )
        kept.append(half)
        casts.append(
            helper.make_node(
                "Cast", [half.name], [init.name], to=TensorProto.FLOAT, name=f"{init.name}__cast"
            )
        )
    del graph.initializer[:]
    graph.initializer.extend(kept)
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(casts + nodes)
    onnx.checker.check_model(out, full_check=True)
    return out


@contextlib.contextmanager
def _quiet_root_logger():
    """onnxruntime's quantizer logs advice through the root logger; keep stderr for us."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


class _WindowReader:
    """onnxruntime CalibrationDataReader over float32 windows (each (1, frames, features))."""

    def __init__(self, input_name: str, windows: Iterable[np.ndarray]):
        self._feeds = iter({input_name: np.asarray(w, dtype=np.float32)} for w in windows)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._feeds, None)


def quantize_onnx(
    model: onnx.ModelProto,
    quantize: str,
    representative: Callable[[], Iterable[np.ndarray]] | None = None,
) -> onnx.ModelProto:
    """Quantize a float32 ONNX model ("none", "float16", "dynamic" or "int8"; see above).

    Args:
        model: float32 model from `convert_onnx`.
        quantize: the mode.
        representative: for "int8": a callable returning float32 windows (1, frames,
            features) to calibrate activation ranges.

    Raises:
        ValueError: unknown mode, or int8 without representative windows.
        ConversionError: onnxruntime's quantizer or the checker failed.
    """
    if quantize == "none":
        return model
    if quantize == "float16":
        return weights_to_float16(model)
    if quantize not in ("dynamic", "int8"):
        raise ValueError(f"unknown ONNX quantization {quantize!r}")
    if quantize == "int8" and representative is None:
        raise ValueError("int8 quantization needs representative (calibration) windows")
    from onnxruntime import quantization as q

    with tempfile.TemporaryDirectory(prefix="dyser-onnx-") as tmp, _quiet_root_logger():
        src, dst = Path(tmp, "float.onnx"), Path(tmp, "quant.onnx")
        onnx.save(model, src)
        try:
            if quantize == "dynamic":
                q.quantize_dynamic(
                    src,
                    dst,
                    per_channel=True,
                    weight_type=q.QuantType.QInt8,
                    op_types_to_quantize=["MatMul", "LSTM"],
                )
            else:
                static = Path(tmp, "static.onnx")
                q.quantize_static(
                    src,
                    static,
                    _WindowReader(model.graph.input[0].name, representative()),
                    quant_format=q.QuantFormat.QDQ,
                    op_types_to_quantize=["Conv"],
                    per_channel=True,
                    activation_type=q.QuantType.QInt8,
                    weight_type=q.QuantType.QInt8,
                    calibrate_method=q.CalibrationMethod.MinMax,
                )
                q.quantize_dynamic(
                    static, dst, weight_type=q.QuantType.QInt8, op_types_to_quantize=["LSTM"]
                )
            quantized = onnx.load(dst)
            onnx.checker.check_model(quantized, full_check=True)
        except Exception as err:  # the quantizer raises many exception types
            names = [node.name for node in model.graph.node]
            raise explain_failure(err, names, f"ONNX {quantize} quantization") from None
    return quantized
