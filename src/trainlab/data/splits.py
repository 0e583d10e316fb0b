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


def _hold_out_test(data: ArrayData, test_size: float, seed: int, stratify: bool):
    """The test split (the official test file if the dataset has one) and what remains."""
    if data.X_test is not None and data.y_test is not None:
        return data.X, data.y, Split(data.X_test, data.y_test)
    X_rest, X_test, y_rest, y_test = _split(data.X, data.y, test_size, seed, stratify, "test")
    return X_rest, y_rest, Split(X_test, y_test)


def canonical_split(
    data: ArrayData, test_size: float = 0.2, val_size: float = 0.1, seed: int = 0
) -> Splits:
    """Split `data` into train/val/test, stratified by class for classification.

    `val_size` 0 gives an empty validation split: the training split is then everything
    but the test split, in the dataset's order (it is shuffled per epoch when batched).
    """
    stratify = data.task == "classification"
    X_rest, y_rest, test = _hold_out_test(data, test_size, seed, stratify)
    if val_size == 0:  # train on everything but the test split (a refit)
        return Splits(Split(X_rest, y_rest), Split(X_rest[:0], y_rest[:0]), test)
    X_train, X_val, y_train, y_val = _split(X_rest, y_rest, val_size, seed, stratify, "validation")
    return Splits(Split(X_train, y_train), Split(X_val, y_val), test)


def fold_split(data: ArrayData, k: int, fold: int, test_size: float = 0.2, seed: int = 0) -> Splits:
    """Fold `fold` of k-fold cross-validation: that fold validates, the others train.

    The test split is the canonical one (or the official test file) and stays out of
    every fold. Folds are stratified for classification and shuffled with `seed`.
    """
    from sklearn.model_selection import KFold, StratifiedKFold

    if not 0 <= fold < k:
        raise DataError(f"data.fold: {fold} is out of range for cv: {k} (use 0 to {k - 1})")
    stratify = data.task == "classification"
    X_rest, y_rest, test = _hold_out_test(data, test_size, seed, stratify)
    if stratify:
        values, counts = np.unique(y_rest, return_counts=True)
        if counts.min() < k:
            bad = values[counts.argmin()].item()
            raise DataError(
                f"cannot make {k} stratified folds: class {bad!r} has only {counts.min()} "
                f"samples outside the test split; lower data.cv or add samples of that class"
            )
        splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    else:
        if len(y_rest) < k:
            raise DataError(f"cannot make {k} folds of {len(y_rest)} samples; lower data.cv")
        splitter = KFold(n_splits=k, shuffle=True, random_state=seed)
    train_idx, val_idx = list(splitter.split(np.zeros(len(y_rest)), y_rest))[fold]
    return Splits(
        Split(X_rest[train_idx], y_rest[train_idx]), Split(X_rest[val_idx], y_rest[val_idx]), test
    )
