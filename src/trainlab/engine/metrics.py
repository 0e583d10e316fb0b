"""Evaluation metrics: classification (accuracy, F1, ROC-AUC) and regression (MAE, RMSE, R²)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


def predictions(outputs: torch.Tensor, target_kind: str) -> torch.Tensor:
    """Turn model outputs into predictions: class index, or regression values."""
    if target_kind == "multiclass":
        return outputs.argmax(dim=1)
    if target_kind == "binary":
        return (outputs.reshape(-1) > 0).long()
    return outputs.reshape(outputs.shape[0], -1).squeeze(1)


def scores(outputs: torch.Tensor, target_kind: str) -> np.ndarray:
    """Probabilities: (N, C) softmax for multiclass, (N,) P(class 1) for binary."""
    if target_kind == "multiclass":
        return torch.softmax(outputs.float(), dim=1).cpu().numpy()
    return torch.sigmoid(outputs.float().reshape(-1)).cpu().numpy()


def unscale(values: torch.Tensor, shift: Any = 0.0, scale: Any = 1.0) -> torch.Tensor:
    """Regression values the model works in → original units: `values * scale + shift`.

    `shift`/`scale` are plain numbers (or one per target column), the `TaskInfo`'s
    `target_shift`/`target_scale`; (0, 1) returns `values` unchanged.
    """
    if _is_identity(shift, scale):
        return values
    dtype = torch.float64 if values.device.type != "mps" else torch.float32
    v = values.to(dtype)
    s = torch.as_tensor(scale, dtype=dtype, device=values.device)
    b = torch.as_tensor(shift, dtype=dtype, device=values.device)
    return v * s + b


def _is_identity(shift: Any, scale: Any) -> bool:
    return bool(np.all(np.asarray(shift) == 0.0) and np.all(np.asarray(scale) == 1.0))


def compute_metrics(
    outputs: torch.Tensor,
    targets: torch.Tensor,
    target_kind: str,
    target_shift: Any = 0.0,
    target_scale: Any = 1.0,
) -> dict[str, float]:
    """Task metrics of a whole split (not including the loss).

    Regression outputs and targets are first un-scaled with `target_shift`/`target_scale`
    (see `unscale`), so mae, rmse and r2 are in the targets' original units.
    """
    if target_kind == "regression":
        outputs = unscale(outputs.float().reshape(targets.shape), target_shift, target_scale)
        targets = unscale(targets.float(), target_shift, target_scale)
        pred = outputs.cpu().numpy()
        true = targets.cpu().numpy()
        err = pred - true
        ss_tot = float(((true - true.mean()) ** 2).sum())
        return {
            "mae": float(np.abs(err).mean()),
            "rmse": float(np.sqrt((err**2).mean())),
            "r2": float(1.0 - (err**2).sum() / ss_tot) if ss_tot > 0 else 0.0,
        }
    pred = predictions(outputs, target_kind)
    result = {"accuracy": float((pred == targets).float().mean())}
    n_classes = outputs.shape[1] if target_kind == "multiclass" else 2
    if n_classes == 2:
        from sklearn.metrics import f1_score, roc_auc_score

        y = targets.cpu().numpy()
        p1 = scores(outputs, target_kind)
        p1 = p1[:, 1] if p1.ndim == 2 else p1
        result["f1"] = float(f1_score(y, pred.cpu().numpy(), zero_division=0))
        result["roc_auc"] = float(roc_auc_score(y, p1)) if len(np.unique(y)) == 2 else float("nan")
    return result
