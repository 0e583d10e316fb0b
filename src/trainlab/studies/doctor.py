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

import dataclasses
import hashlib
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainlab.config.loading import RecipeLike, load_recipe, recipe_hash
from trainlab.config.schema import Recipe
from trainlab.diagnose.activations import FILE as ACTIVATIONS_FILE
from trainlab.diagnose.activations import (
    ActivationStats,
    ActivationStatsParams,
    analyze_activations,
)
from trainlab.diagnose.findings import REMEDIES, Code, Finding, Recommendation
from trainlab.diagnose.fit import analyze_fit, compare_with_baselines, negative_r2_finding
from trainlab.diagnose.gradients import FILE as GRADIENT_FILE
from trainlab.diagnose.gradients import PLOT as GRADIENT_PLOT
from trainlab.diagnose.gradients import (
    GradientMonitor,
    GradientMonitorParams,
    analyze_gradient_flow,
)
from trainlab.diagnose.guard import DivergenceGuard
from trainlab.engine.events import StopFit, StopReason
from trainlab.engine.order import Slot
from trainlab.engine.state import State
from trainlab.engine.technique import Technique
from trainlab.errors import RecipeError
from trainlab.fileio import atomic_write_text
from trainlab.store.rundir import RunStatus

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
    Code.BASELINE_BEATS_MODEL,
]
#: Width parameters of the registered models that `wider` doubles (ints, floats such as
#: resnet's width multiplier, and lists of them: mlp/wide_deep `hidden`, cnn `channels`
#: and `dense`, vgg_small `stages`, text_rnn `hidden`, text_cnn `filters`).
WIDTH_KEYS = ("hidden", "channels", "dense", "stages", "filters", "width")
#: A recommended learning rate stays within these factors of the optimizer's usual rate
#: (its registry's `suggested_lr`): adam 1e-6 … 1e-2, sgd 1e-4 … 1.
LR_RANGE = (1e-3, 10.0)
#: A range test's minimum within this fraction of its last steps is at the sweep's edge.
EDGE_FRACTION = 0.05
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

    order = Slot.SETUP

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


@dataclass(frozen=True)
class LRAdvice:
    """A learning rate to recommend from the range test, within the optimizer's sane
    range, and what was done to it (`note`: a sweep too narrow, a cap)."""

    value: float | None
    low: float
    high: float
    note: str = ""
    narrow: bool = False  # the loss was lowest at an end of the sweep


def lr_bounds(optimizer: str) -> tuple[float, float]:
    """The sane learning rates of `optimizer`: `LR_RANGE` around its usual rate."""
    from trainlab.catalog import OPTIMIZERS

    usual = (
        OPTIMIZERS.get(optimizer).metadata.get("suggested_lr") if optimizer in OPTIMIZERS else None
    )
    usual = float(usual or 1e-3)
    return usual * LR_RANGE[0], usual * LR_RANGE[1]


def _edge(curve: Any) -> str | None:
    """'top' when a range test's loss was lowest at its last rates without blowing up (the
    sweep stopped before the minimum), 'bottom' at its first rates, else None."""
    if curve.minimum is None or not curve.lrs:
        return None
    edge = max(2, int(len(curve.lrs) * EDGE_FRACTION))
    above = sum(lr > curve.minimum for lr in curve.lrs)
    if above < edge and curve.diverged_at is None:
        return "top"
    return "bottom" if len(curve.lrs) - above <= edge else None


def lr_advice(lr_result: Any, optimizer: str) -> LRAdvice:
    """The range test's suggestion made sane for `optimizer`.

    A tenth of the minimum-loss rate (`minimum_div_10`); when most curves were lowest at
    the sweep's top edge the minimum was never seen, so the steepest-descent rate instead,
    saying the range was too narrow; then clamped to `lr_bounds`. None when the test is off
    or uninformative.
    """
    low, high = lr_bounds(optimizer)
    if lr_result is None or not lr_result.informative:
        return LRAdvice(None, low, high)
    used = [c for c in lr_result.curves if c.informative] or list(lr_result.curves)
    edges = [_edge(c) for c in used]
    value, notes = lr_result.suggestion("minimum_div_10"), []
    narrow = None
    for side in ("top", "bottom"):
        if edges.count(side) * 2 > len(used):
            narrow = side
    if narrow == "top":
        top = max(c.lrs[-1] for c in used if c.lrs)
        value = lr_result.suggestion("steepest")
        notes.append(
            f"the range test's loss still fell at its largest rate {top:.2g}: the sweep was "
            "too narrow to show a minimum (rerun trainlab lr-find with a larger --end); "
            "going by the steepest descent"
        )
    elif narrow == "bottom":
        notes.append(
            f"the range test's loss was lowest at its smallest rate {used[0].lrs[0]:.2g}: the "
            "sweep was too narrow (rerun trainlab lr-find with a smaller --start)"
        )
    if value is not None and not low <= value <= high:
        bound = high if value > high else low
        side = "largest" if value > high else "smallest"
        notes.append(f"{value:.2g} moved to {bound:.2g}, the {side} sane rate for {optimizer}")
        value = bound
    return LRAdvice(value, low, high, "; ".join(notes), narrow is not None)


def _lr_findings(lr: float, result: Any, optimizer: str = "adam") -> list[Finding]:
    if not result.informative:
        return []
    advice = lr_advice(result, optimizer)
    minimum = result.suggestion("minimum")
    steepest = result.suggestion("steepest")
    candidates = (steepest, result.suggestion("minimum_div_10"), minimum)
    # judged against the sane range too: Adam at 1e-3 is never "100x too low" because a
    # range test's loss kept falling up to lr 1
    low_mark = min((v for v in candidates if v), default=None)
    low_mark = None if low_mark is None else min(low_mark, advice.high)
    evidence = {
        "recipe_lr": lr,
        "suggestions": result.suggestions,
        "sane_range": [advice.low, advice.high],
    }
    note = f"; {advice.note}" if advice.note else ""
    if minimum and lr > minimum and advice.value is not None:
        return [
            Finding(
                Code.LR_TOO_HIGH,
                "warning",
                f"learning rate {lr:g} is above {minimum:.2g}, where the range test's loss "
                f"bottoms out (try ≈{advice.value:.2g}){note}",
                evidence,
            )
        ]
    if low_mark and lr < low_mark / 100:
        return [
            Finding(
                Code.LR_TOO_LOW,
                "warning",
                f"learning rate {lr:g} is over 100× below the range test's suggestions "
                f"(steepest {steepest or low_mark:.2g}): the loss falls much faster at a larger "
                f"rate (try ≈{advice.value or low_mark:.2g}){note}",
                evidence,
            )
        ]
    return []


def widened(model: dict[str, Any]) -> dict[str, Any]:
    """`model.<key>` overrides that double every width parameter of `model` (a recipe's
    `model` mapping), its defaults included: `model: mlp` is 128 units wide."""
    from pydantic import ValidationError

    from trainlab.catalog import MODELS

    params = dict(model)
    name = model.get("name")
    if name in MODELS:
        try:
            given = {k: v for k, v in model.items() if k != "name"}
            params = MODELS.get(name).params(**given).model_dump(mode="json")
        except ValidationError:
            pass
    doubled = {f"model.{k}": _doubled(params.get(k)) for k in WIDTH_KEYS}
    return {k: v for k, v in doubled.items() if v is not None}


def _doubled(value: Any) -> Any:
    """Twice a width: a number, or a non-empty (nested) list of them; None for anything else."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return value * 2
    if isinstance(value, list) and value:
        items = [_doubled(v) for v in value]
        return None if any(i is None for i in items) else items
    return None


def _name(value: Any) -> str:
    """A component's name from its recipe form (a bare name or a mapping with `name`)."""
    return value.get("name", "") if isinstance(value, dict) else str(value or "")


def _lr_change(name: str, lr: float, lr_result: Any, optimizer: str) -> tuple[dict, bool, str]:
    """`lower_lr`/`higher_lr`: the range test's sane suggestion, else a factor of 10."""
    advice = lr_advice(lr_result, optimizer)
    value = advice.value
    if name == "lower_lr":
        new = value if value and value < lr else lr / 10
    else:
        new = value if value and value > lr else lr * 10
    new = float(f"{min(max(new, advice.low), advice.high):.3g}")
    if (name == "lower_lr" and new >= lr) or (name == "higher_lr" and new <= lr):
        side = "bottom" if name == "lower_lr" else "top"
        why = (
            f"train.lr {lr:g} is already at the {side} of the sane range for {optimizer} "
            f"({advice.low:g} to {advice.high:g})"
        )
        return {}, False, why
    return {"train.lr": new}, True, advice.note


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
    from trainlab.catalog import TECHNIQUES
    from trainlab.studies.ablate import BUILTIN_CHANGES
    from trainlab.tasks import modality
    from trainlab.techniques.registry import check_applicable

    model, t = base["model"], base["train"]
    if name == "wider":
        wider = widened(model)
        if not wider:
            return {}, False, f"model '{model['name']}' has no width to double"
        return wider, True, ""
    if name in ("lower_lr", "higher_lr"):
        return _lr_change(name, t["lr"], lr_result, _name(t.get("optimizer")) or "adam")
    if name == "longer":
        return {"train.epochs": 2 * int(t["epochs"])}, True, ""
    if name == "use_baseline":
        return {}, False, "ship the baseline itself (baselines.json): a different kind of model"
    if name == "residual":
        return {}, False, "switch to model: resnet (a different architecture, not ablated)"
    if overrides:
        return overrides, True, ""
    if name in BUILTIN_CHANGES:
        return {}, True, ""
    if name in TECHNIQUES:
        reason = check_applicable(name, info.target_kind, modality(info))
        return {}, reason is None, reason or ""
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


@dataclass(frozen=True)
class DoctorOptions:
    """How the doctor examines a recipe: its time budget, the LR range test and `apply`.

    `trainlab doctor` builds one from its flags; `doctor(recipe, overrides, options)` (or
    its fields as keywords, `doctor(recipe, budget="5m", apply=True)`) takes it.
    """

    budget: str | float = "2m"
    """Wall time for the probe and the LR range test ('90s', '2m', '1h' or seconds); the
    probe stops at the first epoch end past its share. `apply` is not counted in it."""
    apply: bool = False
    """Ablate the applicable recommendations over seeds (add-one) and judge each."""
    seeds: int = 3
    """Seeds per arm of the `apply` ablation (and, up to 3, of the LR range test)."""
    max_apply: int = 4
    """At most this many recommended changes are ablated (most urgent first)."""
    target: float | None = None
    """The accuracy (or error) the model should reach; the fit analysis measures the bias
    against it (default: perfect accuracy)."""
    lr_find: bool = True
    """Run the LR range test before the probe."""
    lr_steps: int = 100
    """Steps of the LR range test."""
    workers: int = 1
    """Parallel training processes for `apply`."""
    out: str | Path | None = None
    """Folder for the probe, plots and report.json (default: runs/doctor/doctor-NAME-HASH)."""

    def budget_seconds(self) -> float:
        """The budget in seconds; RecipeError for a malformed or non-positive one."""
        return parse_budget(self.budget)


def doctor(
    recipe: RecipeLike,
    overrides: dict[str, Any] | list[str] | None = None,
    options: DoctorOptions | None = None,
    *,
    progress: Callable[[str], None] | None = None,
    **fields: Any,
) -> DoctorReport:
    """Diagnose a recipe: probe, find, recommend, and (with `apply`) ablate the advice.

    `fields` are `DoctorOptions` fields that replace those of `options` (or the defaults);
    `progress(step)` is told each step as it starts.
    """
    from trainlab.prepare import prepare
    from trainlab.store.index import default_runs_root

    options = dataclasses.replace(options or DoctorOptions(), **fields)
    say = progress or (lambda _: None)
    started = time.perf_counter()
    base = load_recipe(recipe, overrides)
    base.require_validation("doctor")
    seconds = options.budget_seconds()
    name = f"doctor-{base.name}-{recipe_hash(base)[:8]}"
    root = Path(options.out) if options.out is not None else default_runs_root() / "doctor" / name
    root.mkdir(parents=True, exist_ok=True)
    prepared = prepare(base)

    lr_result = _lr_range_test(base, options, root, say)
    probe = _probe(base, root, max(1.0, seconds - (time.perf_counter() - started)), say)
    base_dict = base.to_dict()
    findings, fit = probe.findings(options.target, len(prepared.splits.val))
    if lr_result is not None:
        findings += _lr_findings(base.train.lr, lr_result, base.train.optimizer.name)
    findings += _baseline_findings(probe.run, prepared, base_dict, findings)
    findings.sort(key=lambda f: (SEVERITY_ORDER.get(f.severity, 3), CODE_ORDER.index(f.code)))

    recs = recommend(findings, base_dict, prepared.info, lr_result)
    report = DoctorReport(
        recipe=base.name,
        out_dir=root,
        probe=probe.summary,
        findings=findings,
        recommendations=recs,
        fit=fit,
        lr_find=_lr_summary(lr_result),
        plots=_plots(probe.diagnostics, lr_result),
    )
    if options.apply:
        report.applied = _apply(base_dict, recs, options, root, f"{name}-apply", say)
    report.seconds = time.perf_counter() - started
    report_json = json.dumps(report.to_dict(), indent=1, default=float)
    atomic_write_text(root / "report.json", report_json)
    return report


def _lr_range_test(
    base: Recipe, options: DoctorOptions, root: Path, say: Callable[[str], None]
) -> Any:
    """The LR range test over up to three seeds, or None when it is switched off."""
    if not options.lr_find:
        return None
    from trainlab.studies.lr_finder import lr_find

    say("LR range test")
    seeds = max(1, min(options.seeds, 3))
    return lr_find(base, seeds=seeds, steps=options.lr_steps, out=root / "lr_find")


@dataclass
class _Probe:
    """The probe run and the monitors that watched it."""

    run: Any
    gradients: GradientMonitor
    activations: ActivationStats

    @property
    def diagnostics(self) -> Path:
        """Where the monitors wrote their records and plots."""
        return self.run.run_dir / "diagnostics"

    @property
    def summary(self) -> dict[str, Any]:
        """The probe's part of the report."""
        run = self.run
        return {
            "run_dir": str(run.run_dir),
            "status": run.status,
            "stop_reason": run.stop_reason,
            "stop_message": run.info.get("stop_message", ""),
            "epochs": run.info.get("epochs_completed"),
            "metrics": run.metrics,
            "fit_seconds": (run.info.get("timings") or {}).get("fit_seconds"),
            "baselines": run.baselines,
        }

    def findings(
        self, target: float | None, val_size: int
    ) -> tuple[list[Finding], dict[str, Any] | None]:
        """Divergence, gradient flow, activations and (unless diverged) the fit analysis."""
        run, found = self.run, []
        diverged = run.status == RunStatus.DIVERGED
        if diverged:
            stop_message = run.info.get("stop_message", "")
            evidence = {
                "stop_reason": run.stop_reason,
                "epochs_completed": run.info.get("epochs_completed"),
            }
            found.append(
                Finding(Code.DIVERGED, "error", f"training diverged: {stop_message}", evidence)
            )
        flow = _read_json(self.diagnostics / GRADIENT_FILE)
        if flow:
            found += analyze_gradient_flow(flow, self.gradients.params)
        act_data = _read_json(self.diagnostics / ACTIVATIONS_FILE)
        if act_data:
            found += analyze_activations(act_data.get("records", []), self.activations.params)
        fit = None
        if not diverged and len(run.history) >= 2:
            diagnosis = analyze_fit(run.history, target, val_size=val_size)
            fit = diagnosis.to_dict()
            found += diagnosis.findings
        return found, fit


def _baseline_findings(
    run: Any, prepared: Any, base: dict[str, Any], found: list[Finding]
) -> list[Finding]:
    """The probe's test score against the baselines fitted beside it (`trainlab.baselines`),
    and UNDERFITTING for a test R² below 0 that nothing else has called out."""
    import numpy as np

    info, std = prepared.info, None
    if info.target_kind == "regression":
        y = np.asarray(prepared.splits.train.y, dtype=np.float64)
        y = y * np.asarray(info.target_scale) + np.asarray(info.target_shift)
        std = float(np.mean(np.std(y, axis=0))) or None
    new = compare_with_baselines(
        run.metrics,
        run.baselines,
        target_std=std,
        test_size=len(prepared.splits.test),
        advice=_baseline_advice(base),
    )
    negative = negative_r2_finding(run.metrics)
    if negative is not None and not any(f.code == Code.UNDERFITTING for f in found):
        new.append(negative)
    return new


def _baseline_advice(base: dict[str, Any]) -> str:
    """The recipe changes to try when a baseline beats the network, as `key=value`s."""
    t = base["train"]
    tries = [f"train.epochs={2 * int(t['epochs'])}"]
    tries += [f"{k}={v}" for k, v in widened(base["model"]).items()]
    if _name(t.get("schedule")) == "constant":
        tries.append("train.schedule=cosine")
    listed = ", ".join(tries[:-1]) + (" or " if len(tries) > 1 else "") + tries[-1]
    return (
        f"try {listed} (trainlab doctor --apply measures them); if the network still trails, "
        "the baseline is the better model for this table"
    )


def _probe(base: Recipe, root: Path, seconds: float, say: Callable[[str], None]) -> _Probe:
    """Train the recipe once with every monitor on, for at most `seconds` (at epoch ends)."""
    from trainlab.runs import train

    grad = GradientMonitor(GradientMonitorParams())
    acts = ActivationStats(ActivationStatsParams())
    extra = [
        _AutoEvery([grad, acts], PROBE_SAMPLES),
        grad,
        acts,
        DivergenceGuard(),
        _TimeLimit(seconds),
    ]
    say("probe run")
    run = train(base, out=root / "probe", extra_techniques=extra, quiet=True)
    return _Probe(run, grad, acts)


def _lr_summary(lr_result: Any) -> dict[str, Any] | None:
    if lr_result is None:
        return None
    return {
        "recipe_lr": lr_result.recipe_lr,
        "informative": lr_result.informative,
        "suggestions": lr_result.suggestions,
    }


def _plots(diagnostics: Path, lr_result: Any) -> dict[str, str]:
    plots = {}
    if (diagnostics / GRADIENT_PLOT).is_file():
        plots["gradient_flow"] = str(diagnostics / GRADIENT_PLOT)
    if lr_result is not None and lr_result.plot:
        plots["lr_find"] = lr_result.plot
    return plots


def _apply(
    base: dict[str, Any],
    recs: list[Recommendation],
    options: DoctorOptions,
    root: Path,
    study: str,
    say: Callable[[str], None],
) -> dict[str, Any]:
    """Ablate the most urgent applicable recommendations (at most `max_apply`)."""
    chosen = [r for r in recs if r.applicable][: options.max_apply]
    if not chosen:
        return {"rows": [], "note": "nothing applicable to try"}
    say(f"ablating {', '.join(r.name for r in chosen)} over {options.seeds} seeds")
    # One study per set of changes: ablate refuses to reuse a study for another set.
    tag = hashlib.sha1(",".join(r.name for r in chosen).encode()).hexdigest()[:6]
    return apply_recommendations(
        base,
        chosen,
        seeds=options.seeds,
        workers=options.workers,
        root=root,
        study=f"{study}-{tag}",
    )


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
    from trainlab.studies.ablate import AblateOptions, Change, ablate

    variants = [Change(r.name, tuple(r.overrides.items())) for r in recs if r.overrides]
    options = AblateOptions(
        variants=variants, mode="add-one", seeds=seeds, workers=workers, study=study, runs_root=root
    )
    result = ablate(base, [r.name for r in recs], options)
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
