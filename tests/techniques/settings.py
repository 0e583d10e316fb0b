"""The settings registry that drives the conformance tests: technique name → small params.

Every registered technique must have an entry (a test fails otherwise), so a new
technique is covered by the generic tests without writing new ones.

- `params`: the technique's recipe parameters for the tests;
- `overrides`: recipe sections replaced for it (e.g. a residual `model`).

Which base recipes a technique runs on is not written here: `works_on` asks the
registry's facts (`check_applicable`) which of the two base data sets — "images" (digit
images, an MLP) and "text" (sentences, a text CNN) — it applies to; it trains on the
first of them (`data_of`) and is paired only on data both techniques apply to (an image
augmentation cannot act on token ids: not a conflict, just another modality).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from trainlab.techniques.registry import check_applicable

from .conftest import RESNET

#: The base data sets: (task kind, modality) of each, in order of preference.
DATA = {"images": ("multiclass", "image"), "text": ("multiclass", "text")}
#: The test accuracy a technique must beat on each (chance is 0.1 for the digits; the
#: 800-sentence text set is hard, so there the falling loss is the check).
MIN_ACCURACY = {"images": 0.5, "text": 0.0}


@dataclass(frozen=True)
class Setting:
    """How to run one technique in the generic tests."""

    params: dict[str, Any] = field(default_factory=dict)
    overrides: dict[str, Any] = field(default_factory=dict)


def works_on(name: str) -> tuple[str, ...]:
    """The base data sets technique `name` applies to, by its registered facts."""
    return tuple(d for d, (kind, mod) in DATA.items() if check_applicable(name, kind, mod) is None)


def data_of(name: str) -> str:
    """The base data set technique `name` is trained on alone."""
    return works_on(name)[0]


def min_accuracy(name: str) -> float:
    """The test accuracy `name` must beat on its base data set."""
    return MIN_ACCURACY[data_of(name)]


SETTINGS: dict[str, Setting] = {
    # techniques/
    "agc": Setting({"clipping": 0.05}),
    "channels_last": Setting(),
    "clip_norm": Setting({"max_norm": 0.5}),
    "clip_value": Setting({"value": 0.05}),
    "cutmix": Setting({"alpha": 1.0}),
    "dropout": Setting({"rate": 0.3, "end_rate": 0.0}),
    "early_stopping": Setting({"monitor": "val_accuracy", "patience": 1}),
    "ema": Setting({"decay": 0.9}),
    "fgm": Setting({"epsilon": 0.5}),
    "freeze": Setting({"layers": ["1.*", "stem.*", "embedding.*"], "epochs": 1}),
    "stages": Setting({"stages": [{"epochs": 1, "freeze": ["block1"]}, {"lr": 0.5}]}),
    "grad_accumulation": Setting({"steps": 3}),
    "l1": Setting({"strength": 1e-4}),
    "l2": Setting({"strength": 1e-3}),
    "label_smoothing": Setting({"smoothing": 0.1}),
    "lookahead": Setting({"k": 3, "alpha": 0.5}),
    "max_norm": Setting({"max_norm": 1.0}),
    "mixed_precision": Setting({"dtype": "bf16"}),
    "mixup": Setting({"alpha": 0.4}),
    "precise_bn": Setting({"batches": 5}),
    "sam": Setting({"rho": 0.05}),
    "stochastic_depth": Setting({"drop_rate": 0.2}, overrides={"model": RESNET}),
    "swa": Setting({"start": "1ep", "lr": 0.005}),
    # monitors (diagnose/)
    "activation_stats": Setting({"every": 3}),
    "divergence_guard": Setting({"action": "rollback"}),
    "gradient_monitor": Setting({"every": 3, "plot": False}),
    # data augmentations (data/augment.py)
    "affine": Setting({"degrees": 10.0}),
    "color_jitter": Setting(),
    "cutout": Setting({"size": 3}),
    "gaussian_noise": Setting({"std": 0.05}),
    "hflip": Setting(),
    "random_crop": Setting({"padding": 1}),
    "random_erasing": Setting(),
    "rotate": Setting({"degrees": 10.0}),
    "token_dropout": Setting({"p": 0.1}),
    "vflip": Setting(),
}


def technique_entry(name: str) -> dict[str, Any]:
    """The recipe `techniques:` item for `name` with its test settings."""
    return {"name": name, **SETTINGS[name].params}
