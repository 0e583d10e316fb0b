"""Seeding and deterministic execution: the same recipe and seed give the same numbers."""

from __future__ import annotations

import os
import random

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def derived_seed(*parts: int) -> int:
    """A 63-bit seed for a stream identified by `parts` (seed, epoch, batch, …).

    Hashing through NumPy's SeedSequence keeps streams independent: adding the parts
    (`seed + epoch`) would give seed 1's first epoch the order of seed 0's second, so
    "different seeds" would share most of their shuffles.
    """
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1, np.uint64)[0] >> 1)


def configure(
    deterministic: bool, threads: int | None, device: torch.device | None = None
) -> dict[str, object]:
    """Apply determinism and thread settings; return what is in force, for the run record.

    On the CPU, seeded generators and a fixed thread count already make training
    repeatable, so torch's global deterministic-algorithms switch (which costs seconds
    of imports per process) is only turned on for accelerators, where atomics in
    cuDNN/cuBLAS kernels would otherwise change results from run to run.
    """
    if threads is not None:
        torch.set_num_threads(threads)
    accelerated = device is not None and device.type != "cpu"
    if deterministic and accelerated:
        # cuBLAS needs a fixed workspace for reproducible GEMMs.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        if torch.backends.cudnn.is_available():
            torch.backends.cudnn.benchmark = False
            torch.backends.cudnn.deterministic = True
    return {"deterministic": deterministic, "threads": torch.get_num_threads()}


def resolve_device(name: str) -> torch.device:
    """'auto' → cuda if available, else cpu; an unavailable device is a clear error."""
    from trainlab.errors import RecipeError

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RecipeError(
            f"train.device: '{name}' requested but no CUDA device is available; use auto or cpu"
        )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise RecipeError("train.device: 'mps' requested but not available; use auto or cpu")
    return device
