"""Hyper-parameter search on Optuna: trials are trainlab runs, pruned from their epochs.

    result = tune("examples/mnist_mlp_dropout.yaml", "examples/mnist_mlp_space.yaml",
                  trials=20, sampler="tpe", pruner="asha", workers=2)
    result.best_params, result.best_recipe  # a YAML ready for `trainlab train`

A trial is `trainlab.train(recipe, overrides, out=<study>/trial-NNNN, …)` with a
`TrialReporter` that reports each epoch's validation objective and stops the fit when the
pruner says so. The test split is not evaluated during the search; only the final best
recipe is trained again and tested. Workers are separate processes sharing the study's
storage; `--trials N` is the study's total, so re-running the same command continues it.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import sys
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from trainlab.config.loading import (
    RecipeLike,
    apply_overrides,
    load_recipe,
    recipe_hash,
)
from trainlab.config.schema import Recipe, validate_recipe
from trainlab.engine.events import StopFit, StopReason
from trainlab.engine.order import Slot
from trainlab.engine.state import State
from trainlab.engine.technique import Technique
from trainlab.errors import RecipeError, TrainlabError
from trainlab.fileio import atomic_write_text
from trainlab.names import check_safe_name
from trainlab.store.index import default_runs_root
from trainlab.studies.objectives import Objective, cost_metrics, finite, parse_objectives
from trainlab.studies.pruners import PrunerContext, build_pruner
from trainlab.studies.samplers import GridPointSampler, SamplerContext, build_sampler
from trainlab.studies.space import SearchSpace, load_space
from trainlab.studies.storage import (
    StorageSpec,
    heartbeat,
    open_storage,
    requeue,
    resolve_storage,
    sweep_stale_trials,
)
from trainlab.threads import CAP_VARIABLE

ATTR_PREFIX = "trainlab:"


class TrialFailed(Exception):
    """A trial produced no usable objective value (e.g. it diverged before any epoch)."""


class TrialReporter(Technique):
    """Reports each epoch's objective to an Optuna trial and stops the fit when pruned.

    On a resumed run (a retried trial continuing a killed one's checkpoint) the epochs
    already trained are reported again at fit start, so the pruner sees the whole curve.
    """

    order = Slot.TUNE_REPORT

    def __init__(self, trial: optuna.Trial, metric: str) -> None:
        self.trial = trial
        self.metric = metric

    def on_fit_start(self, state: State) -> None:
        for row in state.history:
            self._report(row)

    def on_epoch_end(self, state: State) -> None:
        if self._report(state.epoch_metrics) and self.trial.should_prune():
            raise StopFit(
                StopReason.PRUNED,
                f"pruned at epoch {state.epoch}: {self.metric} "
                f"{state.epoch_metrics[self.metric]:.4f} is behind the other trials",
            )

    def _report(self, row: dict[str, Any]) -> bool:
        value = row.get(self.metric)
        if not finite(value):
            return False
        self.trial.report(float(value), int(row["epoch"]))
        return True


@dataclass(frozen=True)
class TuneOptions:
    """How a search runs: its budget, sampler and pruner, workers, storage and outputs.

    `trainlab tune` builds one from its flags; `tune(recipe, space, options)` (or its fields
    as keywords, `tune(recipe, space, trials=20, sampler="tpe")`) takes it.
    """

    trials: int = 20
    """Trials the study should have in total; re-running continues up to this count."""
    sampler: str = "tpe"
    """grid, random, tpe, gp, cmaes, evolution or nsga2 (`studies.samplers`)."""
    sampler_options: Mapping[str, Any] = field(default_factory=dict)
    """Options of the sampler, e.g. {"population": 20}."""
    pruner: str = "none"
    """none, median, asha or hyperband (`studies.pruners`); prunes from epoch values."""
    pruner_options: Mapping[str, Any] = field(default_factory=dict)
    """Options of the pruner, e.g. {"reduction_factor": 2}."""
    workers: int = 1
    """Worker processes on this machine, sharing the study's storage."""
    storage: str | None = None
    """`--store`: a database URL (postgresql://… for several machines), whose trials every
    worker shares and where the trials' runs are indexed too; or a journal file path
    (default: a journal file in the study folder)."""
    study: str | None = None
    """Study name (default RECIPE-tune); the same name continues the study."""
    objective: str | Sequence[str] | None = None
    """val_accuracy, min:val_loss, params, latency_ms… (several: a multi-objective search)."""
    out: str | Path | None = None
    """Study folder (default: runs/studies/STUDY)."""
    seed: int = 0
    """Sampler seed."""
    repeats: int = 1
    """Average each trial over this many training seeds."""
    cv: int | None = None
    """Average each trial over k folds (default: the recipe's data.cv, if any)."""
    timeout: float | None = None
    """Stop starting trials after this many seconds."""
    heartbeat_seconds: int = 10
    """Seconds between heartbeats of running trials (a silent trial is re-queued)."""
    max_retry: int = 2
    """Times a trial whose worker died is retried."""
    final: bool = True
    """Train and test the best recipe at the end."""
    plots: bool = True
    """Write PNG plots of the study."""
    quiet: bool = True
    """No line per finished trial on standard error."""

    def __post_init__(self) -> None:
        # Plain dict copies: a caller's mapping (or None) never changes the options later.
        for name in ("sampler_options", "pruner_options"):
            object.__setattr__(self, name, dict(getattr(self, name) or {}))

    def check(self) -> None:
        """RecipeError, on one line, for a count no search can run with."""
        if self.trials < 1 or self.workers < 1 or self.repeats < 1:
            raise RecipeError("--trials, --workers and --repeats must be at least 1")


@dataclass(frozen=True)
class TuneConfig:
    """A search resolved against its recipe: everything a worker process needs (picklable)."""

    options: TuneOptions  # with `cv` resolved (the recipe's data.cv when not given)
    recipe: dict[str, Any]
    space: SearchSpace
    objectives: list[Objective]
    study_name: str
    out: Path  # absolute
    storage: StorageSpec

    @property
    def multi(self) -> bool:
        """Several objectives (NSGA-II territory; Optuna cannot prune these)."""
        return len(self.objectives) > 1

    @property
    def run_index(self) -> str | None:
        """The shared database the trials' runs are indexed in (None: the default index)."""
        return self.storage.location if self.storage.kind == "rdb" else None

    @property
    def shadow_name(self) -> str:
        """The single-objective study that carries pruning decisions of a multi-objective one."""
        return f"{self.study_name}.pruning"

    def variants(self) -> list[tuple[str, dict[str, Any]]]:
        """(sub-folder, extra overrides) of the runs one trial averages over."""
        cv, repeats = self.options.cv, self.options.repeats
        if cv:
            return [(f"fold-{k}", {"data.cv": cv, "data.fold": k}) for k in range(cv)]
        if repeats > 1:
            base = int(self.recipe.get("train", {}).get("seed", 0))
            return [(f"seed-{base + r}", {"train.seed": base + r}) for r in range(repeats)]
        return [("", {})]


@dataclass
class TuneResult:
    """What a search found: counts, the best trial, where the outputs are."""

    study: str
    out: Path
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def best_value(self) -> float | None:
        """Best value of the (first) objective."""
        return self.data.get("best_value")

    @property
    def best_params(self) -> dict[str, Any]:
        """Best trial's overrides (dotted recipe keys → values)."""
        return self.data.get("best_params") or {}

    @property
    def best_recipe(self) -> Path | None:
        """Path of the best recipe YAML."""
        path = self.data.get("best_recipe")
        return Path(path) if path else None

    def summary(self) -> dict[str, Any]:
        """The JSON the CLI prints."""
        return dict(self.data)


# --------------------------------------------------------------------------- the worker


def _budget(trials: list[FrozenTrial]) -> tuple[int, bool]:
    """Trials that count toward `--trials` (a failed trial that was re-queued does not)."""
    retried = {n for t in trials for n in t.system_attrs.get("retry_history", [])}
    used, waiting = 0, False
    for t in trials:
        if t.state == TrialState.WAITING:
            waiting = True
        elif t.state == TrialState.FAIL and t.number in retried:
            continue
        used += 1
    return used, waiting


def _worker_seed(seed: int, worker: int, n_existing: int) -> int:
    # Distinct per worker and per resumption, so a resumed random search does not replay.
    return (seed * 1_000_003 + worker * 7_919 + n_existing * 104_729) % (2**31 - 1)


def _objective(
    trial: optuna.Trial,
    cfg: TuneConfig,
    study: optuna.Study,
    shadow: optuna.Study | None,
) -> float | list[float]:
    report_to: optuna.Trial | None = None
    if cfg.options.pruner != "none":
        report_to = shadow.ask() if (cfg.multi and shadow is not None) else trial
    shadow_trial = report_to if report_to is not trial else None
    try:
        with heartbeat(study, trial, cfg.storage):
            values = _run_trial(trial, cfg, study, report_to)
    except optuna.TrialPruned:
        if shadow_trial is not None:
            shadow.tell(shadow_trial, state=TrialState.PRUNED)
        raise
    except KeyboardInterrupt:
        # Ctrl-C: queue the same parameters again so re-running the command resumes this
        # trial's run from its checkpoint instead of losing it.
        requeue(study, study._storage.get_trial(trial._trial_id), cfg.storage.max_retry)
        if shadow_trial is not None:
            shadow.tell(shadow_trial, state=TrialState.FAIL)
        raise
    except BaseException:
        if shadow_trial is not None:
            shadow.tell(shadow_trial, state=TrialState.FAIL)
        raise
    if shadow_trial is not None:
        shadow.tell(shadow_trial, values[0])
    return values if cfg.multi else values[0]


def _run_trial(
    trial: optuna.Trial,
    cfg: TuneConfig,
    study: optuna.Study,
    report_to: optuna.Trial | None,
) -> list[float]:
    """Train the trial's run(s); the objective values (first = mean over folds/seeds)."""
    overrides = cfg.space.suggest(trial)
    twin = _complete_twin(study, trial)
    if twin is not None:
        # Runs are deterministic (recipe + seed): training the same point again would
        # reproduce the same numbers, so a sampler's repeat costs no epoch.
        trial.set_user_attr("duplicate_of", twin.number)
        trial.set_user_attr("epochs", 0)
        trial.set_user_attr("run_dir", twin.user_attrs.get("run_dir"))
        return list(twin.values)
    system = study._storage.get_trial_system_attrs(trial._trial_id)
    # A retried trial continues the run directory (and checkpoint) of the one it replaces.
    root = cfg.out / f"trial-{int(system.get('failed_trial', trial.number)):04d}"
    trial.set_user_attr("run_dir", str(root))
    runs = _train_trial(trial, cfg, overrides, root, report_to)
    trial.set_user_attr("epochs", runs.epochs)
    trial.set_user_attr("seconds", round(runs.seconds, 3))
    if runs.last_metrics:
        trial.set_user_attr("val_metrics", runs.last_metrics)
    if runs.pruned:
        raise optuna.TrialPruned(f"trial {trial.number} pruned")
    return _objective_values(trial, cfg, runs)


@dataclass
class _TrialRuns:
    """What the runs of one trial measured."""

    first_run_dir: Path
    values: list[float] = field(default_factory=list)  # the primary objective, per run
    last_metrics: dict[str, float] = field(default_factory=dict)  # val_* of the last run
    epochs: int = 0
    seconds: float = 0.0
    pruned: bool = False


def _train_trial(
    trial: optuna.Trial,
    cfg: TuneConfig,
    overrides: dict[str, Any],
    root: Path,
    report_to: optuna.Trial | None,
) -> _TrialRuns:
    """Train each fold (or seed) of a trial in turn, the first one reporting to the pruner."""
    from trainlab.runs import train

    primary = cfg.objectives[0].metric
    runs = _TrialRuns(first_run_dir=root)
    started = time.perf_counter()
    for i, (sub, extra) in enumerate(cfg.variants()):
        reporter = [TrialReporter(report_to, primary)] if report_to and i == 0 else []
        run = train(
            cfg.recipe,
            {**overrides, **extra},
            out=root / sub if sub else root,
            extra_techniques=reporter,
            quiet=True,
            study=cfg.study_name,
            evaluate_test=False,
            store=cfg.run_index,
        )
        runs.epochs += int(run.info.get("epochs_completed") or 0)
        if i == 0:
            runs.first_run_dir = run.run_dir
        if run.stop_reason == StopReason.PRUNED.value:
            runs.pruned = True
            break
        if primary not in run.metrics:
            raise TrialFailed(
                f"trial {trial.number}: run {run.run_dir} has no '{primary}' "
                f"(status {run.status}); metrics: {', '.join(run.metrics) or 'none'}"
            )
        runs.values.append(float(run.metrics[primary]))
        runs.last_metrics = {k: v for k, v in run.metrics.items() if k.startswith("val_")}
    runs.seconds = time.perf_counter() - started
    return runs


def _objective_values(trial: optuna.Trial, cfg: TuneConfig, runs: _TrialRuns) -> list[float]:
    """The primary objective's mean over the runs, then every other objective's value."""
    primary = cfg.objectives[0]
    value = sum(runs.values) / len(runs.values)
    if not finite(value):
        raise TrialFailed(f"trial {trial.number}: {primary.metric} is {value}")
    if len(runs.values) > 1:
        trial.set_user_attr(f"{primary.metric}_folds", runs.values)
    results = [value]
    wanted = [o.metric for o in cfg.objectives[1:] if not o.per_epoch]
    costs = cost_metrics(runs.first_run_dir, wanted)
    for o in cfg.objectives[1:]:
        v = costs.get(o.metric, runs.last_metrics.get(o.metric))
        if not finite(v):
            raise TrialFailed(f"trial {trial.number}: objective '{o.metric}' was not measured")
        results.append(float(v))
    return results


def _complete_twin(study: optuna.Study, trial: optuna.Trial) -> FrozenTrial | None:
    """An earlier complete trial with exactly these parameters, if any."""
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if t.number != trial.number and t.params == trial.params and t.values:
            return t
    return None


def _progress(cfg: TuneConfig):
    def callback(study: optuna.Study, t: FrozenTrial) -> None:
        if cfg.options.quiet:
            return
        shown = ", ".join(f"{v:.4f}" for v in t.values) if t.values else t.state.name.lower()
        params = ", ".join(f"{k}={v}" for k, v in cfg.space.overrides(t.params).items())
        print(
            f"[{cfg.study_name}] trial {t.number} {t.state.name.lower()}: {shown} "
            f"({t.user_attrs.get('epochs', '?')} ep) {params}",
            file=sys.stderr,
            flush=True,
        )

    return callback


def run_worker(cfg: TuneConfig, worker: int = 0, threads: int | None = None) -> int:
    """Run trials until the study's budget (or the grid, or the timeout) is used up.

    Returns the number of trials this worker ran. Called in-process for one worker and
    in each spawned process for several.
    """
    import torch

    if threads:
        torch.set_num_threads(threads)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    storage = open_storage(cfg.storage)
    existing = optuna.load_study(study_name=cfg.study_name, storage=storage)
    n_existing = len(existing.get_trials(deepcopy=False))
    o = cfg.options
    seed = _worker_seed(o.seed, worker, n_existing)
    sampler = build_sampler(
        o.sampler, o.sampler_options, SamplerContext(cfg.space, seed, len(cfg.objectives), o.seed)
    )
    pruner = build_pruner(o.pruner, o.pruner_options, PrunerContext(_max_epochs(cfg)))
    study = optuna.load_study(
        study_name=cfg.study_name,
        storage=storage,
        sampler=sampler,
        pruner=optuna.pruners.NopPruner() if cfg.multi else pruner,
    )
    shadow = None
    if cfg.multi and o.pruner != "none":
        shadow = optuna.load_study(study_name=cfg.shadow_name, storage=storage, pruner=pruner)
    started = time.monotonic()
    ran = 0
    while True:
        sweep_stale_trials(study, cfg.storage)
        used, waiting = _budget(study.get_trials(deepcopy=False))
        if not waiting and used >= o.trials:
            break
        if isinstance(sampler, GridPointSampler) and not waiting and sampler.remaining(study) <= 0:
            break
        if o.timeout is not None and time.monotonic() - started > o.timeout:
            break
        study.optimize(
            lambda t: _objective(t, cfg, study, shadow),
            n_trials=1,
            catch=(TrainlabError, TrialFailed),
            callbacks=[_progress(cfg)],
        )
        ran += 1
    return ran


def _max_epochs(cfg: TuneConfig) -> int:
    epochs = [int(cfg.recipe.get("train", {}).get("epochs", 10))]
    for p in cfg.space:
        if p.key == "train.epochs":
            epochs.append(int(p.high if p.kind != "categorical" else max(p.choices)))
    return max(epochs)


def _spawned_worker(cfg: TuneConfig, worker: int, threads: int) -> None:
    # in its own process: train.threads: auto stays within this worker's share
    os.environ[CAP_VARIABLE] = str(threads)
    try:
        run_worker(cfg, worker, threads)
    except TrainlabError as exc:
        print(f"worker {worker}: error: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None


def run_workers(cfg: TuneConfig, workers: int) -> list[int]:
    """Run `workers` worker processes (spawned; torch threads = cores / workers); exit codes."""
    if workers == 1:
        run_worker(cfg, 0, None)
        return [0]
    threads = max(1, (os.cpu_count() or 1) // workers)
    ctx = multiprocessing.get_context("spawn")
    procs = [
        ctx.Process(target=_spawned_worker, args=(cfg, i, threads), name=f"tune-worker-{i}")
        for i in range(workers)
    ]
    for p in procs:
        p.start()
    try:
        for p in procs:
            p.join()
    except KeyboardInterrupt:
        # Workers got the same Ctrl-C: give them time to re-queue their trials, then stop.
        for p in procs:
            p.join(timeout=15)
        for p in procs:
            if p.is_alive():
                p.terminate()
                p.join()
        raise
    return [int(p.exitcode or 0) for p in procs]


# ------------------------------------------------------------------------- the study


def _prepare_study(cfg: TuneConfig, recipe_digest: str) -> optuna.Study:
    storage = open_storage(cfg.storage)
    directions = [o.direction for o in cfg.objectives]
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.create_study(
            study_name=cfg.study_name, storage=storage, directions=directions, load_if_exists=True
        )
    except ValueError as exc:
        raise RecipeError(
            f"study '{cfg.study_name}' exists with other objectives ({exc}); pass --study NEW"
        ) from None
    wanted = {
        "recipe_hash": recipe_digest,
        "space": cfg.space.digest(),
        "objectives": [o.spec() for o in cfg.objectives],
        "cv": cfg.options.cv,
        "repeats": cfg.options.repeats,
    }
    attrs = study.user_attrs
    if ATTR_PREFIX + "space" in attrs:
        for key, value in wanted.items():
            if attrs.get(ATTR_PREFIX + key) != value:
                raise RecipeError(
                    f"study '{cfg.study_name}' was started with a different {key.replace('_', ' ')}"
                    f" ({attrs.get(ATTR_PREFIX + key)!r} vs {value!r}); re-run it unchanged to "
                    "continue, or pass --study NEW_NAME to start another"
                )
    else:
        for key, value in wanted.items():
            study.set_user_attr(ATTR_PREFIX + key, value)
        study.set_user_attr(ATTR_PREFIX + "recipe", cfg.recipe)
        study.set_user_attr(ATTR_PREFIX + "space_keys", cfg.space.keys)
        study.set_user_attr(ATTR_PREFIX + "sampler", cfg.options.sampler)
        study.set_user_attr(ATTR_PREFIX + "pruner", cfg.options.pruner)
    if cfg.multi and cfg.options.pruner != "none":
        optuna.create_study(
            study_name=cfg.shadow_name,
            storage=storage,
            direction=cfg.objectives[0].direction,
            load_if_exists=True,
        )
    return study


def tune(
    recipe: RecipeLike,
    space: SearchSpace | dict | str | Path,
    options: TuneOptions | None = None,
    **fields: Any,
) -> TuneResult:
    """Search `space` for the recipe's best hyper-parameters; see the module docstring.

    `fields` are `TuneOptions` fields that replace those of `options` (or the defaults).
    Everything is validated before the first trial: the space against the recipe schema,
    the objectives, the sampler and pruner names and options, the storage URL.
    """
    started = time.perf_counter()
    options = dataclasses.replace(options or TuneOptions(), **fields)
    base = load_recipe(recipe)
    base.require_validation("tune")
    space = load_space(space)
    space.validate(base)
    options.check()
    options = _resolve_cv(options, base)
    task = base.data.dataset.entry.metadata.get("task", "classification")
    objectives = parse_objectives(options.objective, task)
    name = options.study or f"{base.name}-tune"
    try:
        check_safe_name(name, "study name")
    except ValueError as exc:
        raise RecipeError(str(exc)) from None
    out_dir = (
        Path(options.out) if options.out is not None else default_runs_root() / "studies" / name
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    spec = resolve_storage(options.storage, out_dir, options.heartbeat_seconds, options.max_retry)
    cfg = TuneConfig(options, base.to_dict(), space, objectives, name, out_dir.resolve(), spec)
    _check_sampler_and_pruner(cfg)
    _prepare_study(cfg, recipe_hash(base))
    codes = run_workers(cfg, options.workers)
    data = _summary(cfg, codes, started)
    atomic_write_text(out_dir / "summary.json", json.dumps(data, indent=2, default=str) + "\n")
    return TuneResult(name, out_dir, data)


def _resolve_cv(options: TuneOptions, base: Recipe) -> TuneOptions:
    """The folds each trial averages: `--cv`, else the recipe's data.cv; checked to fit."""
    cv = options.cv
    if cv is None and getattr(base.data, "cv", None):
        cv = int(base.data.cv)  # the recipe asks for k-fold: each trial averages the folds
    if cv is not None and options.repeats > 1:
        raise RecipeError("--cv and --repeats cannot be combined; pick one way to average")
    if cv is not None:
        if cv < 2:
            raise RecipeError(f"--cv must be at least 2 folds (got {cv})")
        validate_recipe(apply_overrides(base.to_dict(), {"data.cv": cv, "data.fold": 0}), "--cv")
    return dataclasses.replace(options, cv=cv)


def _check_sampler_and_pruner(cfg: TuneConfig) -> None:
    """Build both once here so a bad name or option fails before any worker starts."""
    o = cfg.options
    build_sampler(
        o.sampler, o.sampler_options, SamplerContext(cfg.space, o.seed, len(cfg.objectives), o.seed)
    )
    build_pruner(o.pruner, o.pruner_options, PrunerContext(_max_epochs(cfg)))


def _summary(cfg: TuneConfig, codes: list[int], started: float) -> dict[str, Any]:
    """The study's results (best recipe, final run, plots) plus how its workers ended."""
    from trainlab.studies.results import write_results

    study = optuna.load_study(study_name=cfg.study_name, storage=open_storage(cfg.storage))
    data = write_results(study, cfg, final=cfg.options.final, plots=cfg.options.plots)
    data["worker_exit_codes"] = codes
    if any(codes):
        data["warning"] = (
            f"{sum(1 for c in codes if c)} of {len(codes)} workers failed (see their messages "
            "above); finished trials are kept, re-run the command to continue"
        )
    data["seconds"] = round(time.perf_counter() - started, 3)
    data["finished_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return data
