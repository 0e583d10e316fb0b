"""The compressed run on disk: a run directory like any other, linked to its source.

Its recipe is the source's with a `compression` section (the pruned modules' shapes and
whether to quantize at load), so `trainlab evaluate`, `predict`, `trainlab.load` and the
later export/serve commands rebuild it from the recipe and its safetensors weights.
Preprocessing and data facts are the source's, copied. `compression.json` holds what was
done and measured; `compression.png` the accuracy-vs-latency chart.
"""

from __future__ import annotations

import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from trainlab import environment, setup
from trainlab.compress.source import Source
from trainlab.config.loading import dump_recipe, load_recipe, recipe_hash
from trainlab.config.schema import CompressionConfig, Recipe
from trainlab.engine.checkpoint import save_weights
from trainlab.fileio import atomic_write_text
from trainlab.models.structure import changed_shapes
from trainlab.runs import index_run
from trainlab.store.index import RunIndex
from trainlab.store.rundir import RunDir, RunStatus

RESULT_FILE = "compression.json"
CHART_FILE = "compression.png"


def compressed_recipe(source: Source, candidate: Any) -> Recipe:
    """The source recipe with the `compression` section describing `candidate`."""
    original = source.run.recipe.model_copy(update={"compression": None})
    reference = setup.build_model(original, source.ctx.prepared.info)
    shapes = changed_shapes(candidate.float_model.cpu(), reference)
    earlier = source.run.recipe.compression
    methods = (earlier.methods if earlier else []) + [s.text for s in candidate.steps]
    calibration = next(
        (r.details.get("calibration") for s, r in zip(candidate.steps, candidate.results,
         strict=True) if s.name == "int8"), None,
    )  # fmt: skip
    section = CompressionConfig(
        source=str(Path(source.run.run_dir).resolve()),
        methods=methods,
        shapes=shapes,
        quantize="int8" if any(s.name == "int8" for s in candidate.steps) else "none",
        calibration=calibration,
    )
    data = original.to_dict()
    data["compression"] = section.model_dump(mode="json")
    return load_recipe(data)  # validated the way the run will be read back


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def write_run(target: Path, source: Source, candidate: Any, data: dict[str, Any]) -> RunDir:
    """Write the compressed run: recipe, data facts, preprocessing, float weights,
    metrics and run.json (status completed), and its row in the run index."""
    recipe = compressed_recipe(source, candidate)
    rd = RunDir(target)
    rd.path.mkdir(parents=True, exist_ok=True)
    for name in ("data.json", "preprocess.json"):
        shutil.copy2(Path(source.run.run_dir) / name, rd.path / name)
    atomic_write_text(rd.recipe, dump_recipe(recipe))
    save_weights(candidate.float_model, rd.weights)
    ctx = source.ctx
    metrics = ctx.metrics(candidate.model, "test")
    if len(ctx.prepared.splits.val):
        metrics.update(ctx.metrics(candidate.model, "val"))
    record = {
        "name": rd.path.name,
        "recipe_name": recipe.name,
        "recipe_hash": recipe_hash(recipe),
        "seed": recipe.train.seed,
        "status": RunStatus.COMPLETED,
        "stop_reason": "completed",
        "created_at": _now(),
        "finished_at": _now(),
        "epochs_completed": source.run.info.get("epochs_completed"),
        "parameters": data["after"]["params"],
        "source_run": data["source"],
        "compression": {"method": data["method"], "met_target": data["met_target"]},
        "environment": environment.describe(ctx.prepared.device),
        "study": f"compress:{Path(source.run.run_dir).name}",
    }
    rd.write_json("metrics.json", metrics)
    rd.write_json("run.json", record)
    index_run(RunIndex(), rd, recipe, record, metrics)
    return rd


def finish_run(target: Path, data: dict[str, Any]) -> None:
    """Write `compression.json` and the accuracy-vs-latency chart."""
    from trainlab.report.compression import tradeoff_chart

    rd = RunDir(target)
    data["chart"] = str(tradeoff_chart(data, rd.path / CHART_FILE))
    rd.write_json(RESULT_FILE, data)
