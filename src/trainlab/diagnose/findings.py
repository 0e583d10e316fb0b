"""What the doctor reports: findings with machine-readable codes, and the remedies for each.

A `Finding` is one problem with its evidence (the numbers that triggered it); a
`Recommendation` names a change the ablation machinery can try (`studies.ablate`
built-ins, registered techniques, or a recipe edit) and the reason it addresses the
finding. Codes are stable strings: scripts and tests branch on them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any


class Code(str, Enum):
    """Machine-readable diagnosis codes (what `doctor --json` reports)."""

    VANISHING_GRADIENTS = "VANISHING_GRADIENTS"
    EXPLODING_GRADIENTS = "EXPLODING_GRADIENTS"
    DEAD_UNITS = "DEAD_UNITS"
    SATURATION = "SATURATION"
    OVERFITTING = "OVERFITTING"
    UNDERFITTING = "UNDERFITTING"
    LR_TOO_HIGH = "LR_TOO_HIGH"
    LR_TOO_LOW = "LR_TOO_LOW"
    DIVERGED = "DIVERGED"
    #: A baseline fitted on the same split (gradient boosting or a linear model, see
    #: `trainlab.baselines`) reaches a better test accuracy (R² for regression).
    BASELINE_BEATS_MODEL = "BASELINE_BEATS_MODEL"


@dataclass
class Finding:
    """One problem found, with the evidence behind it.

    Args:
        severity: "error" (training is broken), "warning" (it holds the model back) or
            "info" (worth knowing, no action needed).
        evidence: the measured numbers that triggered the finding.
    """

    code: Code
    severity: str
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        d = asdict(self)
        d["code"] = self.code.value
        return d


@dataclass
class Recommendation:
    """A change to try for a finding.

    Args:
        name: the change's name as `ablate` knows it (a built-in such as `dropout`, a
            registered technique such as `mixup`, or a recipe-edit variant such as `relu`).
        overrides: dotted recipe keys for recipe-edit variants (empty for techniques).
        applicable: whether `doctor --apply` can try it on this recipe (the technique is
            registered and the recipe accepts the overrides); others are advice only.
    """

    name: str
    code: Code
    reason: str
    overrides: dict[str, Any] = field(default_factory=dict)
    applicable: bool = True
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        d = asdict(self)
        d["code"] = self.code.value
        return d


#: Remedies per finding, most promising first: (change name, overrides, reason).
#: Names without overrides are `ablate` built-ins or registered techniques.
REMEDIES: dict[Code, list[tuple[str, dict[str, Any], str]]] = {
    Code.OVERFITTING: [
        ("dropout", {}, "randomly dropping units keeps the net from memorizing the training set"),
        ("weight_decay", {}, "an L2 penalty shrinks weights toward simpler functions"),
        (
            "fgm",
            {},
            "training on adversarially moved word vectors regularizes the embeddings (text)",
        ),
        ("mixup", {}, "training on blends of examples smooths the decision boundary"),
        ("label_smoothing", {}, "softer targets stop the net from growing over-confident"),
        (
            "early_stopping",
            {},
            "stopping when validation stops improving keeps the best-generalizing weights",
        ),
        ("random_crop", {}, "augmentation multiplies the training set (images only)"),
    ],
    Code.UNDERFITTING: [
        (
            "wider",
            {},
            "more hidden units give the model the capacity the data needs",
        ),
        ("cosine", {}, "a decaying schedule lets training settle into a lower loss"),
        ("batchnorm", {}, "normalized layers train faster and reach lower loss"),
    ],
    Code.VANISHING_GRADIENTS: [
        (
            "relu",
            {"model.activation": "relu"},
            "ReLU does not saturate, so gradients keep their size through depth",
        ),
        (
            "he_init",
            {"model.init": "he_normal"},
            "He/Kaiming init keeps activation variance constant across ReLU layers",
        ),
        ("batchnorm", {}, "batch norm re-centres and re-scales every layer's input"),
        (
            "residual",
            {},
            "residual connections give gradients a short path to early layers (model: resnet)",
        ),
    ],
    Code.EXPLODING_GRADIENTS: [
        ("clip_norm", {}, "clipping the global gradient norm bounds every update"),
        ("lower_lr", {}, "a smaller learning rate keeps updates from compounding"),
        ("batchnorm", {}, "batch norm keeps activations, and so gradients, in range"),
    ],
    Code.DIVERGED: [
        ("lower_lr", {}, "the loss became non-finite: the steps are too large"),
        ("clip_norm", {}, "clipping bounds the step that blew up"),
    ],
    Code.LR_TOO_HIGH: [
        ("lower_lr", {}, "the LR finder places the recipe's rate past the loss minimum"),
        ("clip_norm", {}, "clipping tames the largest steps at a high learning rate"),
    ],
    Code.LR_TOO_LOW: [
        ("higher_lr", {}, "the LR finder shows the loss falls much faster at a larger rate"),
    ],
    Code.DEAD_UNITS: [
        (
            "leaky_relu",
            {"model.activation": "leaky_relu"},
            "Leaky ReLU keeps a gradient for negative inputs, so units cannot die",
        ),
        ("lower_lr", {}, "large steps push ReLU units into the always-off region"),
        ("batchnorm", {}, "batch norm keeps pre-activations centred, so fewer units die"),
    ],
    Code.BASELINE_BEATS_MODEL: [
        (
            "longer",
            {},
            "a network needs many more passes over a table than boosting needs trees",
        ),
        ("wider", {}, "more hidden units give the network the capacity boosting shows is there"),
        ("cosine", {}, "a decaying schedule lets training settle into a lower loss"),
        (
            "use_baseline",
            {},
            "when the network cannot match it, the baseline is the better model for this table",
        ),
    ],
    Code.SATURATION: [
        (
            "relu",
            {"model.activation": "relu"},
            "ReLU does not saturate for positive inputs",
        ),
        (
            "xavier_init",
            {"model.init": "xavier_uniform"},
            "Glorot/Xavier init keeps sigmoid/tanh inputs in their linear range",
        ),
        ("batchnorm", {}, "batch norm keeps pre-activations near zero, away from the asymptotes"),
    ],
}
