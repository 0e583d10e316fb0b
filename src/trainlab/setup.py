"""The parts a recipe is built from: its dataset and split, task facts, model, loss and
tensors. `prepare` and `assembly` put them together; nothing else should need to.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from trainlab.config.schema import LossSpec, Recipe
from trainlab.data.arrays import ArrayData, Splits
from trainlab.data.splits import canonical_split
from trainlab.data.subsets import kept_names, subset_splits
from trainlab.errors import DataError, RecipeError
from trainlab.tasks import TaskInfo

REGRESSION_LOSSES_HINT = "mse, mae, huber or smooth_l1"


def load_dataset(recipe: Recipe) -> ArrayData:
    """Build the recipe's dataset from its registry entry."""
    spec = recipe.data.dataset
    return spec.entry.builder(spec.params)


def loss_spec(recipe: Recipe, data_task: str) -> LossSpec:
    """The recipe's loss, or the natural default for the task."""
    if recipe.train.loss is not None:
        return recipe.train.loss
    return LossSpec(name="cross_entropy" if data_task == "classification" else "mse")


def task_info(recipe: Recipe, data: ArrayData) -> TaskInfo:
    """Check the loss fits the data and derive the head size.

    With `data.classes` the task is the kept classes: k outputs, named as the dataset
    names them (so predictions read as the original labels).
    """
    spec = loss_spec(recipe, data.task)
    classes, num_classes = data.classes, data.num_classes
    if recipe.data.classes is not None and data.task == "classification":
        classes = kept_names(recipe.data.classes, data, recipe.data.dataset.name)
        num_classes = len(classes)
    kind = spec.entry.metadata.get("target", "multiclass")
    name = spec.name
    if kind == "regression" and data.task != "regression":
        raise RecipeError(
            f"train.loss: '{name}' is a regression loss but dataset "
            f"'{recipe.data.dataset.name}' is classification; "
            "use cross_entropy (or bce for 2 classes)"
        )
    if kind in ("multiclass", "binary") and data.task != "classification":
        raise RecipeError(
            f"train.loss: '{name}' is a classification loss but dataset "
            f"'{recipe.data.dataset.name}' is regression; use {REGRESSION_LOSSES_HINT}"
        )
    if kind == "binary" and num_classes != 2:
        raise RecipeError(
            f"train.loss: 'bce' needs exactly 2 classes, dataset has {num_classes}; "
            "use cross_entropy"
        )
    if kind == "multiclass":
        out = int(num_classes)
    elif kind == "binary":
        out = 1
    else:
        out = 1 if data.y.ndim == 1 else int(data.y.shape[1])
    return TaskInfo(
        kind,
        out,
        data.feature_shape,
        classes,
        data.feature_names,
        dict(data.extras.get("features", {})),
    )


def raw_splits(recipe: Recipe, data: ArrayData) -> Splits:
    """The run's train/val/test rows before preprocessing: canonical, or its cv fold.

    `data.classes` and `data.train_per_class` then act on those splits (data/subsets.py):
    the kept classes' rows of each split, relabelled 0…k−1, and N training rows per
    class; a cv fold is split from the whole dataset and filtered the same way.
    """
    cfg = recipe.data
    if cfg.cv and cfg.fold is not None:
        from trainlab.data.splits import fold_split

        splits = fold_split(data, cfg.cv, cfg.fold, cfg.test_size, cfg.split_seed)
    else:
        splits = canonical_split(data, cfg.test_size, cfg.val_size, cfg.split_seed)
    return subset_splits(
        splits, data, cfg.classes, cfg.train_per_class, cfg.split_seed, cfg.dataset.name
    )


def check_finite(splits: Splits, dataset: str) -> None:
    """Refuse NaN or infinite features: they would silently poison training."""
    for split_name in ("train", "val", "test"):
        X = getattr(splits, split_name).X
        if X.dtype.kind not in "fc":
            continue
        if not np.isfinite(X).all():
            flat = X.reshape(len(X), -1)
            bad_rows = int((~np.isfinite(flat)).any(axis=1).sum())
            col = int(np.argmax((~np.isfinite(flat)).any(axis=0)))
            raise DataError(
                f"data: dataset '{dataset}' has {bad_rows} {split_name} rows with NaN or "
                f"infinite features (first in feature {col}); set data.preprocessing.impute "
                "or clean the file"
            )


def build_model(recipe: Recipe, info: TaskInfo) -> nn.Module:
    """The recipe's architecture for this task (weights initialised from the global RNG)."""
    spec = recipe.model
    if info.features.get("kind") == "text" and spec.entry.metadata.get("inputs") != "text":
        # the text models check the converse themselves
        raise RecipeError(
            f"model: '{spec.name}' takes numeric features, but dataset "
            f"'{recipe.data.dataset.name}' is text (token ids); use text_cnn or text_rnn"
        )
    try:
        model = spec.entry.builder(spec.params, info)
        if recipe.compression is not None and recipe.compression.shapes:
            _resize(model, recipe.compression.shapes, getattr(spec.params, "init", None))
        return model
    except ValueError as exc:
        raise RecipeError(f"model: {exc}") from None


def _resize(model: nn.Module, shapes: dict[str, list[int]], init: Any) -> None:
    """A compressed run's pruned layers at their saved sizes, initialised as the recipe
    initialises (what training the pruned architecture from scratch starts from)."""
    from trainlab.models.init import initialize
    from trainlab.models.structure import apply_shapes

    for name in apply_shapes(model, shapes):
        if init is not None:
            initialize(model.get_submodule(name), init)


def build_loss_fn(recipe: Recipe, data_task: str, info: TaskInfo) -> nn.Module:
    """The loss module for this recipe and task."""
    from trainlab.optim.losses import build_loss

    spec = loss_spec(recipe, data_task)
    return build_loss(spec.name, spec.params, num_classes=len(info.classes or []) or None)


def to_tensors(
    X: np.ndarray, y: np.ndarray, info: TaskInfo, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Features on `device`: token ids (integer arrays) as int64, everything else float32.

    Targets get the dtype the loss expects.
    """
    x_dtype = torch.long if np.asarray(X).dtype.kind in "iu" else torch.float32
    xt = torch.as_tensor(np.ascontiguousarray(X), dtype=x_dtype, device=device)
    dtype = torch.float32 if info.target_kind == "regression" else torch.long
    yt = torch.as_tensor(np.ascontiguousarray(y), dtype=dtype, device=device)
    return xt, yt
