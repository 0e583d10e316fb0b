"""The doctor: a short probe run with every monitor on, findings with evidence, remedies.

`doctor(recipe)` trains the recipe once (within a time budget) with the gradient monitor,
the activation statistics and the divergence guard attached, runs the LR range test
over three seeds, and turns what they measured into findings (codes in
`findings.Code`), each with the numbers behind it, plus recommended changes with the
reason for each. With `apply=True` the recommended changes that exist for this recipe
are ablated over seeds (`studies.ablate`, add-one mode) and each gets a verdict from a
paired confidence interval — the doctor checks its own advice.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainlab.config.loading import RecipeLike, load_recipe, recipe_hash
from trainlab.diagnose.activations import FILE as ACTIVATIONS_FILE
from trainlab.diagnose.activations import (
    ActivationStats,
    ActivationStatsParams,
    analyze_activations,
)
from trainlab.diagnose.findings import REMEDIES, Code, Finding, Recommendation
from trainlab.diagnose.fit import analyze_fit
from trainlab.diagnose.gradients import FILE as GRADIENT_FILE
from trainlab.diagnose.gradients import PLOT as GRADIENT_PLOT
from trainlab.diagnose.gradients import (
    GradientMonitor,
    GradientMonitorParams,
    analyze_gradient_flow,
)
from trainlab.diagnose.guard import DivergenceGuard
from trainlab.engine.events import StopFit, StopReason
from trainlab.engine.state import State
from trainlab.engine.technique import Technique
from trainlab.errors import RecipeError

SEVERITY_ORDER = {"error": 0, "warning": 1, "info": 2}
#: Within a severity, causes before symptoms: a bad learning rate or vanishing gradients
#: explain an under-fit, so their remedies come first.
CODE_ORDER = [
    Code.DIVERGED,
    Code.EXPLODING_GRADIENTS,
    Code.LR_TOO_HIGH,
    Code.VANISHING_GRADIENTS,
    Code.LR_TOO_LOW,
    Code.DEAD_UNITS,
    Code.SATURATION,
    Code.UNDERFITTING,
    Code.OVERFITTING,
]
#: Recipe-level changes `studies.ablate` knows by name.
ABLATE_BUILTINS = ("dropout", "batchnorm", "cosine", "weight_decay", "label_smoothing")
#: Samples of the gradient monitor and activation statistics aimed for over a probe.
PROBE_SAMPLES = 40


def parse_budget(text: str | float | int) -> float:
    """'90s', '2m', '1.5h' or a number of seconds → seconds."""
    if isinstance(text, int | float):
        seconds = float(text)
    else:
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", str(text))
        if match is None:
            raise RecipeError(f"--budget '{text}' must look like 90s, 2m or 1h")
        seconds = float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2)]
    if seconds <= 0:
        raise RecipeError(f"--budget must be positive (got {text})")
    return seconds


class _TimeLimit(Technique):
    """Ends the probe at an epoch end once its share of the budget is spent."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._start = 0.0

    def on_fit_start(self, state: State) -> None:
        self._start = time.perf_counter()

    def on_epoch_end(self, state: State) -> None:
        if time.perf_counter() - self._start > self.seconds and state.epoch < state.max_epochs:
            raise StopFit(
                StopReason.TIME_LIMIT,
                f"probe budget of {self.seconds:.0f}s spent after {state.epoch} epochs",
            )


class _AutoEvery(Technique):
    """Sets the monitors' sampling interval so a probe gets about PROBE_SAMPLES samples."""

    order = -200

    def __init__(self, monitors: list[Any], samples: int) -> None:
        self.monitors = monitors
        self.samples = samples

    def on_fit_start(self, state: State) -> None:
        try:
            total = len(state.train_batches) * state.max_epochs
        except TypeError:
            return
        every = max(1, total // self.samples)
        for m in self.monitors:
            m.params = m.params.model_copy(update={"every": every})


@dataclass
class DoctorReport:
    """What the doctor found and recommends, and (with apply) what the ablation proved."""

    recipe: str
    out_dir: Path
    probe: dict[str, Any]
    findings: list[Finding]
    recommendations: list[Recommendation]
    fit: dict[str, Any] | None = None
    lr_find: dict[str, Any] | None = None
    applied: dict[str, Any] | None = None
    plots: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def codes(self) -> list[str]:
        """The finding codes, most severe first."""
        return [f.code.value for f in self.findings]

    def to_dict(self) -> dict[str, Any]:
        """JSON form (what `doctor --json` prints and report.json holds)."""
        return {
            "recipe": self.recipe,
            "out_dir": str(self.out_dir),
            "codes": self.codes,
            "findings": [f.to_dict() for f in self.findings],
            "recommendations": [r.to_dict() for r in self.recommendations],
            "probe": self.probe,
            "fit": self.fit,
            "lr_find": self.lr_find,
            "applied": self.applied,
            "plots": self.plots,
            "seconds": round(self.seconds, 2),
        }


def _lr_findings(lr: float, result: Any) -> list[Finding]:
    if not result.informative:
        return []
    minimum = result.suggestion("minimum")
    steepest = result.suggestion("steepest")
    low_mark = min(
        (v for v in (steepest, result.suggestion("minimum_div_10"), minimum) if v), default=None
    )
    evidence = {"recipe_lr": lr, "suggestions": result.suggestions}
    if minimum and lr > minimum:
        return [
            Finding(
                Code.LR_TOO_HIGH,
                "warning",
                f"learning rate {lr:g} is above {minimum:.2g}, where the range test's loss "
                f"bottoms out (try ≈{result.suggestion('minimum_div_10'):.2g})",
                evidence,
            )
        ]
    if low_mark and lr < low_mark / 100:
        return [
            Finding(
                Code.LR_TOO_LOW,
                "warning",
                f"learning rate {lr:g} is over 100× below the range test's suggestions "
                f"(steepest {steepest:.2g}): the loss falls much faster at a larger rate",
                evidence,
            )
        ]
    return []


def _already(base: dict[str, Any], changed: dict[str, Any]) -> bool:
    return json.dumps(base, sort_keys=True, default=str) == json.dumps(
        changed, sort_keys=True, default=str
    )


def _resolve(
    name: str,
    overrides: dict[str, Any],
    base: dict[str, Any],
    info: Any,
    lr_result: Any,
) -> tuple[dict[str, Any], bool, str]:
    """The overrides, whether --apply can try this change on this recipe, and a note."""
    from trainlab.techniques import TECHNIQUES

    model = base["model"]
    lr = base["train"]["lr"]
    if name == "wider":
        widened = {
            f"model.{k}": [2 * v for v in model[k]]
            for k in ("hidden", "channels", "dense")
            if isinstance(model.get(k), list) and model[k]
        }
        if not widened:
            return {}, False, f"model '{model['name']}' has no width to double"
        return widened, True, ""
    if name in ("lower_lr", "higher_lr"):
        informative = lr_result is not None and lr_result.informative
        suggestion = lr_result.suggestion("minimum_div_10") if informative else None
        if name == "lower_lr":
            new = suggestion if suggestion and suggestion < lr else lr / 10
        else:
            new = suggestion if suggestion and suggestion > lr else lr * 10
        return {"train.lr": float(f"{new:.3g}")}, True, ""
    if name == "residual":
        return {}, False, "switch to model: resnet (a different architecture, not ablated)"
    if overrides:
        return overrides, True, ""
    if name in ABLATE_BUILTINS:
        return {}, True, ""
    if name in TECHNIQUES:
        entry = TECHNIQUES.get(name)
        if entry.metadata.get("augmentation") and len(info.input_shape) != 3:
            return {}, False, "image augmentation; the input is not an image"
        text = info.features.get("kind") == "text"
        if name == "fgm" and not text:
            return {}, False, "perturbs word embeddings; the input is not text"
        if name == "mixup" and text:
            return {}, False, "token ids cannot be mixed; the input is text"
        if name in ("mixup", "label_smoothing") and info.target_kind != "multiclass":
            return {}, False, "needs a multi-class classification task"
        return {}, True, ""
    return {}, False, f"'{name}' is not available in this installation"


def recommend(
    findings: list[Finding], base: dict[str, Any], info: Any, lr_result: Any = None
) -> list[Recommendation]:
    """Remedies for the findings, each once, with whether --apply can try them here."""
    from trainlab.studies.ablate import Change, apply_changes, resolve_changes

    present = {t if isinstance(t, str) else t.get("name") for t in base.get("techniques") or []}
    seen: set[str] = set()
    recs: list[Recommendation] = []
    for finding in findings:
        for name, overrides, reason in REMEDIES.get(finding.code, []):
            if name in seen or name in present:
                continue
            seen.add(name)
            resolved, ok, note = _resolve(name, overrides, base, info, lr_result)
            if ok:
                try:
                    if resolved:
                        change = Change(name, tuple(resolved.items()))
                    else:
                        change = resolve_changes([name], base)[0]
                    changed = apply_changes(base, [change])
                    load_recipe(changed)
                    if _already(base, changed):
                        continue  # the recipe already does this
                except RecipeError as exc:
                    ok, note = False, f"not applicable to this recipe: {exc}"
            recs.append(Recommendation(name, finding.code, reason, resolved, ok, note))
    return recs


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text()) if path.is_file() else None


def doctor(
    recipe: RecipeLike,
    overrides: dict[str, Any] | list[str] | None = None,
    *,
    budget: str | float = "2m",
    apply: bool = False,
    seeds: int = 3,
    max_apply: int = 4,
    target: float | None = None,
    lr_find: bool = True,
    lr_steps: int = 100,
    workers: int = 1,
    out: str | Path | None = None,
    progress: Any = None,
) -> DoctorReport:
    """Diagnose a recipe: probe, find, recommend, and (with `apply`) ablate the advice.

    Args:
        budget: wall time for the probe and the LR range test ('2m'); the probe stops at
            the first epoch end past its share. `--apply` is not counted in it.
        seeds: seeds per arm of the `apply` ablation (and of the LR range test).
        max_apply: at most this many recommended changes are ablated (most urgent first).
        target: the accuracy (or error) the model should reach; the fit analysis measures
            the bias against it (default: perfect accuracy).
    """
    from trainlab import setup
    from trainlab.runs import train
    from trainlab.store.index import default_runs_root

    started = time.perf_counter()
    base = load_recipe(recipe, overrides)
    base.require_validation("doctor")
    base_dict = base.to_dict()
    name = f"doctor-{base.name}-{recipe_hash(base)[:8]}"
    root = Path(out) if out is not None else default_runs_root() / "doctor" / name
    root.mkdir(parents=True, exist_ok=True)
    seconds = parse_budget(budget)

    data = setup.load_dataset(base)
    splits, _ = setup.split_and_preprocess(base, data)
    info = setup.task_info(base, data)

    lr_result = None
    if lr_find:
        from trainlab.diagnose.lr_finder import lr_find as run_lr_find

        if progress:
            progress("LR range test")
        lr_result = run_lr_find(
            base, seeds=max(1, min(seeds, 3)), steps=lr_steps, out=root / "lr_find"
        )
    spent = time.perf_counter() - started

    grad = GradientMonitor(GradientMonitorParams())
    acts = ActivationStats(ActivationStatsParams())
    extra = [
        _AutoEvery([grad, acts], PROBE_SAMPLES),
        grad,
        acts,
        DivergenceGuard(),
        _TimeLimit(max(1.0, seconds - spent)),
    ]
    if progress:
        progress("probe run")
    run = train(base, out=root / "probe", extra_techniques=extra, quiet=True)
    diag = run.run_dir / "diagnostics"
    probe = {
        "run_dir": str(run.run_dir),
        "status": run.status,
        "stop_reason": run.stop_reason,
        "stop_message": run.info.get("stop_message", ""),
        "epochs": run.info.get("epochs_completed"),
        "metrics": run.metrics,
        "fit_seconds": (run.info.get("timings") or {}).get("fit_seconds"),
    }

    findings: list[Finding] = []
    if run.status == "diverged":
        findings.append(
            Finding(
                Code.DIVERGED,
                "error",
                f"training diverged: {probe['stop_message']}",
                {"stop_reason": run.stop_reason, "epochs_completed": probe["epochs"]},
            )
        )
    flow = _read_json(diag / GRADIENT_FILE)
    if flow:
        findings += analyze_gradient_flow(flow, grad.params)
    act_data = _read_json(diag / ACTIVATIONS_FILE)
    if act_data:
        findings += analyze_activations(act_data.get("records", []), acts.params)
    fit = None
    if run.status != "diverged" and len(run.history) >= 2:
        diagnosis = analyze_fit(run.history, target, val_size=len(splits.val))
        fit = diagnosis.to_dict()
        findings += diagnosis.findings
    if lr_result is not None:
        findings += _lr_findings(base.train.lr, lr_result)
    findings.sort(key=lambda f: (SEVERITY_ORDER.get(f.severity, 3), CODE_ORDER.index(f.code)))

    recs = recommend(findings, base_dict, info, lr_result)
    plots = {}
    if (diag / GRADIENT_PLOT).is_file():
        plots["gradient_flow"] = str(diag / GRADIENT_PLOT)
    if lr_result is not None and lr_result.plot:
        plots["lr_find"] = lr_result.plot
    report = DoctorReport(
        recipe=base.name,
        out_dir=root,
        probe=probe,
        findings=findings,
        recommendations=recs,
        fit=fit,
        lr_find=(
            {
                "recipe_lr": lr_result.recipe_lr,
                "informative": lr_result.informative,
                "suggestions": lr_result.suggestions,
            }
            if lr_result
            else None
        ),
        plots=plots,
    )
    if apply:
        chosen = [r for r in recs if r.applicable][:max_apply]
        if chosen:
            if progress:
                progress(f"ablating {', '.join(r.name for r in chosen)} over {seeds} seeds")
            # One study per set of changes: ablate refuses to reuse a study for another set.
            tag = hashlib.sha1(",".join(r.name for r in chosen).encode()).hexdigest()[:6]
            report.applied = apply_recommendations(
                base_dict,
                chosen,
                seeds=seeds,
                workers=workers,
                root=root,
                study=f"{name}-apply-{tag}",
            )
        else:
            report.applied = {"rows": [], "note": "nothing applicable to try"}
    report.seconds = time.perf_counter() - started
    (root / "report.json").write_text(json.dumps(report.to_dict(), indent=1, default=float))
    return report


def apply_recommendations(
    base: dict[str, Any],
    recs: list[Recommendation],
    *,
    seeds: int,
    workers: int,
    root: Path,
    study: str,
) -> dict[str, Any]:
    """Ablate the recommended changes (add-one) and add a paired test-split interval to each."""
    from trainlab.studies.ablate import Change, ablate

    variants = [Change(r.name, tuple(r.overrides.items())) for r in recs if r.overrides]
    result = ablate(
        base,
        [r.name for r in recs],
        variants=variants,
        seeds=seeds,
        workers=workers,
        study=study,
        runs_root=root,
        mode="add-one",
    )
    rows = [{**row, "test": row["test_paired"]} for row in result.rows]
    return {
        "study": result.study,
        "study_dir": str(result.study_dir),
        "metric": result.metric,
        "test_metric": "test_" + result.metric.removeprefix("val_"),
        "seeds": result.seeds,
        "baseline": result.baseline,
        "rows": rows,
        "runs_trained": result.runs_trained,
    }
