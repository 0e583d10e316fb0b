"""Search spaces over dotted recipe keys: parsing, validation against the recipe, sampling.

A space file maps dotted recipe keys to what each may take:

    train.lr:          {low: 1.0e-4, high: 1.0e-1, log: true, grid: [1.0e-3, 1.0e-2]}
    train.batch_size:  [32, 64, 128]                         # shorthand for choices
    model.hidden:      {choices: [[64], [128], [256]]}       # lists are fine as choices
    model.dropout:     {low: 0.0, high: 0.5, step: 0.1}
    train.optimizer.name: {choices: [adam, sgd]}
    train.optimizer.momentum: {low: 0.5, high: 0.99, when: {train.optimizer.name: sgd}}

Kinds: float (optionally `log`, `step`), int (optionally `log`, `step`), categorical
(`choices`). `when` makes a key conditional: it is sampled (and set) only when every named
key has one of the given values. `grid` lists the values the grid sampler visits for a
numeric key. Every key is checked against the recipe schema before any trial runs.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from trainlab.config.loading import apply_overrides, read_yaml
from trainlab.config.schema import Recipe, validate_recipe
from trainlab.errors import RecipeError

SCALAR = (str, int, float, bool, type(None))
KINDS = ("float", "int", "categorical")
SPEC_KEYS = {"type", "low", "high", "log", "step", "choices", "when", "grid"}
#: The grid sampler enumerates an int range without an explicit `grid` up to this size.
MAX_IMPLICIT_GRID = 32


@dataclass(frozen=True)
class Param:
    """One searchable recipe key: its kind, range or choices, and its condition."""

    key: str
    kind: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] = ()
    when: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    grid: tuple[Any, ...] | None = None

    def distribution(self) -> BaseDistribution:
        """The Optuna distribution; non-scalar choices (lists) are stored as their JSON."""
        if self.kind == "float":
            return FloatDistribution(self.low, self.high, log=self.log, step=self.step)
        if self.kind == "int":
            return IntDistribution(int(self.low), int(self.high), log=self.log, step=self.step or 1)
        return CategoricalDistribution([encode(c) for c in self.choices])

    def active(self, values: dict[str, Any]) -> bool:
        """Whether this key is used given the values already chosen for its conditions."""
        return all(values.get(k, _MISSING) in allowed for k, allowed in self.when.items())

    def grid_values(self) -> list[Any]:
        """The finite set of values the grid sampler visits (decoded)."""
        if self.grid is not None:
            return list(self.grid)
        if self.kind == "categorical":
            return list(self.choices)
        if self.kind == "int":
            step = int(self.step or 1)
            values = list(range(int(self.low), int(self.high) + 1, step))
            if len(values) <= MAX_IMPLICIT_GRID:
                return values
        raise RecipeError(
            f"search space: '{self.key}' is a {self.kind} range; the grid sampler needs a "
            f"finite set: add `grid: [v1, v2, ...]` to it"
        )

    def extremes(self) -> list[Any]:
        """Values that probe the edges of the range (used to validate against the recipe)."""
        if self.kind == "categorical":
            return list(self.choices)
        values = [self.low, self.high, *(self.grid or ())]
        return [int(v) for v in values] if self.kind == "int" else values


_MISSING = object()


def encode(value: Any) -> Any:
    """A categorical choice as Optuna stores it: scalars as-is, anything else as JSON text."""
    return value if isinstance(value, SCALAR) else json.dumps(value)


class SearchSpace:
    """An ordered set of `Param`s; conditions always come after the keys they test."""

    def __init__(self, params: list[Param], source: str = "search space") -> None:
        self.params = _order(params, source)
        self.source = source
        self._by_key = {p.key: p for p in self.params}

    def __len__(self) -> int:
        return len(self.params)

    def __iter__(self):
        return iter(self.params)

    @property
    def keys(self) -> list[str]:
        """The dotted keys, in sampling order."""
        return [p.key for p in self.params]

    def digest(self) -> str:
        """Stable hash of the space: a study refuses to continue with a different one."""
        blob = json.dumps([_param_json(p) for p in self.params], sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def suggest(self, trial: optuna.Trial) -> dict[str, Any]:
        """Ask the trial for a value of every active key; returns dotted-key overrides."""
        values: dict[str, Any] = {}
        for p in self.params:
            if not p.active(values):
                continue
            dist = p.distribution()
            if isinstance(dist, FloatDistribution):
                v = trial.suggest_float(p.key, dist.low, dist.high, log=dist.log, step=dist.step)
            elif isinstance(dist, IntDistribution):
                v = trial.suggest_int(p.key, dist.low, dist.high, log=dist.log, step=dist.step)
            else:
                v = self.decode(p.key, trial.suggest_categorical(p.key, dist.choices))
            values[p.key] = v
        return values

    def decode(self, key: str, stored: Any) -> Any:
        """The recipe value of a parameter as Optuna stores it (inverse of `encode`)."""
        p = self._by_key.get(key)
        if p is None or p.kind != "categorical":
            return stored
        for choice in p.choices:
            if encode(choice) == stored:
                return choice
        return stored

    def overrides(self, params: dict[str, Any]) -> dict[str, Any]:
        """Dotted-key overrides for a trial's stored params, in sampling order."""
        return {k: self.decode(k, params[k]) for k in self.keys if k in params}

    def grid_points(self) -> list[dict[str, Any]]:
        """Every distinct valid combination, conditional keys only where their condition holds.

        Values are in Optuna's stored form (lists encoded) so they can be fixed on a trial.
        """
        points: list[dict[str, Any]] = [{}]
        for p in self.params:
            grown = []
            for point in points:
                decoded = {k: self.decode(k, v) for k, v in point.items()}
                if not p.active(decoded):
                    grown.append(point)
                    continue
                grown.extend({**point, p.key: encode(v)} for v in p.grid_values())
            points = grown
        return points

    def validate(self, recipe: Recipe) -> None:
        """Apply every edge value of every key to the recipe and validate it; RecipeError.

        Each key is tried at its low and high (or each choice) with the other keys at their
        first value and the conditions it needs satisfied, so an unknown key, a value the
        schema refuses or a wrong type is reported before a single trial runs.
        """
        base_data = recipe.to_dict()
        base = self._base_values()
        for p in self.params:
            for value in p.extremes():
                values = dict(base)
                for cond_key, allowed in p.when.items():
                    values[cond_key] = allowed[0]
                values[p.key] = value
                active = self._active_only(values)
                try:
                    validate_recipe(apply_overrides(base_data, active), "recipe")
                except RecipeError as exc:
                    raise RecipeError(
                        f"{self.source}: key '{p.key}' = {value!r} does not fit the recipe: "
                        f"{str(exc).removeprefix('recipe: ')}"
                    ) from None

    def _base_values(self) -> dict[str, Any]:
        return {
            p.key: (p.choices[0] if p.kind == "categorical" else p.extremes()[0])
            for p in self.params
        }

    def _active_only(self, values: dict[str, Any]) -> dict[str, Any]:
        chosen: dict[str, Any] = {}
        for p in self.params:
            if p.active(chosen):
                chosen[p.key] = values[p.key]
        return chosen


def _param_json(p: Param) -> dict[str, Any]:
    return {
        "key": p.key,
        "kind": p.kind,
        "low": p.low,
        "high": p.high,
        "log": p.log,
        "step": p.step,
        "choices": list(p.choices),
        "when": {k: list(v) for k, v in sorted(p.when.items())},
        "grid": list(p.grid) if p.grid is not None else None,
    }


def _order(params: list[Param], source: str) -> list[Param]:
    """Topological order: every `when` key before the keys it conditions; cycles refused."""
    by_key = {p.key: p for p in params}
    for p in params:
        for cond in p.when:
            if cond not in by_key:
                raise RecipeError(
                    f"{source}: '{p.key}' has `when: {{{cond}: ...}}` but '{cond}' is not in the "
                    "space; add it as a categorical key or drop the condition"
                )
            if by_key[cond].kind != "categorical":
                raise RecipeError(
                    f"{source}: '{p.key}' is conditioned on '{cond}', which is a "
                    f"{by_key[cond].kind} range; conditions must test a categorical key"
                )
    ordered: list[Param] = []
    placed: set[str] = set()
    pending = list(params)
    while pending:
        ready = [p for p in pending if all(c in placed for c in p.when)]
        if not ready:
            keys = ", ".join(p.key for p in pending)
            raise RecipeError(f"{source}: the `when` conditions of {keys} form a cycle")
        for p in ready:
            ordered.append(p)
            placed.add(p.key)
        pending = [p for p in pending if p.key not in placed]
    return ordered


def _number(value: Any, key: str, what: str, source: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RecipeError(f"{source}: '{key}'.{what} must be a number (got {value!r})")
    if not math.isfinite(value):
        raise RecipeError(f"{source}: '{key}'.{what} must be finite (got {value!r})")
    return value


def parse_param(key: str, spec: Any, source: str = "search space") -> Param:
    """One entry of a space file into a `Param`; RecipeError naming the key and the fix."""
    spec = _spec_mapping(key, spec, source)
    kind = _kind(key, spec, source)
    when = _parse_when(key, spec.get("when"), source)
    if kind == "categorical":
        return _categorical(key, spec, when, source)
    return _numeric_range(key, kind, spec, when, source)


def _spec_mapping(key: Any, spec: Any, source: str) -> dict[str, Any]:
    """The entry as a mapping of known fields (a bare list is shorthand for choices)."""
    if not isinstance(key, str) or not key or any(not part for part in key.split(".")):
        raise RecipeError(f"{source}: {key!r} is not a dotted recipe key (e.g. train.lr)")
    if isinstance(spec, list):
        spec = {"choices": spec}
    if not isinstance(spec, dict):
        raise RecipeError(
            f"{source}: '{key}' must be a list of choices or a mapping with low/high or "
            f"choices (got {spec!r})"
        )
    unknown = sorted(set(spec) - SPEC_KEYS)
    if unknown:
        raise RecipeError(
            f"{source}: '{key}' has unknown field '{unknown[0]}'; allowed: "
            f"{', '.join(sorted(SPEC_KEYS))}"
        )
    return spec


def _kind(key: str, spec: dict[str, Any], source: str) -> str:
    """The declared `type`, or the one the fields imply (integer bounds and step → int)."""
    kind = spec.get("type")
    if kind is None:
        if "choices" in spec:
            kind = "categorical"
        elif "low" in spec and "high" in spec:
            bounds = (spec["low"], spec["high"], spec.get("step", 1))
            kind = (
                "int"
                if all(isinstance(b, int) and not isinstance(b, bool) for b in bounds)
                else "float"
            )
        else:
            raise RecipeError(f"{source}: '{key}' needs `choices: [...]` or `low:` and `high:`")
    if kind not in KINDS:
        raise RecipeError(
            f"{source}: '{key}'.type must be one of {', '.join(KINDS)} (got {kind!r})"
        )
    return kind


def _categorical(
    key: str, spec: dict[str, Any], when: dict[str, tuple[Any, ...]], source: str
) -> Param:
    choices = spec.get("choices")
    if not isinstance(choices, list) or not choices:
        raise RecipeError(f"{source}: '{key}'.choices must be a non-empty list")
    encoded = [encode(c) for c in choices]
    if len(set(map(json.dumps, encoded))) != len(encoded):
        raise RecipeError(f"{source}: '{key}'.choices has duplicates")
    if "grid" in spec or "low" in spec or "high" in spec:
        raise RecipeError(f"{source}: '{key}' is categorical; use only `choices`")
    return Param(key, "categorical", choices=tuple(choices), when=when)


def _numeric_range(
    key: str, kind: str, spec: dict[str, Any], when: dict[str, tuple[Any, ...]], source: str
) -> Param:
    for needed in ("low", "high"):
        if needed not in spec:
            raise RecipeError(f"{source}: '{key}' needs `{needed}:` (a {kind} range)")
    low = _number(spec["low"], key, "low", source)
    high = _number(spec["high"], key, "high", source)
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise RecipeError(f"{source}: '{key}'.log must be true or false (got {log!r})")
    step = spec.get("step")
    if kind == "int":
        for what, v in (("low", low), ("high", high), ("step", step)):
            if v is not None and (not isinstance(v, int) or isinstance(v, bool)):
                raise RecipeError(f"{source}: '{key}' is an int range; {what} must be an integer")
    if not low < high:
        raise RecipeError(
            f"{source}: '{key}' has an empty range: low {low} must be below high {high}"
        )
    if log and low <= 0:
        raise RecipeError(f"{source}: '{key}' is log-scaled; low must be > 0 (got {low})")
    if step is not None:
        step = _step(step, low, high, log, key, source)
    grid = _grid(spec.get("grid"), kind, low, high, key, source)
    if kind == "float":
        low, high = float(low), float(high)
    return Param(key, kind, low, high, log, step, (), when, grid)


def _step(step: Any, low: float, high: float, log: bool, key: str, source: str) -> float:
    step = _number(step, key, "step", source)
    if step <= 0 or step > high - low:
        raise RecipeError(f"{source}: '{key}'.step must be > 0 and at most high - low (got {step})")
    if log:
        raise RecipeError(f"{source}: '{key}': `step` and `log` cannot be combined")
    return step


def _grid(
    grid: Any, kind: str, low: float, high: float, key: str, source: str
) -> tuple[Any, ...] | None:
    """The grid sampler's values of a numeric range, each checked to lie inside it."""
    if grid is None:
        return None
    if not isinstance(grid, list) or not grid:
        raise RecipeError(f"{source}: '{key}'.grid must be a non-empty list of values")
    for g in grid:
        _number(g, key, "grid", source)
        if not low <= g <= high:
            raise RecipeError(f"{source}: '{key}'.grid value {g} lies outside [{low}, {high}]")
    return tuple(int(g) for g in grid) if kind == "int" else tuple(float(g) for g in grid)


def _parse_when(key: str, when: Any, source: str) -> dict[str, tuple[Any, ...]]:
    if when is None:
        return {}
    if not isinstance(when, dict) or not when:
        raise RecipeError(
            f"{source}: '{key}'.when must map a key to its value(s), e.g. "
            "{train.optimizer.name: sgd}"
        )
    return {str(k): tuple(v) if isinstance(v, list) else (v,) for k, v in when.items()}


def parse_space(data: Any, source: str = "search space") -> SearchSpace:
    """A space from its plain-data form (a mapping of dotted key → spec)."""
    if isinstance(data, dict) and set(data) == {"params"}:
        data = data["params"]
    if not isinstance(data, dict) or not data:
        raise RecipeError(
            f"{source}: a search space is a non-empty mapping of dotted recipe keys to ranges "
            "(e.g. `train.lr: {low: 1.0e-4, high: 0.1, log: true}`)"
        )
    return SearchSpace([parse_param(k, v, source) for k, v in data.items()], source)


def load_space(space: SearchSpace | dict | str | Path) -> SearchSpace:
    """A space from a YAML path, a mapping or an existing SearchSpace."""
    if isinstance(space, SearchSpace):
        return space
    if isinstance(space, dict):
        return parse_space(space)
    if not Path(space).is_file():
        raise RecipeError(f"search space file '{space}' not found; check the --space path")
    return parse_space(read_yaml(space), str(space))


def grid_size(space: SearchSpace) -> int:
    """Number of distinct grid points (conditional keys counted only where active)."""
    return len(space.grid_points())


__all__ = [
    "Param",
    "SearchSpace",
    "grid_size",
    "load_space",
    "parse_param",
    "parse_space",
]
