"""Loggers: a run's scalars, recipe and final metrics also sent where people look at them.

`train.loggers: [tensorboard, mlflow, csv]` adds one engine subscriber (`Logging`) that
samples the training loss and learning rate, writes every epoch's history row and, at the
end, metrics.json's values (and, for MLflow, the model). TensorBoard and MLflow are the
optional extra `pip install 'trainlab[loggers]'`; their libraries are imported when a
recipe asks for them, never by `import trainlab`. See docs/loggers.md.
"""

from trainlab.loggers.base import Ending, LogContext, Logger, Point, flatten_recipe
from trainlab.loggers.registry import LOGGERS, build_loggers
from trainlab.loggers.subscriber import Logging

__all__ = [
    "LOGGERS",
    "Ending",
    "LogContext",
    "Logger",
    "Logging",
    "Point",
    "build_loggers",
    "flatten_recipe",
]
