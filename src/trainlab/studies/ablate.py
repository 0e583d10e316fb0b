"""Ablation studies: which techniques helped, by how much, with confidence.

Every variant of a recipe runs on the same list of seeds; each technique's effect is the
paired difference of the validation metric with and without it (see `trainlab.stats`).
The test split is reported beside it and never used to choose. Runs live under
`runs/studies/<study>/<variant>/seed-<s>/`, so re-running the same command resumes the
study: finished runs are read back, unfinished ones resume from their checkpoint.

With `store` (`--store postgresql://…`) the study's runs are rows of a claims table in a
shared database (`studies.claims`): worker processes on any number of machines, each in
its own working directory, claim runs one at a time under a heartbeat-renewed lease,
record each result there, and whoever finds every run done computes the statistics.
A run whose worker died is claimed again once its lease expires; it resumes from its
checkpoint when the new worker sees the same run folder (a shared filesystem), and
restarts from scratch otherwise — a recipe and a seed decide its numbers either way.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import os
import re
import signal
import sys
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from trainlab import stats
from trainlab.config.loading import RecipeLike, apply_overrides, load_recipe, recipe_hash
from trainlab.config.schema import Recipe, validate_recipe
from trainlab.errors import RecipeError, RunError, TrainlabError
from trainlab.fileio import atomic_write_text
from trainlab.names import check_safe_name
from trainlab.store.rundir import FINISHED
from trainlab.threads import worker_share

MODES = ("add-one", "leave-one-out", "factorial")
FACTORIAL_LIMIT = 64  # runs, unless forced


@dataclass(frozen=True)
class Change:
    """A named change to a recipe: dotted overrides and/or techniques to append."""

    name: str
    overrides: tuple[tuple[str, Any], ...] = ()
    techniques: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...] = ()

    def describe(self) -> str:
        """Human form, e.g. 'model.dropout=0.2' or 'technique ema(decay=0.99)'."""
        parts = [f"{k}={v}" for k, v in self.overrides]
        for name, params in self.techniques:
            args = ",".join(f"{k}={v}" for k, v in params)
            parts.append(f"technique {name}({args})" if args else f"technique {name}")
        return "; ".join(parts)


#: The recipe-level changes `_builtin_changes` knows by name (what `--techniques` may name
#: besides registered techniques and `--variant`s).
BUILTIN_CHANGES = ("dropout", "batchnorm", "cosine", "weight_decay", "label_smoothing")


def _builtin_changes(recipe: dict[str, Any]) -> dict[str, Change | str]:
    """Recipe-level changes known by name, or why one does not apply to this recipe."""
    model = _component_name(recipe.get("model"))
    model_params = _model_params(model)
    changes: dict[str, Change | str] = {
        "dropout": Change("dropout", (("model.dropout", 0.25),)),
        "batchnorm": Change("batchnorm", (("model.norm", "batch"),)),
        "cosine": Change("cosine", (("train.schedule", {"name": "cosine"}),)),
        "weight_decay": Change("weight_decay", (("train.weight_decay", 5e-4),)),
        "label_smoothing": _label_smoothing_change(recipe),
    }
    for name, key in (("dropout", "dropout"), ("batchnorm", "norm")):
        if model_params is not None and key not in model_params:
            changes[name] = f"model '{model}' has no '{key}' setting"
    return changes


def _label_smoothing_change(recipe: dict[str, Any]) -> Change | str:
    """Cross-entropy smooths through its own option; bce (and a task default) through the
    `label_smoothing` technique, which smooths 0/1 targets too; regression cannot."""
    from trainlab.optim.losses import LOSSES

    loss = (recipe.get("train") or {}).get("loss")
    loss_name = _component_name(loss)
    if loss_name in LOSSES and LOSSES.get(loss_name).metadata.get("target") == "regression":
        return f"it smooths class targets and loss '{loss_name}' is a regression loss"
    if loss_name is None and _dataset_task(recipe) == "regression":
        return "it smooths class targets and the dataset is a regression task"
    if loss_name == "cross_entropy":
        params = {k: v for k, v in loss.items() if k != "name"} if isinstance(loss, dict) else {}
        return Change(
            "label_smoothing",
            (("train.loss", {**params, "name": "cross_entropy", "label_smoothing": 0.1}),),
        )
    return Change("label_smoothing", techniques=(("label_smoothing", (("smoothing", 0.1),)),))


def _component_name(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    return value.get("name") if isinstance(value, dict) else None


def _dataset_task(recipe: dict[str, Any]) -> str | None:
    from trainlab.data.datasets import DATASETS

    name = _component_name((recipe.get("data") or {}).get("dataset"))
    return DATASETS.get(name).metadata.get("task") if name in DATASETS else None


def _model_params(name: str | None) -> set[str] | None:
    from trainlab.models import MODELS

    return set(MODELS.get(name).params.model_fields) if name in MODELS else None


_ITEM = re.compile(r"^\s*([A-Za-z0-9_.-]+)\s*(?:\((.*)\))?\s*$")


def split_items(text: str) -> list[str]:
    """Split 'a,b(x=1,y=2),c' on the commas outside parentheses."""
    items, depth, current = [], 0, ""
    for ch in text:
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            items.append(current)
            current = ""
        else:
            current += ch
    items.append(current)
    return [i.strip() for i in items if i.strip()]


def _parse_kv(text: str, where: str) -> tuple[tuple[str, Any], ...]:
    pairs = []
    for part in split_items(text) if text else []:
        if "=" not in part:
            raise RecipeError(f"{where}: '{part}' must be key=value")
        k, v = part.split("=", 1)
        pairs.append((k.strip(), yaml.safe_load(v)))
    return tuple(pairs)


def parse_variant(text: str) -> Change:
    """'cosine:train.schedule.name=cosine,train.lr=0.01' → a named set of overrides."""
    if ":" not in text:
        raise RecipeError(
            f"--variant '{text}' must look like NAME:key=value[,key=value] "
            "(e.g. cosine:train.schedule.name=cosine)"
        )
    name, body = text.split(":", 1)
    return Change(name.strip(), _parse_kv(body, f"--variant {name}"))


def resolve_changes(
    items: list[str], recipe: dict[str, Any], variants: list[Change] | None = None
) -> list[Change]:
    """Turn `--techniques` items into Changes: user variants, built-ins, then techniques."""
    from trainlab.catalog import TECHNIQUES

    user = {v.name: v for v in variants or []}
    builtin = _builtin_changes(recipe)
    changes: list[Change] = []
    for item in items:
        match = _ITEM.match(item)
        if not match:
            raise RecipeError(f"--techniques: cannot read '{item}'; write name or name(k=v,...)")
        name, args = match.group(1), match.group(2)
        if name in user:
            change = user[name]
        elif name in builtin and not args:
            change = builtin[name]
            if isinstance(change, str):
                raise RecipeError(
                    f"--techniques {name}: does not apply to this recipe: {change}; leave it out"
                )
        elif name in TECHNIQUES:
            params = _parse_kv(args or "", f"--techniques {name}")
            label = name if not args else f"{name}({args.replace(' ', '')})"
            change = Change(label, techniques=((name, params),))
        else:
            known = sorted(set(user) | set(builtin) | set(TECHNIQUES.names()))
            import difflib

            close = difflib.get_close_matches(name, known, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise RecipeError(
                f"--techniques: unknown technique or variant '{name}'; {hint}"
                f"known: {', '.join(known)}; or define one with --variant {name}:key=value"
            )
        changes.append(change)
    names = [c.name for c in changes]
    if len(set(names)) != len(names):
        raise RecipeError(f"--techniques: a name appears twice in {names}")
    if not changes:
        raise RecipeError("--techniques: name at least one technique or variant")
    return changes


def apply_changes(recipe: dict[str, Any], changes: list[Change]) -> dict[str, Any]:
    """The recipe with every change applied (techniques appended if not already there)."""
    result = apply_overrides(recipe, {k: v for c in changes for k, v in c.overrides})
    present = [t if isinstance(t, str) else t.get("name") for t in result.get("techniques") or []]
    techniques = list(result.get("techniques") or [])
    for change in changes:
        for name, params in change.techniques:
            if name not in present:
                techniques.append({"name": name, **dict(params)})
                present.append(name)
    result["techniques"] = techniques
    return result


@dataclass
class Variant:
    """One arm of the study: a set of changes applied to the base recipe."""

    name: str
    changes: list[Change]
    recipe: dict[str, Any]


class Pair(NamedTuple):
    """Two arms that differ by exactly one change: `with_arm` has it, `without_arm` does not."""

    with_arm: str
    without_arm: str


@dataclass(frozen=True)
class Contrast:
    """What measures one change: the arm pairs that differ only by it.

    One pair in add-one (variant vs baseline) and leave-one-out (all vs all-minus-X); in a
    factorial study every subset with the change beside the same subset without it, whose
    per-seed average is the change's main effect.
    """

    change: Change
    pairs: tuple[Pair, ...]


@dataclass
class Plan:
    """The arms a mode asks for and, for each change, the pairs of arms that measure it."""

    reference: Variant  # the arm every contrast starts from: baseline, or all (leave-one-out)
    variants: list[Variant]
    contrasts: list[Contrast]

    @property
    def arms(self) -> list[Variant]:
        """Every arm to train, the reference first."""
        return [self.reference, *self.variants]


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise RecipeError(f"--mode must be one of {', '.join(MODES)} (got {mode!r})")


def plan_variants(
    recipe: dict[str, Any], changes: list[Change], mode: str, force: bool, n_seeds: int
) -> Plan:
    """The arms a mode asks for, and the (with, without) pairs that measure each change."""
    _check_mode(mode)

    def make(name: str, chosen: list[Change]) -> Variant:
        return Variant(name, chosen, apply_changes(recipe, chosen))

    if mode == "add-one":
        baseline = make("baseline", [])
        variants = [make(c.name, [c]) for c in changes]
        pairs = [Pair(v.name, baseline.name) for v in variants]  # the variant vs the baseline
        return Plan(baseline, variants, _one_pair_each(changes, pairs))
    if mode == "leave-one-out":
        everything = make("all", list(changes))
        all_but = [make(f"all-minus-{c.name}", [o for o in changes if o is not c]) for c in changes]
        pairs = [Pair(everything.name, v.name) for v in all_but]  # all vs all but the change
        return Plan(everything, all_but, _one_pair_each(changes, pairs))
    return _factorial_plan(make, changes, force, n_seeds)


def _one_pair_each(changes: list[Change], pairs: list[Pair]) -> list[Contrast]:
    return [Contrast(c, (p,)) for c, p in zip(changes, pairs, strict=True)]


def _factorial_plan(
    make: Callable[[str, list[Change]], Variant], changes: list[Change], force: bool, n_seeds: int
) -> Plan:
    """Every non-empty subset of the changes; each change pairs every subset that has it
    with the same subset without it (the empty one is the baseline)."""
    runs = 2 ** len(changes) * n_seeds
    if runs > FACTORIAL_LIMIT and not force:
        raise RecipeError(
            f"--mode factorial with {len(changes)} techniques and {n_seeds} seeds is {runs} "
            f"runs (limit {FACTORIAL_LIMIT}); use fewer, or --force"
        )
    baseline = make("baseline", [])
    by_members: dict[tuple[int, ...], Variant] = {(): baseline}
    for r in range(1, len(changes) + 1):
        for combo in itertools.combinations(range(len(changes)), r):
            chosen = [changes[i] for i in combo]
            by_members[combo] = make("+".join(c.name for c in chosen), chosen)
    contrasts = []
    for i, change in enumerate(changes):
        pairs = tuple(
            Pair(v.name, by_members[tuple(m for m in members if m != i)].name)
            for members, v in by_members.items()
            if i in members
        )
        contrasts.append(Contrast(change, pairs))
    return Plan(baseline, [v for m, v in by_members.items() if m], contrasts)


def _variant_dir(name: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9._+-]", "_", name)
    return safe[:120] or "variant"


class Job(NamedTuple):
    """One run of the study: an arm's recipe at one seed, and its run directory."""

    variant: str
    seed: int
    recipe: dict[str, Any]
    out: Path


def _job(
    recipe: dict[str, Any],
    out: str,
    study: str,
    threads: int | None,
    store: str | None = None,
    extra: list[Any] | None = None,
) -> dict[str, Any]:
    """Train (or read back) one run; executed in a worker process."""

    from trainlab.runs import train

    with worker_share(threads):
        run = train(recipe, out=out, study=study, quiet=True, store=store, extra_techniques=extra)
    return {
        "run_dir": str(run.run_dir),
        "status": run.status,
        "stop_reason": run.stop_reason,
        "metrics": run.metrics,
        "parameters": run.info.get("parameters"),
        "fit_seconds": (run.info.get("timings") or {}).get("fit_seconds"),
    }


class _Tally:
    """Records finished jobs into `results` and reports progress, from any thread."""

    def __init__(
        self,
        results: dict[tuple[str, int], dict[str, Any]],
        total: int,
        progress: Callable[[int, int], None] | None,
    ) -> None:
        self.results, self.total, self.progress = results, total, progress
        self.done = 0
        self.lock = threading.RLock()  # also guards the queue of pending jobs

    def __call__(self, job: Job, value: dict[str, Any]) -> None:
        with self.lock:
            self.results[(job.variant, job.seed)] = value
            self.done += 1
            if self.progress:
                self.progress(self.done, self.total)


def run_jobs(
    jobs: list[Job],
    study: str,
    workers: int,
    threads: int | None,
    results: dict[tuple[str, int], dict[str, Any]],
    progress: Callable[[int, int], None] | None = None,
) -> None:
    """Train every job, `workers` at a time, filling `results[(variant, seed)]`.

    With several workers this process is one of them: it has already paid for importing
    torch, so only `workers - 1` processes are spawned, and while they start up (about
    3 s each) this one is already training. Pool workers pull the next job as soon as they
    finish one, from the same queue.
    """
    tally = _Tally(results, len(jobs), progress)
    pending = deque(jobs)
    if workers <= 1:
        while pending:
            job = pending.popleft()
            tally(job, _job(job.recipe, str(job.out), study, threads))
        return
    _run_pool(pending, tally, study, workers, threads)


def _run_pool(
    pending: deque[Job], tally: _Tally, study: str, workers: int, threads: int | None
) -> None:
    """`workers - 1` spawned processes and this one drain `pending`; the first error wins."""
    import multiprocessing

    errors: list[BaseException] = []
    futures: list[Future] = []
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers - 1, mp_context=ctx) as pool:

        def submit_next() -> None:
            with tally.lock:  # popped and submitted together: the final wait below sees it
                if not pending or errors:
                    return
                job = pending.popleft()
                fut = pool.submit(_job, job.recipe, str(job.out), study, threads)
                futures.append(fut)

            def collect(f: Future, job: Job = job) -> None:
                if f.exception() is not None:
                    errors.append(f.exception())
                else:
                    tally(job, f.result())
                submit_next()

            fut.add_done_callback(collect)

        for _ in range(workers - 1):
            submit_next()
        _train_here(pending, tally, study, threads, errors)
        _wait_for(futures, tally.lock)
    if errors:
        raise errors[0]


def _train_here(
    pending: deque[Job],
    tally: _Tally,
    study: str,
    threads: int | None,
    errors: list[BaseException],
) -> None:
    """This process trains from the same queue until it is empty or a worker failed."""
    import torch

    default_threads = torch.get_num_threads()
    try:
        while not errors:
            with tally.lock:
                if not pending:
                    break
                job = pending.popleft()
            tally(job, _job(job.recipe, str(job.out), study, threads))
    finally:
        torch.set_num_threads(default_threads)


def _wait_for(futures: list[Future], lock: threading.RLock) -> None:
    while True:  # the callbacks may still be submitting the last jobs
        with lock:
            running = [f for f in futures if not f.done()]
        if not running:
            break
        wait(running)


# ------------------------------------------------------------- workers on a shared database


@dataclass(frozen=True)
class SharedWork:
    """What a worker needs to pull a study's runs from the claims table (picklable)."""

    url: str
    study: str
    jobs: list[Job]
    heartbeat: float
    lease: float
    max_attempts: int
    threads: int | None

    @property
    def poll(self) -> float:
        """Seconds between looks at the table while other workers hold the last runs."""
        return max(0.2, min(self.heartbeat, 5.0))


def run_claimed_jobs(
    work: SharedWork, workers: int, progress: Callable[[int, int], None] | None = None
) -> int:
    """Pull runs from the claims table until none is pending or running; runs trained here.

    This process is one worker and spawns `workers - 1` more, each claiming on its own,
    exactly as workers on other machines do. If this one fails, the spawned ones are
    stopped like Ctrl-C stops them: their runs go back to the table for anyone to take.
    """
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    procs = [
        ctx.Process(target=_spawned_claimer, args=(work,), name=f"ablate-worker-{i}")
        for i in range(1, workers)
    ]
    for p in procs:
        p.start()
    try:
        trained = _claim_loop(work, progress)
    except BaseException:
        for p in procs:
            if p.is_alive():
                p.terminate()  # SIGTERM: the worker releases its run, then exits
        raise
    finally:
        for p in procs:
            p.join()
    return trained


def _spawned_claimer(work: SharedWork) -> None:
    """A spawned worker: SIGTERM ends it like Ctrl-C (its run released), a mistake in one line."""

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupt)
    try:
        _claim_loop(work)
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    except TrainlabError as exc:
        print(f"ablate worker: error: {' '.join(str(exc).split())}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None


def _claim_loop(work: SharedWork, progress: Callable[[int, int], None] | None = None) -> int:
    """Claim, train and record runs until every run of the study is done or failed."""
    from trainlab.studies.claims import PENDING, RUNNING, open_claims, worker_id

    store = open_claims(work.url)
    by_key = {(j.variant, j.seed): j for j in work.jobs}
    seeds = sorted({s for _, s in by_key})
    me = worker_id()
    trained = 0
    while True:
        claim = store.claim(work.study, seeds, me, work.lease, work.max_attempts)
        if claim is not None:
            job = by_key.get((claim.variant, claim.seed))
            if job is None:  # only a study registered under another plan could hold it
                store.release(claim)
                raise RunError(f"study '{work.study}' holds a run this plan does not know")
            trained += _train_claimed(store, claim, job, work)
        counts = store.counts(work.study, seeds)
        if progress is not None:
            progress(counts["done"], sum(counts.values()))
        if claim is None:
            if not counts[PENDING] and not counts[RUNNING]:
                return trained
            time.sleep(work.poll)  # others hold the last runs: one may die and need taking over


def _train_claimed(store: Any, claim: Any, job: Job, work: SharedWork) -> bool:
    """Train one claimed run under a heartbeat; True if its result was recorded by us."""
    from trainlab.failures import describe
    from trainlab.studies.claims import Heartbeat, LeaseGuard, LeaseLost

    with Heartbeat(store, claim, work.heartbeat, work.lease) as beat:
        try:
            value = _job(
                job.recipe, str(job.out), work.study, work.threads, work.url, [LeaseGuard(beat)]
            )
        except LeaseLost as exc:
            warnings.warn(str(exc), RuntimeWarning, stacklevel=2)
            return False
        except KeyboardInterrupt:
            store.release(claim)
            raise
        except BaseException as exc:
            store.fail(claim, f"{claim.worker}: {describe(exc)}")
            raise
        if store.finish(claim, {**value, "worker": claim.worker}):
            return True
    warnings.warn(
        f"run {job.variant} seed {job.seed}: this worker's lease expired before its result "
        "was recorded; the worker that took it over records it (a recipe and a seed decide "
        "the numbers, so they are the same)",
        RuntimeWarning,
        stacklevel=2,
    )
    return False


def _ablate_shared(
    setup: AblationSetup,
    jobs: list[Job],
    options: AblateOptions,
    progress: Callable[[int, int], None] | None,
) -> StudyResult:
    """Join the study in the shared database, work on it, and report it once all is done."""
    from trainlab.studies.claims import DONE, FAILED, masked, open_claims

    store = open_claims(options.store)  # an unreachable database fails before any training
    store.register_study(setup.name, "ablate", setup.spec)
    _check_study_spec(setup.root, setup.spec)
    store.add_jobs(setup.name, [(j.variant, j.seed) for j in jobs])
    reused = store.counts(setup.name, setup.seeds)[DONE]
    workers = options.workers
    threads = max(1, (os.cpu_count() or 1) // workers) if workers > 1 else None
    work = SharedWork(
        url=options.store,
        study=setup.name,
        jobs=jobs,
        heartbeat=options.heartbeat,
        lease=options.lease,
        max_attempts=options.max_attempts,
        threads=threads,
    )
    trained_here = run_claimed_jobs(work, workers, progress)
    rows = store.jobs(setup.name, setup.seeds)
    failed = [r for r in rows if r.status == FAILED]
    if failed:
        shown = "; ".join(f"{r.variant} seed {r.seed}: {r.error}" for r in failed[:3])
        raise RunError(
            f"{len(failed)} of {len(rows)} runs of study '{setup.name}' failed ({shown}); fix "
            "the cause and run the same command again: failed runs are retried, done ones kept"
        )
    result = _analyse(setup, {(r.variant, r.seed): r.result for r in rows})
    result.runs_reused = reused
    result.runs_trained = len(jobs) - reused
    by_worker: dict[str, int] = {}
    for r in rows:
        by_worker[r.worker or "?"] = by_worker.get(r.worker or "?", 0) + 1
    result.store = {
        "url": masked(options.store),
        "runs_by_worker": by_worker,
        "trained_here": trained_here,
        "reclaimed": sum(1 for r in rows if r.attempts > 1),
    }
    _write_results(setup, result)
    return result


@dataclass(frozen=True)
class AblateOptions:
    """How an ablation study runs: its arms, seeds, parallelism and where it lives.

    `trainlab ablate` builds one from its flags; `ablate(recipe, techniques, options)` (or
    its fields as keywords, `ablate(recipe, ["ema"], seeds=5)`) takes it.
    """

    overrides: list[str] | dict[str, Any] | None = None
    """Dotted-key overrides applied to the recipe before any change (`--set k=v`)."""
    variants: Sequence[Change] = ()
    """Named sets of overrides that `techniques` may name (`--variant NAME:k=v`)."""
    mode: str = "add-one"
    """add-one (each change alone vs the baseline), leave-one-out (all vs all but one) or
    factorial (every subset; main effects)."""
    seeds: int = 3
    """Seeds per arm, the same ones for every arm; at least 2 to measure a spread."""
    workers: int = 1
    """Runs trained at the same time (this process plus `workers - 1` spawned ones)."""
    study: str | None = None
    """Study name (default `ablate-RECIPE-HASH`); the same name resumes the study."""
    metric: str | None = None
    """Validation metric that judges (default val_accuracy, or val_rmse for regression)."""
    force: bool = False
    """Allow a factorial study above FACTORIAL_LIMIT runs."""
    runs_root: Path | None = None
    """Folder that holds `studies/` (default: the run store's root)."""
    store: str | None = None
    """Shared database (`--store postgresql://…`, or sqlite:/// on one machine): workers on
    any machine pull this study's runs from its claims table; runs are indexed there too."""
    heartbeat: float = 10.0
    """With `store`: seconds between renewals of a running run's lease."""
    lease: float = 60.0
    """With `store`: a run whose lease was not renewed for this long is claimed again."""
    max_attempts: int = 3
    """With `store`: claims of one run (its workers dying) before it is marked failed."""

    def check(self) -> None:
        """RecipeError, on one line, for a value no study can run with."""
        if self.seeds < 2:
            raise RecipeError(
                "--seeds must be at least 2 to measure a spread (5 is a good default)"
            )
        _check_mode(self.mode)
        if self.store is not None and not 0 < self.heartbeat < self.lease:
            raise RecipeError(
                f"--heartbeat ({self.heartbeat:g} s) must be positive and shorter than "
                f"--lease ({self.lease:g} s); e.g. --heartbeat 10 --lease 60"
            )


@dataclass
class StudyResult:
    """Everything an ablation measured, ready for tables, plots and JSON."""

    study: str
    study_dir: Path
    mode: str
    metric: str
    seeds: list[int]
    baseline: dict[str, Any]
    rows: list[dict[str, Any]] = field(default_factory=list)
    arms: dict[str, dict[str, Any]] = field(default_factory=dict)
    runs_trained: int = 0
    runs_reused: int = 0
    store: dict[str, Any] | None = None  # with --store: the database and who trained what

    def to_dict(self) -> dict[str, Any]:
        """JSON form (also written to results.json)."""
        shared = {"store": self.store} if self.store is not None else {}
        return {
            "study": self.study,
            "study_dir": str(self.study_dir),
            "mode": self.mode,
            "metric": self.metric,
            "seeds": self.seeds,
            "baseline": self.baseline,
            "effects": self.rows,
            "arms": self.arms,
            "runs_trained": self.runs_trained,
            "runs_reused": self.runs_reused,
            **shared,
        }


@dataclass(frozen=True)
class AblationSetup:
    """A planned study: its name and folder, the metric that judges, the seeds, the arms."""

    name: str
    root: Path
    mode: str
    metric: str
    seeds: list[int]
    plan: Plan
    spec: dict[str, Any] = field(default_factory=dict)  # what a study with this name must match

    @property
    def test_metric(self) -> str:
        """The test-split twin of the metric, reported beside it and never used to judge."""
        return "test_" + self.metric.removeprefix("val_")

    def jobs(self) -> list[Job]:
        """Every arm at every seed, the reference arm first."""
        return [
            Job(v.name, s, apply_overrides(v.recipe, {"train.seed": s}), self.run_dir(v, s))
            for v in self.plan.arms
            for s in self.seeds
        ]

    def run_dir(self, variant: Variant, seed: int) -> Path:
        """Where an arm's run at one seed lives."""
        return self.root / _variant_dir(variant.name) / f"seed-{seed}"


def ablate(
    recipe: RecipeLike,
    techniques: list[str],
    options: AblateOptions | None = None,
    *,
    progress: Callable[[int, int], None] | None = None,
    **fields: Any,
) -> StudyResult:
    """Run (or resume) an ablation study and return its statistics.

    `fields` are `AblateOptions` fields that replace those of `options` (or the defaults);
    `progress(done, total)` is called as runs finish.
    """
    options = dataclasses.replace(options or AblateOptions(), **fields)
    setup = _setup_study(recipe, techniques, options)
    jobs = setup.jobs()
    if options.store is not None:
        return _ablate_shared(setup, jobs, options, progress)
    reused = sum(1 for job in jobs if _finished(job.out))
    results: dict[tuple[str, int], dict[str, Any]] = {}
    workers = options.workers
    threads = max(1, (os.cpu_count() or 1) // workers) if workers > 1 else None
    run_jobs(jobs, setup.name, workers, threads, results, progress)

    result = _analyse(setup, results)
    result.runs_reused = reused
    result.runs_trained = len(jobs) - reused
    _write_results(setup, result)
    return result


def _write_results(setup: AblationSetup, result: StudyResult) -> None:
    text = json.dumps(result.to_dict(), indent=2, default=float)
    atomic_write_text(setup.root / "results.json", text)


def _setup_study(
    recipe: RecipeLike, techniques: list[str], options: AblateOptions
) -> AblationSetup:
    """Validate everything, plan the arms and claim the study folder, before any training."""
    from trainlab.store.index import default_runs_root

    base = load_recipe(recipe, options.overrides)
    base.require_validation("ablate")
    base_dict = base.to_dict()
    changes = resolve_changes(techniques, base_dict, list(options.variants))
    options.check()
    seeds = [base.train.seed + i for i in range(options.seeds)]
    plan = plan_variants(base_dict, changes, options.mode, options.force, options.seeds)
    for v in plan.arms:
        validate_recipe(v.recipe, f"variant '{v.name}'")  # fail before any training
    name = options.study or f"ablate-{base.name}-{recipe_hash(base)[:8]}"
    try:
        check_safe_name(name, "study name")
    except ValueError as exc:
        raise RunError(str(exc)) from None
    root = Path(options.runs_root or default_runs_root()) / "studies" / name
    spec = {
        "kind": "ablate",
        "recipe_hash": recipe_hash(base),
        "mode": options.mode,
        "changes": [c.describe() or c.name for c in changes],
        "change_names": [c.name for c in changes],
    }
    if options.store is None:  # a shared study checks the database first (_ablate_shared)
        _check_study_spec(root, spec)
    metric = options.metric or _default_metric(base)
    return AblationSetup(name, root, options.mode, metric, seeds, plan, spec)


def _finished(out: Path) -> bool:
    info = out / "run.json"
    if not info.is_file():
        return False
    return json.loads(info.read_text()).get("status") in FINISHED


def _default_metric(recipe: Recipe) -> str:
    """val_accuracy for classification, val_rmse for regression.

    The task is known from the recipe: the loss's target, else the dataset's registered
    task; only a file loader (csv…), whose task the data decides, is loaded to find out.
    """
    loss = recipe.train.loss
    if loss is not None:
        regression = loss.entry.metadata.get("target") == "regression"
        task = "regression" if regression else "classification"
    else:
        task = recipe.data.dataset.entry.metadata.get("task")
        if task not in ("classification", "regression"):
            from trainlab import setup

            task = setup.load_dataset(recipe).task
    return "val_accuracy" if task == "classification" else "val_rmse"


def _check_study_spec(root: Path, spec: dict[str, Any]) -> None:
    path = root / "study.json"
    if path.is_file():
        old = json.loads(path.read_text())
        if old != spec:
            raise RunError(
                f"study '{root.name}' already exists with a different recipe, mode or technique "
                "list; pass another --study name (seeds may change, nothing else)"
            )
        return
    root.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(spec, indent=2))


def _values(results, vname: str, seeds: list[int], key: str) -> list[float]:
    out = []
    for s in seeds:
        v = results[(vname, s)]["metrics"].get(key)
        out.append(float(v) if v is not None else math.nan)
    return out


def _mean(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    return sum(vals) / len(vals) if vals else None


def _analyse(setup: AblationSetup, results: dict[tuple[str, int], dict[str, Any]]) -> StudyResult:
    """Summaries of every arm, then one row per change from its pairs, best effect first."""
    up = stats.higher_is_better(setup.metric)
    plan = setup.plan
    base_arm = _arm(plan.reference, setup, results)
    result = StudyResult(setup.name, setup.root, setup.mode, setup.metric, setup.seeds, base_arm)
    arms = {v.name: _arm(v, setup, results) for v in plan.variants}
    by_name = {plan.reference.name: base_arm, **arms}
    result.rows = [_effect_row(c, by_name, len(setup.seeds), up) for c in plan.contrasts]
    sign = 1 if up else -1
    result.rows.sort(
        key=lambda r: (r["effect"] is None, -sign * (r["effect"] or {}).get("mean", 0))
    )
    result.arms = arms
    return result


def _arm(
    v: Variant, setup: AblationSetup, results: dict[tuple[str, int], dict[str, Any]]
) -> dict[str, Any]:
    """One arm's per-seed values (validation and test), their summaries, cost and statuses."""
    vals = _values(results, v.name, setup.seeds, setup.metric)
    tests = _values(results, v.name, setup.seeds, setup.test_metric)
    runs = [results[(v.name, s)] for s in setup.seeds]
    return {
        "variant": v.name,
        "values": vals,
        "test_values": tests,
        "summary": stats.summarize(vals).to_dict(),
        "test": stats.summarize(tests).to_dict(),
        "fit_seconds": _mean([r["fit_seconds"] for r in runs]),
        "parameters": runs[0]["parameters"],
        "statuses": [r["status"] for r in runs],
    }


def _per_seed(arms: list[dict[str, Any]], key: str, n_seeds: int) -> list[float | None]:
    """Per seed, the mean of `key` over the arms (a factorial main effect averages pairs)."""
    return [_mean([a[key][i] for a in arms]) for i in range(n_seeds)]


def _effect_row(
    contrast: Contrast, arms: dict[str, dict[str, Any]], n_seeds: int, up: bool
) -> dict[str, Any]:
    """The paired effect of one change, with its test-split twin and its cost."""
    with_c = [arms[p.with_arm] for p in contrast.pairs]
    without = [arms[p.without_arm] for p in contrast.pairs]
    w, wo = _per_seed(with_c, "values", n_seeds), _per_seed(without, "values", n_seeds)
    wt = _per_seed(with_c, "test_values", n_seeds)
    wot = _per_seed(without, "test_values", n_seeds)
    test_diff = stats.paired_difference(wt, wot) if None not in wt + wot else None
    if any(x is None for x in w + wo):
        row_diff, verdict = None, "failed runs"
    else:
        row_diff = stats.paired_difference(w, wo)
        verdict = stats.verdict(row_diff, up)
    time_ratio = None
    if with_c[0]["fit_seconds"] and without[0]["fit_seconds"]:
        time_ratio = with_c[0]["fit_seconds"] / without[0]["fit_seconds"]
    change = contrast.change
    return {
        "technique": change.name,
        "change": change.describe(),
        "verdict": verdict,
        "effect": row_diff.to_dict() if row_diff else None,
        "with": stats.summarize(w).to_dict() if None not in w else None,
        "without": stats.summarize(wo).to_dict() if None not in wo else None,
        # reported beside the verdict, never used for it
        "test_effect": test_diff.mean if test_diff else None,
        "test_paired": (
            {**test_diff.to_dict(), "verdict": stats.verdict(test_diff, up)} if test_diff else None
        ),
        "time_ratio": time_ratio,
        "parameters_with": with_c[0]["parameters"],
        "parameters_without": without[0]["parameters"],
    }
