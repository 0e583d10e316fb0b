"""Loading recipes from YAML safely and applying dotted command-line overrides."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import yaml

from trainlab.config.schema import Recipe, validate_recipe
from trainlab.errors import RecipeError

RecipeLike = Recipe | dict | str | Path


def read_yaml(path: str | Path) -> Any:
    """Parse a YAML file with the safe loader; tags that would build objects are refused."""
    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"recipe file '{path}' not found; check the path")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise RecipeError(
            f"{path}: not UTF-8 text (byte {exc.start}); save the recipe as UTF-8"
        ) from None
    except yaml.constructor.ConstructorError as exc:
        tag = getattr(exc, "problem", "") or str(exc)
        raise RecipeError(
            f"{path}: {tag.strip()}; recipes are plain data, python tags are not allowed"
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise RecipeError(
            f"{path}: not valid YAML{where}: {getattr(exc, 'problem', exc)}"
        ) from None


def parse_override(text: str) -> tuple[str, Any]:
    """Split 'train.lr=0.01' into ('train.lr', 0.01); the value is parsed as YAML data."""
    if "=" not in text:
        raise RecipeError(f"override '{text}' must look like key.path=value (e.g. train.lr=0.01)")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise RecipeError(f"override '{text}': empty key; write e.g. train.lr=0.01")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key, value


def apply_overrides(data: dict[str, Any], overrides: dict[str, Any] | list[str] | None) -> dict:
    """Return a copy of `data` with each dotted key set to its value.

    A component written as a bare name (`optimizer: adam`) is expanded to a mapping
    first, so `train.optimizer.momentum=0.9` works whatever form the recipe used.
    """
    result = copy.deepcopy(data)
    if not overrides:
        return result
    items = (
        [parse_override(o) for o in overrides]
        if isinstance(overrides, list)
        else list(overrides.items())
    )
    for key, value in items:
        parts = key.split(".")
        node = result
        for i, part in enumerate(parts[:-1]):
            child = node.get(part) if isinstance(node, dict) else None
            if isinstance(child, str):
                child = {"name": child}
            elif child is None:
                child = {}
            elif not isinstance(child, dict):
                section = ".".join(parts[: i + 1])
                raise RecipeError(f"override '{key}': '{section}' is a value, not a section")
            node[part] = child
            node = child
        node[parts[-1]] = value
    return result


def load_recipe(recipe: RecipeLike, overrides: dict[str, Any] | list[str] | None = None) -> Recipe:
    """Build a validated Recipe from a YAML path, a mapping or a Recipe, plus overrides."""
    if isinstance(recipe, Recipe):
        data, source = recipe.to_dict(), "recipe"
    elif isinstance(recipe, dict):
        data, source = recipe, "recipe"
    else:
        data, source = read_yaml(recipe), str(recipe)
        if data is None:
            raise RecipeError(f"{source}: the file is empty; a recipe needs data and model")
        if isinstance(data, dict) and "name" not in data:
            data = {"name": Path(recipe).stem, **data}
        if isinstance(data, dict):
            data = _data_paths_beside(data, Path(recipe).parent)
    if not isinstance(data, dict):
        raise RecipeError(f"{source}: a recipe must be a mapping of sections")
    return validate_recipe(apply_overrides(data, overrides), source)


#: Keys of `data.dataset` that name files or folders.
PATH_KEYS = ("path", "test_path")


def _data_paths_beside(data: dict[str, Any], recipe_dir: Path) -> dict[str, Any]:
    """Relative data paths that do not exist from the current directory but do exist next
    to the recipe file are made absolute there, so `trainlab train other/dir/recipe.yaml`
    finds `data.csv` beside it. A path valid from the current directory is kept as
    written (recipes written for the repository root keep working)."""
    dataset = (
        (data.get("data") or {}).get("dataset") if isinstance(data.get("data"), dict) else None
    )
    if not isinstance(dataset, dict):
        return data
    changed = dict(dataset)
    for key in PATH_KEYS:
        value = dataset.get(key)
        if not isinstance(value, str) or Path(value).is_absolute() or Path(value).exists():
            continue
        beside = recipe_dir / value
        if beside.exists():
            changed[key] = str(beside.resolve())
    if changed == dataset:
        return data
    return {**data, "data": {**data["data"], "dataset": changed}}


def recipe_hash(recipe: Recipe) -> str:
    """Stable hash of everything that determines a run (the name is excluded)."""
    data = recipe.to_dict()
    data.pop("name", None)
    data.pop("description", None)
    blob = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def dump_recipe(recipe: Recipe) -> str:
    """The resolved recipe as YAML, every default filled in."""
    return yaml.safe_dump(recipe.to_dict(), sort_keys=False)
