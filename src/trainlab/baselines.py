"""Baselines beside every run on a table: gradient boosting and a linear model, same split.

A network on a table has to beat scikit-learn's `HistGradientBoostingClassifier` /
`HistGradientBoostingRegressor` (defaults, `random_state=train.seed`, its own 'auto'
early stopping) and a linear model (`LogisticRegression(max_iter=1000)` / `Ridge`) to be
worth its training. `fit_baselines(prepared)` fits both on the preprocessed training
split the network trained on and scores them on the test split with the engine's own
metric functions (`engine.metrics.compute_metrics` and the recipe's loss), so their
numbers carry the network's test-metric names: `test_accuracy`, `test_f1`, … for
classification, `test_mae`, `test_rmse`, `test_r2` in the target's original units for
regression (the prepared targets are standardized; the baselines are fitted on the
original values and their predictions scaled back for the loss). Index-encoded category
columns are categorical features for gradient boosting and one-hot columns for the
linear model.

`train.baselines` chooses when: `auto` on a user's table (a csv file or a shipped table
such as adult: the preprocessing was fitted on named columns), `always` for any data
(images and token ids flattened), `none` never. Cheap by design: at most
`MAX_TRAIN_ROWS` training rows, tables below `THREADED_ROWS` rows on one thread. A
failing baseline is a warning and an `{"error": …}` entry, never a failed run.
"""

from __future__ import annotations

import time
import warnings
from contextlib import nullcontext
from typing import Any

import numpy as np
import torch

from trainlab import setup
from trainlab.engine.metrics import compute_metrics
from trainlab.prepare import Prepared
from trainlab.tasks import modality

#: The baselines, in the order they are fitted and shown.
BASELINES = ("hist_gradient_boosting", "linear")
#: Training rows a baseline sees at most (a seeded random subset of a larger split).
MAX_TRAIN_ROWS = 100_000
#: Below this many training rows the baselines run on one thread unless `train.threads`
#: says otherwise: OpenMP threads cost more than they save on small tables, and on a busy
#: machine they wait on each other (adult, 29k rows, on 2 busy cores: 2.5 s on one thread,
#: 10-37 s on two).
THREADED_ROWS = 50_000
#: Category codes gradient boosting can take as categorical (its max_bins).
MAX_CATEGORIES = 255
_EPS = 1e-7


def wants_baselines(recipe: Any, prepared: Prepared) -> bool:
    """Whether this run fits baselines: `train.baselines` (auto: a tabular user table)."""
    choice = getattr(recipe.train, "baselines", "auto")
    if choice == "none" or len(prepared.splits.test) == 0 or len(prepared.splits.train) < 2:
        return False
    if choice == "always":
        return True
    return modality(prepared.info) == "tabular" and bool(prepared.preprocessor.from_table)


def fit_baselines(prepared: Prepared) -> dict[str, dict[str, float]]:
    """Fit the baselines on the training split and score them on the test split.

    Returns `{"hist_gradient_boosting": {...}, "linear": {...}}`, each the network's
    test-metric keys (`test_loss`, `test_accuracy`, … or `test_mae`, `test_rmse`,
    `test_r2`) plus `fit_seconds` and `train_rows`; a baseline that raised is
    `{"error": message}` instead (and a warning).
    """
    from sklearn.exceptions import ConvergenceWarning

    X, y = _training_rows(prepared)
    X_test = _flat(prepared.splits.test.X)
    requested = prepared.recipe.train.threads
    threads = requested if isinstance(requested, int) else None  # auto: as the run chose
    threads = threads or (1 if len(X) < THREADED_ROWS else torch_threads())
    results: dict[str, dict[str, Any]] = {}
    for name in BASELINES:
        try:
            model = _build(name, prepared)
            with _thread_limit(threads if name == "hist_gradient_boosting" else 1):
                started = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", ConvergenceWarning)
                    model.fit(X, _fit_targets(y, prepared))
                seconds = time.perf_counter() - started
                outputs = _outputs(model, X_test, prepared)
            results[name] = {
                **_score(outputs, prepared),
                "fit_seconds": round(seconds, 4),
                "train_rows": len(X),
            }
        except Exception as exc:  # noqa: BLE001 - a baseline must never fail the run
            message = f"{type(exc).__name__}: {exc}"
            warnings.warn(f"baseline {name} failed: {message}", RuntimeWarning, stacklevel=2)
            results[name] = {"error": message}
    return results


def _flat(X: np.ndarray) -> np.ndarray:
    """Samples as flat feature vectors (images and token ids for `always`)."""
    return np.asarray(X).reshape(len(X), -1)


def _training_rows(prepared: Prepared) -> tuple[np.ndarray, np.ndarray]:
    """The training split (a seeded random `MAX_TRAIN_ROWS` subset of a larger one)."""
    train = prepared.splits.train
    X, y = _flat(train.X), np.asarray(train.y)
    if len(X) > MAX_TRAIN_ROWS:
        rng = np.random.default_rng(prepared.recipe.train.seed)
        keep = np.sort(rng.choice(len(X), MAX_TRAIN_ROWS, replace=False))
        X, y = X[keep], y[keep]
    return X, y


def torch_threads() -> int:
    """The intra-op thread count the run's thread policy set (threads.py)."""
    import torch

    return torch.get_num_threads()


def _thread_limit(threads: int | None):
    """OpenMP/BLAS threads for scikit-learn (`None`: its default)."""
    if threads is None:
        return nullcontext()
    from threadpoolctl import threadpool_limits

    return threadpool_limits(threads)


def _categorical_columns(prepared: Prepared) -> list[int]:
    """Index-encoded category columns (after the numeric ones), few enough categories."""
    features = prepared.info.features or {}
    cards = list(features.get("cardinalities") or [])
    if not cards or modality(prepared.info) != "tabular":
        return []
    first = int(features.get("numeric", 0))
    return [first + i for i, c in enumerate(cards) if int(c) <= MAX_CATEGORIES]


def _build(name: str, prepared: Prepared) -> Any:
    """An unfitted baseline estimator for the task."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.multioutput import MultiOutputRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    regression = prepared.info.target_kind == "regression"
    categorical = _categorical_columns(prepared)
    if name == "hist_gradient_boosting":
        kind = HistGradientBoostingRegressor if regression else HistGradientBoostingClassifier
        width = _flat(prepared.splits.train.X[:1]).shape[1]
        mask = [i in categorical for i in range(width)] if categorical else None
        model = kind(random_state=prepared.recipe.train.seed, categorical_features=mask)
        return MultiOutputRegressor(model) if regression and _targets(prepared) > 1 else model
    linear = Ridge() if regression else LogisticRegression(max_iter=1000)
    if not categorical:
        return linear
    onehot = OneHotEncoder(handle_unknown="ignore")
    columns = ColumnTransformer([("categories", onehot, categorical)], remainder="passthrough")
    return make_pipeline(columns, linear)


def _targets(prepared: Prepared) -> int:
    """Regression target columns."""
    y = np.asarray(prepared.splits.train.y)
    return 1 if y.ndim == 1 else int(y.shape[1])


def _fit_targets(y: np.ndarray, prepared: Prepared) -> np.ndarray:
    """Class indices, or regression targets in their original units (1-D for one)."""
    if prepared.info.target_kind != "regression":
        return y
    original = y.astype(np.float64) * _stat(prepared.info.target_scale) + _stat(
        prepared.info.target_shift
    )
    return original.ravel() if _targets(prepared) == 1 else original


def _stat(value: Any) -> np.ndarray:
    return np.asarray(value, dtype=np.float64)


def _outputs(model: Any, X: np.ndarray, prepared: Prepared) -> torch.Tensor:
    """What the network would output for these predictions: logits, or scaled values."""
    info = prepared.info
    if info.target_kind == "regression":
        pred = np.asarray(model.predict(X), dtype=np.float64).reshape(len(X), -1)
        scaled = (pred - _stat(info.target_shift)) / _stat(info.target_scale)
        return torch.as_tensor(scaled, dtype=torch.float32)
    proba = np.asarray(model.predict_proba(X), dtype=np.float64)
    classes = np.asarray(model.classes_).astype(int)
    if info.target_kind == "binary":
        p1 = proba[:, list(classes).index(1)] if 1 in classes else np.zeros(len(X))
        p1 = np.clip(p1, _EPS, 1 - _EPS)
        return torch.as_tensor(np.log(p1) - np.log1p(-p1), dtype=torch.float32).reshape(-1, 1)
    full = np.zeros((len(X), info.output_dim))
    full[:, classes] = proba
    return torch.as_tensor(np.log(np.clip(full, _EPS, 1.0)), dtype=torch.float32)


def _score(outputs: torch.Tensor, prepared: Prepared) -> dict[str, float]:
    """The network's test metrics of these outputs: the recipe's loss and the task metrics."""
    info = prepared.info
    test = prepared.splits.test
    _, targets = setup.to_tensors(test.X[:0], test.y, info, torch.device("cpu"))
    try:
        loss = float(prepared.build_loss()(outputs, targets))
    except Exception:  # noqa: BLE001 - a loss that cannot take these outputs: no loss
        loss = float("nan")
    metrics = {"loss": loss}
    metrics.update(
        compute_metrics(outputs, targets, info.target_kind, info.target_shift, info.target_scale)
    )
    return {f"test_{k}": v for k, v in metrics.items()}
