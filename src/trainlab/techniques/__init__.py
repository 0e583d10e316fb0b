"""Optimization techniques as event subscribers, one module each.

Importing this package registers every technique in `TECHNIQUES` (the recipe's
`techniques:` list names them). Each module holds a plain function doing the work and a
thin `Technique` adapter deciding when it runs; its docstring is the method card.
"""

# `trainlab.registry` imports `trainlab.config`, whose schema imports `trainlab.registry`:
# importing the config package first keeps that cycle from breaking `import trainlab.techniques`.
import trainlab.config  # noqa: F401, I001
from trainlab.techniques import (  # noqa: F401  (imported to register)
    channels_last,
    clipping,
    cutmix,
    dropout,
    early_stopping,
    ema,
    fgm,
    freeze,
    grad_accumulation,
    l1,
    l2,
    label_smoothing,
    lookahead,
    max_norm,
    mixed_precision,
    mixup,
    precise_bn,
    sam,
    stochastic_depth,
    swa,
)
from trainlab.techniques.registry import TECHNIQUES
from trainlab.data import augment  # noqa: F401, E402  (registers the data augmentations)
from trainlab.diagnose import activations, gradients, guard  # noqa: F401, E402  (monitors)

__all__ = ["TECHNIQUES"]
