"""Preprocessing fitted on the training split only, saved as plain numbers.

The fitted state is a dict of lists (JSON), so loading it executes no code.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from trainlab.config.schema import PreprocessingConfig


class Preprocessor:
    """Feature scaling learned from training data and applied to any split."""

    def __init__(self, config: PreprocessingConfig) -> None:
        self.config = config
        self.shift: np.ndarray | None = None
        self.scale: np.ndarray | None = None

    def fit(self, X: np.ndarray) -> Preprocessor:
        """Learn statistics from the training features."""
        flat = X.reshape(len(X), -1)
        if self.config.scale == "standard":
            from sklearn.preprocessing import StandardScaler

            s = StandardScaler().fit(flat)
            self.shift, self.scale = s.mean_, s.scale_
        elif self.config.scale == "minmax":
            from sklearn.preprocessing import MinMaxScaler

            s = MinMaxScaler().fit(flat)
            self.shift = -s.min_ / s.scale_
            self.scale = 1.0 / s.scale_
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Apply the learned statistics; float32 out."""
        X = np.asarray(X, dtype=np.float32)
        if self.shift is None:
            return X
        shape = X.shape
        flat = (X.reshape(len(X), -1) - self.shift) / self.scale
        return flat.reshape(shape).astype(np.float32)

    def state_dict(self) -> dict[str, Any]:
        """Fitted parameters as JSON-serializable data."""
        return {
            "config": self.config.model_dump(),
            "shift": None if self.shift is None else self.shift.tolist(),
            "scale": None if self.scale is None else self.scale.tolist(),
        }

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> Preprocessor:
        """Rebuild a fitted preprocessor from `state_dict()` output."""
        pre = cls(PreprocessingConfig(**state["config"]))
        if state.get("shift") is not None:
            pre.shift = np.asarray(state["shift"], dtype=np.float64)
            pre.scale = np.asarray(state["scale"], dtype=np.float64)
        return pre
