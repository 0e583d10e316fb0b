"""trainlab: train a model from a recipe, find what holds it back, prove what helps.

Python API (the CLI calls the same functions):

    import trainlab
    run = trainlab.train("examples/mnist_mlp_dropout.yaml", overrides={"train.epochs": 2})
    run.metrics["test_accuracy"]
    model = trainlab.load(run.run_dir)
    model.predict(x)
"""

from typing import TYPE_CHECKING

from trainlab.errors import DataError, DivergenceError, RecipeError, RunError, TrainlabError
from trainlab.lazy import lazy_getattr

__version__ = "0.1.0"

# The heavy parts (torch, scikit-learn) load on first use, so `trainlab --help` is quick.
_LAZY = {
    "Recipe": "trainlab.config",
    "load_recipe": "trainlab.config",
    "Predictor": "trainlab.predict",
    "load": "trainlab.predict",
    "Run": "trainlab.runs",
    "train": "trainlab.runs",
}

if TYPE_CHECKING:
    from trainlab.config import Recipe, load_recipe
    from trainlab.predict import Predictor, load
    from trainlab.runs import Run, train


__getattr__ = lazy_getattr(__name__, _LAZY, globals())

__all__ = [
    "DataError",
    "DivergenceError",
    "Predictor",
    "Recipe",
    "RecipeError",
    "Run",
    "RunError",
    "TrainlabError",
    "load",
    "load_recipe",
    "train",
]
