"""Helpers the monitors share: where diagnostics go, atomic JSON, per-layer norms.

Free of technique imports, so the monitors can import it while `trainlab.techniques`
is still registering them.
"""

from __future__ import annotations

from pathlib import Path

import torch

from trainlab.engine.state import State


def diagnostics_dir(state: State) -> Path | None:
    """`<run_dir>/diagnostics`, or None when the fit has no run directory."""
    return state.run_dir / "diagnostics" if state.run_dir is not None else None


def weight_params(model: torch.nn.Module) -> list[tuple[str, torch.nn.Parameter]]:
    """The trainable weight matrices and kernels (≥2-D), in model order: the 'layers'."""
    return [(n, p) for n, p in model.named_parameters() if p.requires_grad and p.ndim >= 2]


def layer_norms(model: torch.nn.Module) -> dict[str, dict[str, float | None]]:
    """Gradient and weight L2 norm of every parameter (for error messages)."""
    found: dict[str, dict[str, float | None]] = {}
    for n, p in model.named_parameters():
        g = float(p.grad.detach().norm()) if p.grad is not None else None
        found[n] = {"grad_norm": g, "weight_norm": float(p.detach().norm())}
    return found
