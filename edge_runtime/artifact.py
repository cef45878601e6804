"""Exported model artifacts: a model file plus the JSON manifest that says how to run it.

Decision: the manifest is a sidecar file, ``<model file>.json`` next to the model
(``model.tflite`` + ``model.tflite.json``, ``model.onnx`` + ``model.onnx.json``), not data
embedded in the flatbuffer or protobuf. Plain JSON is readable with the standard library on
any device, the same code handles every format, and the model file stays exactly what the
converter produced. The manifest is tied to its model by the model file's sha256, so a
swapped, re-exported or tampered model is refused instead of silently mislabelled.

Manifest layout: `ModelMetadata.to_dict()` (labels, frontend configuration with its
normalization statistics, window/hop policy, training info) plus an ``"artifact"`` object::

    {"version": 1, "format": "tflite", "quantization": "int8",
     "sha256": "...", "size_bytes": 412345,
     "input":  {"name": "serving_default_log_mel:0", "shape": [1, 300, 64], "dtype": "int8",
                "scale": 0.0431, "zero_point": -3},
     "output": {"name": "StatefulPartitionedCall:0", "shape": [1, 7], "dtype": "int8",
                "scale": 0.00390625, "zero_point": -128},
     "exporter": "dyser-export 0.1.0", "created": "2025-01-01T12:00:00+00:00",
     "parity": {...}}                      # optional: the export-time parity report

`scale`/`zero_point` are null for float tensors; a quantized tensor holds
``round(x / scale) + zero_point``. `load_artifact` refuses (with `ArtifactError`) a missing
or malformed manifest, an unsupported version, a model whose sha256 or size differs from
the manifest, and labels or input shape that do not match the model's tensors.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edge_runtime.files import atomic_write, file_sha256
from edge_runtime.formats import FORMATS, QUANTIZATIONS
from edge_runtime.metadata import MetadataError, ModelMetadata

__all__ = [
    "ARTIFACT_VERSION",
    "Artifact",
    "ArtifactError",
    "ArtifactInfo",
    "TensorSpec",
    "load_artifact",
    "manifest_path",
    "write_manifest",
]

#: Version of the "artifact" section this runtime reads and writes.
ARTIFACT_VERSION = 1
_DTYPES = ("float32", "int8", "uint8")


class ArtifactError(ValueError):
    """An exported model cannot be used: manifest missing, malformed or not matching."""


@dataclass(frozen=True)
class TensorSpec:
    """One model input or output tensor.

    Attributes:
        name: tensor name in the model file.
        shape: static shape, e.g. [1, frames, n_features] or [1, n_classes].
        dtype: "float32", "int8" or "uint8".
        scale, zero_point: affine quantization (real = scale * (q - zero_point)) of an
            integer tensor; None for float tensors.
    """

    name: str
    shape: tuple[int, ...]
    dtype: str
    scale: float | None = None
    zero_point: int | None = None

    def __post_init__(self) -> None:
        if self.dtype not in _DTYPES:
            raise ArtifactError(f"tensor {self.name!r}: dtype {self.dtype!r} not in {_DTYPES}")
        object.__setattr__(self, "shape", tuple(int(n) for n in self.shape))
        quantized = self.dtype != "float32"
        if quantized and (self.scale is None or self.zero_point is None or self.scale <= 0):
            raise ArtifactError(
                f"tensor {self.name!r} is {self.dtype} but has no valid scale/zero_point "
                f"(got scale={self.scale}, zero_point={self.zero_point})"
            )
        if quantized:
            object.__setattr__(self, "scale", float(self.scale))
            object.__setattr__(self, "zero_point", int(self.zero_point))

    @property
    def quantized(self) -> bool:
        return self.dtype != "float32"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "shape": list(self.shape),
            "dtype": self.dtype,
            "scale": self.scale,
            "zero_point": self.zero_point,
        }

    @classmethod
    def from_dict(cls, data: Any, what: str) -> TensorSpec:
        if not isinstance(data, dict) or not {"name", "shape", "dtype"} <= set(data):
            raise ArtifactError(f"{what} must be an object with name, shape and dtype")
        try:
            return cls(
                name=str(data["name"]),
                shape=tuple(data["shape"]),
                dtype=str(data["dtype"]),
                scale=data.get("scale"),
                zero_point=data.get("zero_point"),
            )
        except (TypeError, ValueError) as err:
            raise ArtifactError(f"{what}: {err}") from None


@dataclass(frozen=True)
class ArtifactInfo:
    """The "artifact" section of a manifest (see the module docstring)."""

    format: str
    quantization: str
    sha256: str
    size_bytes: int
    input: TensorSpec
    output: TensorSpec
    exporter: str
    created: str
    parity: dict[str, Any] | None = None
    version: int = ARTIFACT_VERSION

    def to_dict(self) -> dict[str, Any]:
        out = {
            "version": self.version,
            "format": self.format,
            "quantization": self.quantization,
            "sha256": self.sha256,
            "size_bytes": self.size_bytes,
            "input": self.input.to_dict(),
            "output": self.output.to_dict(),
            "exporter": self.exporter,
            "created": self.created,
        }
        if self.parity is not None:
            out["parity"] = self.parity
        return out

    @classmethod
    def from_dict(cls, data: Any, source: str) -> ArtifactInfo:
        if not isinstance(data, dict):
            raise ArtifactError(f'{source}: no "artifact" section (not an exported model?)')
        version = data.get("version")
        if version != ARTIFACT_VERSION:
            raise ArtifactError(
                f"{source}: artifact manifest version {version!r} is not supported "
                f"(this runtime reads version {ARTIFACT_VERSION}); re-export the model"
            )
        required = {"format", "quantization", "sha256", "size_bytes", "input", "output"}
        missing = sorted(required - set(data))
        if missing:
            raise ArtifactError(f"{source}: artifact section lacks {missing}")
        if data["format"] not in FORMATS:
            raise ArtifactError(f"{source}: format {data['format']!r} not in {FORMATS}")
        if data["quantization"] not in QUANTIZATIONS:
            raise ArtifactError(
                f"{source}: quantization {data['quantization']!r} not in {QUANTIZATIONS}"
            )
        return cls(
            format=data["format"],
            quantization=data["quantization"],
            sha256=str(data["sha256"]),
            size_bytes=int(data["size_bytes"]),
            input=TensorSpec.from_dict(data["input"], f"{source}: artifact input"),
            output=TensorSpec.from_dict(data["output"], f"{source}: artifact output"),
            exporter=str(data.get("exporter", "unknown")),
            created=str(data.get("created", "")),
            parity=data.get("parity"),
        )


@dataclass(frozen=True)
class Artifact:
    """A verified exported model: its file, its metadata, and how to feed and read it."""

    model_path: Path
    metadata: ModelMetadata
    artifact_info: ArtifactInfo

    @property
    def manifest(self) -> Path:
        return manifest_path(self.model_path)

    @property
    def labels(self) -> tuple[str, ...]:
        return self.metadata.labels

    @property
    def frames(self) -> int:
        """Frames per model input window."""
        return self.artifact_info.input.shape[1]


def manifest_path(model_path: str | os.PathLike) -> Path:
    """The manifest of a model file: the same path with ".json" appended."""
    model_path = Path(model_path)
    return model_path.with_name(model_path.name + ".json")


def write_manifest(
    model_path: str | os.PathLike,
    metadata: ModelMetadata,
    *,
    format: str,
    quantization: str,
    input: TensorSpec,
    output: TensorSpec,
    exporter: str,
    parity: dict[str, Any] | None = None,
) -> Path:
    """Write the manifest of the model file at `model_path` (atomically) and return its path.

    The sha256 and size are computed from the file as it is now; the manifest is checked
    with the same rules as `load_artifact` before it is written.
    """
    model_path = Path(model_path)
    info = ArtifactInfo(
        format=format,
        quantization=quantization,
        sha256=file_sha256(model_path),
        size_bytes=model_path.stat().st_size,
        input=input,
        output=output,
        exporter=exporter,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        parity=parity,
    )
    target = manifest_path(model_path)
    info = ArtifactInfo.from_dict(info.to_dict(), str(target))  # the reader's checks
    _check_consistent(metadata, info, str(target))
    text = json.dumps({**metadata.to_dict(), "artifact": info.to_dict()}, indent=2)
    return atomic_write(target, text + "\n")


def load_artifact(path: str | os.PathLike, verify_hash: bool = True) -> Artifact:
    """Open an exported model (the model file or its ``.json`` manifest) and verify it.

    Raises:
        ArtifactError: missing model or manifest, malformed manifest, unsupported manifest
            version, sha256/size mismatch (model replaced or tampered with), labels that do
            not match the output size, or an input shape that does not match the frontend
            and window policy.
    """
    path = Path(path)
    if path.suffix == ".json":
        model_path, manifest = path.with_suffix(""), path
    else:
        model_path, manifest = path, manifest_path(path)
    if not model_path.is_file():
        raise ArtifactError(f"{model_path}: model file not found")
    if not manifest.is_file():
        raise ArtifactError(
            f"{model_path}: no manifest {manifest.name} next to it; the edge runtime only "
            "runs models exported by dyser-export (model file + manifest)"
        )
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ArtifactError(f"{manifest}: unreadable manifest ({err})") from None
    if not isinstance(data, dict):
        raise ArtifactError(f"{manifest}: expected a JSON object")
    info = ArtifactInfo.from_dict(data.get("artifact"), str(manifest))
    try:
        metadata = ModelMetadata.from_dict(
            {k: v for k, v in data.items() if k != "artifact"}, str(manifest)
        )
    except MetadataError as err:
        raise ArtifactError(str(err)) from None
    _check_consistent(metadata, info, str(manifest))
    size = model_path.stat().st_size
    if size != info.size_bytes:
        raise ArtifactError(
            f"{model_path}: file is {size} bytes but its manifest says {info.size_bytes}; "
            "the model was replaced or truncated after export"
        )
    if verify_hash and (digest := file_sha256(model_path)) != info.sha256:
        raise ArtifactError(
            f"{model_path}: sha256 {digest[:16]}... does not match the manifest's "
            f"{info.sha256[:16]}...; the model was modified after export (tampered?)"
        )
    return Artifact(model_path=model_path, metadata=metadata, artifact_info=info)


def _check_consistent(metadata: ModelMetadata, info: ArtifactInfo, source: str) -> None:
    out_shape, in_shape = info.output.shape, info.input.shape
    if not out_shape or out_shape[-1] != len(metadata.labels):
        raise ArtifactError(
            f"{source}: the model outputs {out_shape[-1] if out_shape else 0} classes but the "
            f"manifest lists {len(metadata.labels)} labels {list(metadata.labels)}"
        )
    expected = (1, metadata.window.frames, metadata.frontend.n_features)
    if in_shape != expected:
        raise ArtifactError(
            f"{source}: model input shape {list(in_shape)} does not match the manifest's "
            f"window and frontend (expected {list(expected)}: 1 x window.frames x n_features)"
        )
