"""Architectures, activations and model building."""

from trainlab.models import cnn, mlp  # noqa: F401  (register the built-in architectures)
from trainlab.models.activations import ACTIVATIONS
from trainlab.models.registry import MODELS

__all__ = ["ACTIVATIONS", "MODELS"]
