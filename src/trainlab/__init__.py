"""trainlab: train a model from a recipe, find what holds it back, prove what helps.

Python API (the CLI calls the same functions):

    import trainlab
    run = trainlab.train("examples/mnist_mlp_dropout.yaml", overrides={"train.epochs": 2})
    run.metrics["test_accuracy"]
    model = trainlab.load(run.run_dir)
    model.predict(x)
"""

from trainlab.config import Recipe, load_recipe
from trainlab.errors import DataError, DivergenceError, RecipeError, RunError, TrainlabError
from trainlab.predict import Predictor, load
from trainlab.runs import Run, train

__version__ = "0.1.0"

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
