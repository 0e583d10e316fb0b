"""Recipe schema, safe YAML loading and dotted overrides."""

from trainlab.config.loading import apply_overrides, dump_recipe, load_recipe, recipe_hash
from trainlab.config.schema import Recipe, validate_recipe

__all__ = [
    "Recipe",
    "apply_overrides",
    "dump_recipe",
    "load_recipe",
    "recipe_hash",
    "validate_recipe",
]
