"""Fixtures for technique tests: scikit-learn's real digits as 1x8x8 images, small recipes.

The digits are registered as a test-only dataset `digits_images` (8x8 images, the first
`N_IMAGES` samples) so every technique — image-only ones like cutmix and channels_last,
and stochastic depth on a ResNet — runs on the same real data in a fraction of a second.
"""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest

from trainlab.engine import Technique

N_IMAGES = 600


def _digits_images(params) -> object:
    from sklearn.datasets import load_digits

    from trainlab.data.arrays import ArrayData

    bunch = load_digits()
    X = (bunch.data[:N_IMAGES].astype(np.float32) / 16.0).reshape(-1, 1, 8, 8)
    y = bunch.target[:N_IMAGES].astype(np.int64)
    return ArrayData(X, y, "classification", [str(c) for c in range(10)], source="digits")


def _polarity_small(params) -> object:
    from trainlab.data.datasets import DATASETS

    entry = DATASETS.get("rt_polarity")
    full = entry.builder(entry.params())
    n = len(full.y)
    idx = np.r_[0 : N_SENTENCES // 2, n - N_SENTENCES // 2 : n]  # both classes
    return dataclasses.replace(full, X=full.X[idx], y=full.y[idx])


N_SENTENCES = 800


@pytest.fixture(scope="session", autouse=True)
def small_datasets():
    """Register `digits_images` and `polarity_small` for the session (removed afterwards)."""
    from trainlab.data.datasets import DATASETS

    added = []
    for name, builder, text in (
        ("digits_images", _digits_images, "first 600 sklearn digits as 1x8x8 images"),
        ("polarity_small", _polarity_small, "400 negative + 400 positive rt_polarity snippets"),
    ):
        if name not in DATASETS:
            DATASETS.add(name, builder, description=f"test only: {text}", task="classification")
            added.append(name)
    yield
    for name in added:
        DATASETS.remove(name)


#: An MLP with batch norm and dropout on the digit images: every technique has something
#: to act on (BN for swa, dropout layers for dropout, 4-D batches for cutmix and
#: channels_last). Techniques that need a residual network override `model` (settings.py).
IMAGES = {
    "name": "tech",
    "data": {"dataset": "digits_images"},
    "model": {"name": "mlp", "hidden": [32], "norm": "batch", "dropout": 0.1},
    "train": {"epochs": 3, "batch_size": 64, "lr": 0.01, "threads": 1},
}

#: Sentences for text-only techniques (token_dropout): a tiny Kim-style text CNN.
TEXT = {
    **IMAGES,
    "data": {"dataset": "polarity_small"},
    "model": {"name": "text_cnn", "embedding_dim": 16, "filters": 8, "dropout": 0.1},
}

#: ResNet-8 (one block per stage) at quarter width, for stochastic depth.
RESNET = {"name": "resnet", "depth": 8, "width": 0.25, "dropout": 0.1}


@pytest.fixture
def images_recipe() -> dict:
    """The base recipe of the conformance tests (a fresh copy)."""
    return copy.deepcopy(IMAGES)


class CrashAt(Technique):
    """Simulates a crash (an exception escaping the fit) in the middle of an epoch."""

    order = 2000

    def __init__(self, epoch: int, batch: int) -> None:
        self.epoch, self.batch = epoch, batch

    def on_batch_end(self, state):
        if state.epoch == self.epoch and state.batch_index == self.batch:
            raise KeyboardInterrupt
