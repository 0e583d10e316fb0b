"""`model.init_from`: start a freshly built model from another model's weights.

The source is a finished trainlab run (its `model.safetensors`), a `.safetensors` file,
or a PyTorch checkpoint read with `torch.load(weights_only=True)`: tensors only, so a
checkpoint holding pickled Python objects is refused and nothing in it is executed.
Tensors are matched by name and shape. The model's `head` (transfer.groups) stays freshly
initialised with `head: new`, so a source trained on other classes still serves; any
other tensor whose shape differs is an error naming it and the fix (exclude it). The
source is only read, never written.

The report says what happened, in two views of the same tensors: `loaded` (copied from
the source), `skipped` (source tensors not loaded, each with its reason) and `new`
(tensors of this model left as initialised): loaded + skipped = the source's tensors,
loaded + new = the model's.
"""

from __future__ import annotations

import pickle
import re
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors.torch import load_file
from torch import nn

from trainlab.errors import RecipeError, RunError
from trainlab.transfer.groups import keys_under, layer_groups, resolve_layers

if TYPE_CHECKING:
    from trainlab.config.schema import InitFromConfig
    from trainlab.tasks import TaskInfo

#: Keys under which checkpoints commonly wrap the model's state dict.
WRAPPERS = ("state_dict", "model_state_dict", "model")
#: Statuses of a run whose weights are final (`store.rundir.RunStatus` values).
FINISHED_OK = ("completed", "stopped")
WHERE = "model.init_from"


def init_from(
    model: nn.Module, spec: InitFromConfig, task_info: TaskInfo, arch_name: str
) -> dict[str, Any]:
    """Copy the source's matching tensors into `model` (in place); the report.

    `spec` is the recipe's `model.init_from`, `task_info` this task's facts (for the head
    size in messages), `arch_name` the recipe's `model.name` (it selects the groups).
    Raises RunError when the source cannot be read and RecipeError when it does not fit.
    """
    source, weights, kind, tensors, source_arch = _read_source(spec)
    target = model.state_dict()
    head = set(keys_under(layer_groups(model, arch_name)["head"], target))
    excluded = _excluded(model, spec.exclude, [*target, *tensors], arch_name)
    loaded, skipped = [], []
    in_model_order = [n for n in target if n in tensors] + [n for n in tensors if n not in target]
    for name in in_model_order:
        reason = _skip_reason(name, tensors[name], target, head, excluded, spec.head, task_info)
        if reason:
            skipped.append({"name": name, "reason": reason})
        else:
            loaded.append(name)
    if not loaded:
        raise _nothing_loaded(source, tensors, target, arch_name, source_arch)
    with torch.no_grad():
        for name in loaded:
            target[name].copy_(tensors[name].to(target[name].dtype))
    done = set(loaded)
    new = [name for name in target if name not in done]
    report = {
        "source": source,
        "kind": kind,
        "weights": weights,
        "head": spec.head,
        "loaded": loaded,
        "skipped": skipped,
        "new": new,
        "counts": {"loaded": len(loaded), "skipped": len(skipped), "new": len(new)},
    }
    if source_arch is not None:
        report["source_architecture"] = source_arch
    return report


def _nothing_loaded(
    source: str,
    tensors: dict[str, torch.Tensor],
    target: dict[str, torch.Tensor],
    arch_name: str,
    source_arch: str | None,
) -> RecipeError:
    """The error for a source of which not one tensor would be loaded."""
    if any(name in target for name in tensors):
        return RecipeError(
            f"{WHERE}: nothing to load from '{source}': every tensor it shares with this "
            "model is excluded or in the new head; shorten init_from.exclude"
        )
    return RecipeError(
        f"{WHERE}: nothing to load from '{source}': it shares no tensor with this "
        f"'{arch_name}' model (source tensors look like {list(tensors)[:4]}, this "
        f"model's like {list(target)[:4]}); start from a run of the same architecture"
        + (f" (the source is a '{source_arch}')" if source_arch else "")
    )


def _excluded(
    model: nn.Module, patterns: list[str], names: list[str], arch_name: str
) -> dict[str, str]:
    """Tensor name → the `exclude` entry that excludes it (globs, groups, module names)."""
    if not patterns:
        return {}
    chosen = resolve_layers(
        model, patterns, list(dict.fromkeys(names)), arch_name, f"{WHERE}.exclude"
    )
    return {name: entry for entry, found in chosen.items() for name in found}


def _skip_reason(
    name: str,
    value: torch.Tensor,
    target: dict[str, torch.Tensor],
    head: set[str],
    excluded: dict[str, str],
    head_mode: str,
    info: TaskInfo,
) -> str | None:
    """Why source tensor `name` is not loaded (None: load it); RecipeError on a misfit."""
    if name not in target:
        return "not in this model"
    if name in excluded:
        return f"excluded by '{excluded[name]}'"
    if name in head and head_mode == "new":
        return "head: new (the output layer starts fresh)"
    want, have = list(target[name].shape), list(value.shape)
    if want == have:
        return None
    if name in head:
        layer = name.rpartition(".")[0] or name
        raise RecipeError(
            f"{WHERE}: the head layer '{layer}' ({name}) has shape {have} in the source but "
            f"{want} in this model (this task has {info.output_dim} outputs); set "
            f"{WHERE}.head: new to start a fresh head sized for this task"
        )
    module = name.rpartition(".")[0]
    raise RecipeError(
        f"{WHERE}: tensor '{name}' has shape {have} in the source but {want} in this model; "
        f"make the model's settings match the source's there, or add "
        f"'{module + '.*' if module else name}' to {WHERE}.exclude to leave it freshly "
        "initialised"
    )


def _read_source(
    spec: InitFromConfig,
) -> tuple[str, str, str, dict[str, torch.Tensor], str | None]:
    """(source as given, its weights file, kind, tensors by name, the source run's
    architecture or None)."""
    if spec.run is not None:
        path, arch = _finished_run_weights(Path(spec.run))
        return spec.run, str(path), "run", _read_safetensors(path), arch
    path = Path(spec.weights)
    if not path.is_file():
        what = "a directory, not a file" if path.is_dir() else "not found"
        raise RunError(f"{WHERE}.weights: '{path}' is {what}; give the path of a weights file")
    if _is_safetensors(path):
        return spec.weights, str(path), "safetensors", _read_safetensors(path), None
    return spec.weights, str(path), "torch", _read_torch(path), None


def _finished_run_weights(run_dir: Path) -> tuple[Path, str | None]:
    """The weights file of a finished run, and its recipe's architecture."""
    from trainlab.store.rundir import RunDir

    rd = RunDir(run_dir)
    if not rd.path.is_dir():
        raise RunError(f"{WHERE}.run: run directory '{rd.path}' not found")
    if not rd.exists():
        raise RunError(
            f"{WHERE}.run: '{rd.path}' is not a trainlab run directory (no run.json); for a "
            "weights file use init_from.weights"
        )
    status = rd.info().get("status", "unknown")
    if status == "diverged":
        raise RunError(
            f"{WHERE}.run: run '{rd.path}' diverged; its model.safetensors holds the last good "
            f"epoch: start from it explicitly with init_from.weights: {rd.weights}"
        )
    if status not in FINISHED_OK:
        raise RunError(
            f"{WHERE}.run: run '{rd.path}' is {status}, not finished: finish it with "
            f"`trainlab train {rd.recipe} --out {rd.path}` (it resumes from its last "
            "checkpoint), then start from it"
        )
    if not rd.weights.is_file():
        raise RunError(f"{WHERE}.run: weights file '{rd.weights}' not found")
    return rd.weights, _run_architecture(rd.recipe)


def _run_architecture(recipe_path: Path) -> str | None:
    """The source run's `model.name` (None when its recipe cannot be read)."""
    import yaml

    try:
        saved = yaml.safe_load(recipe_path.read_text(encoding="utf-8"))
        return str(saved["model"]["name"])
    except (OSError, yaml.YAMLError, UnicodeDecodeError, KeyError, TypeError):
        return None


def _is_safetensors(path: Path) -> bool:
    """A safetensors file starts with an 8-byte header length, then a JSON header."""
    with open(path, "rb") as f:
        start = f.read(9)
    return len(start) == 9 and start[8:9] == b"{"


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """Every tensor of a safetensors file, on the CPU (a RunError if it is damaged)."""
    try:
        return load_file(str(path), device="cpu")
    except Exception as exc:  # safetensors raises several types for corrupt files
        raise RunError(f"{WHERE}: cannot read weights '{path}': {exc}") from None


def _read_torch(path: Path) -> dict[str, torch.Tensor]:
    """A PyTorch checkpoint's state dict: tensors only, wrappers and `module.` removed."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            saved = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"GLOBAL ([\w.]+)", str(exc))
        if found is None:  # not a pickle at all, or a damaged one
            raise RunError(
                f"{WHERE}.weights: cannot read '{path}' as safetensors or a PyTorch "
                "checkpoint (damaged, or another format)"
            ) from None
        # torch's own message advises weights_only=False (running the pickle): never relay it
        raise RunError(
            f"{WHERE}.weights: '{path}' holds pickled Python objects besides tensors (it "
            f"needs {found.group(1)}); it is refused, since loading it could run code. Save "
            "the state dict alone (torch.save(model.state_dict(), path)) or convert it to "
            ".safetensors"
        ) from None
    except Exception as exc:  # noqa: BLE001 - junk bytes raise many kinds
        raise RunError(
            f"{WHERE}.weights: cannot read '{path}' as safetensors or a PyTorch checkpoint "
            f"({type(exc).__name__})"
        ) from None
    return _state_dict_of(saved, path)


def _state_dict_of(saved: Any, path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a loaded checkpoint, unwrapped and without DataParallel's prefix."""
    if isinstance(saved, dict):
        for key in WRAPPERS:
            if isinstance(saved.get(key), dict):
                saved = saved[key]
                break
    tensors = (
        {str(k): v for k, v in saved.items() if isinstance(v, torch.Tensor)}
        if isinstance(saved, dict)
        else {}
    )
    if not tensors:
        raise RunError(
            f"{WHERE}.weights: '{path}' holds no state dict of tensors (a "
            f"{type(saved).__name__}); save model.state_dict(), optionally under "
            f"{' / '.join(repr(w) for w in WRAPPERS)}"
        )
    return {k.removeprefix("module."): v for k, v in tensors.items()}
