"""Training a recipe into a run directory, resuming unfinished runs, reading finished ones."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from trainlab import environment, failures, setup
from trainlab.config.loading import RecipeLike, dump_recipe, load_recipe, recipe_hash
from trainlab.config.schema import Recipe, check_safe_name, validate_recipe
from trainlab.data.batching import TensorBatches
from trainlab.engine import determinism
from trainlab.engine.checkpoint import (
    Checkpointer,
    CheckpointStore,
    restore_latest,
    save_weights,
)
from trainlab.engine.events import StopReason
from trainlab.engine.loop import NON_FINITE, Engine
from trainlab.engine.progress import ProgressDisplay, interactive
from trainlab.engine.state import State
from trainlab.engine.technique import Technique
from trainlab.errors import DivergenceError, RecipeError, RunError, TrainlabError
from trainlab.store.index import RunIndex, default_runs_root
from trainlab.store.rundir import UNFINISHED, RunDir, next_free_run_dir

#: Training samples re-evaluated in eval mode after each epoch (the `train_eval_*` metrics).
TRAIN_EVAL_SAMPLES = 2048


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
        """created, running, interrupted, failed (resumable), completed, stopped or diverged."""
        return self.info.get("status", "unknown")

    @property
    def stop_reason(self) -> str | None:
        """Why training ended (a `StopReason` value)."""
        return self.info.get("stop_reason")

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
        """The JSON the CLI prints: where the run is and what it measured."""
        return {
            "run_dir": str(self.run_dir),
            "name": self.info.get("name"),
            "status": self.status,
            "stop_reason": self.stop_reason,
            "stop_message": self.info.get("stop_message", ""),
            "epochs": self.info.get("epochs_completed"),
            "metrics": self.metrics,
            "timings": self.info.get("timings", {}),
        }


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


class _EpochClock(Technique):
    """Adds each epoch's wall time to its history row."""

    order = 500

    def on_epoch_start(self, state: State) -> None:
        self._start = time.perf_counter()

    def on_epoch_end(self, state: State) -> None:
        state.epoch_metrics["epoch_seconds"] = round(time.perf_counter() - self._start, 4)


def build_techniques(recipe: Recipe) -> list[Technique]:
    """Instantiate the recipe's techniques; refuse target rewriters that cannot share a run."""
    techniques = [spec.entry.builder(spec.params) for spec in recipe.techniques]
    rewriting = [
        (s.name, t)
        for s, t in zip(recipe.techniques, techniques, strict=True)
        if t.rewrites_targets
    ]
    if len(rewriting) > 1:
        # Target rewriters (mixup, cutmix) may take turns batch by batch when every one
        # of them sets `alternate: true`; otherwise the combination is refused.
        if not all(getattr(t, "alternate", False) for _, t in rewriting):
            raise RecipeError(
                f"techniques: {' and '.join(n for n, _ in rewriting)} both rewrite the "
                "targets and cannot be combined in one run; keep one, or set "
                "alternate: true on each to take turns batch by batch"
            )
        for slot, (_, t) in enumerate(rewriting):
            t.take_turns(slot, len(rewriting))
    return techniques  # declared conflicts are refused when the recipe loads (schema.py)


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
    if recipe.data.cv and recipe.data.fold is None:  # k-fold: k runs, mean ± std
        from trainlab.cv import train_cv

        run_dir = resolve_run_dir(recipe, out, name)
        return train_cv(recipe, out=run_dir, quiet=quiet, store=store, study=study)
    run_dir = resolve_run_dir(recipe, out, name)
    rd = RunDir(run_dir)
    digest = recipe_hash(recipe)
    previous = rd.info()
    if previous:
        if previous.get("recipe_hash") != digest:
            raise RunError(
                f"'{run_dir}' holds a run of a different recipe; pass another --out or delete it"
            )
        if previous.get("status") not in UNFINISHED:
            return Run.open(run_dir)
    created = not run_dir.exists()
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        with failures.step("preparing the run", run_dir):
            return _fit_run(
                recipe, rd, digest, previous, quiet, store, study, extra_techniques, evaluate_test
            )
    except BaseException as exc:
        _record_failure(rd, store, recipe, exc, created)
        raise


def _fit_run(
    recipe: Recipe,
    rd: RunDir,
    digest: str,
    previous: dict[str, Any],
    quiet: bool,
    store: str | None,
    study: str | None,
    extra_techniques: list[Technique] | None,
    evaluate_test: bool,
) -> Run:
    """Build, (resume,) fit and finish one run in `rd`."""
    run_dir = rd.path
    started = time.perf_counter()
    t = recipe.train
    determinism.seed_everything(t.seed)
    device = determinism.resolve_device(t.device)
    det = determinism.configure(t.deterministic, t.threads, device)

    failures.now("loading data")
    data = setup.load_dataset(recipe)
    splits, pre = setup.split_and_preprocess(recipe, data)
    info = setup.task_info(recipe, data)  # after preprocessing: one-hot/PCA/vocab set the shape
    setup.check_finite(splits, recipe.data.dataset.name)

    failures.now("building the model")
    determinism.seed_everything(t.seed)
    model = setup.build_model(recipe, info).to(device)
    loss_fn = setup.build_loss_fn(recipe, data.task, info)
    from trainlab.optim.optimizers import build_optimizer
    from trainlab.optim.schedules import build_schedule

    optimizer = build_optimizer(
        model, t.optimizer.name, t.optimizer.params, t.lr, t.weight_decay, t.decay_norm_and_bias
    )
    train_batches = TensorBatches(
        *setup.to_tensors(splits.train.X, splits.train.y, info, device),
        batch_size=t.batch_size,
        shuffle=True,
        seed=t.seed,
    )
    val_batches = (
        TensorBatches(
            *setup.to_tensors(splits.val.X, splits.val.y, info, device),
            batch_size=t.eval_batch_size,
        )
        if len(splits.val)
        else None
    )
    n_sub = min(len(splits.train), TRAIN_EVAL_SAMPLES)
    train_eval_batches = TensorBatches(
        *setup.to_tensors(splits.train.X[:n_sub], splits.train.y[:n_sub], info, device),
        batch_size=t.eval_batch_size,
    )
    test_batches = TensorBatches(
        *setup.to_tensors(splits.test.X, splits.test.y, info, device), batch_size=t.eval_batch_size
    )
    schedule = build_schedule(
        optimizer, t.schedule.name, t.schedule.params, t.epochs, len(train_batches)
    )
    techniques = build_techniques(recipe) + list(extra_techniques or [])
    state = State(
        model=model,
        optimizer=optimizer,
        loss_fn=loss_fn,
        device=device,
        max_epochs=t.epochs,
        schedule=schedule,
    )
    state.extras.update(recipe=recipe, task=info, splits=splits, run_dir=run_dir)

    store_ckpt = CheckpointStore(rd.checkpoints, keep=2)
    failures.now("restoring the checkpoint")
    resumed_from = restore_latest(store_ckpt, state, techniques)

    record: dict[str, Any] = {
        "name": run_dir.name,
        "recipe_name": recipe.name,
        "recipe_hash": digest,
        "seed": t.seed,
        "status": "running",
        "created_at": previous.get("created_at") or _now(),
        "resumed_from_epoch": resumed_from,
        "epochs_completed": state.epoch,
        "parameters": sum(p.numel() for p in model.parameters()),
        "determinism": det,
        "environment": environment.describe(device),
        "study": study,
    }
    if not previous:
        rd.recipe.write_text(dump_recipe(recipe))
    rd.write_json("data.json", info.to_dict())
    rd.write_json("preprocess.json", pre.state_dict())
    rd.write_json("run.json", record)
    index = RunIndex(store)
    _index(index, rd, recipe, record, {})

    def saved(st: State, path: Path) -> None:
        rd.write_history(st.history)
        record["epochs_completed"] = st.epoch
        rd.write_json("run.json", record)

    callbacks: list[Technique] = [_EpochClock(), Checkpointer(store_ckpt, techniques, saved)]
    if not quiet and interactive():
        callbacks.append(ProgressDisplay(len(train_batches), title=run_dir.name))
    engine = Engine(
        state,
        train_batches,
        val_batches,
        test_batches if evaluate_test else None,
        techniques + callbacks,
        info.target_kind,
        train_eval_batches=train_eval_batches,
    )
    fit_started, fit_cpu_started = time.perf_counter(), time.process_time()
    failures.now("training")
    engine.fit()
    fit_seconds = time.perf_counter() - fit_started
    fit_cpu_seconds = time.process_time() - fit_cpu_started

    failures.now("saving the run")
    reason = state.stop_reason or StopReason.COMPLETED
    diverged = reason in NON_FINITE
    last = state.history[-1] if state.history else {}
    final_epoch = state.extras.get("final_epoch")  # set when early stopping restored weights
    if final_epoch is not None:
        last = next((r for r in state.history if r.get("epoch") == final_epoch), last)
    metrics = {k: v for k, v in last.items() if k.startswith("val_")}
    metrics.update(state.extras.get("test_metrics", {}))
    if diverged:
        good = store_ckpt.latest()
        if good is not None:
            _copy(good / "model.safetensors", rd.weights)
    else:
        save_weights(model, rd.weights)
    record.update(
        status="diverged"
        if diverged
        else ("completed" if reason == StopReason.COMPLETED else "stopped"),
        stop_reason=reason.value,
        stop_message=state.stop_message,
        epochs_completed=state.epoch,
        finished_at=_now(),
        timings={
            "fit_seconds": round(fit_seconds, 4),
            "fit_cpu_seconds": round(fit_cpu_seconds, 4),
            "total_seconds": round(time.perf_counter() - started, 4),
            "seconds_per_epoch": round(fit_seconds / max(1, state.epoch - (resumed_from or 0)), 4),
        },
    )
    rd.write_history(state.history)
    rd.write_json("metrics.json", metrics)
    rd.write_json("run.json", record)
    _index(index, rd, recipe, record, metrics)
    return Run(run_dir, recipe, record, metrics, list(state.history))


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
        status="interrupted" if interrupted else "failed",
        failure={"step": where, "error": failures.describe(exc), "internal": internal},
        finished_at=_now(),
    )
    try:
        rd.write_json("run.json", record)
        _index(RunIndex(store), rd, recipe, record, rd.read_json("metrics.json", default={}))
    except Exception:  # noqa: BLE001 - a full disk must not hide the original error
        pass


def _copy(src: Path, dst: Path) -> None:
    from trainlab.engine.checkpoint import atomic_write_bytes

    atomic_write_bytes(dst, src.read_bytes())


def _index(index: RunIndex, rd: RunDir, recipe: Recipe, record: dict, metrics: dict) -> None:
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
    if run.status == "diverged":
        kept = (
            "model.safetensors holds the last good epoch"
            if (run.run_dir / "model.safetensors").is_file()
            else "no epoch finished, so no weights were kept"
        )
        raise DivergenceError(
            f"training diverged: {run.info.get('stop_message')}; {kept} ({run.run_dir}). "
            "Lower train.lr or add gradient clipping"
        )
