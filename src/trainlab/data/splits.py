"""Deterministic, stratified train/validation/test splits.

The canonical split: test = train_test_split(X, y, test_size=0.2, stratify=y,
random_state=0); validation carved from the rest the same way with test_size=0.1.
A dataset with an official test set keeps it and only validation is carved.
"""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import train_test_split

from trainlab.data.arrays import ArrayData, Split, Splits
from trainlab.errors import DataError


def _split(X, y, size: float, seed: int, stratify: bool, what: str):
    labels = y if stratify else None
    if stratify:
        values, counts = np.unique(y, return_counts=True)
        if counts.min() < 2:
            bad = values[counts.argmin()].item()
            raise DataError(
                f"cannot stratify the {what} split: class {bad!r} has only {counts.min()} sample; "
                "add samples of that class, merge it with another, or drop it"
            )
    try:
        return train_test_split(X, y, test_size=size, stratify=labels, random_state=seed)
    except ValueError as exc:
        raise DataError(f"cannot make the {what} split: {exc}") from None


def canonical_split(
    data: ArrayData, test_size: float = 0.2, val_size: float = 0.1, seed: int = 0
) -> Splits:
    """Split `data` into train/val/test, stratified by class for classification."""
    stratify = data.task == "classification"
    if data.X_test is not None and data.y_test is not None:
        X_rest, y_rest = data.X, data.y
        test = Split(data.X_test, data.y_test)
    else:
        X_rest, X_test, y_rest, y_test = _split(data.X, data.y, test_size, seed, stratify, "test")
        test = Split(X_test, y_test)
    X_train, X_val, y_train, y_val = _split(X_rest, y_rest, val_size, seed, stratify, "validation")
    return Splits(Split(X_train, y_train), Split(X_val, y_val), test)
