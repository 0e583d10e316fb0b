"""Recipe schema, safe YAML loading and dotted overrides.

Names load lazily: the schema imports every component registry (and so torch), which
`trainlab --help` and `import trainlab` should not pay for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from trainlab.lazy import lazy_getattr

_LAZY = {
    "apply_overrides": "trainlab.config.loading",
    "dump_recipe": "trainlab.config.loading",
    "load_recipe": "trainlab.config.loading",
    "recipe_hash": "trainlab.config.loading",
    "Recipe": "trainlab.config.schema",
    "validate_recipe": "trainlab.config.schema",
}

if TYPE_CHECKING:
    from trainlab.config.loading import apply_overrides, dump_recipe, load_recipe, recipe_hash
    from trainlab.config.schema import Recipe, validate_recipe


__getattr__ = lazy_getattr(__name__, _LAZY, globals())

__all__ = [
    "Recipe",
    "apply_overrides",
    "dump_recipe",
    "load_recipe",
    "recipe_hash",
    "validate_recipe",
]
