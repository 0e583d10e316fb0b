"""The in-memory form every dataset takes: feature and target arrays plus task facts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

Task = Literal["classification", "regression"]


@dataclass
class ArrayData:
    """A whole dataset in memory.

    `X` is float32 with shape (N, *feature_shape) — (N, F) for tables, (N, C, H, W) for
    images — or raw values that preprocessing turns into numbers: an object (N, F) array
    of floats and strings for tables with categorical columns (their kinds in
    `extras["column_kinds"]`), a (N,) array of strings for text. `y` is int64 class
    indices for classification, float32 for regression.
    A dataset with an official test split (e.g. Adult) carries it in `X_test`/`y_test`,
    and the canonical split then only carves validation out of `X`.
    """

    X: np.ndarray
    y: np.ndarray
    task: Task
    classes: list[str] | None = None
    feature_names: list[str] | None = None
    X_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    source: str = ""
    extras: dict = field(default_factory=dict)
    #: one sample's shape after preprocessing (set by `setup.split_and_preprocess`)
    input_shape: tuple[int, ...] | None = None

    @property
    def feature_shape(self) -> tuple[int, ...]:
        """Shape of one sample's model input (after preprocessing once that has run)."""
        return tuple(self.input_shape) if self.input_shape is not None else tuple(self.X.shape[1:])

    @property
    def num_classes(self) -> int | None:
        """Number of classes for classification, None for regression."""
        return len(self.classes) if self.classes is not None else None


@dataclass
class Split:
    """One split's arrays."""

    X: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return len(self.y)


@dataclass
class Splits:
    """Train, validation and test arrays of one run."""

    train: Split
    val: Split
    test: Split
