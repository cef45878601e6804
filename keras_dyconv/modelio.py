"""Save and load trained models together with their `ModelMetadata`.

The metadata is stored as an extra `dyser.json` entry inside the `.keras` zip archive, next
to Keras's own `config.json` and weights: one file carries the network, its labels, its
frontend configuration and normalisation statistics, and its window policy. Keras ignores
the extra entry, so the file still opens with plain `keras.saving.load_model`.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from pathlib import Path

import keras

import keras_dyconv.layers
import keras_dyconv.models  # noqa: F401
from edge_runtime.metadata import MetadataError, ModelMetadata

METADATA_ENTRY = "dyser.json"


def save_model(model: keras.Model, path: str | os.PathLike, metadata: ModelMetadata) -> Path:
    """Write `model` and `metadata` to a `.keras` file atomically (temp file + rename)."""
    path = Path(path)
    if path.suffix != ".keras":
        raise ValueError(f"{path}: a dyser model file must end in .keras")
    n_out = model.output_shape[-1]
    if n_out != len(metadata.labels):
        raise MetadataError(
            f"{path}: the model has {n_out} outputs but the metadata names "
            f"{len(metadata.labels)} labels"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".keras", dir=path.parent, prefix=f".{path.stem}-")
    os.close(fd)
    try:
        model.save(tmp)
        with zipfile.ZipFile(tmp, "a") as archive:
            archive.writestr(METADATA_ENTRY, metadata.to_json())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def read_metadata(path: str | os.PathLike) -> ModelMetadata:
    """The `ModelMetadata` stored in a `.keras` file (without loading the network)."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            if METADATA_ENTRY not in archive.namelist():
                raise MetadataError(
                    f"{path}: no {METADATA_ENTRY} inside; save models with "
                    "keras_dyconv.modelio.save_model (or dyser-train)"
                )
            text = archive.read(METADATA_ENTRY)
    except (zipfile.BadZipFile, FileNotFoundError, IsADirectoryError) as err:
        raise MetadataError(f"{path}: not a readable .keras file ({err})") from None
    return ModelMetadata.from_json(text, source=str(path))


def load_model(path: str | os.PathLike, compile: bool = False) -> tuple[keras.Model, ModelMetadata]:
    """Load a model saved by `save_model`: returns (model, metadata)."""
    metadata = read_metadata(path)
    model = keras.saving.load_model(path, compile=compile)
    if model.output_shape[-1] != len(metadata.labels):
        raise MetadataError(f"{path}: metadata labels do not match the model's outputs")
    return model, metadata
