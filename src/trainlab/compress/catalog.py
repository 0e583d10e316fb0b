"""Every compression method, registered: the method modules imported once."""

from __future__ import annotations

from trainlab.registry import Registry


def load_methods() -> Registry:
    """The registry (methods.METHODS) with every method module imported."""
    from trainlab.compress import magnitude, quantize, slicing, structured  # noqa: F401
    from trainlab.compress.methods import METHODS

    return METHODS
