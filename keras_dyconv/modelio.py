"""Save and load trained models together with their `ModelMetadata`.

Where the metadata (labels, frontend configuration with its normalisation statistics,
window policy, training info) lives in a `.keras` file:

* `save_model` writes it as an extra `dyser.json` entry inside the zip archive, next to
  Keras's own `config.json` and weights; Keras ignores the entry. Any architecture can be
  saved this way.
* a model built by `keras_dyconv.models.build_dycnn_bilstm` also carries labels, frontend
  and window in its `ModelInfo` layer's config (`save_model` records them there too), so a
  plain `model.save("m.keras")` keeps them.

`read_metadata` reads `dyser.json`, else the `ModelInfo` layer's config; values neither
records (e.g. the labels of a model built without `labels=`) come from its `labels` and
`frontend` arguments, and are otherwise refused with `IncompleteMetadata`, which lists them.

Load a saved model with `load_model` (compiled or not): importing this module registers with
Keras every custom object our models and training use (the layers, `ModelInfo`,
`AttentionPooling`, `MaskedCrossEntropy`, `masked_accuracy`). A plain
`keras.saving.load_model` finds them only once their modules are imported; ``import
keras_dyconv`` alone does not import them (it keeps the data modules Keras-free).
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import keras

# The modules whose custom objects saved models refer to: importing them registers them.
import keras_dyconv.layers
import keras_dyconv.losses
import keras_dyconv.models  # noqa: F401
from edge_runtime.config import FrontendConfig
from edge_runtime.files import atomic_output
from edge_runtime.metadata import MetadataError, ModelMetadata
from edge_runtime.windows import WindowPolicy
from keras_dyconv.models import set_model_metadata

METADATA_ENTRY = "dyser.json"
_INFO_LAYER = "keras_dyconv>ModelInfo"


class IncompleteMetadata(MetadataError):
    """The file records neither these values nor were they given (`missing`: their names)."""

    def __init__(self, message: str, missing: Sequence[str]):
        super().__init__(message)
        self.missing = tuple(missing)


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
    set_model_metadata(model, metadata)
    with atomic_output(path) as tmp:
        model.save(tmp)
        with zipfile.ZipFile(tmp, "a") as archive:
            archive.writestr(METADATA_ENTRY, metadata.to_json())
    return path


def read_metadata(
    path: str | os.PathLike,
    *,
    labels: Sequence[str] | None = None,
    frontend: FrontendConfig | None = None,
) -> ModelMetadata:
    """The `ModelMetadata` of a `.keras` file (without loading the network).

    `labels` and `frontend` supply what the file does not record; a value that the file
    records and that differs from the one given is refused (`MetadataError`).

    Raises:
        IncompleteMetadata: labels or frontend neither recorded nor given.
        MetadataError: unreadable file, malformed metadata, or a given value contradicts it.
    """
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            if METADATA_ENTRY in names:
                recorded = ModelMetadata.from_json(archive.read(METADATA_ENTRY), str(path))
                return _with_given(recorded, labels, frontend, path)
            config = archive.read("config.json") if "config.json" in names else b"{}"
    except (zipfile.BadZipFile, FileNotFoundError, IsADirectoryError, OSError) as err:
        raise MetadataError(f"{path}: not a readable .keras file ({err})") from None
    info = _layer_info(config, path)
    if info.get("labels") is not None and labels is not None:
        _same("labels", tuple(info["labels"]), tuple(labels), path)
    if info.get("frontend") is not None and frontend is not None:
        _same("frontend", FrontendConfig.from_dict(info["frontend"]), frontend, path)
    data = {
        "format_version": 1,
        "labels": info.get("labels") or (None if labels is None else list(labels)),
        "frontend": info.get("frontend") or (None if frontend is None else frontend.to_dict()),
        "window": info.get("window") or WindowPolicy().to_dict(),
        "info": {},
    }
    missing = [name for name in ("labels", "frontend") if data[name] is None]
    if missing:
        why = (
            f"built by build_dycnn_bilstm without {', '.join(f'{n}=' for n in missing)}"
            if info
            else "not built by build_dycnn_bilstm"
        )
        raise IncompleteMetadata(
            f"{path}: the model does not record its {' and its '.join(missing)} (saved with "
            f"plain model.save(), {why})",
            missing,
        )
    return ModelMetadata.from_dict(data, str(path))


def _layer_info(config: bytes, path: Path) -> dict[str, Any]:
    """The config of the `ModelInfo` layer in a `.keras` file's config.json, or {}."""
    try:
        layers = json.loads(config).get("config", {}).get("layers", [])
    except (json.JSONDecodeError, AttributeError, UnicodeDecodeError):
        raise MetadataError(f"{path}: config.json is not a Keras model configuration") from None
    for layer in layers if isinstance(layers, list) else []:
        if isinstance(layer, dict) and layer.get("registered_name") == _INFO_LAYER:
            return layer.get("config", {})
    return {}


def _with_given(
    recorded: ModelMetadata,
    labels: Sequence[str] | None,
    frontend: FrontendConfig | None,
    path: Path,
) -> ModelMetadata:
    if labels is not None:
        _same("labels", recorded.labels, tuple(labels), path)
    if frontend is not None:
        _same("frontend", recorded.frontend, frontend, path)
    return recorded


def _same(what: str, recorded: Any, given: Any, path: Path) -> None:
    if recorded != given:
        shown = (lambda v: v.to_json()) if isinstance(recorded, FrontendConfig) else list
        raise MetadataError(
            f"{path}: the model records its {what} ({shown(recorded)}); the {what} given "
            f"({shown(given)}) differ: leave the option out"
        )


def load_model(
    path: str | os.PathLike,
    compile: bool = False,
    *,
    labels: Sequence[str] | None = None,
    frontend: FrontendConfig | None = None,
) -> tuple[keras.Model, ModelMetadata]:
    """Load a `.keras` model and its metadata (`read_metadata`): returns (model, metadata).

    `compile`: restore the optimiser, loss and metrics the model was saved with (as
    `keras.saving.load_model`'s), e.g. to continue training; off by default (inference).
    """
    metadata = read_metadata(path, labels=labels, frontend=frontend)
    model = keras.saving.load_model(path, compile=compile)
    n_out, n_in = model.output_shape[-1], model.input_shape[-1]
    if n_out != len(metadata.labels):
        raise MetadataError(
            f"{path}: the model has {n_out} outputs but {len(metadata.labels)} labels "
            f"{list(metadata.labels)}"
        )
    if n_in is not None and n_in != metadata.frontend.n_features:
        raise MetadataError(
            f"{path}: the model takes {n_in} features per frame but the frontend makes "
            f"{metadata.frontend.n_features}"
        )
    return model, metadata
