"""Base model for every recipe section and component parameters: unknown keys are errors
with a did-you-mean, numbers are numbers (a YAML `true` is not 1) and floats are finite.

A leaf module (it imports nothing of trainlab), so every layer's parameter models can
derive from it without importing the recipe schema.
"""

from __future__ import annotations

import difflib
import types
import typing
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator


def admits_bool(annotation: Any) -> bool:
    """True when a field typed `annotation` may hold a bool (bool, Any, or a union with one).

    Pydantic's lax mode turns `true` into 1 for an int field and 1.0 for a float field, so
    `lr: true` or `batch_size: true` would train with a value nobody wrote.
    """
    if annotation is bool or annotation is Any or annotation is object:
        return True
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return admits_bool(typing.get_args(annotation)[0])
    if origin is typing.Union or origin is types.UnionType:
        return any(admits_bool(a) for a in typing.get_args(annotation))
    if origin is typing.Literal:
        return any(isinstance(a, bool) for a in typing.get_args(annotation))
    # numbers, models and None do not; strings and containers refuse a bool themselves
    return annotation not in (int, float, type(None)) and not (
        isinstance(annotation, type) and issubclass(annotation, BaseModel)
    )


def bool_for_number(annotation: Any, value: Any) -> bool:
    """True when `value` (or an item of a list value) is a bool where a number is expected."""
    if isinstance(value, bool):
        return not admits_bool(annotation)
    if not isinstance(value, list | tuple):
        return False
    for option in _union_members(annotation):
        origin = typing.get_origin(option)
        if origin in (list, tuple) or (isinstance(origin, type) and origin.__name__ == "Sequence"):
            items = [a for a in typing.get_args(option) if a is not Ellipsis] or [Any]
            return any(
                bool_for_number(items[min(i, len(items) - 1)], v) for i, v in enumerate(value)
            )
    return False


def _union_members(annotation: Any) -> tuple[Any, ...]:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _union_members(typing.get_args(annotation)[0])
    if origin is typing.Union or origin is types.UnionType:
        return typing.get_args(annotation)
    return (annotation,)


class StrictModel(BaseModel):
    """A pydantic model that rejects unknown keys, naming the closest allowed ones.

    Pydantic's own `extra="forbid"` says only "Extra inputs are not permitted"; users
    porting a recipe need to know what the key should have been. Floats must be finite
    (`lr: .inf` is refused) and a boolean is refused where a number is expected.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _reject_unknown_keys(cls, values: Any) -> Any:
        if not isinstance(values, dict):
            return values
        allowed = set(cls.model_fields) | {f.alias for f in cls.model_fields.values() if f.alias}
        unknown = [k for k in values if k not in allowed]
        if unknown:
            key = unknown[0]
            close = difflib.get_close_matches(str(key), sorted(allowed), n=1, cutoff=0.6)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise ValueError(
                f"unknown key '{key}'; {hint}allowed keys: {', '.join(sorted(allowed))}"
            )
        for key, value in values.items():
            field = cls.model_fields.get(key)
            if field is not None and bool_for_number(field.annotation, value):
                # a leading '.key' is joined onto the enclosing path by format_validation_error
                raise ValueError(
                    f".{key}: expected a number, got {str(value).lower()} (a YAML boolean)"
                )
        return values
