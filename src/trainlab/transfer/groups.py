"""The named parts of a model: `head`, `backbone` and the blocks inside it, in order.

Transfer learning talks about parts, not tensor names: "start from that run's backbone
with a new head", "freeze the backbone", "keep the last two blocks trainable". Every
trainlab architecture is split the same way, from its module tree:

- `head`: the output layer (the last layer with weights; for `wide_deep` also the wide
  part, which is as wide as the outputs): what a task with other classes replaces;
- `block1`, `block2`, …: the rest of the network in forward order, one block per layer
  with weights and the normalisation layers that follow it (each conv block of `cnn`,
  each dense block of `mlp`, the stem and each stage of `resnet`, each stage of
  `vgg_small`'s features and each hidden dense layer of its classifier, the embedding and
  the encoder of the text models);
- `backbone`: every block, i.e. everything but the head.

A group is a list of member names: module names as `model.named_modules()` spells them,
or a parameter's full name for a parameter held directly by a container. A member covers
every tensor whose state-dict name is the member or starts with it and a dot.

Architectures that need more than the module tree say so in the hints below, keyed by
architecture name; a model of an architecture without hints (a new one) is split by the
same generic rule. Nothing here imports runs, commands or techniques: techniques
(`freeze`) and `transfer.init` both read parts from here.
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass, field

from torch import nn

from trainlab.errors import RecipeError

#: Members of the head besides the last layer with weights: `wide_deep`'s wide part is a
#: linear model over the inputs straight to the outputs (as wide as the task's outputs).
EXTRA_HEAD: dict[str, tuple[str, ...]] = {
    "wide_deep": ("wide_embeddings", "cross_embeddings", "wide_linear", "wide_bias"),
}
#: Containers split into stages at their pooling layers rather than kept as one block.
STAGED: dict[str, tuple[str, ...]] = {"vgg_small": ("features",), "vgg16": ("features",)}
#: Model classes → architecture name, for callers holding a model but not its recipe.
ARCHITECTURE_OF_CLASS: dict[str, str] = {
    "trainlab.models.vgg.VGGSmall": "vgg_small",
    "trainlab.models.tabular.WideDeep": "wide_deep",
    "trainlab.models.imagenet.VGG16": "vgg16",
}

_POOLS = (nn.MaxPool1d, nn.MaxPool2d, nn.AvgPool1d, nn.AvgPool2d, nn.AdaptiveAvgPool2d)
_ATTACHED = (
    nn.modules.batchnorm._NormBase,
    nn.LayerNorm,
    nn.GroupNorm,
    nn.LocalResponseNorm,
    nn.PReLU,
)
_GLOB = set("*?[")


@dataclass
class _Unit:
    """One piece of the module tree in forward order: its member names, and whether it
    holds a layer with weights (it starts a block) or only follows one (a norm)."""

    names: list[str]
    weights: bool
    head: bool = False
    extra: list[str] = field(default_factory=list)


def architecture_of(model: nn.Module) -> str | None:
    """The architecture name of a model whose class has hints (None for the others)."""
    kind = type(model)
    return ARCHITECTURE_OF_CLASS.get(f"{kind.__module__}.{kind.__qualname__}")


def layer_groups(model: nn.Module, arch_name: str | None = None) -> dict[str, list[str]]:
    """`{"head": [...], "backbone": [...], "block1": [...], ...}` for `model`.

    `arch_name` is the recipe's `model.name` (it selects the architecture's hints);
    None infers it from the model's class. Members are module (or parameter) names; only
    parts holding tensors are listed, so activations and pooling layers never appear.
    """
    arch = arch_name or architecture_of(model)
    head = _last_weight_layer(model)
    if head is None or head == "":
        return {"head": [""] if head == "" else [], "backbone": []}
    units = _walk(model, "", head, STAGED.get(arch or "", ()))
    extra = set(EXTRA_HEAD.get(arch or "", ()))
    head_names: list[str] = [n for u in units if not u.head for n in u.names if n in extra]
    blocks: list[list[str]] = []
    leading: list[str] = []  # buffers or norms before any weight layer join the first block
    after_head = False
    for unit in units:
        names = [n for n in unit.names if n not in extra]
        if not names:
            continue
        if unit.head or after_head:  # what follows the output layer belongs to it
            head_names += names
            after_head = True
        elif unit.weights:
            blocks.append(leading + names if not blocks else names)
        elif blocks:
            blocks[-1] += names
        else:
            leading += names
    if leading and not blocks:
        blocks.append(leading)
    groups = {"head": head_names, "backbone": [n for b in blocks for n in b]}
    groups.update({f"block{i}": b for i, b in enumerate(blocks, start=1)})
    return groups


def _is_attached(module: nn.Module) -> bool:
    """True for layers that follow a weight layer (norms, PReLU) rather than start a block."""
    return isinstance(module, _ATTACHED) or "norm" in type(module).__name__.lower()


def _has_state(module: nn.Module) -> bool:
    """True when the module (or a child) holds a parameter or a buffer."""
    return any(True for _ in module.parameters()) or any(True for _ in module.buffers())


def _has_weights(module: nn.Module) -> bool:
    """True when the module (or a child) is a layer with weights, not only norms."""
    return any(
        not _is_attached(m) and any(True for _ in m.parameters(recurse=False))
        for m in module.modules()
    )


def _last_weight_layer(model: nn.Module) -> str | None:
    """The name of the last module (in registration order) holding its own weights."""
    last = None
    for name, module in model.named_modules():
        if not _is_attached(module) and any(True for _ in module.parameters(recurse=False)):
            last = name
    return last


def _walk(module: nn.Module, prefix: str, head: str, staged: tuple[str, ...]) -> list[_Unit]:
    """The units of `module` in order, opening the containers on the way to the head."""
    units = [_Unit([prefix + n], True) for n, _ in module.named_parameters(recurse=False)]
    units += [_Unit([prefix + n], False) for n, _ in module.named_buffers(recurse=False)]
    for name, child in module.named_children():
        full = prefix + name
        if not _has_state(child):
            continue
        if full == head:
            units.append(_Unit([full], True, head=True))
        elif head.startswith(full + "."):
            units += _walk(child, full + ".", head, staged)
        elif full in staged:
            units += _stages(child, full + ".")
        else:
            units.append(_Unit([full], _has_weights(child)))
    return units


def _stages(container: nn.Module, prefix: str) -> list[_Unit]:
    """A container's children cut into stages after each pooling layer (VGG's stages)."""
    stages: list[_Unit] = []
    current: list[str] = []
    for name, child in container.named_children():
        if isinstance(child, _POOLS):
            if current:
                stages.append(_Unit(current, True))
            current = []
        elif _has_state(child):
            current.append(prefix + name)
    if current:
        stages.append(_Unit(current, True))
    return stages


def covers(member: str, key: str) -> bool:
    """True when tensor `key` (a state-dict name) belongs to group member `member`."""
    return member == "" or key == member or key.startswith(member + ".")


def keys_under(members: Iterable[str], keys: Iterable[str]) -> list[str]:
    """The names among `keys` that some member covers, in the order of `keys`."""
    members = list(members)
    return [k for k in keys if any(covers(m, k) for m in members)]


def module_names(model: nn.Module) -> list[str]:
    """Every submodule's name, as `model.named_modules()` spells them (the root left out)."""
    return [name for name, _ in model.named_modules() if name]


def is_pattern(entry: str) -> bool:
    """True when `entry` is a glob pattern (`*`, `?` or `[`) rather than a name."""
    return bool(_GLOB & set(entry))


def unknown_layer(name: str, known: Iterable[str], where: str = "layers") -> RecipeError:
    """The RecipeError for a layer name that names nothing, with the nearest names."""
    known = list(dict.fromkeys(known))
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    hint = (
        "did you mean " + " or ".join(f"'{c}'" for c in close)
        if close
        else "did you mean one of: " + ", ".join(known[:12]) + ("…" if len(known) > 12 else "")
    )
    return RecipeError(f"{where}: unknown layer '{name}'; {hint}?")


def resolve_layers(
    model: nn.Module,
    entries: Iterable[str],
    keys: Iterable[str] | None = None,
    arch_name: str | None = None,
    where: str = "layers",
) -> dict[str, list[str]]:
    """Each entry → the tensor names among `keys` it stands for.

    An entry is a group (`backbone`, `head`, `block3`), a module name (`layer1`, `0`), a
    tensor name (`0.weight`) or a glob pattern over tensor names (`layer1.*`). `keys`
    defaults to the model's parameters and buffers. A name that is none of these, or a
    pattern matching nothing, is a RecipeError with the closest names.
    """
    groups = layer_groups(model, arch_name)
    modules = module_names(model)
    if keys is None:
        keys = [n for n, _ in model.named_parameters()] + [n for n, _ in model.named_buffers()]
    keys = list(keys)
    chosen: dict[str, list[str]] = {}
    for entry in entries:
        if entry in groups:
            chosen[entry] = keys_under(groups[entry], keys)
        elif is_pattern(entry):
            chosen[entry] = [k for k in keys if fnmatch.fnmatchcase(k, entry)]
        elif entry in modules or entry in keys:
            chosen[entry] = keys_under([entry], keys)
        else:
            raise unknown_layer(entry, [*groups, *modules], where)
        if not chosen[entry] and is_pattern(entry):
            raise RecipeError(
                f"{where}: pattern '{entry}' matches no tensor; names look like: "
                + ", ".join(keys[:8])
            )
    return chosen
