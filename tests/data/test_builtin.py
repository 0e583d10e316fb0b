"""Built-in datasets, the canonical split and batching."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from trainlab.data import DATASETS, TensorBatches, canonical_split
from trainlab.errors import DataError


def test_mnist_is_the_real_test_set():
    data = DATASETS.get("mnist").builder(None)
    assert data.X.shape == (10000, 1, 28, 28) and data.X.dtype == np.float32
    assert 0.0 <= data.X.min() and data.X.max() == 1.0
    counts = np.bincount(data.y, minlength=10).tolist()
    assert counts == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert data.y[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]


def test_canonical_split_matches_sklearn_recipe():
    from sklearn.model_selection import train_test_split

    data = DATASETS.get("digits").builder(None)
    splits = canonical_split(data)
    X_rest, X_test, y_rest, y_test = train_test_split(
        data.X, data.y, test_size=0.2, stratify=data.y, random_state=0
    )
    assert np.array_equal(splits.test.X, X_test)
    _, X_val, _, _ = train_test_split(
        X_rest, y_rest, test_size=0.1, stratify=y_rest, random_state=0
    )
    assert np.array_equal(splits.val.X, X_val)
    assert len(splits.train) + len(splits.val) + len(splits.test) == len(data.y)
    # stratified: class proportions in test within one sample of the whole
    for c in range(10):
        assert abs((splits.test.y == c).sum() - 0.2 * (data.y == c).sum()) <= 1


def test_stratifying_a_singleton_class_is_a_clear_error():
    from trainlab.data.arrays import ArrayData

    X = np.zeros((11, 2), np.float32)
    y = np.array([0] * 10 + [1])
    with pytest.raises(DataError, match="class 1 has only 1 sample"):
        canonical_split(ArrayData(X, y, "classification", ["a", "b"]))


def test_batches_cover_every_sample_once_in_a_seeded_order():
    X = torch.arange(10.0).unsqueeze(1)
    y = torch.arange(10)
    batches = TensorBatches(X, y, batch_size=4, shuffle=True, seed=3)
    assert len(batches) == 3
    first = torch.cat([b[1] for b in batches])
    assert sorted(first.tolist()) == list(range(10))
    assert torch.equal(first, torch.cat([b[1] for b in batches]))  # same epoch → same order
    batches.set_epoch(1)
    assert not torch.equal(first, torch.cat([b[1] for b in batches]))
    for xb, yb in batches:
        assert torch.equal(xb.squeeze(1).long(), yb)  # features stay paired with targets


def test_different_seeds_never_share_an_epoch_order():
    # seeding by seed + epoch would give seed 1's epoch 0 the order of seed 0's epoch 1:
    # "independent" seeds of a study would then share most of their shuffles
    y = torch.arange(1000)
    orders = {}
    for seed in range(4):
        batches = TensorBatches(y.unsqueeze(1).float(), y, batch_size=1000, shuffle=True, seed=seed)
        for epoch in range(4):
            batches.set_epoch(epoch)
            orders[seed, epoch] = tuple(next(iter(batches))[1].tolist())
    assert len(set(orders.values())) == 16
