"""A record of the machine and library versions a run used."""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata
from typing import Any

import torch


def describe(device: torch.device) -> dict[str, Any]:
    """Versions, device and thread facts worth keeping beside every run."""
    versions = {}
    for pkg in ("trainlab", "torch", "numpy", "scikit-learn", "pydantic", "safetensors"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    env: dict[str, Any] = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
        "versions": versions,
    }
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
        env["cuda"] = torch.version.cuda
    return env
