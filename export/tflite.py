"""TFLite (LiteRT) conversion of the inference twin: builtin ops only, four quantization modes.

`convert_tflite(twin, quantize, representative)` returns the flatbuffer bytes:

* "none": float32 weights and compute;
* "float16": weights stored as float16 (half the file), dequantized at load, float compute;
* "dynamic": dynamic-range quantization: int8 weights, activations quantized on the fly;
* "int8": full integer quantization, weights and activations, calibrated on
  `representative` windows; int8 input and output tensors whose scale and zero point the
  artifact manifest records (the fused LSTM keeps an int16 cell state).

The converter is restricted to TFLITE_BUILTINS (or TFLITE_BUILTINS_INT8): a graph that
would need Flex (SELECT_TF_OPS) ops fails to convert instead of producing a file the edge
interpreter cannot run, and `tflite_ops` lists the ops of the result to prove it.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Callable, Iterable, Iterator

import numpy as np
import tensorflow as tf
import tf_keras

from edge_runtime.artifact import TensorSpec
from edge_runtime.formats import QUANTIZATIONS

__all__ = [
    "ConversionError",
    "convert_tflite",
    "explain_failure",
    "non_builtin_ops",
    "tflite_io",
    "tflite_ops",
]


class ConversionError(RuntimeError):
    """A converter failed; the message names the layer or op when it can be found."""


def explain_failure(err: Exception, layer_names: Iterable[str], what: str) -> ConversionError:
    """A `ConversionError` naming the layers of `layer_names` that the converter message cites."""
    message = str(err)
    cited = [name for name in layer_names if re.search(rf"\b{re.escape(name)}\b", message)]
    ops = sorted(set(re.findall(r"'(tf\.[A-Za-z0-9_]+)'", message)))
    where = f" at layer(s) {', '.join(cited)}" if cited else ""
    unsupported = f" (ops: {', '.join(ops)})" if ops else ""
    lines = [line for line in message.strip().splitlines() if line.strip()]
    detail = "\n  ".join(lines[:8]) if lines else type(err).__name__
    return ConversionError(f"{what} failed{where}{unsupported}:\n  {detail}")


def convert_tflite(
    twin: tf_keras.Model,
    quantize: str = "none",
    representative: Callable[[], Iterator[list[np.ndarray]]] | None = None,
) -> bytes:
    """Convert a tf_keras twin to a TFLite flatbuffer with builtin ops only.

    Args:
        twin: the inference twin (`export.twin.build_twin`), input (1, frames, features).
        quantize: "none", "float16", "dynamic" or "int8".
        representative: for "int8": a callable returning an iterator of [window] lists,
            each window float32 (1, frames, features), as TFLiteConverter expects.

    Raises:
        ValueError: for an unknown mode or int8 without representative data.
        ConversionError: when the converter fails, naming the layer or op it cites.
    """
    if quantize not in QUANTIZATIONS:
        raise ValueError(f"quantize must be one of {QUANTIZATIONS}, got {quantize!r}")
    converter = tf.lite.TFLiteConverter.from_keras_model(twin)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantize != "none":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantize == "float16":
        converter.target_spec.supported_types = [tf.float16]
    elif quantize == "int8":
        if representative is None:
            raise ValueError("int8 quantization needs representative (calibration) windows")
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    try:
        with warnings.catch_warnings():
            # int8 I/O without input statistics is intended: the manifest records the scales.
            warnings.filterwarnings("ignore", "Statistics for quantized inputs", UserWarning)
            flatbuffer = converter.convert()
    except Exception as err:  # the converter raises ConverterError, RuntimeError, ValueError
        raise explain_failure(
            err, [layer.name for layer in twin.layers], "TFLite conversion"
        ) from None
    bad = non_builtin_ops(tflite_ops(flatbuffer))
    if bad:
        raise ConversionError(f"TFLite conversion produced non-builtin ops {bad}")
    return flatbuffer


def _interpreter(model: bytes | str | os.PathLike):
    from ai_edge_litert.interpreter import Interpreter

    if isinstance(model, bytes | bytearray):
        return Interpreter(model_content=bytes(model))
    return Interpreter(model_path=os.fspath(model))


def tflite_ops(model: bytes | str | os.PathLike) -> list[str]:
    """Names of the ops in a TFLite model (file path or flatbuffer bytes), in graph order.

    Uses the ai-edge-litert interpreter, the same one the edge runtime runs.
    """
    return [op["op_name"] for op in _interpreter(model)._get_ops_details()]


def tflite_io(model: bytes | str | os.PathLike) -> tuple[TensorSpec, TensorSpec]:
    """The (input, output) tensor specs of a one-input, one-output TFLite model."""
    interpreter = _interpreter(model)
    specs = []
    for details in (interpreter.get_input_details(), interpreter.get_output_details()):
        if len(details) != 1:
            raise ConversionError(f"expected one input and one output tensor, got {details}")
        (d,) = details
        dtype = np.dtype(d["dtype"]).name
        scale, zero_point = d["quantization"]
        quantized = dtype != "float32"
        specs.append(
            TensorSpec(
                name=d["name"],
                shape=tuple(int(n) for n in d["shape"]),
                dtype=dtype,
                scale=float(scale) if quantized else None,
                zero_point=int(zero_point) if quantized else None,
            )
        )
    return specs[0], specs[1]


def non_builtin_ops(ops: Iterable[str]) -> list[str]:
    """The ops of `ops` that are not TFLite builtins (Flex/SELECT_TF_OPS, custom, delegate)."""
    return sorted({op for op in ops if op.startswith("Flex") or op in ("CUSTOM", "DELEGATE")})
