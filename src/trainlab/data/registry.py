"""The dataset registry: built-in datasets (`datasets.py`) and file loaders (`loaders.py`)
both register here, so neither module imports the other's registry."""

from __future__ import annotations

from trainlab.registry import Registry

DATASETS: Registry = Registry("dataset")
