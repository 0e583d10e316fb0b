"""A record of the machine and library versions a run used.

`python -m trainlab.environment` prints the same facts as two lines (`make test` shows
them above the test results).
"""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata
from typing import Any

import torch

# The distributions whose versions every run records (names as their projects spell them).
PACKAGES = (
    "trainlab",
    "torch",
    "numpy",
    "scipy",
    "scikit-learn",
    "pydantic",
    "safetensors",
    "optuna",
    "SQLAlchemy",
    "PyYAML",
)


def package_versions() -> dict[str, str | None]:
    """The installed version of each of PACKAGES; None where one is not installed."""
    versions: dict[str, str | None] = {}
    for pkg in PACKAGES:
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    return versions


def describe(device: torch.device) -> dict[str, Any]:
    """Versions, device and thread facts worth keeping beside every run."""
    env: dict[str, Any] = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
        "versions": package_versions(),
    }
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
        env["cuda"] = torch.version.cuda
    return env


def summary() -> str:
    """Two lines: the interpreter and threads, then every recorded package version."""
    env = describe(torch.device("cpu"))
    head = (
        f"python {env['python']} on {env['platform']} · "
        f"torch threads {env['torch_threads']} of {env['cpu_count']} cores"
    )
    if torch.cuda.is_available():
        head += f" · cuda {torch.version.cuda} ({torch.cuda.get_device_name(0)})"
    versions = " · ".join(f"{pkg} {ver or 'absent'}" for pkg, ver in env["versions"].items())
    return f"{head}\n{versions}"


if __name__ == "__main__":
    print(summary())
