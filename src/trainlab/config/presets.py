"""Defaults for a recipe that names only its data: the dataset's preset fills the rest.

A recipe of a user's table can be as short as

```yaml
data:
  dataset: {name: csv, path: houses.csv, target: price}
```

Its dataset's registry entry names a preset (`preset="tabular"` for `csv` and `adult`);
the preset supplies the model, the training settings and the techniques the recipe
leaves out. Whatever the recipe does say wins, key by key (`train.epochs: 20` keeps the
rest of the preset's training settings; a `techniques` list replaces the preset's).
The run saves the recipe with the preset filled in, so it states exactly what was
trained. A dataset without a preset (images, text) needs its `model` named.
"""

from __future__ import annotations

import copy
from typing import Any

#: An MLP for tables, after the strong tabular defaults of RealMLP (Holzmüller et al.
#: 2024) and TabM's MLP baseline (Gorishniy et al. 2024): periodic embeddings of the
#: numeric columns (Gorishniy et al. 2022), three wide SiLU layers with dropout, AdamW
#: with a little weight decay, batches of up to 256 (smaller for small tables), a generous
#: epoch budget cut by early stopping on the validation loss (keeping the best epoch's
#: weights), the learning rate reduced when the validation loss stalls.
#: Chosen with `bench/tabular.py` on the corpus in bench/data/tabular (docs/tables.md).
TABULAR: dict[str, Any] = {
    "model": {
        "name": "mlp",
        "hidden": [256, 256, 256],
        "activation": "silu",
        "dropout": 0.1,
        "numeric_embedding": {"kind": "periodic", "frequencies": 16, "sigma": 0.1, "dim": 16},
    },
    "train": {
        "epochs": 200,
        "batch_size": 256,
        "lr": 1e-3,
        "weight_decay": 1e-4,
        "optimizer": "adamw",
        "schedule": {"name": "plateau", "patience": 4, "factor": 0.3},
    },
    "techniques": [{"name": "early_stopping", "patience": 12}],
}

PRESETS: dict[str, dict[str, Any]] = {"tabular": TABULAR}


def dataset_name(data: dict[str, Any]) -> str | None:
    """The dataset a recipe mapping names (`data.dataset` as a name or {name: …})."""
    section = data.get("data")
    dataset = section.get("dataset") if isinstance(section, dict) else None
    if isinstance(dataset, str):
        return dataset
    if isinstance(dataset, dict) and isinstance(dataset.get("name"), str):
        return dataset["name"]
    return None


def preset_for(dataset: str | None) -> str | None:
    """The preset named by `dataset`'s registry entry, or None."""
    if dataset is None:
        return None
    from trainlab.catalog import DATASETS

    if dataset not in DATASETS:
        return None
    return DATASETS.get(dataset).metadata.get("preset")


def _names_no_model(model: Any) -> bool:
    """True for an absent model, or options without a name (`--set model.dropout=0.3`)."""
    return isinstance(model, dict) and "name" not in model


def _techniques(given: Any, preset: list[dict[str, Any]]) -> Any:
    """The recipe's techniques list; the preset's when absent; the preset's with
    overrides merged in when given by position (`--set techniques.0.patience=30`)."""
    if given is None:
        return preset
    if isinstance(given, dict) and all(str(k).isdigit() for k in given):
        merged = [dict(t) for t in preset]
        for key, value in given.items():
            i = int(key)
            if i < len(merged) and isinstance(value, dict):
                merged[i].update(value)
            else:
                return given  # not the preset's: let validation name the problem
        return merged
    return given


def batch_size_for(rows: int) -> int:
    """A power of two from 32 to 256 giving the training split (about 70 % of `rows`)
    at least 16 steps per epoch: small tables need many updates per epoch for early
    stopping's patience to mean something, large ones gain speed from big batches."""
    per_step = max(1, int(0.7 * rows) // 16)
    return int(min(256, max(32, 2 ** (per_step.bit_length() - 1))))


def _rows_hint(data: dict[str, Any]) -> int | None:
    """Rows of the recipe's table: its registry entry's count, or the file's lines."""
    from pathlib import Path

    from trainlab.catalog import DATASETS

    name = dataset_name(data)
    samples = DATASETS.get(name).metadata.get("samples") if name in DATASETS else None
    if isinstance(samples, int):
        return samples
    dataset = data["data"].get("dataset")
    path = dataset.get("path") if isinstance(dataset, dict) else None
    if not isinstance(path, str) or not Path(path).expanduser().is_file():
        return None
    with Path(path).expanduser().open("rb") as f:
        return sum(1 for line in f if line.strip())


def apply_preset(data: dict[str, Any]) -> dict[str, Any]:
    """`data` (a recipe mapping) with its dataset's preset under it, when it names no
    model; unchanged otherwise. The input is not modified."""
    if not isinstance(data, dict) or not _names_no_model(data.get("model", {})):
        return data
    name = preset_for(dataset_name(data))
    if name is None:
        return data
    preset = copy.deepcopy(PRESETS[name])
    rows = _rows_hint(data)
    if rows is not None:
        preset["train"]["batch_size"] = batch_size_for(rows)
    out = {**data, "model": {**preset["model"], **data.get("model", {})}}
    train = data.get("train")
    out["train"] = {**preset["train"], **train} if isinstance(train, dict) else preset["train"]
    if train is not None and not isinstance(train, dict):
        out["train"] = train  # let validation name the problem
    out["techniques"] = _techniques(data.get("techniques"), preset["techniques"])
    if not out.get("description"):
        out["description"] = f"{name} preset (the recipe names no model)"
    return out
