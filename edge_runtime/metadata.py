"""What a trained model carries so that export and inference never guess.

`ModelMetadata` (labels, frontend configuration with its normalisation statistics, window
policy, free-form training info) travels inside the trained `.keras` file and in the JSON
manifest next to every exported artifact. It is plain JSON so the edge runtime can read it
with the standard library.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from edge_runtime.config import FrontendConfig
from edge_runtime.windows import WindowPolicy

FORMAT_VERSION = 1


class MetadataError(ValueError):
    """Model metadata is missing, malformed, or does not match the model."""


@dataclass(frozen=True)
class ModelMetadata:
    """Labels, frontend, window policy and training info of one trained model.

    Attributes:
        labels: class names, in the order of the model's output units.
        frontend: the feature configuration the model was trained with (including dataset
            normalisation statistics when used).
        window: window length and hop, in feature frames.
        info: free-form JSON-serialisable details (recipe, corpus, metrics, versions).
        format_version: version of this metadata schema.
    """

    labels: tuple[str, ...]
    frontend: FrontendConfig
    window: WindowPolicy = field(default_factory=WindowPolicy)
    info: dict[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        labels = tuple(str(label) for label in self.labels)
        if len(labels) < 2 or len(set(labels)) != len(labels):
            raise MetadataError(f"labels must be >= 2 distinct names, got {list(labels)}")
        object.__setattr__(self, "labels", labels)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable form (what `.keras` files and manifests store)."""
        return {
            "format_version": self.format_version,
            "labels": list(self.labels),
            "frontend": self.frontend.to_dict(),
            "window": self.window.to_dict(),
            "info": self.info,
        }

    def to_json(self) -> str:
        """`to_dict` as indented JSON with sorted keys."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: Any, source: str = "metadata") -> ModelMetadata:
        """Parse and validate; raises `MetadataError` naming `source` and the problem."""
        if not isinstance(data, dict):
            raise MetadataError(f"{source}: expected a JSON object, got {type(data).__name__}")
        version = data.get("format_version")
        if version != FORMAT_VERSION:
            raise MetadataError(
                f"{source}: metadata format_version {version!r} is not supported "
                f"(this runtime reads version {FORMAT_VERSION})"
            )
        missing = {"labels", "frontend", "window"} - set(data)
        if missing:
            raise MetadataError(f"{source}: metadata lacks {sorted(missing)}")
        try:
            return cls(
                labels=tuple(data["labels"]),
                frontend=FrontendConfig.from_dict(data["frontend"]),
                window=WindowPolicy.from_dict(data["window"]),
                info=dict(data.get("info") or {}),
            )
        except MetadataError:
            raise
        except (TypeError, ValueError) as err:
            raise MetadataError(f"{source}: invalid metadata: {err}") from None

    @classmethod
    def from_json(cls, text: str | bytes, source: str = "metadata") -> ModelMetadata:
        """`from_dict` of a JSON document."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise MetadataError(f"{source}: metadata is not valid JSON ({err})") from None
        return cls.from_dict(data, source)
