"""keras_dyconv: dynamic convolution for Keras 3 and the DyCNN + Bi-LSTM emotion model.

    from keras_dyconv import DynamicConv          # 2D, as in the paper
    from keras_dyconv import DynamicConv1D, TemperatureAnnealing, build_dycnn_bilstm

The Keras-dependent names load on first use, so the data modules (`keras_dyconv.corpora`,
`.protocols`, `.metrics`, `.synthetic`) import without starting a Keras backend.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "BaseDynamicConv": "keras_dyconv.layers",
    "DynamicConv": "keras_dyconv.layers",
    "DynamicConv1D": "keras_dyconv.layers",
    "DynamicConv2D": "keras_dyconv.layers",
    "TemperatureAnnealing": "keras_dyconv.callbacks",
    "AttentionPooling": "keras_dyconv.models",
    "build_dycnn_bilstm": "keras_dyconv.models",
    "model_cost": "keras_dyconv.models",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'keras_dyconv' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
