"""The export folder's own files: export.json, the run's copied files and README.md.

What a consumer needs without trainlab: the model file (written by export_formats), the
facts to call it (export.json), the fitted preprocessing as plain JSON numbers
(preprocess.json) with its description in words (README.md), the class names and task
facts (data.json), the recipe and the run's metrics. `export.py`'s docstring lists the
layout; docs/deploy.md explains it.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from trainlab.data.preprocess import MISSING_CATEGORY
from trainlab.fileio import atomic_write_text, write_json

#: The run's files copied as they are (the ones a run has always written).
COPIED = ("preprocess.json", "data.json", "recipe.yaml", "metrics.json")


def write_artifact(folder: Path, run_dir: Path, meta: dict[str, Any]) -> None:
    """Write export.json (`meta`), copies of the run's files and README.md into `folder`."""
    for name in COPIED:
        if (run_dir / name).is_file():
            shutil.copyfile(run_dir / name, folder / name)
    write_json(folder / "export.json", meta)
    atomic_write_text(folder / "README.md", readme(meta, _read_json(run_dir / "preprocess.json")))


def _read_json(path: Path) -> dict[str, Any]:
    import json

    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def readme(meta: dict[str, Any], pre: dict[str, Any]) -> str:
    """README.md: what the artifact is, how to call it in ~10 lines, what inputs need."""
    parity = meta["parity"]
    shape = ", ".join("N" if d is None else str(d) for d in meta["input"]["shape"])
    lines = [
        f"# {meta['name']}: exported with trainlab {meta['trainlab_version']}",
        "",
        f"`{meta['model_file']}` ({meta['format']}) computes the model of the run "
        f"`{meta['source_run']}` (recipe hash {meta['recipe_hash']}). On its {parity['split']}"
        f" split ({parity['samples']} rows) its outputs matched PyTorch's within max abs diff "
        f"{parity['max_abs_diff']:.3g} (tolerance atol {parity['atol']:g} + rtol "
        f"{parity['rtol']:g}·|torch|); {parity['metric']} {parity['metric_export']:.4f} "
        f"under both.",
        "",
        f"Input `{meta['input']['name']}`: {meta['input']['dtype']}, shape ({shape}), any "
        f"batch size N. Output `{meta['output']['name']}`: {_output_words(meta)}",
        "",
        "## Calling it",
        "",
        "```python",
        *_example(meta),
        "```",
        "",
        "## What the inputs need (preprocess.json in words)",
        "",
        *[f"- {line}" for line in describe_preprocessing(pre, meta)],
        "",
        "## Files",
        "",
        f"- `{meta['model_file']}`: the model; `export.json`: input/output names, shapes, "
        "dtypes, classes, target unscaling, the parity figures",
        "- `preprocess.json`: the fitted preprocessing (plain numbers); `data.json`: the task "
        "(classes, input shape); `recipe.yaml`: the recipe as trained; `metrics.json`: its "
        "metrics",
        "",
    ]
    return "\n".join(lines)


def _output_words(meta: dict[str, Any]) -> str:
    kind, classes = meta["target_kind"], meta.get("classes")
    if kind == "multiclass":
        names = f" (classes: {', '.join(map(str, classes))})" if classes else ""
        return f"one logit per class; softmax gives probabilities, argmax the class{names}."
    if kind == "binary":
        names = f" ({classes[0]} / {classes[1]})" if classes and len(classes) == 2 else ""
        return f"one logit; sigmoid gives P(class 1), > 0 means class 1{names}."
    return (
        "regression values in training units; original units are output · target_scale + "
        "target_shift (export.json)."
    )


def _example(meta: dict[str, Any]) -> list[str]:
    """The ~10-line example: onnxruntime + numpy (pt2: torch only)."""
    dtype = "np.int64" if meta["input"]["dtype"] == "int64" else "np.float32"
    if meta["format"] == "onnx":
        lines = [
            "import json",
            "import numpy as np",
            "import onnxruntime as ort",
            "",
            'meta = json.load(open("export.json"))',
            'session = ort.InferenceSession("model.onnx", providers=["CPUExecutionProvider"])',
            f'x = np.load("inputs.npy").astype({dtype})  # preprocessed as described below',
            '(out,) = session.run(None, {meta["input"]["name"]: x})',
        ]
    else:
        lines = [
            "import json",
            "import numpy as np",
            "import torch",
            "",
            'meta = json.load(open("export.json"))',
            'model = torch.export.load("model.pt2").module()  # only load files you trust',
            f'x = np.load("inputs.npy").astype({dtype})  # preprocessed as described below',
            "out = model(torch.from_numpy(x)).detach().numpy()",
        ]
    kind = meta["target_kind"]
    if kind == "multiclass":
        lines += [
            "p = np.exp(out - out.max(1, keepdims=True))",
            "p /= p.sum(1, keepdims=True)  # probabilities",
            'names = meta["classes"] or range(p.shape[1])',
            "labels = [names[i] for i in p.argmax(1)]",
        ]
    elif kind == "binary":
        lines += [
            "p1 = 1 / (1 + np.exp(-out[:, 0]))  # P(class 1)",
            'names = meta["classes"] or [0, 1]',
            "labels = [names[int(v > 0.5)] for v in p1]",
        ]
    else:
        lines += [
            'values = out * np.asarray(meta["target_scale"]) + np.asarray(meta["target_shift"])',
        ]
    return lines


def describe_preprocessing(pre: dict[str, Any], meta: dict[str, Any]) -> list[str]:
    """preprocess.json in plain words: the steps from raw inputs to the model's input."""
    kind = pre.get("kind")
    if kind == "text":
        return _describe_text(pre)
    p = pre.get("params") or {}
    image = len(meta["input"]["shape"]) == 4
    raw = (
        "images as float32 pixels in [0, 1], channels first (C, H, W), as trainlab's image "
        "loaders give them"
        if image
        else "feature rows as the dataset gives them"
    )
    if kind is None or p.get("identity"):
        return [f"Raw inputs: {raw}. No fitted preprocessing: they go to the model as they are."]
    names = pre.get("column_names") or []
    num, cat = p.get("numeric") or [], p.get("categorical") or []
    steps = [f"Raw inputs: {raw}; columns in this order: {_names(names)}."]
    steps += _describe_numeric(p, [names[i] for i in num] if names else num)
    steps += _describe_categorical(pre, p, [names[i] for i in cat] if names else cat)
    if p.get("pca_components") is not None:
        steps.append(
            f"PCA: the columns so far become (x − params.pca_mean) @ params.pca_components.T "
            f"({len(p['pca_components'])} components)."
        )
    if p.get("categorical") and pre.get("config", {}).get("encode") == "index":
        steps.append("Model input: the numeric columns above, then one index per categorical.")
    return steps


def _names(names: list[str]) -> str:
    if len(names) > 12:
        return f"{', '.join(names[:12])}, … ({len(names)} columns: preprocess.json column_names)"
    return ", ".join(names) or "(unnamed)"


def _describe_numeric(p: dict[str, Any], names: list[Any]) -> list[str]:
    if not names:
        return []
    steps = []
    if p.get("fill") is not None:
        steps.append("Missing numbers (NaN) are filled with params.fill (one per numeric column).")
    else:
        steps.append("Numbers must not be missing (NaN): the run has no imputer.")
    which = _names([str(n) for n in names])
    if p.get("shift") is not None:
        steps.append(
            f"Numeric columns ({which}) are scaled: (x − params.shift) / params.scale, per column."
        )
    elif p.get("quantiles") is not None:
        steps.append(
            f"Numeric columns ({which}) are quantile-transformed to a normal: interpolate x "
            "in params.quantiles onto params.references, then the normal quantile function."
        )
    if p.get("indicator"):
        n = len(p["indicator"])
        steps.append(
            f"{n} indicator column{'s follow' if n > 1 else ' follows'}: 1 where the numeric "
            "column params.indicator[k] was missing, else 0."
        )
    return steps


def _describe_categorical(pre: dict[str, Any], p: dict[str, Any], names: list[Any]) -> list[str]:
    if not names:
        return []
    encode = (pre.get("config") or {}).get("encode")
    if p.get("cat_fill") is not None:
        missing = "missing cells become params.cat_fill[k] first"
    elif encode == "index":
        missing = "a missing cell is 0 too"
    else:
        missing = f"a missing cell is the category {MISSING_CATEGORY!r}"
    if encode == "index":
        return [
            f"Categorical columns ({', '.join(map(str, names))}): each becomes 1 + the position "
            f"of its value in params.categories[k]; 0 for an unknown value ({missing})."
        ]
    return [
        f"Categorical columns ({', '.join(map(str, names))}) are one-hot encoded in the order "
        f"of params.categories[k]; an unknown value is all zeros ({missing}); where "
        "params.other[k] is true, one more column takes unknown and rare values."
    ]


def _describe_text(pre: dict[str, Any]) -> list[str]:
    t = (pre.get("config") or {}).get("text") or {}
    style = t.get("tokenizer", "words")
    pattern = {
        "contractions": r"\w+(?=n't\b)|n't\b|'(?:s|ve|re|d|ll|m)\b|\w+|[^\w\s]",
        "words": r"[\w']+|[^\w\s]",
    }.get(style, "?")
    lower = "Lower-case the text, then split" if t.get("lowercase", True) else "Split"
    max_len = t.get("max_len")
    return [
        "Raw inputs: one string per row.",
        f"{lower} it into tokens with the regular expression `{pattern}` (Python `re`, "
        "findall, case-insensitive for the contractions).",
        "Map each token to its position in preprocess.json vocab.itos; a token not there is "
        "1 (`<unk>`).",
        f"Keep the first {max_len} ids and right-pad with 0 (`<pad>`) to {max_len}; an empty "
        "text is the single id 1.",
    ]
