"""Optimization techniques as event subscribers, one module each.

Importing this package registers every technique in `TECHNIQUES` (the recipe's
`techniques:` list names them); the data augmentations and the diagnostic monitors
register there too, from their own packages (`trainlab.catalog` imports them all).
Each module holds a plain function doing the work and a thin `Technique` adapter
deciding when it runs, registered with its facts (task kinds, modalities, conflicts:
see `registry`) and placed in a pipeline slot (`engine.order.Slot`); its docstring is
the method card.
"""

import importlib
import pkgutil

from trainlab.techniques.registry import TECHNIQUES

# Each module is one technique (or a family, like clipping) and importing it registers
# it, so adding a technique is adding its module; the helpers (common, targets) register
# nothing.
for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")


__all__ = ["TECHNIQUES"]
