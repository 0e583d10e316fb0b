"""The settings registry that drives the conformance tests: technique name → small params.

Every registered technique must have an entry (a test fails otherwise), so a new
technique is covered by the generic tests without writing new ones.

- `params`: the technique's recipe parameters for the tests;
- `data`: the base recipe it runs on, "images" (digit images, an MLP) or "text";
- `works_on`: the data kinds it can be paired with in the pairwise test (a technique
  that changes the inputs of images cannot act on token ids: not a conflict, just
  another modality);
- `overrides`: recipe sections replaced for it (e.g. a residual `model`);
- `min_accuracy`: the test accuracy it must beat on its base recipe (chance is 0.1 for
  digits; the 800-sentence text set is hard, so there the falling loss is the check).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .conftest import RESNET

BOTH = ("images", "text")
IMAGES_ONLY = ("images",)


@dataclass(frozen=True)
class Setting:
    """How to run one technique in the generic tests."""

    params: dict[str, Any] = field(default_factory=dict)
    data: str = "images"
    works_on: tuple[str, ...] = BOTH
    overrides: dict[str, Any] = field(default_factory=dict)
    min_accuracy: float = 0.5


def image_aug(**params: Any) -> Setting:
    """A data augmentation acting on image batches."""
    return Setting(params, works_on=IMAGES_ONLY)


SETTINGS: dict[str, Setting] = {
    # techniques/
    "agc": Setting({"clipping": 0.05}),
    "channels_last": Setting(),
    "clip_norm": Setting({"max_norm": 0.5}),
    "clip_value": Setting({"value": 0.05}),
    "cutmix": Setting({"alpha": 1.0}, works_on=IMAGES_ONLY),
    "dropout": Setting({"rate": 0.3, "end_rate": 0.0}),
    "early_stopping": Setting({"monitor": "val_accuracy", "patience": 1}),
    "ema": Setting({"decay": 0.9}),
    "fgm": Setting({"epsilon": 0.5}, data="text", works_on=("text",), min_accuracy=0.0),
    "freeze": Setting({"layers": ["1.*", "stem.*", "embedding.*"], "epochs": 1}),
    "grad_accumulation": Setting({"steps": 3}),
    "l1": Setting({"strength": 1e-4}),
    "l2": Setting({"strength": 1e-3}),
    "label_smoothing": Setting({"smoothing": 0.1}),
    "lookahead": Setting({"k": 3, "alpha": 0.5}),
    "max_norm": Setting({"max_norm": 1.0}),
    "mixed_precision": Setting({"dtype": "bf16"}),
    "mixup": Setting({"alpha": 0.4}, works_on=IMAGES_ONLY),
    "precise_bn": Setting({"batches": 5}),
    "sam": Setting({"rho": 0.05}),
    "stochastic_depth": Setting(
        {"drop_rate": 0.2}, works_on=IMAGES_ONLY, overrides={"model": RESNET}
    ),
    "swa": Setting({"start": "1ep", "lr": 0.005}),
    # monitors (diagnose/)
    "activation_stats": Setting({"every": 3}),
    "divergence_guard": Setting({"action": "rollback"}),
    "gradient_monitor": Setting({"every": 3, "plot": False}),
    # data augmentations (data/augment.py)
    "affine": image_aug(degrees=10.0),
    "color_jitter": image_aug(),
    "cutout": image_aug(size=3),
    "gaussian_noise": Setting({"std": 0.05}, works_on=IMAGES_ONLY),
    "hflip": image_aug(),
    "random_crop": image_aug(padding=1),
    "random_erasing": image_aug(),
    "rotate": image_aug(degrees=10.0),
    "token_dropout": Setting({"p": 0.1}, data="text", works_on=("text",), min_accuracy=0.0),
    "vflip": image_aug(),
}


def technique_entry(name: str) -> dict[str, Any]:
    """The recipe `techniques:` item for `name` with its test settings."""
    return {"name": name, **SETTINGS[name].params}
