"""Helpers for the diagnostics tests: the broken example recipes and a small digits MLP."""

from __future__ import annotations

import copy

import pytest

from ..conftest import EXAMPLES

BROKEN = EXAMPLES / "broken"

__all__ = ["BROKEN", "EXAMPLES", "HEALTHY_DIGITS"]

HEALTHY_DIGITS = {
    "name": "healthy_digits",
    "data": {"dataset": "digits", "preprocessing": {"scale": "minmax"}},
    "model": {"name": "mlp", "hidden": [64], "activation": "relu"},
    "train": {"epochs": 12, "batch_size": 32, "lr": 0.001, "optimizer": "adam"},
}


@pytest.fixture
def healthy_recipe() -> dict:
    """A well-set-up digits MLP (Adam 1e-3, ReLU, 64 units): nothing to diagnose."""
    return copy.deepcopy(HEALTHY_DIGITS)
