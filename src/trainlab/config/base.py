"""Base model for every recipe section: unknown keys are errors with a did-you-mean."""

from __future__ import annotations

import difflib
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator


class StrictModel(BaseModel):
    """A pydantic model that rejects unknown keys, naming the closest allowed ones.

    Pydantic's own `extra="forbid"` says only "Extra inputs are not permitted"; users
    porting a recipe need to know what the key should have been.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

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
        return values
