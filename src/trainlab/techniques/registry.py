"""The technique registry: name in a recipe's `techniques:` list → Technique class.

An entry's builder is called as `builder(params)` and returns a `Technique`. Metadata:
`conflicts` (names it cannot be combined with) and `rewrites_targets`.
"""

from __future__ import annotations

from trainlab.registry import Registry

TECHNIQUES: Registry = Registry("technique")
