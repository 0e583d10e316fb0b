"""Architectures, activations, initializers, normalization layers and model building."""

from trainlab.models import cnn, imagenet, mlp, resnet, tabular, text, vgg  # noqa: F401  (register them)
from trainlab.models.activations import ACTIVATIONS, ActivationSpec, make_activation
from trainlab.models.init import INIT_PRESETS, INITIALIZERS, InitSpec, initialize
from trainlab.models.layers import AttentionPooling, GlobalAvgPool, MixtureOfExperts
from trainlab.models.norms import BatchRenorm, NormSpec, make_norm
from trainlab.models.registry import MODELS

__all__ = [
    "ACTIVATIONS",
    "INITIALIZERS",
    "INIT_PRESETS",
    "MODELS",
    "ActivationSpec",
    "AttentionPooling",
    "BatchRenorm",
    "GlobalAvgPool",
    "InitSpec",
    "MixtureOfExperts",
    "NormSpec",
    "initialize",
    "make_activation",
    "make_norm",
]
