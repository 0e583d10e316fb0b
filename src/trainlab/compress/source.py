"""The run being compressed: its model, its data as trained on, and the context methods get."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from trainlab.compress.context import CompressContext, main_score
from trainlab.data.preprocess import Preprocessor
from trainlab.engine.checkpoint import load_weights
from trainlab.errors import RunError
from trainlab.prepare import prepare
from trainlab.runs import Run
from trainlab.store.rundir import RunDir


@dataclass
class Source:
    """A finished run loaded for compression (its directory is only read)."""

    run: Run
    model: nn.Module  # float weights, eval mode
    ctx: CompressContext


def load_source(
    run_dir: str | Path,
    target_drop: float | None = None,
    device: str = "cpu",
    progress: Callable[[str], None] = lambda line: None,
) -> Source:
    """Open a finished run: the model with its weights, and a context whose splits are
    the run's own (its saved preprocessing, not a refit) and whose reference score is
    the source model's on the selection split."""
    path = Path(run_dir)
    if not (path / "run.json").is_file():
        raise RunError(f"'{path}' is not a run directory (no run.json); give a trained run")
    run = Run.open(path)
    if run.status not in ("completed", "stopped"):
        raise RunError(
            f"run '{path}' has status '{run.status}'; compress a run that finished "
            f"(train it to the end: trainlab train {path / 'recipe.yaml'} --out {path})"
        )
    if run.recipe.compression is not None and run.recipe.compression.quantize != "none":
        raise RunError(
            f"'{path}' is already quantized; compress its source "
            f"'{run.recipe.compression.source}' instead, with every method at once"
        )
    rd = RunDir(path)
    pre = Preprocessor.from_state_dict(rd.read_json("preprocess.json"))
    prepared = prepare(run.recipe, device, preprocessor=pre, check_finite=False)
    model = prepared.build_model()
    load_weights(model, rd.weights, prepared.device)
    model.eval()
    ctx = CompressContext(prepared, reference_val=0.0, target_drop=target_drop,
                          progress=progress)  # fmt: skip
    split = ctx.selection_split
    ctx.reference_val = main_score(ctx.metrics(model, split), split)
    return Source(run, model, ctx)
