"""Exception types for user mistakes, one per kind.

Every message names the offending key, file or value and says how to fix it. The CLI
prints these on one line and exits non-zero; anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations


class TrainlabError(Exception):
    """Base of every error caused by user input rather than by a bug in trainlab."""


class RecipeError(TrainlabError):
    """A recipe key, value or name is wrong (unknown key, bad value, unknown name)."""


class DataError(TrainlabError):
    """Input data is missing, malformed or inconsistent with what the run expects."""


class RunError(TrainlabError):
    """A run directory or run store is missing, locked, corrupt or mismatched."""


class DivergenceError(TrainlabError):
    """Training produced a non-finite loss; the last good checkpoint is kept."""
