"""The one registry of exported model formats: names, file suffixes, engines, quantizations.

Export (`export.pipeline`, `dyser-export`), the artifact manifest (`edge_runtime.artifact`),
the engines (`edge_runtime.engines`), the edge CLI and the benches read it from here, so a
new format is one `ModelFormat` line plus its converter and its engine.

    from edge_runtime.formats import FORMATS, model_format
    model_format("tflite").suffix        # ".tflite"
    model_format("onnx").engine          # "onnxruntime"

Standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "ENGINES",
    "FORMATS",
    "MODEL_SUFFIXES",
    "QUANTIZATIONS",
    "REGISTRY",
    "ModelFormat",
    "model_format",
]

#: Quantization modes, from none to full integer (see `dyser-export --help`):
#: "none" float32; "float16" float16 weights, float32 compute; "dynamic" int8 weights,
#: activations quantized at run time; "int8" weights and activations int8 (calibrated).
QUANTIZATIONS: tuple[str, ...] = ("none", "float16", "dynamic", "int8")


@dataclass(frozen=True)
class ModelFormat:
    """One exported model format.

    Attributes:
        name: the format's name in manifests and on the command line ("tflite").
        suffix: file name suffix of its model files (".tflite").
        engine: the `edge_runtime.engines` engine that runs it ("litert").
        quantizations: the `QUANTIZATIONS` modes it can be exported with.
    """

    name: str
    suffix: str
    engine: str
    quantizations: tuple[str, ...] = QUANTIZATIONS


#: Every format, by name, in the order the CLIs list them.
REGISTRY: dict[str, ModelFormat] = {
    f.name: f
    for f in (
        ModelFormat("tflite", ".tflite", "litert"),
        ModelFormat("onnx", ".onnx", "onnxruntime"),
        # float32 weights + a layer graph in an .npz, for boards with no interpreter wheel.
        ModelFormat("numpy", ".npz", "numpy", quantizations=("none",)),
    )
}
FORMATS: tuple[str, ...] = tuple(REGISTRY)
#: File name suffixes of exported model files.
MODEL_SUFFIXES: tuple[str, ...] = tuple(f.suffix for f in REGISTRY.values())
#: Engine names `edge_runtime.engines.open_engine` accepts; "auto" picks the format's engine.
ENGINES: tuple[str, ...] = ("auto", *dict.fromkeys(f.engine for f in REGISTRY.values()))


def model_format(name: str) -> ModelFormat:
    """The registered format `name`; ValueError listing the formats otherwise."""
    try:
        return REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(f"format must be one of {FORMATS}, got {name!r}") from None
