"""`trainlab export`: a run becomes a deployable artifact whose outputs are proven equal.

`export_run(run_dir, fmt)` loads a finished run (trained, compressed or fine-tuned) with
`trainlab.predict.load`, traces its model (`export_formats`: `pt2` is a
`torch.export` ExportedProgram, `onnx` the same program through
`torch.onnx.export(dynamo=True)`, checked by `onnx.checker`; the batch dimension is
dynamic), then runs the written file — onnxruntime, or the loaded ExportedProgram — on
the run's test split rebuilt exactly as `Predictor.evaluate` rebuilds it, and on its
first row alone (batch size 1). Parity (`parity.py`) holds when every output is within
|export − torch| ≤ atol + rtol·|torch| (default rtol 1e-3, atol 1e-5) and the test
accuracy (regression: RMSE) is the same under both.

Only an artifact that passed is written: the folder is assembled beside its destination
and moved into place after the check, so a folder holding export.json always holds a
model that passed. A failed check raises `ParityError` (a RunError carrying the figures)
and leaves the destination as it was.

The folder (default `<run_dir>/export/<format>/`; another run's export there is never
overwritten, nor a non-empty folder that is no export):

    model.onnx | model.pt2   the model: input `input` (float32, or int64 token ids for
                             text), shape [N, ...]; output `output`: logits, or
                             regression values in training units
    export.json              {"format", "trainlab_version", "name", "source_run" (absolute),
                              "recipe_hash", "architecture", "model_file", "runtime",
                              "input": {"name", "shape": [null, ...], "dtype"},
                              "output": {"name", "shape": [null, ...], "dtype", "kind"},
                              "target_kind", "classes" (list or null),
                              "target_shift", "target_scale" (regression: original =
                              output · scale + shift; else null), "compression",
                              "parity": {split, samples, rtol, atol, max_abs_diff,
                              max_rel_diff, tolerance_used, metric, metric_torch,
                              metric_export, <metric>_torch, <metric>_export,
                              mismatches, failures, passed}, "created_at", "torch"}
    preprocess.json          the run's fitted preprocessing (plain JSON numbers)
    data.json                the task: classes, input shape, feature facts
    recipe.yaml              the recipe as trained
    metrics.json             the run's metrics
    README.md                a ~10-line example (onnxruntime + numpy; pt2: torch) and
                             the preprocessing in words
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trainlab.deploy import export_formats
from trainlab.deploy.artifact import write_artifact
from trainlab.deploy.export_formats import INPUT_NAME, OUTPUT_NAME, Format
from trainlab.deploy.parity import Parity, check
from trainlab.errors import RecipeError, RunError

#: Rows per call when running the model and the artifact over a split.
CHUNK = 512


@dataclass(frozen=True)
class ExportResult:
    """An export: where it is (or would have been), its export.json and its parity."""

    out: Path
    format: str
    meta: dict[str, Any]
    parity: Parity
    seconds: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        """The JSON `trainlab export --json` prints: out, format, the parity figures
        (accuracy_torch/accuracy_export, or rmse_* for regression) and `parity`."""
        p = self.parity.to_dict()
        figures = {k: p[k] for k in ("max_abs_diff", "max_rel_diff", "tolerance_used")}
        return {
            "out": str(self.out),
            "format": self.format,
            "source_run": self.meta["source_run"],
            "model_file": str(self.out / self.meta["model_file"]),
            **figures,
            "metric": self.parity.metric,
            f"{self.parity.metric}_torch": self.parity.metric_torch,
            f"{self.parity.metric}_export": self.parity.metric_export,
            "parity": self.parity.passed,
            "failures": list(self.parity.failures),
            "samples": self.parity.samples,
            "split": self.parity.split,
            "rtol": self.parity.rtol,
            "atol": self.parity.atol,
            "mismatches": self.parity.mismatches,
            "input": self.meta["input"],
            "output": self.meta["output"],
            "seconds": self.seconds,
        }


class ParityError(RunError):
    """The artifact's outputs differ from the model's beyond the tolerance (nothing was
    written); `result` holds the figures."""

    def __init__(self, message: str, result: ExportResult) -> None:
        super().__init__(message)
        self.result = result


def export_run(
    run_dir: str | Path,
    fmt: str = "onnx",
    out: str | Path | None = None,
    rtol: float = 1e-3,
    atol: float = 1e-5,
    progress: Callable[[str], None] | None = None,
) -> ExportResult:
    """Export a finished run's model as `fmt` ("onnx" or "pt2") into `out` after proving
    its outputs equal to PyTorch's on the run's test split (module docstring).

    Raises RecipeError for an unknown format, bad tolerances or a missing onnx extra;
    RunError for a missing or unfinished run, a destination holding something else, a
    model torch.export cannot trace (naming the layer); ParityError when the check fails.
    """
    say = progress or (lambda line: None)
    spec = export_formats.get_format(fmt)
    if spec.name == "onnx":
        export_formats.require_onnx()
    _check_tolerances(rtol, atol)
    predictor = _load(run_dir)
    run, info = predictor.run, predictor.info
    target = destination(out, run.run_dir, spec)
    module = export_formats.exportable(predictor.model, f"run '{run.run_dir}'")
    split, x, y = parity_inputs(predictor)
    reference = outputs(predictor.model, x)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
    try:
        started = time.perf_counter()
        say(f"exporting {run.recipe.model.name} from {run.run_dir} as {spec.name}")
        spec.save(module, example_input(x), staging / spec.filename)
        exported = time.perf_counter()
        say(f"checking parity on {len(x):,} {split} rows with {spec.runtime}")
        artifact = export_formats.runner(spec, staging / spec.filename, torch.get_num_threads())
        candidate = _chunked(artifact, x.numpy())
        single = np.asarray(artifact(x[:1].numpy()))
        parity = check(reference, candidate, y, info, split=split, rtol=rtol, atol=atol,
                       extra=(reference[:1], single))  # fmt: skip
        seconds = {"export": exported - started, "parity": time.perf_counter() - exported}
        meta = export_meta(predictor, spec, x, reference, parity, staging / spec.filename)
        result = ExportResult(target, spec.name, meta, parity, seconds)
        if not parity.passed:
            raise ParityError(
                f"parity check failed for the {spec.name} export of '{run.run_dir}': "
                f"{'; '.join(parity.failures)}; nothing was written to '{target}' (loosen "
                "--rtol/--atol only if that difference is acceptable)",
                result,
            )
        write_artifact(staging, run.run_dir, meta)
        _move_into_place(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return result


def _check_tolerances(rtol: float, atol: float) -> None:
    for name, value in (("rtol", rtol), ("atol", atol)):
        if not (isinstance(value, int | float) and np.isfinite(value) and value >= 0):
            raise RecipeError(f"--{name} must be a number >= 0 (got {value!r})")


def _load(run_dir: str | Path) -> Any:
    """The run's Predictor, refusing runs that have not finished."""
    from trainlab.predict import load
    from trainlab.runs import Run
    from trainlab.store.rundir import UNFINISHED

    run = Run.open(run_dir)
    if run.status in {s.value for s in UNFINISHED}:
        raise RunError(
            f"run '{run.run_dir}' is {run.status}, not finished: run `trainlab train` on "
            "it to finish (it resumes), then export"
        )
    return load(run.run_dir)


def destination(out: str | Path | None, run_dir: Path, spec: Format) -> Path:
    """The export folder: `out`, or `<run_dir>/export/<format>`, refusing a folder that
    holds another run's export or anything that is not an export."""
    target = Path(out) if out is not None else Path(run_dir) / "export" / spec.name
    target = target.absolute()
    if not target.exists():
        return target
    if not target.is_dir():
        raise RunError(f"export destination '{target}' is a file; give a folder with --out")
    marker = target / "export.json"
    if marker.is_file():
        try:
            source = json.loads(marker.read_text(encoding="utf-8")).get("source_run")
        except (ValueError, UnicodeDecodeError, AttributeError):
            source = None
        if source is None or Path(source).resolve() != Path(run_dir).resolve():
            raise RunError(
                f"'{target}' holds the export of another run ({source or 'unreadable'}); "
                "choose another --out, or delete that folder first"
            )
    elif any(target.iterdir()):
        raise RunError(
            f"'{target}' exists and is not a trainlab export (no export.json); choose an "
            "empty or new folder with --out"
        )
    return target


def parity_inputs(predictor: Any) -> tuple[str, torch.Tensor, torch.Tensor]:
    """(split name, model inputs, targets) of the run's test split, rebuilt as
    `Predictor.evaluate` does (saved preprocessing, no refit); the validation or
    training split when the run has no test rows."""
    from trainlab.prepare import prepare

    prepared = prepare(
        predictor.run.recipe, "cpu", preprocessor=predictor.preprocessor, check_finite=False
    )
    for split in ("test", "val", "train"):
        x, y = prepared.tensors(split)
        if len(x):
            return split, x, y
    raise RunError(f"run '{predictor.run.run_dir}' has no data rows to check parity on")


@torch.no_grad()
def outputs(model: torch.nn.Module, x: torch.Tensor) -> np.ndarray:
    """The PyTorch model's raw outputs (logits, or regression values in training units)."""
    model.eval()
    parts = [model(x[i : i + CHUNK]).float() for i in range(0, len(x), CHUNK)]
    return torch.cat(parts).numpy()


def _chunked(run: Callable[[np.ndarray], np.ndarray], x: np.ndarray) -> np.ndarray:
    return np.concatenate([np.asarray(run(x[i : i + CHUNK])) for i in range(0, len(x), CHUNK)])


def example_input(x: torch.Tensor) -> torch.Tensor:
    """Two rows to trace with (one row would let torch.export fix the batch size at 1)."""
    return x[:2] if len(x) >= 2 else torch.cat([x, x])


def export_meta(
    predictor: Any,
    spec: Format,
    x: torch.Tensor,
    reference: np.ndarray,
    parity: Parity,
    model_path: Path,
) -> dict[str, Any]:
    """export.json: what a consumer needs to call the model, and the parity figures."""
    import trainlab

    run, info = predictor.run, predictor.info
    regression = info.target_kind == "regression"
    kind = {"multiclass": "logits", "binary": "logit"}.get(info.target_kind, "values")
    compression = run.recipe.compression
    return {
        "format": spec.name,
        "trainlab_version": trainlab.__version__,
        "name": run.info.get("name") or run.recipe.name,
        "source_run": str(Path(run.run_dir).resolve()),
        "recipe_hash": run.info.get("recipe_hash"),
        "architecture": run.recipe.model.name,
        "model_file": spec.filename,
        "size_bytes": model_path.stat().st_size,
        "runtime": spec.runtime,
        "input": {
            "name": INPUT_NAME,
            "shape": [None, *x.shape[1:]],
            "dtype": "int64" if x.dtype == torch.long else "float32",
        },
        "output": {
            "name": OUTPUT_NAME,
            "shape": [None, *reference.shape[1:]],
            "dtype": "float32",
            "kind": kind,
        },
        "target_kind": info.target_kind,
        "classes": info.classes,
        "target_shift": info.target_shift if regression else None,
        "target_scale": info.target_scale if regression else None,
        "compression": list(compression.methods) if compression is not None else None,
        "parity": parity.to_dict(),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "torch": torch.__version__,
    }


def _move_into_place(staging: Path, target: Path) -> None:
    """Replace `target` (absent, empty, or this run's earlier export) by `staging`."""
    if not target.exists():
        staging.rename(target)
        return
    old = target.with_name(f".{target.name}.old-{os.getpid()}")
    target.rename(old)
    staging.rename(target)
    shutil.rmtree(old, ignore_errors=True)
