"""Names that become directory names (runs, studies, recipes): one safe path component.

A leaf module, so the run store and the recipe schema can both check names without
importing each other.
"""

from __future__ import annotations

import re

SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def check_safe_name(name: str, what: str = "run name") -> str:
    """Return `name` if it is a single safe path component, else raise ValueError.

    Run and study names become directory names; this keeps them inside the run folder.
    """
    if not SAFE_NAME.match(name) or ".." in name:
        raise ValueError(
            f"{what} {name!r} is not allowed: use letters, digits, '.', '_' or '-' "
            "(no '/', no '..', not starting with '.'), at most 128 characters"
        )
    return name


def did_you_mean(name: str, candidates: list[str] | tuple[str, ...]) -> str:
    """ "did you mean 'x'? " for the closest candidate (case ignored), or "" if none is close."""
    import difflib

    lowered = {c.lower(): c for c in candidates}
    close = difflib.get_close_matches(str(name).lower(), list(lowered), n=1, cutoff=0.6)
    return f"did you mean '{lowered[close[0]]}'? " if close else ""
