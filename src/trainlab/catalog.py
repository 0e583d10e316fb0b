"""Every pluggable component, registered: importing this module fills every registry.

Components register themselves when their module is imported. The technique registry is
filled from three packages that must not import one another — the techniques, the data
augmentations (data/augment.py) and the diagnostic monitors (diagnose/) — so they are
gathered here, above all of them. The recipe schema and the command line look names up
through this module; code that only registers (a technique module) imports the
registry itself.
"""

from __future__ import annotations

import trainlab.data.augment  # noqa: F401  (registers the data augmentations)
import trainlab.diagnose.activations  # noqa: F401  (registers the monitors)
import trainlab.diagnose.gradients  # noqa: F401
import trainlab.diagnose.guard  # noqa: F401
import trainlab.features_data  # noqa: F401  (registers the `features` dataset)
from trainlab.data import DATASETS
from trainlab.models import ACTIVATIONS, MODELS
from trainlab.optim.losses import LOSSES
from trainlab.optim.optimizers import OPTIMIZERS
from trainlab.optim.schedules import SCHEDULES
from trainlab.techniques import TECHNIQUES

__all__ = ["ACTIVATIONS", "DATASETS", "LOSSES", "MODELS", "OPTIMIZERS", "SCHEDULES", "TECHNIQUES"]
