"""Datasets, splits, preprocessing and batching."""

from trainlab.data import loaders  # noqa: F401  (registers the file loaders)
from trainlab.data.arrays import ArrayData, Split, Splits
from trainlab.data.batching import TensorBatches
from trainlab.data.datasets import DATASETS
from trainlab.data.splits import canonical_split

__all__ = ["DATASETS", "ArrayData", "Split", "Splits", "TensorBatches", "canonical_split"]
