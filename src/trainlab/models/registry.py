"""The model registry: architecture name → builder(params, info: TaskInfo) -> nn.Module."""

from __future__ import annotations

from trainlab.registry import Registry

MODELS: Registry = Registry("model")
