"""What a model maps from and to: input shape, head size, classes, feature facts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: What a model can be trained to predict (`TaskInfo.target_kind`).
TASK_KINDS = ("multiclass", "binary", "regression")
#: What its inputs are (`modality`): images (C, H, W), token ids, or feature vectors.
MODALITIES = ("image", "text", "tabular")


@dataclass
class TaskInfo:
    """What the model maps to: the head size and how outputs become predictions."""

    target_kind: str  # multiclass | binary | regression
    output_dim: int
    input_shape: tuple[int, ...]
    classes: list[str] | None
    feature_names: list[str] | None = None
    #: Extra facts some architectures need, e.g. {"vocab_size": 5000, "pad_index": 0} for
    #: text or {"numeric": 6, "cardinalities": [9, 16, …]} for tables with embedded categoricals.
    features: dict[str, Any] = field(default_factory=dict)
    #: Regression targets are trained on as (y - target_shift) / target_scale; outputs in
    #: original units are `output * target_scale + target_shift` (per column for several
    #: targets). 0 and 1 when targets are used as they are (and for runs saved before).
    target_shift: float | list[float] = 0.0
    target_scale: float | list[float] = 1.0
    #: A table read from a user's file: {"schema": column roles (data/roles.py),
    #: "reader": the resolved delimiter/header/encoding, "imputed": what was filled in}.
    #: None for other data and for runs saved before.
    table: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON form saved as the run's data.json."""
        return {
            "target_kind": self.target_kind,
            "output_dim": self.output_dim,
            "input_shape": list(self.input_shape),
            "classes": self.classes,
            "feature_names": self.feature_names,
            "features": self.features,
            "target_shift": self.target_shift,
            "target_scale": self.target_scale,
            "table": self.table,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TaskInfo:
        """Inverse of `to_dict`."""
        return cls(
            d["target_kind"],
            int(d["output_dim"]),
            tuple(d["input_shape"]),
            d.get("classes"),
            d.get("feature_names"),
            dict(d.get("features") or {}),
            d.get("target_shift", 0.0),
            d.get("target_scale", 1.0),
            d.get("table"),
        )


def modality(info: TaskInfo) -> str:
    """'text' or 'tabular' as the preprocessing says, 'image' for (C, H, W) inputs.

    Text and table preprocessing record their kind in `features`; built-in arrays carry
    none, so a 3-D sample is an image and any other shape a vector of features.
    """
    kind = (info.features or {}).get("kind")
    if kind in ("text", "tabular"):
        return kind
    return "image" if len(info.input_shape) == 3 else "tabular"
