"""Data augmentation on whole training batches, on the batch's device, seeded.

Method card
    What: random label-preserving changes to each training batch — flips, crops with
        padding, rotation, scale/translate, colour jitter, gaussian noise, cutout / random
        erasing for images; gaussian noise on numeric columns for tables; token dropout
        for text. Validation and test batches are never touched (BATCH_START only fires in
        training).
    When: over-fitting on small image data (seeds 001 and 003): flips + crops are the
        standard CIFAR-style pair; noise and token dropout are milder regularizers for
        tables and text.
    How: every op is one vectorized tensor expression over the batch (no per-sample
        Python loop, no PIL), so it runs where the batch is — CPU here, CUDA by design.
        Each technique draws from its own `torch.Generator` seeded by (seed, technique,
        epoch, batch index): the same recipe and seed give the same augmented batches, and
        a resumed run sees exactly the draws an uninterrupted one would, with no state to
        checkpoint. Augmentations run before other BATCH_START techniques (slot AUGMENT),
        so mixup/cutmix mix augmented samples.
    Cost: measured in `bench/data.py` (see docs/data.md).

Each op is also a plain function (`hflip(x, p, gen)`, `random_crop(x, 4, gen)`, …) usable
outside the engine.
"""

from __future__ import annotations

import abc
import math
import zlib
from typing import Any, ClassVar, Literal, NoReturn

import torch
import torch.nn.functional as F
from pydantic import Field

from trainlab.data.text import PAD_INDEX, UNK_INDEX
from trainlab.engine.determinism import derived_seed
from trainlab.engine.order import Slot
from trainlab.engine.state import State
from trainlab.engine.technique import Technique
from trainlab.errors import RecipeError
from trainlab.params import StrictModel
from trainlab.tasks import modality
from trainlab.techniques.registry import TECHNIQUES, check_applicable


# --------------------------------------------------------------------------- ops
def _uniform(n: int, low: float, high: float, gen: torch.Generator, device) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=gen, device=device)


def _chosen(n: int, p: float, gen: torch.Generator, device) -> torch.Tensor:
    return torch.rand(n, generator=gen, device=device) < p


def hflip(x: torch.Tensor, p: float, gen: torch.Generator) -> torch.Tensor:
    """Mirror each image left-right with probability `p`."""
    mask = _chosen(len(x), p, gen, x.device).view(-1, *([1] * (x.dim() - 1)))
    return torch.where(mask, x.flip(-1), x)


def vflip(x: torch.Tensor, p: float, gen: torch.Generator) -> torch.Tensor:
    """Mirror each image top-bottom with probability `p`."""
    mask = _chosen(len(x), p, gen, x.device).view(-1, *([1] * (x.dim() - 1)))
    return torch.where(mask, x.flip(-2), x)


def random_crop(
    x: torch.Tensor, padding: int, gen: torch.Generator, mode: str = "constant"
) -> torch.Tensor:
    """Pad by `padding` pixels, then cut a random H×W window per image (integer shifts)."""
    n, _, h, w = x.shape
    padded = F.pad(x, (padding,) * 4, mode=mode)
    oy = torch.randint(0, 2 * padding + 1, (n,), generator=gen, device=x.device)
    ox = torch.randint(0, 2 * padding + 1, (n,), generator=gen, device=x.device)
    rows = (oy[:, None] + torch.arange(h, device=x.device))[:, :, None]  # (N, H, 1)
    cols = (ox[:, None] + torch.arange(w, device=x.device))[:, None, :]  # (N, 1, W)
    batch = torch.arange(n, device=x.device)[:, None, None]
    # advanced indices around a slice put their dims first: (N, H, W, C)
    return padded[batch, :, rows, cols].permute(0, 3, 1, 2).contiguous()


def affine(
    x: torch.Tensor,
    gen: torch.Generator,
    degrees: float = 0.0,
    translate: float = 0.0,
    scale: tuple[float, float] = (1.0, 1.0),
) -> torch.Tensor:
    """Random rotation (±degrees), translation (± fraction of size) and zoom per image."""
    n = len(x)
    dev = x.device
    angle = _uniform(n, -degrees, degrees, gen, dev) * (math.pi / 180)
    s = _uniform(n, scale[0], scale[1], gen, dev)
    tx = _uniform(n, -translate, translate, gen, dev) * 2
    ty = _uniform(n, -translate, translate, gen, dev) * 2
    cos, sin = torch.cos(angle) / s, torch.sin(angle) / s
    # affine_grid maps output to input coordinates, hence the inverse zoom
    theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1).to(
        x.dtype
    )
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def color_jitter(
    x: torch.Tensor,
    gen: torch.Generator,
    brightness: float = 0.0,
    contrast: float = 0.0,
    saturation: float = 0.0,
) -> torch.Tensor:
    """Scale brightness, contrast and (3 channels) saturation by random factors 1 ± value."""
    n = len(x)
    dev = x.device
    shape = (n, 1, 1, 1)
    if brightness:
        x = x * _uniform(n, 1 - brightness, 1 + brightness, gen, dev).view(shape)
    gray = None
    if x.shape[1] == 3:
        r, g, b = x[:, 0:1], x[:, 1:2], x[:, 2:3]
        gray = 0.299 * r + 0.587 * g + 0.114 * b
    if contrast:
        mean = (gray if gray is not None else x.mean(1, keepdim=True)).mean((2, 3), keepdim=True)
        c = _uniform(n, 1 - contrast, 1 + contrast, gen, dev).view(shape)
        x = (x - mean) * c + mean
        if gray is not None:
            gray = (gray - mean) * c + mean
    if saturation and gray is not None:
        s = _uniform(n, 1 - saturation, 1 + saturation, gen, dev).view(shape)
        x = (x - gray) * s + gray
    return x


def gaussian_noise(
    x: torch.Tensor, std: float, gen: torch.Generator, columns: int | None = None
) -> torch.Tensor:
    """Add N(0, std²) noise; for tables only to the first `columns` (numeric) features."""
    noise = torch.randn(x.shape, generator=gen, device=x.device, dtype=x.dtype) * std
    if columns is not None:
        noise[:, columns:] = 0
    return x + noise


def _erase(
    x: torch.Tensor,
    top: torch.Tensor,
    left: torch.Tensor,
    hh: torch.Tensor,
    ww: torch.Tensor,
    chosen: torch.Tensor,
    value: float,
) -> torch.Tensor:
    h, w = x.shape[-2:]
    ys = torch.arange(h, device=x.device)[None, :, None]
    xs = torch.arange(w, device=x.device)[None, None, :]
    inside = (
        (ys >= top[:, None, None])
        & (ys < (top + hh)[:, None, None])
        & (xs >= left[:, None, None])
        & (xs < (left + ww)[:, None, None])
        & chosen[:, None, None]
    )
    return x.masked_fill(inside[:, None], value)


def cutout(x: torch.Tensor, size: int, gen: torch.Generator, p: float = 1.0) -> torch.Tensor:
    """Zero a size×size square (clipped at the border) at a random centre of each image."""
    n, _, h, w = x.shape
    dev = x.device
    cy = torch.randint(0, h, (n,), generator=gen, device=dev)
    cx = torch.randint(0, w, (n,), generator=gen, device=dev)
    top, left = (cy - size // 2).clamp(min=0), (cx - size // 2).clamp(min=0)
    bottom, right = (cy - size // 2 + size).clamp(max=h), (cx - size // 2 + size).clamp(max=w)
    return _erase(x, top, left, bottom - top, right - left, _chosen(n, p, gen, dev), 0.0)


def random_erasing(
    x: torch.Tensor,
    gen: torch.Generator,
    p: float = 0.5,
    scale: tuple[float, float] = (0.02, 0.33),
    ratio: tuple[float, float] = (0.3, 3.3),
    value: float = 0.0,
) -> torch.Tensor:
    """Erase a random rectangle (area fraction in `scale`, aspect in `ratio`) with prob. p."""
    n, _, h, w = x.shape
    dev = x.device
    area = _uniform(n, scale[0], scale[1], gen, dev) * h * w
    aspect = torch.exp(_uniform(n, math.log(ratio[0]), math.log(ratio[1]), gen, dev))
    hh = torch.sqrt(area * aspect).round().long().clamp(1, h)
    ww = torch.sqrt(area / aspect).round().long().clamp(1, w)
    top = (torch.rand(n, generator=gen, device=dev) * (h - hh + 1)).long()
    left = (torch.rand(n, generator=gen, device=dev) * (w - ww + 1)).long()
    return _erase(x, top, left, hh, ww, _chosen(n, p, gen, dev), value)


def token_dropout(ids: torch.Tensor, p: float, gen: torch.Generator) -> torch.Tensor:
    """Replace each real (non-pad) token by `<unk>` with probability `p`."""
    drop = (torch.rand(ids.shape, generator=gen, device=ids.device) < p) & (ids != PAD_INDEX)
    return ids.masked_fill(drop, UNK_INDEX)


# ---------------------------------------------------------------- techniques
class AugmentParams(StrictModel):
    """Common parameter: `seed` (default: the recipe's train.seed)."""

    seed: int | None = None


class Augmentation(Technique, abc.ABC):
    """Applies `augment(x, gen, state)` to the inputs of every training batch.

    The inputs it accepts follow its registered `modalities`: token ids for text only,
    float (N, C, H, W) batches for images only, float features otherwise.
    """

    order = Slot.AUGMENT
    #: The name it is registered under (each registered augmentation is a subclass).
    technique: ClassVar[str] = ""

    def __init__(self, params: AugmentParams) -> None:
        self.params = params
        self.facts = TECHNIQUES.facts(self.technique)
        self._salt = zlib.crc32(self.technique.encode())
        self._gen: torch.Generator | None = None

    def generator(self, state: State, device: torch.device) -> torch.Generator:
        """A generator seeded by (seed, technique, epoch, batch): resume-exact, stateless."""
        seed = state.seed if self.params.seed is None else self.params.seed
        if self._gen is None or self._gen.device != device:
            self._gen = torch.Generator(device=device)
        self._gen.manual_seed(derived_seed(seed, self._salt, state.epoch, state.batch_index))
        return self._gen

    def _fits(self, x: torch.Tensor) -> bool:
        modalities = self.facts.modalities
        if modalities == {"text"}:
            return not x.is_floating_point()
        return x.is_floating_point() and (modalities != {"image"} or x.dim() == 4)

    def _refuse(self, sample_shape: tuple[int, ...]) -> NoReturn:
        needs = {
            frozenset({"text"}): "token-id batches (a text dataset)",
            frozenset({"image"}): "image batches (N, C, H, W)",
        }.get(self.facts.modalities, "numeric features")
        raise RecipeError(
            f"techniques.{self.technique}: needs {needs}; this dataset gives {sample_shape} "
            f"per sample; {self.facts.hint}"
        )

    def on_fit_start(self, state: State) -> None:
        # Refuse the wrong kind of data before the first step, not mid-epoch.
        info = state.task
        if info is not None and check_applicable(self.technique, info.target_kind, modality(info)):
            self._refuse(tuple(info.input_shape))

    def on_batch_start(self, state: State) -> None:
        x, y = state.batch
        if not self._fits(x):
            self._refuse(tuple(x.shape[1:]))
        state.batch = (self.augment(x, self.generator(state, x.device), state), y)

    @abc.abstractmethod
    def augment(self, x: torch.Tensor, gen: torch.Generator, state: State) -> torch.Tensor:
        """The batch's inputs, augmented (each registered augmentation defines it)."""


def _register(
    name: str, description: str, params: type[AugmentParams], fn: Any, **facts: Any
) -> None:
    cls = type(
        f"Augment_{name}",
        (Augmentation,),
        {
            "augment": lambda self, x, gen, state: fn(self.params, x, gen, state),
            "technique": name,
            "__module__": __name__,
        },
    )
    TECHNIQUES.add(name, cls, description=description, params=params, augmentation=True, **facts)


#: The facts of the augmentations that act on images only.
IMAGES_ONLY = {
    "modalities": "image",
    "hint": "use gaussian_noise for tables or token_dropout for text",
}


class FlipParams(AugmentParams):
    """Parameters of `hflip` / `vflip`."""

    p: float = Field(0.5, ge=0, le=1)


class CropParams(AugmentParams):
    """Parameters of `random_crop`."""

    padding: int = Field(4, ge=1)
    mode: Literal["constant", "reflect", "replicate"] = "constant"


class RotateParams(AugmentParams):
    """Parameters of `rotate`."""

    degrees: float = Field(15.0, gt=0, le=180)


class AffineParams(AugmentParams):
    """Parameters of `affine` (scale and translate; rotation optional)."""

    degrees: float = Field(0.0, ge=0, le=180)
    translate: float = Field(0.1, ge=0, lt=1)
    scale: tuple[float, float] = (0.9, 1.1)


class JitterParams(AugmentParams):
    """Parameters of `color_jitter`: each factor is drawn from 1 ± value."""

    brightness: float = Field(0.2, ge=0, lt=1)
    contrast: float = Field(0.2, ge=0, lt=1)
    saturation: float = Field(0.2, ge=0, lt=1)


class NoiseParams(AugmentParams):
    """Parameters of `gaussian_noise` (std in the units of the preprocessed features)."""

    std: float = Field(0.1, gt=0)


class CutoutParams(AugmentParams):
    """Parameters of `cutout`."""

    size: int = Field(8, ge=1)
    p: float = Field(1.0, ge=0, le=1)


class ErasingParams(AugmentParams):
    """Parameters of `random_erasing`."""

    p: float = Field(0.5, ge=0, le=1)
    scale: tuple[float, float] = (0.02, 0.33)
    ratio: tuple[float, float] = (0.3, 3.3)
    value: float = 0.0


class TokenDropoutParams(AugmentParams):
    """Parameters of `token_dropout`."""

    p: float = Field(0.1, gt=0, lt=1)


def _numeric_columns(state: State) -> int | None:
    features = state.task.features if state.task is not None else {}
    if features.get("kind") == "tabular" and features.get("cardinalities"):
        return int(features["numeric"])  # index-encoded categoricals stay integers
    return None


_register(
    "hflip",
    "augment: mirror images left-right with probability p",
    FlipParams,
    lambda p, x, g, s: hflip(x, p.p, g),
    **IMAGES_ONLY,
)
_register(
    "vflip",
    "augment: mirror images top-bottom with probability p",
    FlipParams,
    lambda p, x, g, s: vflip(x, p.p, g),
    **IMAGES_ONLY,
)
_register(
    "random_crop",
    "augment: pad by `padding` pixels and crop back at a random offset",
    CropParams,
    lambda p, x, g, s: random_crop(x, p.padding, g, p.mode),
    **IMAGES_ONLY,
)
_register(
    "rotate",
    "augment: rotate images by a random angle in ±degrees",
    RotateParams,
    lambda p, x, g, s: affine(x, g, degrees=p.degrees),
    **IMAGES_ONLY,
)
_register(
    "affine",
    "augment: random scale/translate (and rotation) of images",
    AffineParams,
    lambda p, x, g, s: affine(x, g, p.degrees, p.translate, p.scale),
    **IMAGES_ONLY,
)
_register(
    "color_jitter",
    "augment: random brightness, contrast and saturation",
    JitterParams,
    lambda p, x, g, s: color_jitter(x, g, p.brightness, p.contrast, p.saturation),
    **IMAGES_ONLY,
)
_register(
    "gaussian_noise",
    "augment: add gaussian noise (tables: numeric columns only); std",
    NoiseParams,
    lambda p, x, g, s: gaussian_noise(x, p.std, g, _numeric_columns(s)),
    modalities=("image", "tabular"),
    hint="for text use token_dropout",
)
_register(
    "cutout",
    "augment: zero a size x size square at a random place in each image",
    CutoutParams,
    lambda p, x, g, s: cutout(x, p.size, g, p.p),
    **IMAGES_ONLY,
)
_register(
    "random_erasing",
    "augment: erase a random rectangle (area, aspect ranges) with prob. p",
    ErasingParams,
    lambda p, x, g, s: random_erasing(x, g, p.p, p.scale, p.ratio, p.value),
    **IMAGES_ONLY,
)
_register(
    "token_dropout",
    "augment: replace text tokens by <unk> with probability p",
    TokenDropoutParams,
    lambda p, x, g, s: token_dropout(x, p.p, g),
    modalities="text",
    hint="for images or tables use gaussian_noise",
)
