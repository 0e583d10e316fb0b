"""The `features` dataset: another run's layer outputs as the features of a new task.

Seed 000 §4.1 builds a `feature_model` that outputs a trained network's layer −2 and
feeds those features to another task. In a recipe that is a dataset:

```yaml
data:
  dataset: {name: features, run: runs/mnist_cnn, layer: "-2", of: mnist}
model: {name: mlp, hidden: []}        # a logistic regression on the features
```

`run` is a finished run (only read), `layer` any name `trainlab models --layers RUN`
lists (or a negative index of a top-level child), `of` the dataset whose samples go
through it — a dataset name or `{name: …, options…}`; left out, the source run's own
dataset. Each sample is preprocessed as the source run preprocesses (its saved fit, not
a refit), passed through the source model in eval mode without gradients, and the
layer's output flattened into one row; targets, classes and the official test split are
the dataset's, so `data.classes`, `data.train_per_class` and the splits work as on any
dataset. The recipe's own preprocessing then applies to the feature rows (e.g.
`scale: standard` for a linear model).

Predictions of a run trained this way take feature rows, not the source's raw inputs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import Field

from trainlab.data.arrays import ArrayData
from trainlab.data.registry import DATASETS
from trainlab.errors import RecipeError
from trainlab.params import StrictModel


class FeaturesParams(StrictModel):
    """Options of the `features` dataset."""

    #: the run directory whose model gives the features (only read)
    run: str = Field(min_length=1)
    #: the layer: a module name (`features.3`) or a negative index of a top-level child
    layer: str = Field(min_length=1)
    #: the dataset whose samples become features: a name or {name: …, options…};
    #: None: the source run's own dataset
    of: str | dict[str, Any] | None = None
    batch_size: int = Field(256, ge=1)


@DATASETS.register(
    "features",
    description="Another run's layer outputs as features: {run: RUN, layer: NAME, of: DATASET}",
    params=FeaturesParams,
    task="auto",
    source="a trained run's layer outputs",
)
def load_features(params: FeaturesParams) -> ArrayData:
    """The `of` dataset with every sample replaced by the source run's `layer` output."""
    from trainlab.predict import load

    source = load(_existing_run(params.run))
    data = _source_dataset(params.of, source.run.recipe)
    train = _layer_rows(source, data.X, params)
    test = _layer_rows(source, data.X_test, params) if data.X_test is not None else None
    return ArrayData(
        X=train,
        y=data.y,
        task=data.task,
        classes=data.classes,
        feature_names=[f"{params.layer}[{i}]" for i in range(train.shape[1])],
        X_test=test,
        y_test=data.y_test,
        source=f"features of {data.source or 'the dataset'} at layer {params.layer} "
        f"of run {params.run}",
        extras={"features_of": {"run": str(params.run), "layer": params.layer}},
    )


def _existing_run(run: str) -> Path:
    """The source run's directory, or a RecipeError saying how to make it."""
    path = Path(run)
    if not (path / "run.json").is_file():
        raise RecipeError(
            f"data.dataset.run: '{run}' is not a trainlab run directory (no run.json); "
            "train the source first (`trainlab train RECIPE --out DIR`) and name its directory"
        )
    return path


def _source_dataset(of: str | dict[str, Any] | None, source_recipe: Any) -> ArrayData:
    """The raw dataset `of` names (validated like any recipe's), or the source run's."""
    from trainlab.config.schema import DatasetSpec

    if of is None:
        spec = source_recipe.data.dataset
    else:
        try:
            spec = DatasetSpec.model_validate({"name": of} if isinstance(of, str) else of)
        except ValueError as exc:
            raise RecipeError(f"data.dataset.of: {exc}") from None
    if spec.name == "features":
        raise RecipeError("data.dataset.of: features of features are not supported; "
                          "name the raw dataset")  # fmt: skip
    return spec.entry.builder(spec.params)


def _layer_rows(source: Any, raw: np.ndarray, params: FeaturesParams) -> np.ndarray:
    """Raw samples → the source run's preprocessing → its model → `layer`, one row each."""
    from trainlab.features import extract

    pre = source.preprocessor
    ready = pre.transform(raw)
    dtype = torch.long if pre.kind == "text" else torch.float32
    x = torch.as_tensor(np.asarray(ready), dtype=dtype, device=source.device)
    return extract(source.model, x, params.layer, params.batch_size)
