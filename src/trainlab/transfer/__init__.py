"""Transfer learning: a model's named parts (`groups`) and starting a model from another
model's weights (`init`, the recipe's `model.init_from`).

`groups` imports only torch, so techniques (`freeze`) may use it; `init` reads run
directories through the store, never through `trainlab.runs`.
"""

from trainlab.transfer.groups import layer_groups, module_names, resolve_layers

__all__ = ["init_from", "layer_groups", "module_names", "resolve_layers"]


def __getattr__(name: str):
    """`init_from` on first use (it loads safetensors and the run store)."""
    if name == "init_from":
        from trainlab.transfer.init import init_from

        return init_from
    raise AttributeError(f"module 'trainlab.transfer' has no attribute {name!r}")
