"""One path from a recipe to what a fit, or any use of a model, needs.

`prepare(recipe)` loads the dataset, splits it (canonical split or the recipe's cv fold),
fits the preprocessing on the training rows only (regression targets are standardized
with the training targets' mean and std unless `target_scale: none`; `info.target_shift`
and `info.target_scale` turn model outputs back into original units), derives the task
facts (head size, input shape after encoding) and checks the features are finite.
Training, evaluation, prediction, the doctor, the LR finder and the model summary all
start here, and so do the capabilities that take a run (compress, transfer, export,
serve): a saved run is rebuilt exactly as it was trained. Nothing passed in is changed:
the dataset's arrays are read, never rewritten.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from trainlab import setup
from trainlab.config.schema import Recipe
from trainlab.data.arrays import ArrayData, Split, Splits
from trainlab.data.batching import TensorBatches
from trainlab.data.preprocess import Preprocessor
from trainlab.tasks import TaskInfo

SplitName = Literal["train", "val", "test"]


@dataclass(frozen=True)
class Prepared:
    """A recipe's data ready for a model: preprocessed splits, their fitted preprocessor,
    the task facts and the device the tensors go to."""

    recipe: Recipe
    data: ArrayData  # the dataset as loaded, with the model-input facts after encoding
    splits: Splits  # preprocessed
    preprocessor: Preprocessor
    info: TaskInfo
    device: torch.device

    def tensors(
        self, split: SplitName, limit: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """A split's features and targets on the device (its first `limit` rows)."""
        part = getattr(self.splits, split)
        X, y = (part.X, part.y) if limit is None else (part.X[:limit], part.y[:limit])
        return setup.to_tensors(X, y, self.info, self.device)

    def batches(
        self,
        split: SplitName,
        *,
        shuffle: bool = False,
        batch_size: int | None = None,
        limit: int | None = None,
        seed: int | None = None,
        shard: tuple[int, int] | None = None,
    ) -> TensorBatches:
        """Mini-batches of a split; training batch size when shuffled, else the eval one.
        `shard=(rank, processes)`: one process's part of a data-parallel fit (the batch
        size stays the global one)."""
        t = self.recipe.train
        size = batch_size or (t.batch_size if shuffle else t.eval_batch_size)
        seed = t.seed if seed is None else seed
        return TensorBatches(
            *self.tensors(split, limit), batch_size=size, shuffle=shuffle, seed=seed,
            shard=shard,
        )  # fmt: skip

    def build_model(self) -> nn.Module:
        """The recipe's architecture for this task on the device (initialised from the
        global RNG: seed it first)."""
        return setup.build_model(self.recipe, self.info).to(self.device)

    def build_loss(self) -> nn.Module:
        """The recipe's loss (or the task's default) for this task."""
        return setup.build_loss_fn(self.recipe, self.data.task, self.info)


def prepare(
    recipe: Recipe,
    device: torch.device | str = "cpu",
    *,
    data: ArrayData | None = None,
    preprocessor: Preprocessor | None = None,
    check_finite: bool = True,
) -> Prepared:
    """Load, split and preprocess a validated recipe's data; derive its task facts.

    `data` is the recipe's dataset when the caller already holds it in memory (it is
    read, not changed). `preprocessor` is a fitted one to apply instead of fitting
    anew: a saved run's, so its splits are exactly what it was trained and tested on.
    `check_finite` refuses NaN or infinite features after preprocessing (training needs
    that; a model summary does not).
    """
    data = setup.load_dataset(recipe) if data is None else data
    splits, pre, model_input = _preprocessed(recipe, data, preprocessor)
    shift, scale = pre.target_stats
    info = setup.task_info(recipe, model_input)
    table = model_input.extras.get("table")
    if table is not None:
        table = {**table, "imputed": pre.imputation_notes()}
    info = dataclasses.replace(info, target_shift=shift, target_scale=scale, table=table)
    if check_finite:
        setup.check_finite(splits, recipe.data.dataset.name)
    return Prepared(recipe, model_input, splits, pre, info, torch.device(device))


def _preprocessed(
    recipe: Recipe, data: ArrayData, fitted: Preprocessor | None
) -> tuple[Splits, Preprocessor, ArrayData]:
    """Raw splits → preprocessing fitted on train → new splits and a new description of
    the model's input (shape, feature names and facts after encoding and PCA)."""
    raw = setup.raw_splits(recipe, data)
    pre = fitted
    if pre is None:
        kinds = data.extras.get("column_kinds")
        names = data.feature_names if kinds else None
        pre = Preprocessor(recipe.data.preprocessing, names, kinds).fit(raw.train.X)
        pre.fit_target(raw.train.y, regression=data.task == "regression")
    y = pre.scale_target  # regression targets standardized (identity without target scaling)
    train = Split(pre.transform(raw.train.X), y(raw.train.y))
    val = Split(pre.transform(raw.val.X) if len(raw.val) else train.X[:0], y(raw.val.y))
    test = Split(pre.transform(raw.test.X) if len(raw.test) else raw.test.X, y(raw.test.y))
    input_shape = tuple(train.X.shape[1:])
    extras = dict(data.extras)
    features = pre.features()
    if features:
        extras["features"] = {**data.extras.get("features", {}), **features}
    names = data.feature_names
    if pre.output_names is not None:
        names = pre.output_names
    elif pre.p.get("pca_components") is not None:
        names = [f"pc{i + 1}" for i in range(input_shape[0])]
    described = dataclasses.replace(
        data, feature_names=names, extras=extras, input_shape=input_shape
    )
    return Splits(train, val, test), pre, described
