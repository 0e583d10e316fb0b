"""Name → builder registries with metadata and did-you-mean errors.

Every pluggable part a recipe can name (datasets, models, activations, initializers,
losses, optimizers, schedules, techniques, samplers, pruners) lives in a `Registry`.
An entry carries its builder, a pydantic model of its parameters and a one-line
description, so the CLI can list what exists and a recipe is validated before any
work starts (timm's `OptimInfo` is the model).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from trainlab.errors import RecipeError
from trainlab.params import StrictModel

T = TypeVar("T")


class NoParams(StrictModel):
    """Parameter model for entries that take no parameters."""


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered builder.

    Args:
        params: pydantic model validating the entry's parameters (extra keys forbidden).
        metadata: free-form facts the CLI and validators may use (task, conflicts, …).
    """

    name: str
    builder: T
    description: str
    params: type[BaseModel] = NoParams
    metadata: dict[str, Any] = field(default_factory=dict)

    def validate_params(self, values: dict[str, Any], where: str) -> BaseModel:
        """Validate `values` against this entry's parameter model; RecipeError on failure."""
        try:
            return self.params(**values)
        except ValidationError as exc:
            raise RecipeError(format_validation_error(exc, prefix=where)) from None


class Registry(Generic[T]):
    """A named collection of builders of one kind (e.g. 'optimizer')."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}

    def register(
        self,
        name: str,
        *,
        description: str,
        params: type[BaseModel] = NoParams,
        **metadata: Any,
    ) -> Callable[[T], T]:
        """Decorator registering `builder` under `name`."""

        def decorate(builder: T) -> T:
            self.add(name, builder, description=description, params=params, **metadata)
            return builder

        return decorate

    def add(
        self,
        name: str,
        builder: T,
        *,
        description: str,
        params: type[BaseModel] = NoParams,
        **metadata: Any,
    ) -> None:
        """Register `builder` under `name`; a duplicate name is a programming error."""
        if name in self._entries:
            raise ValueError(f"{self.kind} '{name}' is already registered")
        self._entries[name] = Entry(name, builder, description, params, dict(metadata))

    def remove(self, name: str) -> None:
        """Unregister `name` (used by tests that add temporary entries)."""
        self._entries.pop(name, None)

    def get(self, name: str, where: str | None = None) -> Entry[T]:
        """The entry called `name`, or a RecipeError with the closest names."""
        try:
            return self._entries[name]
        except KeyError:
            raise RecipeError(self.unknown_message(name, where)) from None

    def unknown_message(self, name: str, where: str | None = None) -> str:
        """Message for an unknown name: what was asked, did-you-mean, what exists."""
        close = difflib.get_close_matches(str(name), self.names(), n=3, cutoff=0.5)
        hint = f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""
        place = f"{where}: " if where else ""
        return f"{place}unknown {self.kind} '{name}'; {hint}available: {', '.join(self.names())}"

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[Entry[T]]:
        return iter(self._entries[n] for n in self.names())

    def __len__(self) -> int:
        return len(self._entries)


def format_validation_error(exc: ValidationError, prefix: str = "", nested: bool = False) -> str:
    """One clause per problem: 'key.path: what is wrong (got VALUE)'.

    With `nested`, paths are written relative ('.momentum: …') so an enclosing model's
    error formatting can join them onto its own path ('train.optimizer.momentum: …').
    """
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err.get("loc", ()))
        path = ".".join(p for p in (prefix, loc) if p)
        msg = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
        got = err.get("input")
        plain = isinstance(got, dict) or err.get("type") == "value_error"
        shown = "" if plain else f" (got {got!r})"
        if msg.startswith("."):  # a nested model's relative path: join it onto ours
            rel, _, msg = msg.partition(": ")
            path = f"{path}{rel}" if path else rel.lstrip(".")
        if nested:
            parts.append(f".{path}: {msg}{shown}" if path else f"{msg}{shown}")
        else:
            parts.append(f"{path}: {msg}{shown}" if path else f"{msg}{shown}")
    return "; ".join(parts)
