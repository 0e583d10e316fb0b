"""`trainlab compress`: a finished run in, a smaller or faster run out, measured honestly.

The methods given (`--prune METHOD:AMOUNT`..., then `--quantize int8`) are applied in
order to a copy of the source model; several amounts for the last `--prune`
(`channels:0.3,0.5,0.7`) make several candidates. The source and every candidate are
measured side by side in this process (compress/measure.py); the saved run is the
fastest candidate at batch 256 whose selection-split score is within `target_drop` of
the source's. `vs_scratch` trains the chosen architecture from scratch with the source
recipe over N seeds and says which one won. The source run is only read.
"""

from __future__ import annotations

import copy
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from trainlab.compress.catalog import load_methods
from trainlab.compress.context import MethodResult
from trainlab.compress.measure import Measurement, measure
from trainlab.compress.methods import MethodOptions
from trainlab.compress.source import Source, load_source
from trainlab.errors import RecipeError, RunError

QUANTIZERS = ("int8",)
MASKING = ("magnitude", "threshold")


@dataclass(frozen=True)
class Step:
    """One method of a chain with its amount (None for int8)."""

    name: str
    amount: float | None

    @property
    def text(self) -> str:
        """As the user writes it: "channels:0.5", "int8"."""
        return self.name if self.amount is None else f"{self.name}:{self.amount:g}"


@dataclass
class Candidate:
    """A chain applied to a copy of the source model."""

    steps: list[Step]
    model: nn.Module
    float_model: nn.Module  # before quantization (what MACs and sparsity are counted on)
    results: list[MethodResult] = field(default_factory=list)
    measurement: Measurement | None = None

    @property
    def method(self) -> str:
        """The chain as text: "channels:0.5+int8"."""
        return "+".join(s.text for s in self.steps)

    @property
    def reached_amount(self) -> bool:
        """Whether every method reached its amount (False: the accuracy target stopped
        one short, and it returned the last model that met the target)."""
        return all(r.met_target for r in self.results)

    def selection_score(self) -> float:
        """The measured score compress chooses by (validation, else test)."""
        m = self.measurement
        return m.val_accuracy if m.val_accuracy is not None else m.test_accuracy


def _amounts(name: str, text: str) -> list[float]:
    """The amounts of one `--prune` spec, checked."""
    if not text:
        raise RecipeError(f"--prune {name}: give an amount, e.g. {name}:0.5")
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise RecipeError(
            f"--prune {name}:{text}: amounts must be numbers, e.g. {name}:0.5"
        ) from None
    for v in values:
        if name == "threshold" and not v > 0:
            raise RecipeError(
                f"--prune threshold:{v:g}: the threshold must be > 0, e.g. threshold:0.01"
            )
        if name != "threshold" and not 0 < v < 1:
            raise RecipeError(
                f"--prune {name}:{v:g}: the amount must be between 0 and 1 (a share of "
                f"weights or units), e.g. {name}:0.5"
            )
    return values


def parse_chains(prune: Sequence[str], quantize: str | None) -> list[list[Step]]:
    """`--prune` specs and `--quantize` → the candidate chains (one per amount of the last
    spec); a RecipeError names any unknown method, bad amount or impossible order."""
    registry = load_methods()
    chains: list[list[Step]] = [[]]
    for i, spec in enumerate(prune):
        name, _, text = str(spec).partition(":")
        name = name.strip()
        registry.get(name, "--prune")
        if name in QUANTIZERS:
            raise RecipeError(f"--prune {name}: quantization is --quantize {name}")
        values = _amounts(name, text.strip())
        if len(values) > 1 and i != len(prune) - 1:
            raise RecipeError("only the last --prune may list several amounts")
        chains = [c + [Step(name, v)] for c in chains for v in values]
    if quantize is not None:
        if quantize not in QUANTIZERS:
            raise RecipeError(f"--quantize {quantize}: unknown; available: {', '.join(QUANTIZERS)}")
        chains = [c + [Step(quantize, None)] for c in chains]
    if chains == [[]]:
        raise RecipeError("nothing to do: give --prune METHOD:AMOUNT and/or --quantize int8")
    for chain in chains:
        names = [s.name for s in chain]
        masked = [i for i, n in enumerate(names) if n in MASKING]
        if masked and any(n not in QUANTIZERS for n in names[masked[0] + 1 :]):
            raise RecipeError(
                "magnitude/threshold pruning must come last among --prune methods (a later "
                "method would reshape the masked layers); put it after the others"
            )
    return chains


def _apply(chain: list[Step], source: Source, options: MethodOptions) -> Candidate:
    """Run a chain's methods on a copy of the source model."""
    registry = load_methods()
    model = copy.deepcopy(source.model)
    float_model, results = model, []
    for step in chain:
        source.ctx.progress(f"{step.text}: {registry.get(step.name).description}")
        if step.name in QUANTIZERS:
            float_model = model
            model = copy.deepcopy(model)
        result = registry.get(step.name).builder(model, step.amount, source.ctx, options)
        results.append(result)
        model = result.model
        if step.name not in QUANTIZERS:
            float_model = model
    return Candidate(chain, model, float_model, results)


def _choose(candidates: list[Candidate], source: Source) -> Candidate:
    """The fastest candidate (batch 256) within the target; else the best-scoring one."""
    within = [c for c in candidates if source.ctx.meets_target(c.selection_score())]
    if within:
        return min(within, key=lambda c: c.measurement.latency_ms_b256)
    return max(candidates, key=Candidate.selection_score)


@dataclass
class CompressResult:
    """What `compress` made: the new run and the figures (`to_dict` is `--json`'s object)."""

    run_dir: Path
    data: dict[str, Any]

    @property
    def met_target(self) -> bool:
        """False when no candidate stayed within the accuracy target."""
        return bool(self.data["met_target"])

    def to_dict(self) -> dict[str, Any]:
        """The JSON object (run_dir, before, after, speedup_b256, method, vs_scratch…)."""
        return {"run_dir": str(self.run_dir), **self.data}


def compress(
    run_dir: str | Path,
    prune: Sequence[str] = (),
    quantize: str | None = None,
    *,
    finetune: int = 2,
    target_drop: float | None = 0.01,
    out: str | Path | None = None,
    vs_scratch: int = 0,
    options: MethodOptions | None = None,
    progress: Callable[[str], None] = lambda line: None,
) -> CompressResult:
    """Compress a finished run into a new run; see the module docstring.

    `finetune` is the epochs of retraining after each pruning step (`options` may set
    steps, scope, importance, score and the fine-tuning learning rate). `target_drop` is
    the most selection-split score (0.01 = one point of accuracy) a candidate may lose;
    None accepts any loss.
    """
    started = time.perf_counter()
    chains = parse_chains(prune, quantize)
    options = options or MethodOptions()
    options = MethodOptions(**{**options.__dict__, "finetune_epochs": finetune})
    source = load_source(run_dir, target_drop, progress=progress)
    target = _target_dir(source.run.run_dir, out)
    candidates = [_apply(chain, source, options) for chain in chains]
    progress("measuring the source and every candidate side by side")
    figures = measure(
        {"source": source.model, **{c.method: c.model for c in candidates}},
        source.ctx,
        float_models={c.method: c.float_model for c in candidates},
    )
    for c in candidates:
        c.measurement = figures[c.method]
    chosen = _choose(candidates, source)
    data = _result(source, figures["source"], chosen, candidates)
    _save(target, source, chosen, data, vs_scratch, progress)
    data["seconds"] = round(time.perf_counter() - started, 2)
    return CompressResult(target, data)


def _save(target: Path, source: Source, chosen: Candidate, data: dict, vs_scratch: int,
          progress: Callable[[str], None]) -> None:  # fmt: skip
    """Write the new run (and the from-scratch comparison); a failure removes the
    half-written run, never anything of the source."""
    from trainlab.compress.record import finish_run, write_run
    from trainlab.compress.scratch import versus_scratch

    try:
        write_run(target, source, chosen, data)
        if vs_scratch:
            score = chosen.measurement.test_accuracy
            data["vs_scratch"] = versus_scratch(target, score, vs_scratch, progress)
        finish_run(target, data)
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise


def _target_dir(source_dir: Path, out: str | Path | None) -> Path:
    """Where the new run goes: `out` (refused when it holds anything), or
    `<source>-compressed` beside the source (-2, -3… when taken)."""
    if out is not None:
        path = Path(out)
        if path.resolve() == Path(source_dir).resolve():
            raise RunError("--out is the source run; compress writes a new run, give another path")
        if path.exists() and any(path.iterdir()):
            raise RunError(f"'{path}' is not empty; give a new directory with --out")
        return path
    base = Path(source_dir).with_name(f"{Path(source_dir).name}-compressed")
    candidate, n = base, 1
    while candidate.exists():
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")
    return candidate


def _result(source: Source, before: Measurement, chosen: Candidate, candidates) -> dict:
    """The JSON-able record of what was done and measured."""
    after = chosen.measurement
    return {
        "source": str(source.run.run_dir),
        "method": chosen.method,
        "met_target": source.ctx.meets_target(chosen.selection_score()),
        "reached_amount": chosen.reached_amount,
        "target_drop": source.ctx.target_drop,
        "reference_score": source.ctx.reference_val,
        "selection_split": source.ctx.selection_split,
        "before": before.to_dict(),
        "after": after.to_dict(),
        "speedup_b256": round(before.latency_ms_b256 / after.latency_ms_b256, 3),
        "speedup_b1": round(before.latency_ms_b1 / after.latency_ms_b1, 3),
        "threads": after.threads,
        "candidates": [
            {
                "method": c.method,
                "met_target": source.ctx.meets_target(c.selection_score()),
                "reached_amount": c.reached_amount,
                "measurement": c.measurement.to_dict(),
            }
            for c in candidates
        ],
        "steps": [
            {"method": s.text, "details": r.details, "notes": r.notes}
            for s, r in zip(chosen.steps, chosen.results, strict=True)
        ],
        "notes": [n for r in chosen.results for n in r.notes],
    }
