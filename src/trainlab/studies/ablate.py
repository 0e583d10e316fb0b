"""Ablation studies: which techniques helped, by how much, with confidence.

Every variant of a recipe runs on the same list of seeds; each technique's effect is the
paired difference of the validation metric with and without it (see `studies.stats`).
The test split is reported beside it and never used to choose. Runs live under
`runs/studies/<study>/<variant>/seed-<s>/`, so re-running the same command resumes the
study: finished runs are read back, unfinished ones resume from their checkpoint.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import re
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from trainlab.config.loading import RecipeLike, apply_overrides, load_recipe, recipe_hash
from trainlab.config.schema import check_safe_name, validate_recipe
from trainlab.errors import RecipeError, RunError
from trainlab.studies import stats

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
    from trainlab.techniques import TECHNIQUES

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
                    f"--techniques {name}: does not apply to this recipe: {change}; "
                    "leave it out"
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


def plan_variants(
    recipe: dict[str, Any], changes: list[Change], mode: str, force: bool, n_seeds: int
) -> tuple[Variant, list[Variant]]:
    """The baseline and the variants a mode asks for."""
    if mode not in MODES:
        raise RecipeError(f"--mode must be one of {', '.join(MODES)} (got {mode!r})")

    def make(name: str, chosen: list[Change]) -> Variant:
        return Variant(name, chosen, apply_changes(recipe, chosen))

    if mode == "add-one":
        return make("baseline", []), [make(c.name, [c]) for c in changes]
    if mode == "leave-one-out":
        all_but = [make(f"all-minus-{c.name}", [o for o in changes if o is not c]) for c in changes]
        return make("all", list(changes)), all_but
    runs = 2 ** len(changes) * n_seeds
    if runs > FACTORIAL_LIMIT and not force:
        raise RecipeError(
            f"--mode factorial with {len(changes)} techniques and {n_seeds} seeds is {runs} "
            f"runs (limit {FACTORIAL_LIMIT}); use fewer, or --force"
        )
    subsets = []
    for r in range(1, len(changes) + 1):
        for combo in itertools.combinations(changes, r):
            subsets.append(make("+".join(c.name for c in combo), list(combo)))
    return make("baseline", []), subsets


def _variant_dir(name: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9._+-]", "_", name)
    return safe[:120] or "variant"


def _job(recipe: dict[str, Any], out: str, study: str, threads: int | None) -> dict[str, Any]:
    """Train (or read back) one run; executed in a worker process."""
    import torch

    from trainlab.runs import train

    if threads:
        torch.set_num_threads(threads)
    run = train(recipe, out=out, study=study, quiet=True)
    return {
        "run_dir": str(run.run_dir),
        "status": run.status,
        "stop_reason": run.stop_reason,
        "metrics": run.metrics,
        "parameters": run.info.get("parameters"),
        "fit_seconds": (run.info.get("timings") or {}).get("fit_seconds"),
    }


def run_jobs(
    jobs: list[tuple[str, int, dict[str, Any], Path]],
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
    total, lock = len(jobs), threading.RLock()
    done = [0]

    def finished(key: tuple[str, int], value: dict[str, Any]) -> None:
        with lock:
            results[key] = value
            done[0] += 1
            if progress:
                progress(done[0], total)

    pending = deque(jobs)
    if workers <= 1:
        while pending:
            vname, s, r, out = pending.popleft()
            finished((vname, s), _job(r, str(out), study, threads))
        return
    import multiprocessing

    import torch

    errors: list[BaseException] = []
    futures: list[Future] = []
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers - 1, mp_context=ctx) as pool:

        def submit_next(_: Future | None = None) -> None:
            with lock:  # popped and submitted together: the final wait below sees it
                if not pending or errors:
                    return
                vname, s, r, out = pending.popleft()
                fut = pool.submit(_job, r, str(out), study, threads)
                futures.append(fut)

            def collect(f: Future, key=(vname, s)) -> None:
                if f.exception() is not None:
                    errors.append(f.exception())
                else:
                    finished(key, f.result())
                submit_next()

            fut.add_done_callback(collect)

        for _ in range(workers - 1):
            submit_next()
        default_threads = torch.get_num_threads()
        try:
            while not errors:
                with lock:
                    if not pending:
                        break
                    vname, s, r, out = pending.popleft()
                finished((vname, s), _job(r, str(out), study, threads))
        finally:
            torch.set_num_threads(default_threads)
        while True:  # the callbacks may still be submitting the last jobs
            with lock:
                running = [f for f in futures if not f.done()]
            if not running:
                break
            wait(running)
    if errors:
        raise errors[0]


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

    def to_dict(self) -> dict[str, Any]:
        """JSON form (also written to results.json)."""
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
        }


def ablate(
    recipe: RecipeLike,
    techniques: list[str],
    *,
    overrides: list[str] | dict | None = None,
    variants: list[Change] | None = None,
    mode: str = "add-one",
    seeds: int = 3,
    workers: int = 1,
    study: str | None = None,
    metric: str | None = None,
    force: bool = False,
    runs_root: Path | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> StudyResult:
    """Run (or resume) an ablation study and return its statistics."""
    from trainlab.store.index import default_runs_root

    base = load_recipe(recipe, overrides)
    base.require_validation("ablate")
    base_dict = base.to_dict()
    changes = resolve_changes(techniques, base_dict, variants)
    if seeds < 2:
        raise RecipeError("--seeds must be at least 2 to measure a spread (5 is a good default)")
    seed_list = [base.train.seed + i for i in range(seeds)]
    baseline, others = plan_variants(base_dict, changes, mode, force, seeds)
    for v in [baseline, *others]:
        validate_recipe(v.recipe, f"variant '{v.name}'")  # fail before any training
    name = study or f"ablate-{base.name}-{recipe_hash(base)[:8]}"
    try:
        check_safe_name(name, "study name")
    except ValueError as exc:
        raise RunError(str(exc)) from None
    root = Path(runs_root or default_runs_root()) / "studies" / name
    spec = {
        "kind": "ablate",
        "recipe_hash": recipe_hash(base),
        "mode": mode,
        "changes": [c.describe() or c.name for c in changes],
        "change_names": [c.name for c in changes],
    }
    _check_study_spec(root, spec)
    metric = metric or _default_metric(base)

    jobs = []
    for v in [baseline, *others]:
        for s in seed_list:
            r = apply_overrides(v.recipe, {"train.seed": s})
            out = root / _variant_dir(v.name) / f"seed-{s}"
            jobs.append((v.name, s, r, out))
    reused = sum(1 for *_, out in jobs if _finished(out))
    results: dict[tuple[str, int], dict[str, Any]] = {}
    threads = max(1, (os.cpu_count() or 1) // workers) if workers > 1 else None
    run_jobs(jobs, name, workers, threads, results, progress)

    result = _analyse(name, root, mode, metric, seed_list, baseline, others, changes, results)
    result.runs_reused = reused
    result.runs_trained = len(jobs) - reused
    (root / "results.json").write_text(json.dumps(result.to_dict(), indent=2, default=float))
    return result


def _finished(out: Path) -> bool:
    info = out / "run.json"
    if not info.is_file():
        return False
    return json.loads(info.read_text()).get("status") in ("completed", "stopped", "diverged")


def _default_metric(recipe) -> str:
    from trainlab import setup

    data = setup.load_dataset(recipe)
    return "val_accuracy" if data.task == "classification" else "val_rmse"


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
    path.write_text(json.dumps(spec, indent=2))


def _values(results, vname: str, seeds: list[int], key: str) -> list[float]:
    out = []
    for s in seeds:
        v = results[(vname, s)]["metrics"].get(key)
        out.append(float(v) if v is not None else math.nan)
    return out


def _mean(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    return sum(vals) / len(vals) if vals else None


def _analyse(name, root, mode, metric, seeds, baseline, others, changes, results) -> StudyResult:
    up = stats.higher_is_better(metric)
    test_metric = "test_" + metric.removeprefix("val_")

    def arm(v: Variant) -> dict[str, Any]:
        vals = _values(results, v.name, seeds, metric)
        tests = _values(results, v.name, seeds, test_metric)
        runs = [results[(v.name, s)] for s in seeds]
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

    base_arm = arm(baseline)
    result = StudyResult(name, root, mode, metric, seeds, base_arm)
    arms = {v.name: arm(v) for v in others}
    for change in changes:
        if mode == "add-one":
            with_c, without = [arms[change.name]], [base_arm]
        elif mode == "leave-one-out":
            with_c, without = [base_arm], [arms[f"all-minus-{change.name}"]]
        else:
            with_c, without = [], []
            for v in others:
                names = [c.name for c in v.changes]
                if change.name in names:
                    rest = [n for n in names if n != change.name]
                    with_c.append(arms[v.name])
                    without.append(arms["+".join(rest)] if rest else base_arm)
        # average over the pairs (factorial main effect), per seed
        w = [_mean([a["values"][i] for a in with_c]) for i in range(len(seeds))]
        wo = [_mean([a["values"][i] for a in without]) for i in range(len(seeds))]
        wt = [_mean([a["test_values"][i] for a in with_c]) for i in range(len(seeds))]
        wot = [_mean([a["test_values"][i] for a in without]) for i in range(len(seeds))]
        test_diff = None
        if None not in wt + wot:
            test_diff = stats.paired_difference(wt, wot)
        if any(x is None for x in w + wo):
            row_diff = None
            verdict = "failed runs"
        else:
            row_diff = stats.paired_difference(w, wo)
            verdict = stats.verdict(row_diff, up)
        time_ratio = None
        if with_c[0]["fit_seconds"] and without[0]["fit_seconds"]:
            time_ratio = with_c[0]["fit_seconds"] / without[0]["fit_seconds"]
        result.rows.append(
            {
                "technique": change.name,
                "change": change.describe(),
                "verdict": verdict,
                "effect": row_diff.to_dict() if row_diff else None,
                "with": stats.summarize(w).to_dict() if None not in w else None,
                "without": stats.summarize(wo).to_dict() if None not in wo else None,
                # reported beside the verdict, never used for it
                "test_effect": test_diff.mean if test_diff else None,
                "test_paired": (
                    {**test_diff.to_dict(), "verdict": stats.verdict(test_diff, up)}
                    if test_diff
                    else None
                ),
                "time_ratio": time_ratio,
                "parameters_with": with_c[0]["parameters"],
                "parameters_without": without[0]["parameters"],
            }
        )
    sign = 1 if up else -1
    result.rows.sort(
        key=lambda r: (r["effect"] is None, -sign * (r["effect"] or {}).get("mean", 0))
    )
    result.arms = arms
    return result
