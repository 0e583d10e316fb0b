"""Training a recipe into a run directory, resuming unfinished runs, reading finished ones."""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
import yaml

from trainlab import distributed, environment, failures
from trainlab import threads as thread_policy
from trainlab.assembly import Fit, assemble
from trainlab.baselines import BASELINES, fit_baselines, wants_baselines
from trainlab.config.loading import RecipeLike, dump_recipe, load_recipe, recipe_hash
from trainlab.config.schema import Recipe, validate_recipe
from trainlab.engine import determinism
from trainlab.engine.checkpoint import Checkpointer, CheckpointStore, restore_latest, save_weights
from trainlab.engine.events import StopReason
from trainlab.engine.loop import NON_FINITE, Engine
from trainlab.engine.order import Slot
from trainlab.engine.progress import ProgressDisplay, interactive
from trainlab.engine.state import State
from trainlab.engine.technique import Technique
from trainlab.errors import DivergenceError, RunError, TrainlabError
from trainlab.fileio import atomic_write_bytes, atomic_write_text
from trainlab.names import check_safe_name
from trainlab.prepare import Prepared, prepare
from trainlab.store.index import RunIndex, default_runs_root
from trainlab.store.rundir import UNFINISHED, RunDir, RunStatus, next_free_run_dir

#: The baseline models' test metrics in a run directory (`baselines.fit_baselines`).
BASELINES_FILE = "baselines.json"


@dataclass
class Run:
    """A run on disk: its recipe, status, per-epoch history and final metrics."""

    run_dir: Path
    recipe: Recipe
    info: dict[str, Any]
    metrics: dict[str, float]
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def status(self) -> str:
        """A `RunStatus` value: created, running, interrupted, failed (these resume),
        completed, stopped or diverged."""
        return self.info.get("status", "unknown")

    @property
    def stop_reason(self) -> str | None:
        """Why training ended (a `StopReason` value)."""
        return self.info.get("stop_reason")

    @property
    def baselines(self) -> dict[str, dict[str, Any]]:
        """The baseline models' test metrics (`baselines.json`; `{}` when none were fitted,
        as for runs saved before baselines existed)."""
        return RunDir(self.run_dir).read_json(BASELINES_FILE, default={})

    @classmethod
    def open(cls, run_dir: str | Path) -> Run:
        """Read a run directory written by `train`."""
        rd = RunDir(run_dir)
        if not rd.path.is_dir():
            raise RunError(f"run directory '{rd.path}' not found")
        if not rd.exists() or not rd.recipe.is_file():
            raise RunError(f"'{rd.path}' is not a trainlab run directory (no run.json/recipe.yaml)")
        recipe = validate_recipe(_saved_recipe(rd.recipe), str(rd.recipe))
        return cls(
            rd.path, recipe, rd.info(), rd.read_json("metrics.json", default={}), rd.history()
        )

    def summary(self) -> dict[str, Any]:
        """The JSON the CLI prints: where the run is and what it measured (and, for a run
        started from other weights, what `model.init_from` loaded)."""
        return {
            "run_dir": str(self.run_dir),
            "name": self.info.get("name"),
            "status": self.status,
            "stop_reason": self.stop_reason,
            "stop_message": self.info.get("stop_message", ""),
            "epochs": self.info.get("epochs_completed"),
            "metrics": self.metrics,
            "baselines": self.baselines,
            "timings": self.info.get("timings", {}),
            **({"init_from": self.info["init_from"]} if "init_from" in self.info else {}),
            **({"stages": stages} if (stages := self.stage_summary()) else {}),
        }

    def stage_summary(self) -> list[dict[str, Any]]:
        """Per stage of a `stages` technique: its epochs and the last epoch's validation
        metrics (empty for runs without stages)."""
        spec = next((t for t in self.recipe.techniques if t.name == "stages"), None)
        if spec is None:
            return []
        out, start = [], 0
        for i, stage in enumerate(spec.params.stages):
            end = min(start + (stage.epochs or len(self.history)), len(self.history))
            last = self.history[end - 1] if start < end else {}
            val = {k: v for k, v in last.items() if k.startswith("val_")}
            out.append({"stage": i + 1, "epochs": end - start, "lr": stage.lr,
                        "freeze": list(stage.freeze), **val})  # fmt: skip
            start = end
        return out


def _saved_recipe(path: Path) -> Any:
    """The resolved recipe a run saved, or a RunError naming the damage and the fix."""
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise RunError(
            f"'{path}' is damaged (not valid YAML{where}); the run cannot be rebuilt without "
            "it: restore the file (it is the recipe as trained, every default filled in)"
        ) from None


@dataclass
class RunPlan:
    """One run to train: its recipe, its directory, what was there, and how to record it."""

    recipe: Recipe
    rd: RunDir
    previous: dict[str, Any]  # run.json of an unfinished run being resumed, else {}
    quiet: bool = True
    store: str | None = None
    study: str | None = None
    extra_techniques: list[Technique] = field(default_factory=list)
    evaluate_test: bool = True
    #: this process's place in a data-parallel fit (distributed.World), None alone
    world: Any = None

    @property
    def writes(self) -> bool:
        """True for the process that writes the run (the only one, or rank 0)."""
        return self.world is None or self.world.is_main

    @property
    def digest(self) -> str:
        """The recipe hash run.json records and a resume must match."""
        return recipe_hash(self.recipe)


class _EpochClock(Technique):
    """Adds each epoch's wall time to its history row."""

    order = Slot.EPOCH_CLOCK

    def on_epoch_start(self, state: State) -> None:
        self._start = time.perf_counter()

    def on_epoch_end(self, state: State) -> None:
        state.epoch_metrics["epoch_seconds"] = round(time.perf_counter() - self._start, 4)


def resolve_run_dir(recipe: Recipe, out: str | Path | None, name: str | None) -> Path:
    """Where this run lives: `out` if given, else runs/<name> (or the next free name)."""
    if out is not None:
        return Path(out)
    run_name = name or recipe.name
    try:
        check_safe_name(run_name)
    except ValueError as exc:
        raise RunError(str(exc)) from None
    return next_free_run_dir(default_runs_root(), run_name)


def train(
    recipe: RecipeLike,
    overrides: dict[str, Any] | list[str] | None = None,
    *,
    out: str | Path | None = None,
    name: str | None = None,
    quiet: bool = True,
    store: str | None = None,
    study: str | None = None,
    extra_techniques: list[Technique] | None = None,
    evaluate_test: bool = True,
) -> Run:
    """Train a recipe into a run directory and return the Run.

    If the directory holds an unfinished run of the same recipe, training resumes from
    its last checkpoint and ends exactly where an uninterrupted run would. A finished run
    is returned as it is. `extra_techniques` are added to the recipe's (e.g. a pruning
    reporter from a search). `evaluate_test=False` skips the test split (a search's trials:
    the test split must never be looked at while choosing).
    """
    recipe = load_recipe(recipe, overrides)
    if out is None and distributed.World.from_env() is not None:
        raise RunError(
            "every process of a torchrun fit must write the same run directory: name it "
            "with --out (trainlab train --nproc N does this itself)"
        )
    run_dir = resolve_run_dir(recipe, out, name)
    if recipe.data.cv and recipe.data.fold is None:  # k-fold: k runs, mean ± std
        return _train_folds(recipe, run_dir, quiet=quiet, store=store, study=study)
    rd = RunDir(run_dir)
    previous = rd.info()
    if previous and previous.get("recipe_hash") != recipe_hash(recipe):
        raise RunError(
            f"'{run_dir}' holds a run of a different recipe; pass another --out or delete it"
        )
    if previous and previous.get("status") not in UNFINISHED:
        return Run.open(run_dir)
    world = distributed.World.from_env()
    _check_processes(run_dir, previous, world)
    plan = RunPlan(
        recipe, rd, previous, quiet, store, study, list(extra_techniques or []), evaluate_test,
        world,
    )  # fmt: skip
    return _train_guarded(plan)


def _check_processes(run_dir: Path, previous: dict[str, Any], world: Any) -> None:
    """A run resumes with the process count it started with (the shards, and so the
    float sums, depend on it: another count would not continue the same run)."""
    started = int(previous.get("processes", 1)) if previous else None
    now = world.size if world is not None else 1
    if started is not None and started != now:
        raise RunError(
            f"'{run_dir}' was started with {started} process(es) and is resumed with {now}; "
            f"resume it with --nproc {started}" + (" (or without --nproc)" if started == 1 else "")
        )


def _train_guarded(plan: RunPlan) -> Run:
    """Train `plan`; whatever stops it is recorded in run.json before it propagates."""
    created = not plan.rd.path.exists()
    plan.rd.path.mkdir(parents=True, exist_ok=True)
    try:
        with failures.step("preparing the run", plan.rd.path):
            return _train_run(plan)
    except BaseException as exc:
        if plan.writes:
            _record_failure(plan.rd, plan.store, plan.recipe, exc, created)
        raise


def _train_run(plan: RunPlan) -> Run:
    """Prepare the data, assemble the fit, resume it, run it and record the result."""
    started = time.perf_counter()
    t = plan.recipe.train
    determinism.seed_everything(t.seed)
    device = determinism.resolve_device(t.device)
    if plan.world is not None:
        device = _join_world(plan, device)
    det = determinism.configure(t.deterministic, None, device)
    failures.now("loading data")
    prepared = prepare(plan.recipe, device)
    failures.now("building the model")
    fit = assemble(prepared, plan.extra_techniques, run_dir=plan.rd.path, world=plan.world)
    threads = _choose_threads(plan, prepared, fit.model)
    det["threads"] = threads.threads
    failures.now("restoring the checkpoint")
    checkpoints = CheckpointStore(plan.rd.checkpoints, keep=2)
    resumed_from = restore_latest(checkpoints, fit.state, fit.techniques)
    record = {**_start_record(plan, fit, det, resumed_from), "threads": threads.to_dict()}
    if plan.world is not None:
        record["processes"] = plan.world.size
        fit.state.collective.barrier()  # every process has read the checkpoint
    _write_start(plan, prepared, record)
    failures.now("training")
    timings = _run_engine(plan, fit, checkpoints, record)
    failures.now("saving the run")
    timings["total_seconds"] = round(time.perf_counter() - started, 4)
    return _finish(plan, fit, checkpoints, record, timings, prepared)


def _join_world(plan: RunPlan, device: torch.device) -> torch.device:
    """This process's device in the data-parallel fit, after joining its process group
    (what cannot run distributed is refused first)."""
    world = plan.world
    distributed.check_recipe(plan.recipe)
    device = distributed.device_for(world, device)
    distributed.init(world, device)
    distributed.share_cores(world.local_size)
    return device


def _choose_threads(plan: RunPlan, prepared, model) -> thread_policy.ThreadChoice:
    """`train.threads` decided (threads.py) and applied: the recipe's number, the count a
    resumed run started with, or `auto` from the cores, their load and the step's work."""
    flops = None
    if prepared.device.type == "cpu" and plan.recipe.train.threads in ("auto", None):
        x, _ = prepared.tensors("train", limit=plan.recipe.train.batch_size)
        flops = thread_policy.step_flops(model, x) if len(x) else None
    choice = thread_policy.choose_threads(
        plan.recipe.train.threads, flops, plan.previous.get("threads")
    )
    thread_policy.apply(choice)
    return choice


def _start_record(plan: RunPlan, fit: Fit, det: dict, resumed_from: int | None) -> dict:
    """run.json at the start (or resumption) of training."""
    recipe, state = plan.recipe, fit.state
    return {
        "name": plan.rd.path.name,
        "recipe_name": recipe.name,
        "recipe_hash": plan.digest,
        "seed": recipe.train.seed,
        "status": RunStatus.RUNNING,
        "created_at": plan.previous.get("created_at") or _now(),
        "resumed_from_epoch": resumed_from,
        "epochs_completed": state.epoch,
        "parameters": sum(p.numel() for p in fit.model.parameters()),
        "determinism": det,
        "environment": environment.describe(state.device),
        "study": plan.study,
        **_init_record(plan, fit),
    }


def _init_record(plan: RunPlan, fit: Fit) -> dict:
    """`init_from` for run.json: what the fit loaded, or (a resumed fit, whose checkpoint
    holds the weights) what the run recorded when it started; nothing without init_from."""
    if plan.recipe.model.init_from is None:
        return {}
    report = fit.init_report if fit.init_report is not None else plan.previous.get("init_from")
    return {"init_from": report}


def _write_start(plan: RunPlan, prepared, record: dict) -> None:
    """The files a run has before its first epoch: recipe, data facts, preprocessing."""
    rd = plan.rd
    if not plan.writes:
        return
    if not plan.previous:
        atomic_write_text(rd.recipe, dump_recipe(plan.recipe))
    rd.write_json("data.json", prepared.info.to_dict())
    rd.write_json("preprocess.json", prepared.preprocessor.state_dict())
    rd.write_json("run.json", record)
    index_run(RunIndex(plan.store), rd, plan.recipe, record, {})


def _run_engine(
    plan: RunPlan, fit: Fit, checkpoints: CheckpointStore, record: dict
) -> dict[str, float]:
    """Run the fit with the run's own callbacks (epoch clock, checkpoints, progress)."""
    rd = plan.rd

    def saved(st: State, path: Path) -> None:
        rd.write_history(st.history)
        record["epochs_completed"] = st.epoch
        rd.write_json("run.json", record)

    callbacks: list[Technique] = [_EpochClock()]
    if plan.writes:
        callbacks.append(Checkpointer(checkpoints, fit.techniques, saved))
    if not plan.quiet and interactive() and plan.writes:
        callbacks.append(ProgressDisplay(len(fit.train), title=rd.path.name))
    engine = Engine(
        fit.state,
        fit.train,
        fit.val,
        fit.test if plan.evaluate_test else None,
        fit.techniques + callbacks,
        fit.state.task.target_kind,
        train_eval_batches=fit.train_eval,
        target_shift=fit.state.task.target_shift,
        target_scale=fit.state.task.target_scale,
    )
    wall, cpu = time.perf_counter(), time.process_time()
    engine.fit()
    fit_seconds = time.perf_counter() - wall
    epochs_run = max(1, fit.state.epoch - (record["resumed_from_epoch"] or 0))
    return {
        "fit_seconds": round(fit_seconds, 4),
        "fit_cpu_seconds": round(time.process_time() - cpu, 4),
        "seconds_per_epoch": round(fit_seconds / epochs_run, 4),
    }


def _finish(
    plan: RunPlan,
    fit: Fit,
    checkpoints: CheckpointStore,
    record: dict,
    timings: dict,
    prepared: Prepared,
) -> Run:
    """Save the weights to predict with, the final metrics, the baselines and the
    finished run.json (rank 0 of a data-parallel fit; the others wait for it)."""
    rd, state = plan.rd, fit.state
    if not plan.writes:
        state.collective.barrier()
        return Run.open(rd.path)
    reason = state.stop_reason or StopReason.COMPLETED
    if reason in NON_FINITE:
        status = RunStatus.DIVERGED
        good = checkpoints.latest()
        if good is not None:  # the last good epoch's weights
            atomic_write_bytes(rd.weights, (good / "model.safetensors").read_bytes())
    else:
        status = RunStatus.COMPLETED if reason == StopReason.COMPLETED else RunStatus.STOPPED
        save_weights(fit.model, rd.weights)
    metrics = state.final_metrics()
    _write_baselines(plan, prepared, timings)
    record.update(
        status=status,
        stop_reason=reason.value,
        stop_message=state.stop_message,
        epochs_completed=state.epoch,
        finished_at=_now(),
        timings=timings,
    )
    rd.write_history(state.history)
    rd.write_json("metrics.json", metrics)
    rd.write_json("run.json", record)
    index_run(RunIndex(plan.store), rd, plan.recipe, record, metrics)
    if state.collective is not None:
        state.collective.barrier()
    return Run(rd.path, plan.recipe, record, metrics, list(state.history))


def _write_baselines(plan: RunPlan, prepared: Prepared, timings: dict) -> None:
    """Fit and save the baselines when the recipe wants them (never for a search trial,
    which must not look at the test split); any failure is a warning, never the run's."""
    rd = plan.rd
    (rd.path / BASELINES_FILE).unlink(missing_ok=True)  # a resumed run's are refitted
    try:
        if not plan.evaluate_test or not wants_baselines(plan.recipe, prepared):
            return
        failures.now("fitting baselines")
        started = time.perf_counter()
        baselines = fit_baselines(prepared)
        timings["baselines_seconds"] = round(time.perf_counter() - started, 4)
        rd.write_json(BASELINES_FILE, baselines)
    except Exception as exc:  # noqa: BLE001 - a baseline must never fail the run
        message = f"{type(exc).__name__}: {exc}"
        warnings.warn(f"baselines not fitted: {message}", RuntimeWarning, stacklevel=2)
        rd.write_json(BASELINES_FILE, {name: {"error": message} for name in BASELINES})


def _train_folds(
    recipe: Recipe, out: Path, quiet: bool, store: str | None, study: str | None
) -> Run:
    """k-fold cross-validation: one ordinary run per fold, then their mean ± std."""
    from trainlab.cv import train_folds

    def train_fold(fold_recipe: dict[str, Any], fold_dir: Path) -> Run:
        return train(fold_recipe, out=fold_dir, quiet=quiet, store=store, study=study)

    info, metrics = train_folds(recipe, out, train_fold, store=store, study=study)
    _summarize_fold_baselines(out, [Path(f["run_dir"]) for f in info["folds"]])
    return Run(out, recipe, info, metrics, [])


def _summarize_fold_baselines(out: Path, fold_dirs: list[Path]) -> None:
    """The folds' baselines as mean ± std (`<metric>_std`), like the folds' metrics."""
    from trainlab.cv import summarize

    per_fold = [RunDir(d).read_json(BASELINES_FILE, default={}) for d in fold_dirs]
    summary: dict[str, dict[str, Any]] = {}
    for name in BASELINES:
        fitted = [b[name] for b in per_fold if "error" not in b.get(name, {"error": ""})]
        if len(fitted) == len(fold_dirs) and fitted:
            summary[name] = summarize(fitted)
        elif any(name in b for b in per_fold):
            summary[name] = {"error": f"fitted on {len(fitted)} of {len(fold_dirs)} folds"}
    if summary:
        RunDir(out).write_json(BASELINES_FILE, summary)


def _record_failure(
    rd: RunDir, store: str | None, recipe: Recipe, exc: BaseException, created: bool
) -> None:
    """Mark an unfinished run `failed` (or `interrupted`) with its reason; log a bug's traceback.

    Nothing the run saved is touched: its checkpoints stay, so `trainlab train` on the
    same directory resumes from the last one once the cause is fixed.
    """
    interrupted = isinstance(exc, KeyboardInterrupt)
    internal = not interrupted and not isinstance(exc, TrainlabError)
    where = failures.current_step("training")
    if internal:
        failures.write_error_log(exc, rd.path, where)
    try:
        record = rd.info()
    except RunError:
        return  # an unreadable run.json is reported by whoever reads it; never overwrite it
    if not record:
        if created and not internal and not any(rd.path.iterdir()):
            rd.path.rmdir()  # a mistake found before anything was saved leaves no trace
        return
    if record.get("status") not in UNFINISHED:
        return  # a finished run read back is never marked failed
    record.update(
        status=RunStatus.INTERRUPTED if interrupted else RunStatus.FAILED,
        failure={"step": where, "error": failures.describe(exc), "internal": internal},
        finished_at=_now(),
    )
    try:
        rd.write_json("run.json", record)
        index_run(RunIndex(store), rd, recipe, record, rd.read_json("metrics.json", default={}))
    except Exception:  # noqa: BLE001 - a full disk must not hide the original error
        pass


def index_run(index: RunIndex, rd: RunDir, recipe: Recipe, record: dict, metrics: dict) -> None:
    """Insert or update the run's row in the run index (any command that makes a run)."""
    index.record(
        {
            "run_dir": str(rd.path.resolve()),
            "name": record["name"],
            "recipe_hash": record["recipe_hash"],
            "status": record["status"],
            "stop_reason": record.get("stop_reason"),
            "dataset": recipe.data.dataset.name,
            "model": recipe.model.name,
            "seed": record["seed"],
            "study": record.get("study"),
            "metrics": metrics,
        }
    )


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def raise_if_diverged(run: Run) -> None:
    """Turn a diverged run into a DivergenceError with the step and what was kept."""
    if run.status == RunStatus.DIVERGED:
        kept = (
            "model.safetensors holds the last good epoch"
            if (run.run_dir / "model.safetensors").is_file()
            else "no epoch finished, so no weights were kept"
        )
        raise DivergenceError(
            f"training diverged: {run.info.get('stop_message')}; {kept} ({run.run_dir}). "
            "Lower train.lr or add gradient clipping"
        )
