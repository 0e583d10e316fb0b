"""The `trainlab` command line (DESIGN.md's contract).

Every computing command takes `--json` and then prints one JSON object as the last line
of standard output. A user mistake exits non-zero with a one-line message, never a
traceback.
"""

from __future__ import annotations

import os
import signal
import sys
import warnings
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from trainlab.errors import TrainlabError
from trainlab.fileio import to_json

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Train a model from a recipe, diagnose it, and prove which techniques help.",
)
out = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True)

JsonOpt = typer.Option(False, "--json", help="Print one JSON object as the last line of output.")
QuietOpt = typer.Option(False, "--quiet", "-q", help="No progress display.")
StoreOpt = typer.Option(
    None, "--store", help="SQLAlchemy URL of the run index (default: runs/trainlab.db)."
)
SetOpt = typer.Option(
    None, "--set", "-s", help="Override a recipe key: --set train.lr=0.01 (repeatable)."
)


def emit(result: dict[str, Any], as_json: bool) -> None:
    """Print `result` as the final JSON line when asked."""
    if as_json:
        sys.stdout.write(to_json(result, indent=None) + "\n")
        sys.stdout.flush()


def _registry_table(title: str, registry, columns: list[tuple[str, Any]], as_json: bool) -> None:
    rows = [
        {"name": e.name, "description": e.description, **{c: f(e) for c, f in columns}}
        for e in registry
    ]
    if as_json:
        emit({title: rows}, True)
        return
    table = Table(title=title)
    for col in ["name", *[c for c, _ in columns], "description"]:
        table.add_column(col)
    for r in rows:
        table.add_row(
            *(
                str(r[c]) if r[c] is not None else ""
                for c in ["name", *[c for c, _ in columns], "description"]
            )
        )
    out.print(table)


@app.command()
def datasets(as_json: bool = JsonOpt) -> None:
    """List the datasets a recipe may name: task, samples, features, classes, source.

    File loaders (csv, npy, image_folder, text, cifar10_binary) read the user's path, so
    their sizes show as empty.
    """
    from trainlab.data import DATASETS

    _registry_table(
        "datasets",
        DATASETS,
        [
            ("task", lambda e: e.metadata.get("task")),
            ("samples", lambda e: e.metadata.get("samples")),
            ("features", lambda e: e.metadata.get("features")),
            ("classes", lambda e: e.metadata.get("classes")),
            ("source", lambda e: e.metadata.get("source")),
        ],
        as_json,
    )


@app.command()
def models(
    summary: Path | None = typer.Option(
        None, "--summary", help="Recipe YAML: show its model's layers, parameters and FLOPs."
    ),
    layers: Path | None = typer.Option(
        None,
        "--layers",
        help="Run directory or recipe YAML: every layer `trainlab features --layer` takes.",
    ),
    overrides: list[str] | None = SetOpt,
    as_json: bool = JsonOpt,
) -> None:
    """List the architectures a recipe may name, or summarize one recipe's model, or list
    the layers of a run's (or a recipe's) model by name, type and output shape."""
    from trainlab.models import MODELS

    if layers is not None:
        _print_layers(layers, overrides or [], as_json)
        return
    if summary is None:
        _registry_table(
            "models", MODELS, [("parameters", lambda e: ", ".join(e.params.model_fields))], as_json
        )
        return
    from trainlab.assembly import summarize_recipe

    result = summarize_recipe(summary, overrides or [])
    if not as_json:
        table = Table(title=f"{result.model}: {summary}")
        for col in ("layer", "type", "output shape", "parameters"):
            table.add_column(col, justify="right" if col == "parameters" else "left")
        for row in result.layers:
            table.add_row(row.name, row.kind, str(tuple(row.output_shape)), f"{row.params:,}")
        out.print(table)
        out.print(
            f"parameters {result.params:,} (trainable {result.trainable_params:,}) · "
            f"FLOPs per sample {result.flops_per_sample:,} · activation memory of one batch "
            f"of {result.batch_size}: {result.activation_bytes / 2**20:.2f} MiB"
        )
    emit(result.to_dict(), as_json)


def _print_layers(source: Path, overrides: list[str], as_json: bool) -> None:
    """`models --layers`: a run directory's trained model (its saved weights) or a recipe's
    untrained one (built for its dataset, `--set` applied), layer by layer."""
    if source.is_dir():
        from trainlab.predict import load

        if overrides:
            from trainlab.errors import RecipeError

            raise RecipeError("--set changes a recipe; a run directory's model is as trained")
        predictor = load(source)
        model_name, rows = predictor.run.recipe.model.name, predictor.layers()
    else:
        from trainlab.features import recipe_layers

        model_name, infos = recipe_layers(source, overrides)
        rows = [info.to_dict() for info in infos]
    if not as_json:
        table = Table(title=f"{model_name}: {source} — layers for `trainlab features --layer`")
        for col in ("layer", "alias", "type", "output shape", "parameters", "calls"):
            table.add_column(col, justify="right" if col in ("parameters", "calls") else "left")
        for row in rows:
            shape = row["output_shape"]
            table.add_row(
                row["name"], row["alias"] or "", row["kind"],
                "-" if shape is None else str(tuple(shape)), f"{row['params']:,}",
                str(row["calls"]),
            )  # fmt: skip
        out.print(table)
    emit({"source": str(source), "model": model_name, "layers": rows}, as_json)


@app.command()
def techniques(as_json: bool = JsonOpt) -> None:
    """List the techniques a recipe's `techniques:` list may name."""
    from trainlab.catalog import TECHNIQUES

    _registry_table(
        "techniques",
        TECHNIQUES,
        [
            ("parameters", lambda e: ", ".join(e.params.model_fields)),
            ("conflicts", lambda e: ", ".join(e.metadata.get("conflicts", ()))),
        ],
        as_json,
    )


@app.command()
def optimizers(as_json: bool = JsonOpt) -> None:
    """List optimizers, losses and learning-rate schedules."""
    from trainlab.optim.losses import LOSSES
    from trainlab.optim.optimizers import OPTIMIZERS
    from trainlab.optim.schedules import SCHEDULES

    params = ("parameters", lambda e: ", ".join(e.params.model_fields))
    if as_json:
        emit(
            {
                kind: [
                    {
                        "name": e.name,
                        "description": e.description,
                        "parameters": list(e.params.model_fields),
                    }
                    for e in reg
                ]
                for kind, reg in (
                    ("optimizers", OPTIMIZERS),
                    ("losses", LOSSES),
                    ("schedules", SCHEDULES),
                )
            },
            True,
        )
        return
    for title, reg in (("optimizers", OPTIMIZERS), ("losses", LOSSES), ("schedules", SCHEDULES)):
        _registry_table(title, reg, [params], False)


@app.command()
def train(
    recipe: Path = typer.Argument(..., help="Recipe YAML file."),
    overrides: list[str] | None = SetOpt,
    out_dir: Path | None = typer.Option(
        None, "--out", help="Run directory (resumed if unfinished)."
    ),
    name: str | None = typer.Option(
        None, "--name", help="Run name under runs/ (default: recipe name)."
    ),
    store: str | None = StoreOpt,
    quiet: bool = QuietOpt,
    nproc: int = typer.Option(
        1, "--nproc", help="Data-parallel processes on this machine (torchrun; gloo/nccl)."
    ),
    nnodes: int = typer.Option(1, "--nnodes", help="Machines in the fit (torchrun's flag)."),
    node_rank: int = typer.Option(0, "--node-rank", help="This machine's rank (0…nnodes-1)."),
    rdzv_endpoint: str = typer.Option(
        "", "--rdzv-endpoint", help="host:port of machine 0, for --nnodes > 1."
    ),
    as_json: bool = JsonOpt,
) -> None:
    """Train a recipe; resumes when the run directory holds an unfinished run."""
    from trainlab.runs import Run, raise_if_diverged
    from trainlab.runs import train as train_recipe

    if (nproc > 1 or nnodes > 1) and "WORLD_SIZE" not in os.environ:
        run_dir = _launch_processes(recipe, overrides, out_dir, name, store,
                                    (nproc, nnodes, node_rank, rdzv_endpoint))  # fmt: skip
        run = Run.open(run_dir)
    else:
        run = train_recipe(recipe, overrides or [], out=out_dir, name=name, quiet=quiet,
                           store=store)  # fmt: skip
    summary = run.summary()
    if not as_json:
        _print_table_facts(run.run_dir)
        _print_metrics(f"{run.run_dir.name}: {run.status}", run.metrics)
        _print_baselines(summary)
        out.print(f"run directory: {run.run_dir}")
    emit(summary, as_json)
    raise_if_diverged(run)


def _launch_processes(
    recipe: Path, overrides: list[str] | None, out_dir: Path | None, name: str | None,
    store: str | None, topology: tuple[int, int, int, str],
) -> Path:  # fmt: skip
    """`trainlab train` in `nproc` processes per machine (distributed.launch); the run
    directory is decided here, so every process writes (rank 0) and reads the same one."""
    from trainlab import distributed

    nproc, nnodes, node_rank, rdzv_endpoint = topology
    from trainlab.config.loading import load_recipe
    from trainlab.runs import resolve_run_dir

    resolved = load_recipe(recipe, overrides or [])
    distributed.check_process_count(nproc, resolved.train.device)
    distributed.check_recipe(resolved)
    if nnodes > 1 and (out_dir is None or not rdzv_endpoint):
        raise typer.BadParameter("--nnodes > 1 needs --out (on a shared filesystem) and "
                                 "--rdzv-endpoint host:port of machine 0")  # fmt: skip
    run_dir = resolve_run_dir(resolved, out_dir, name)
    argv = ["train", str(recipe), "--out", str(run_dir), "--quiet"]
    for item in overrides or []:
        argv += ["--set", item]
    if store:
        argv += ["--store", store]
    distributed.launch(argv, nproc, nnodes, node_rank, rdzv_endpoint)
    return run_dir


def _print_metrics(title: str, metrics: dict[str, float]) -> None:
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for k, v in metrics.items():
        table.add_row(k, f"{v:.4f}" if isinstance(v, float) else str(v))
    out.print(table)


def _print_table_facts(run_dir: Path) -> None:
    """A user's table: the column roles inferred (what was dropped, and why) and what was
    imputed, as data.json records them."""
    import json

    from rich.markup import escape

    from trainlab.data.roles import TableSchema

    try:
        table = json.loads((run_dir / "data.json").read_text()).get("table") or {}
    except (OSError, ValueError):
        return
    if table.get("schema"):
        out.print(escape(TableSchema.from_dict(table["schema"]).summary()), soft_wrap=True)
    for note in table.get("imputed") or []:
        out.print(f"imputed {escape(note)}", soft_wrap=True)


def _print_baselines(summary: dict[str, Any]) -> None:
    """The network's main test metrics beside the baselines' (when the run fitted any)."""
    baselines = summary.get("baselines") or {}
    if not baselines:
        return
    metrics = summary.get("metrics") or {}
    named = [(n, b) for n, b in baselines.items() if isinstance(b, dict)]
    fitted = [b for _, b in named if "error" not in b]
    main = ("test_accuracy", "test_r2", "test_rmse")
    keys = [k for k in main if k in metrics or (fitted and k in fitted[0])]
    table = Table(title="network vs baselines (test split)")
    for col in ("model", *(k.removeprefix("test_") for k in keys), "fit seconds"):
        table.add_column(col, justify="left" if col == "model" else "right")
    network_seconds = (summary.get("timings") or {}).get("fit_seconds")
    rows = [("network", metrics, network_seconds)]
    rows += [(name, b, b.get("fit_seconds")) for name, b in named]
    for name, values, seconds in rows:
        if "error" in values:
            table.add_row(name, *(["-"] * len(keys)), f"failed: {values['error']}"[:60])
            continue
        cells = [_number(values.get(k)) for k in keys]
        table.add_row(name, *cells, _number(seconds, "{:.2f}"))
    out.print(table)


def _number(value: Any, fmt: str = "{:.4f}") -> str:
    return fmt.format(value) if isinstance(value, int | float) else "-"


@app.command()
def evaluate(
    run_dir: Path = typer.Argument(..., help="Run directory."),
    split: str = typer.Option("test", "--split", help="train, val or test."),
    as_json: bool = JsonOpt,
) -> None:
    """Metrics of a saved run on a split of its dataset — no training."""
    from trainlab.predict import load

    metrics = load(run_dir).evaluate(split)
    if not as_json:
        _print_metrics(f"{run_dir} — {split}", metrics)
    emit({"run_dir": str(run_dir), "split": split, "metrics": metrics}, as_json)


@app.command()
def predict(
    run_dir: Path = typer.Argument(..., help="Run directory."),
    inputs: Path = typer.Argument(
        ..., help="Input rows: .npy, .npz, or a table in the run's training format."
    ),
    out_file: Path | None = typer.Option(None, "--out", help="Write predictions to .csv or .npy."),
    as_json: bool = JsonOpt,
) -> None:
    """Predictions of a saved run for new inputs — no training."""
    import numpy as np

    from trainlab.predict import load

    model = load(run_dir)
    rows = model.read_inputs(inputs)
    preds = model.predict(rows)
    labels = model.labels(preds)
    unseen = model.unseen_categories(rows)
    for column, (count, example) in unseen.items():
        message = (
            f"column '{column}': {count} {'row holds' if count == 1 else 'rows hold'} "
            "categories unseen in training "
            f"(e.g. {example!r}); they are encoded as unknown"
        )
        _show_warning(message, UserWarning, "", 0)
    regression = model.info.target_kind == "regression"
    if out_file is not None:
        if out_file.suffix == ".npy":
            np.save(out_file, preds)
        else:
            cells = [repr(float(v)) if regression else str(v) for v in labels]
            out_file.write_text("\n".join(["prediction", *cells]) + "\n")
    elif not as_json:
        for v in labels[:20]:
            out.print(v)
        if len(labels) > 20:
            out.print(f"… {len(labels) - 20} more (use --out FILE)")
    result = {
        "run_dir": str(run_dir),
        "count": int(len(preds)),
        "out": str(out_file) if out_file else None,
        "predictions": labels,
        "unseen_categories": {c: n for c, (n, _) in unseen.items()},
    }
    if not regression:
        result["indices"] = preds.tolist()
    emit(result, as_json)


@app.command()
def features(
    run_dir: Path = typer.Argument(..., help="Run directory."),
    inputs: Path = typer.Argument(
        ..., help="Input rows: .npy, .npz, or a table in the run's training format."
    ),
    layer: str = typer.Option(
        ...,
        "--layer",
        help="Module name (`trainlab models --layers RUN` lists them) or a negative index: "
        "-2 = the second-to-last top-level layer.",
    ),
    out_file: Path | None = typer.Option(
        None,
        "--out",
        help="Write the features to .npy or .csv (default: INPUT.layer-NAME.npy here).",
    ),
    batch_size: int = typer.Option(256, "--batch-size", min=1, help="Rows per forward pass."),
    as_json: bool = JsonOpt,
) -> None:
    """Intermediate-layer features of a saved run for new inputs: one row per input,
    the layer's output flattened — for another model (a linear classifier, a search)."""
    import numpy as np

    from trainlab.features import resolve_layer
    from trainlab.predict import load

    model = load(run_dir)
    name = resolve_layer(model.model, layer)
    out_file = _features_file(out_file or Path(f"{inputs.stem}.layer-{name}.npy"))
    values = model.features(model.read_inputs(inputs), name, batch_size=batch_size)
    if out_file.suffix.lower() == ".csv":
        header = ",".join(f"f{i}" for i in range(values.shape[1]))
        np.savetxt(out_file, values, delimiter=",", fmt="%.9g", header=header, comments="")
    else:
        np.save(out_file, values, allow_pickle=False)
    kind = type(dict(model.model.named_modules())[name]).__name__
    if not as_json:
        out.print(f"layer {name} ({kind}): features of shape {values.shape} → {out_file}")
    result = {
        "run_dir": str(run_dir),
        "layer": name,
        "requested": layer,
        "type": kind,
        "shape": list(values.shape),
        "out": str(out_file),
    }
    emit(result, as_json)


def _features_file(path: Path) -> Path:
    """`features --out`, checked before any work: .npy or .csv, in a folder that exists."""
    from trainlab.errors import DataError

    if path.suffix.lower() not in (".npy", ".csv"):
        raise DataError(f"--out '{path}': write features to a .npy or a .csv file")
    if not path.parent.is_dir():
        raise DataError(f"--out '{path}': folder '{path.parent}' does not exist")
    return path


@app.command()
def runs(
    study: str | None = typer.Option(None, "--study"),
    limit: int = typer.Option(50, "--limit", min=1),
    store: str | None = StoreOpt,
    as_json: bool = JsonOpt,
) -> None:
    """List recorded runs, newest first."""
    from trainlab.store.index import RunIndex

    rows = RunIndex(store).list(study=study, limit=limit)
    if as_json:
        emit({"runs": rows}, True)
        return
    table = Table(title="runs")
    for col in ("name", "status", "dataset", "model", "seed", "metric", "run_dir"):
        table.add_column(col)
    for r in rows:
        m = r.get("metrics") or {}
        key = next((k for k in ("test_accuracy", "test_rmse", "val_accuracy") if k in m), None)
        table.add_row(
            r["name"],
            r["status"],
            r["dataset"] or "",
            r["model"] or "",
            str(r["seed"]),
            f"{key} {m[key]:.4f}" if key else "",
            r["run_dir"],
        )
    out.print(table)


@app.command()
def ablate(
    recipe: Path = typer.Argument(..., help="Recipe YAML file (the baseline)."),
    techniques: str = typer.Option(
        ...,
        "--techniques",
        "-t",
        help="Comma list: techniques (ema, mixup(alpha=0.4)…), built-in changes (dropout, "
        "batchnorm, cosine, weight_decay, label_smoothing) or --variant names.",
    ),
    variant: list[str] | None = typer.Option(
        None, "--variant", help="Named overrides: NAME:key=value[,key=value] (repeatable)."
    ),
    mode: str = typer.Option("add-one", "--mode", help="add-one, leave-one-out or factorial."),
    seeds: int = typer.Option(
        3, "--seeds", min=1, help="Seeds per variant (the same for every one)."
    ),
    workers: int = typer.Option(1, "--workers", min=1, help="Worker processes on this machine."),
    store: str | None = typer.Option(
        None, "--store", help="Shared database postgresql://…: workers on any machine pull runs."
    ),
    study: str | None = typer.Option(None, "--study", help="Study name (re-run: resume/join)."),
    heartbeat: float = typer.Option(10.0, "--heartbeat", help="With --store: lease renewal, s."),
    lease: float = typer.Option(60.0, "--lease", help="With --store: a silent run is retaken, s."),
    metric: str | None = typer.Option(None, "--metric", help="Validation metric to judge by."),
    force: bool = typer.Option(False, "--force", help="Allow a factorial study above the limit."),
    overrides: list[str] | None = SetOpt,
    quiet: bool = QuietOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Which techniques help: every variant over the same seeds, paired statistics.

    With --store, machines that run the same command share the study's runs."""
    from trainlab.engine.progress import interactive
    from trainlab.report.ablation import ablation_chart, ablation_table
    from trainlab.studies.ablate import AblateOptions, parse_variant, split_items
    from trainlab.studies.ablate import ablate as run_ablation

    options = AblateOptions(
        overrides=overrides or [],
        variants=[parse_variant(v) for v in variant or []],
        mode=mode,
        seeds=seeds,
        workers=workers,
        study=study,
        metric=metric,
        force=force,
        store=store,
        heartbeat=heartbeat,
        lease=lease,
    )

    bar, shown = None, [-1]
    if not quiet and interactive():
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

        bar = Progress(
            "[bold]ablate", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=err
        )
        bar.start()
        task = bar.add_task("runs", total=None)

    def tick(done: int, total: int) -> None:
        if bar is not None:
            bar.update(task, completed=done, total=total)
        elif store and not quiet and done != shown[0]:  # a log line per finished run
            shown[0] = done
            err.print(f"ablate: {done}/{total} runs done", highlight=False)

    try:
        result = run_ablation(recipe, split_items(techniques), options, progress=tick)
    finally:
        if bar is not None:
            bar.stop()
    data = result.to_dict()
    chart = ablation_chart(data, result.study_dir / "effects.png")
    data["chart"] = str(chart)
    if not as_json:
        out.print(ablation_table(data))
        out.print(f"chart: {chart}   results: {result.study_dir / 'results.json'}")
    emit(data, as_json)


def _options(items: list[str] | None, flag: str) -> dict[str, Any]:
    from trainlab.config.loading import parse_override
    from trainlab.errors import RecipeError

    found: dict[str, Any] = {}
    for item in items or []:
        try:
            key, value = parse_override(item)
        except RecipeError:
            raise RecipeError(f"{flag} '{item}' must look like name=value") from None
        found[key] = value
    return found


@app.command()
def tune(
    recipe: Path = typer.Argument(..., help="Recipe YAML file."),
    space: Path = typer.Option(..., "--space", help="Search space YAML (dotted recipe keys)."),
    trials: int = typer.Option(
        20, "--trials", min=1, help="Trials the study should have in total."
    ),
    sampler: str = typer.Option(
        "tpe", "--sampler", help="grid, random, tpe, gp, cmaes, evolution or nsga2."
    ),
    sampler_opt: list[str] | None = typer.Option(
        None, "--sampler-opt", help="Sampler option, e.g. population=20 (repeatable)."
    ),
    pruner: str = typer.Option("none", "--pruner", help="none, median, asha or hyperband."),
    pruner_opt: list[str] | None = typer.Option(
        None, "--pruner-opt", help="Pruner option, e.g. reduction_factor=2 (repeatable)."
    ),
    workers: int = typer.Option(1, "--workers", min=1, help="Worker processes on this machine."),
    storage: str | None = typer.Option(
        None, "--store", "--storage", help="Shared database postgresql://…, or a journal file."
    ),
    study: str | None = typer.Option(None, "--study", help="Study name (default: RECIPE-tune)."),
    objective: list[str] | None = typer.Option(
        None,
        "--objective",
        help="val_accuracy, min:val_loss, params, latency_ms… (repeat for several).",
    ),
    out_dir: Path | None = typer.Option(
        None, "--out", help="Study folder (default: runs/studies/STUDY)."
    ),
    seed: int = typer.Option(0, "--seed", min=0, max=2**32 - 1, help="Sampler seed."),
    repeats: int = typer.Option(
        1, "--repeats", min=1, help="Average each trial over this many seeds."
    ),
    cv: int | None = typer.Option(None, "--cv", min=2, help="Average each trial over k folds."),
    timeout: float | None = typer.Option(
        None, "--timeout", help="Stop starting trials after this many seconds."
    ),
    heartbeat: int = typer.Option(
        10, "--heartbeat", min=1, help="Seconds between heartbeats of running trials."
    ),
    final: bool = typer.Option(
        True, "--final/--no-final", help="Train and test the best recipe at the end."
    ),
    plots: bool = typer.Option(True, "--plots/--no-plots", help="Write PNG plots."),
    overrides: list[str] | None = SetOpt,
    quiet: bool = QuietOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Hyper-parameter search over a space of recipe keys; re-run to continue the study."""
    from trainlab.studies.tune import TuneOptions
    from trainlab.studies.tune import tune as run_tune

    options = TuneOptions(
        trials=trials,
        sampler=sampler,
        sampler_options=_options(sampler_opt, "--sampler-opt"),
        pruner=pruner,
        pruner_options=_options(pruner_opt, "--pruner-opt"),
        workers=workers,
        storage=storage,
        study=study,
        objective=objective,
        out=out_dir,
        seed=seed,
        repeats=repeats,
        cv=cv,
        timeout=timeout,
        heartbeat_seconds=heartbeat,
        final=final,
        plots=plots,
        quiet=quiet or as_json,
    )
    try:
        data = run_tune(_with_overrides(recipe, overrides), space, options).summary()
    except KeyboardInterrupt:
        err.print("interrupted; re-run the same `trainlab tune` command to continue the study")
        sys.exit(130)
    if not as_json:
        _print_tune(data)
    emit(data, as_json)


def _with_overrides(recipe: Path, overrides: list[str] | None) -> Any:
    """The recipe file, or the recipe loaded with its `--set` overrides."""
    from trainlab.config import load_recipe

    return load_recipe(recipe, overrides) if overrides else recipe


def _print_tune(data: dict[str, Any]) -> None:
    counts = ", ".join(f"{n} {s}" for s, n in data["trials"].items() if n)
    table = Table(title=f"study {data['study']} — {counts}; {data['epochs_total']} epochs")
    table.add_column("best")
    table.add_column("value")
    table.add_row("objective", ", ".join(data["objectives"]))
    table.add_row("value", str(data.get("best_values") or data.get("best_value")))
    for k, v in (data.get("best_params") or {}).items():
        table.add_row(k, str(v))
    best_run = data.get("best_run") or {}
    for k, v in (best_run.get("metrics") or {}).items():
        if k.startswith("test_"):
            table.add_row(f"best recipe {k}", f"{v:.4f}")
    table.add_row("best recipe", str(data.get("best_recipe")))
    out.print(table)


# --------------------------------------------------------------------------- diagnose
@app.command()
def doctor(
    recipe: Path = typer.Argument(..., help="Recipe YAML file to diagnose."),
    budget: str = typer.Option(
        "2m", "--budget", help="Wall time for the probe run and LR test: 90s, 2m, 1h."
    ),
    apply: bool = typer.Option(
        False, "--apply", help="Ablate the recommended techniques over seeds and report."
    ),
    seeds: int = typer.Option(
        3, "--seeds", min=1, help="Seeds per arm of --apply (and the LR test)."
    ),
    max_apply: int = typer.Option(
        4, "--max-apply", min=1, help="Ablate at most this many changes."
    ),
    workers: int = typer.Option(
        1, "--workers", min=1, help="Parallel training processes for --apply."
    ),
    target: float | None = typer.Option(
        None, "--target", help="Accuracy (or error) the model should reach: the bias reference."
    ),
    lr_find: bool = typer.Option(True, "--lr-find/--no-lr-find", help="Run the LR range test."),
    out_dir: Path | None = typer.Option(
        None, "--out", help="Folder for the probe, plots and report (default: runs/doctor/…)."
    ),
    overrides: list[str] | None = SetOpt,
    quiet: bool = QuietOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Diagnose a recipe: findings with evidence and codes, recommended techniques, and
    with --apply an ablation that shows which recommendations really helped."""
    from trainlab.studies.doctor import DoctorOptions
    from trainlab.studies.doctor import doctor as run_doctor

    def say(text: str) -> None:
        if not quiet and not as_json:
            err.print(f"[dim]doctor:[/] {text}")

    options = DoctorOptions(
        budget=budget,
        apply=apply,
        seeds=seeds,
        max_apply=max_apply,
        target=target,
        lr_find=lr_find,
        workers=workers,
        out=out_dir,
    )
    report = run_doctor(recipe, overrides or [], options, progress=say)
    data = report.to_dict()
    if not as_json:
        _print_doctor(data)
    emit(data, as_json)


def _print_doctor(data: dict[str, Any]) -> None:
    probe = data["probe"]
    out.print(
        f"probe: {probe['status']} after {probe['epochs']} epochs "
        f"({probe.get('fit_seconds') or 0:.1f}s) — {probe['run_dir']}"
    )
    if data.get("fit"):
        fit = data["fit"]
        out.print(f"fit: {fit['verdict']} — {fit['reason']}")
    table = Table(title="findings" if data["findings"] else "findings: none, no alarm")
    for col in ("code", "severity", "evidence"):
        table.add_column(col)
    for f in data["findings"]:
        table.add_row(f["code"], f["severity"], f["message"])
    out.print(table)
    if data["recommendations"]:
        rec = Table(title="recommended")
        for col in ("change", "for", "why", "--apply"):
            rec.add_column(col)
        for r in data["recommendations"]:
            how = ", ".join(f"{k}={v}" for k, v in r["overrides"].items())
            rec.add_row(
                r["name"] + (f" ({how})" if how else ""),
                r["code"],
                r["reason"],
                "yes" if r["applicable"] else (r["note"] or "no"),
            )
        out.print(rec)
    applied = data.get("applied")
    if applied and applied.get("rows"):
        table = Table(title=f"applied over seeds {applied['seeds']} ({applied['metric']})")
        for col in ("change", "val effect [95% CI]", "verdict", "test effect [95% CI]", "test"):
            table.add_column(col)
        for row in applied["rows"]:
            e, t = row.get("effect") or {}, row.get("test") or {}
            table.add_row(
                row["technique"],
                f"{e.get('mean', float('nan')):+.4f} [{e.get('ci_low', float('nan')):+.4f}, "
                f"{e.get('ci_high', float('nan')):+.4f}]",
                row["verdict"],
                f"{t.get('mean', float('nan')):+.4f} [{t.get('ci_low', float('nan')):+.4f}, "
                f"{t.get('ci_high', float('nan')):+.4f}]",
                t.get("verdict", ""),
            )
        out.print(table)
    for name, path in data.get("plots", {}).items():
        out.print(f"{name}: {path}")
    out.print(f"report: {Path(data['out_dir']) / 'report.json'}")


@app.command(name="lr-find")
def lr_find_command(
    recipe: Path = typer.Argument(..., help="Recipe YAML file."),
    seeds: int = typer.Option(
        3, "--seeds", min=1, help="Repeat the range test over this many seeds."
    ),
    start: float = typer.Option(1e-7, "--start", help="Smallest learning rate tried."),
    end: float = typer.Option(10.0, "--end", help="Largest learning rate tried."),
    steps: int = typer.Option(100, "--steps", min=2, help="Mini-batches per range test."),
    out_dir: Path = typer.Option(Path("lr_find"), "--out", help="Folder for the PNG and JSON."),
    overrides: list[str] | None = SetOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Learning-rate range test (Smith): loss against lr, suggestions and their spread."""
    from trainlab.studies.lr_finder import lr_find as run_lr_find

    result = run_lr_find(
        recipe, overrides or [], seeds=seeds, start=start, end=end, steps=steps, out=out_dir
    )
    data = result.to_dict()
    data.pop("curves")
    if not as_json:
        table = Table(title=f"LR range test over {seeds} seeds (recipe lr {result.recipe_lr:g})")
        for col in ("suggestion", "geometric mean", "per seed", "max/min"):
            table.add_column(col)
        for name, sug in result.suggestions.items():
            vals = ", ".join("-" if v is None else f"{v:.2g}" for v in sug["values"])
            gm, spread = sug.get("geomean"), sug.get("spread")
            table.add_row(
                name,
                "-" if gm is None else f"{gm:.3g}",
                vals,
                "-" if spread is None else f"{spread:.1f}x",
            )
        out.print(table)
        if not result.informative:
            out.print("the loss never fell in most range tests: the suggestions mean nothing")
        out.print(f"plot: {result.plot}")
    emit(data, as_json)


@app.command()
def compress(
    run_dir: Path = typer.Argument(..., help="A finished run directory (only read)."),
    prune: list[str] | None = typer.Option(
        None,
        "--prune",
        help="METHOD:AMOUNT, repeatable: magnitude:0.9, threshold:0.01, "
        "neurons:0.6, channels:0.3,0.5,0.7 (several amounts: candidates), structured:0.5.",
    ),
    quantize: str | None = typer.Option(None, "--quantize", help="int8 (dynamic, CPU)."),
    finetune: int = typer.Option(2, "--finetune", min=0, help="Epochs of retraining per step."),
    steps: int = typer.Option(1, "--steps", min=1, help="Pruning steps to reach the amount."),
    target_drop: float = typer.Option(
        0.01, "--target-drop", help="Most validation accuracy to lose (0.01 = one point)."
    ),
    scope: str = typer.Option("global", "--scope", help="magnitude: global or layer."),
    importance: str = typer.Option(
        "magnitude", "--importance", help="structured: magnitude, bn_scale or taylor."
    ),
    score: str = typer.Option("mean", "--score", help="neurons/channels: mean or apoz."),
    vs_scratch: int = typer.Option(
        0, "--vs-scratch", min=0, help="Also train the small architecture from scratch, N seeds."
    ),
    out_dir: Path | None = typer.Option(None, "--out", help="The new run's directory."),
    as_json: bool = JsonOpt,
) -> None:
    """Prune and/or quantize a trained run into a new run: accuracy, size, MACs and CPU
    latency before and after, measured side by side."""
    from trainlab.compress.api import compress as run_compress
    from trainlab.compress.methods import MethodOptions
    from trainlab.report.compression import compression_table

    options = MethodOptions(steps=steps, scope=scope, importance=importance, score=score)
    result = run_compress(
        run_dir, prune or [], quantize, finetune=finetune, target_drop=target_drop,
        out=out_dir, vs_scratch=vs_scratch, options=options,
        progress=lambda line: err.print(f"[dim]{line}[/]", highlight=False),
    )  # fmt: skip
    data = result.to_dict()
    if not as_json:
        out.print(compression_table(data))
        for note in data["notes"]:
            out.print(f"note: {note}")
        scratch = data.get("vs_scratch")
        if scratch:
            d = scratch["difference"]
            out.print(f"vs scratch ({scratch['seeds']} seeds): {scratch['verdict']} "
                      f"(compressed − scratch {d['mean']:+.4f}, 95% CI "
                      f"[{d['ci_low']:+.4f}, {d['ci_high']:+.4f}])")  # fmt: skip
        out.print(f"run directory: {data['run_dir']}   chart: {data['chart']}")
    emit(data, as_json)
    if not result.met_target:
        _one_line(
            f"no candidate stayed within --target-drop {target_drop:g}; the best found is "
            f"saved in {data['run_dir']}"
        )
        sys.exit(2)


# --- export (deploy/export.py): owned by the export work ---
@app.command()
def export(
    run_dir: Path = typer.Argument(
        ..., help="A finished run directory: trained, compressed or fine-tuned."
    ),
    fmt: str = typer.Option("onnx", "--format", help="onnx (onnxruntime) or pt2 (torch.export)."),
    out_dir: Path | None = typer.Option(
        None, "--out", help="The export folder (default: RUN/export/FORMAT)."
    ),
    rtol: float = typer.Option(1e-3, "--rtol", help="Parity: relative output tolerance."),
    atol: float = typer.Option(1e-5, "--atol", help="Parity: absolute output tolerance."),
    as_json: bool = JsonOpt,
) -> None:
    """Export a run's model (ONNX or torch.export) into a folder a product system can use,
    after proving its outputs equal to PyTorch's on the run's test split."""
    from trainlab.deploy.export import ParityError, export_run

    def progress(line: str) -> None:
        err.print(f"[dim]{line}[/]", highlight=False)

    try:
        result = export_run(run_dir, fmt, out_dir, rtol=rtol, atol=atol, progress=progress)
    except ParityError as exc:
        data = exc.result.to_dict()
        if not as_json:
            out.print(_export_table(data))
        emit(data, as_json)
        _one_line(" ".join(str(exc).split()))
        sys.exit(2)
    data = result.to_dict()
    if not as_json:
        out.print(_export_table(data))
        out.print(f"export folder: {data['out']}")
    emit(data, as_json)


def _export_table(data: dict[str, Any]) -> Table:
    """The parity figures of an export, torch beside the artifact."""
    metric = data["metric"]
    table = Table(title=f"{data['format']} export: parity on {data['samples']:,} "
                  f"{data['split']} rows")  # fmt: skip
    table.add_column("check")
    table.add_column("value", justify="right")
    table.add_row(f"{metric} (torch)", f"{data[f'{metric}_torch']:.4f}")
    table.add_row(f"{metric} (export)", f"{data[f'{metric}_export']:.4f}")
    table.add_row("max abs diff", f"{data['max_abs_diff']:.3g}")
    table.add_row("max rel diff", f"{data['max_rel_diff']:.3g}")
    table.add_row("tolerance used", f"{data['tolerance_used']:.3g} (≤ 1 passes)")
    table.add_row("parity", "[green]passed[/]" if data["parity"] else "[red]failed[/]")
    return table


# --- serve (deploy/serve.py): owned by the serve work ---
@app.command()
def serve(
    source: Path = typer.Argument(..., help="A run directory, or an export folder."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(
        8000, "--port", min=0, max=65535, help="TCP port; 0 picks a free one."
    ),
    workers: int = typer.Option(1, "--workers", min=1, help="Processes sharing the port."),
    max_body_mb: float = typer.Option(
        10.0, "--max-body-mb", min=0.001, help="Largest request body (MiB); larger ones get 413."
    ),
    max_instances: int = typer.Option(
        10_000, "--max-instances", min=1, help="Most instances in one request."
    ),
    access_log: bool = typer.Option(False, "--access-log", help="Log every request to stderr."),
    as_json: bool = JsonOpt,
) -> None:
    """Serve a run (its torch model) or an export folder (onnxruntime / pt2) over HTTP.

    POST /predict {"instances": [...]} → {"predictions": [...]}; GET /health, GET /metadata,
    OpenAPI at /openapi.json and /docs. Prints the URL (with --json: {"url", ...}) once it
    listens, then serves until Ctrl-C.
    """
    from trainlab.deploy.serve import serve as run_service
    from trainlab.deploy.serve_inputs import Limits

    def announce(model: Any, url: str) -> None:
        facts = {"url": url, "source": str(source), "kind": model.kind,
                 "backend": model.backend.name, "workers": workers}  # fmt: skip
        if as_json:
            emit(facts, True)
        else:
            sys.stdout.write(f"serving {model.kind} {source} ({model.backend.name}) at {url}\n")
            sys.stdout.flush()
            err.print(
                f"[dim]POST {url}/predict · GET {url}/metadata · {url}/docs · Ctrl-C stops[/]"
            )

    limits = Limits(max(1, int(max_body_mb * 2**20)), max_instances)
    try:
        run_service(source, host, port, workers, limits, access_log, announce)
    except KeyboardInterrupt:
        err.print("stopped")


# --- report (report/html.py): owned by the report work ---
@app.command()
def report(
    targets: list[Path] = typer.Argument(
        ..., help="A run directory or a study folder (ablate, tune, doctor); with --compare, "
        "two or more run directories."
    ),
    out_file: Path | None = typer.Option(
        None, "--out", help="The HTML file (default: TARGET/report.html; compare.html)."
    ),
    compare: bool = typer.Option(False, "--compare", help="Overlay several runs on one page."),
    open_page: bool = typer.Option(False, "--open", help="Open the page in a web browser."),
    split: str = typer.Option(
        "test", "--split", help="Split of the confusion matrix / residual plot (run pages)."
    ),
    predictions: bool = typer.Option(
        True, "--predictions/--no-predictions",
        help="Predict the split for the confusion matrix or residual plot (loads the data).",
    ),
    storage: str | None = typer.Option(
        None, "--storage", help="Tune study in a database: its URL (summary.json masks it)."
    ),
    as_json: bool = JsonOpt,
) -> None:
    """One self-contained HTML page for a run, a compressed run, an ablation, a search or
    a doctor folder (the kind is read from the folder), or several runs side by side."""
    from trainlab.errors import RunError
    from trainlab.report.html import check_out, compare_report, detect_kind
    from trainlab.report.html import report as write_report

    check_out(out_file)
    if compare:
        result = compare_report(targets, out_file)
    elif len(targets) != 1:
        raise RunError("report takes one TARGET; pass --compare to put several runs on one page")
    else:
        target = targets[0]
        kind = detect_kind(target)
        wanted = predictions and kind in ("run", "compress")
        preds = _report_predictions(target, split) if wanted else None
        result = write_report(target, out_file, predictions=preds, storage=storage)
    data = result.to_dict()
    if not as_json:
        plural = "" if data["figures"] == 1 else "s"
        out.print(f"{data['kind']} report: {data['out']} ({data['bytes'] / 1024:.0f} KiB, "
                  f"{data['figures']} figure{plural})")  # fmt: skip
    if open_page:
        import webbrowser

        webbrowser.open(result.out.resolve().as_uri())
    emit(data, as_json)


def _report_predictions(run_dir: Path, split: str) -> Any:
    """A run's predictions on `split` beside the true targets, for the report's confusion
    matrix or residual plot (a run directory stores none); None, with a warning, when
    the run cannot predict (no weights, data gone)."""
    if not (run_dir / "run.json").is_file():
        return None
    import torch

    from trainlab.engine.metrics import predictions, unscale
    from trainlab.predict import load
    from trainlab.prepare import prepare
    from trainlab.report.run_page import Predictions

    if split not in ("train", "val", "test"):
        from trainlab.errors import RecipeError

        raise RecipeError(f"--split must be train, val or test (got {split!r})")
    try:
        model = load(run_dir)
        prepared = prepare(model.run.recipe, model.device, preprocessor=model.preprocessor,
                           check_finite=False)  # fmt: skip
        x, y = prepared.tensors(split)
    except TrainlabError as exc:
        _show_warning(f"no predictions in the report: {exc}", UserWarning, "", 0)
        return None
    if len(x) == 0:
        return None
    with torch.no_grad():
        raw = torch.cat([model.model(x[i : i + 1024]) for i in range(0, len(x), 1024)])
    info = model.info
    pred = predictions(raw.float(), info.target_kind)
    if info.target_kind == "regression":
        pred = unscale(pred, info.target_shift, info.target_scale)
        y = unscale(y, info.target_shift, info.target_scale)
    else:
        pred, y = pred.long(), y.long()
    return Predictions(split, info.target_kind, y.reshape(-1).tolist(),
                       pred.reshape(-1).tolist(), [str(c) for c in info.classes or []])  # fmt: skip


def main() -> None:
    """Entry point: run the app; user mistakes and bugs alike end in one line on stderr.

    Exit status 2 is a user mistake, 3 a diverged run, 4 a bug in trainlab (its
    traceback goes to RUN/error.log), 130 an interrupt (Ctrl-C or SIGTERM: the run is
    marked `interrupted` and resumes). With `--json` the error is also the last line of
    standard output: {"error": message, "kind": recipe|data|run|internal|interrupted}.
    """
    from trainlab import failures
    from trainlab.errors import DivergenceError

    warnings.showwarning = _show_warning
    failures.reset()  # a second command in one process must not report the first one's step
    previous = _terminate_as_interrupt()
    try:
        app()
    except DivergenceError as exc:  # the run's JSON (status diverged) was the last line
        _one_line(" ".join(str(exc).split()))
        sys.exit(failures.EXIT_DIVERGED)
    except TrainlabError as exc:
        _fail(" ".join(str(exc).split()), _kind(exc), 2)
    except KeyboardInterrupt:
        err.print("interrupted; run `trainlab train` on the same run directory to resume")
        _emit_error("interrupted; run the same command again to resume", "interrupted")
        sys.exit(failures.EXIT_INTERRUPTED)
    except Exception as exc:  # a bug: one line for the user, the traceback in a log
        where = failures.current_step(_command_name())
        log = failures.write_error_log(exc, failures.current_run_dir(), where)
        message = f"internal error in {where}: {failures.describe(exc)} (details in {log})"
        _fail(message, "internal", failures.EXIT_INTERNAL_ERROR)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _terminate_as_interrupt():
    """SIGTERM (a scheduler, `kill`) ends a run like Ctrl-C: recorded, resumable."""

    def interrupt(signum, frame) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    try:
        return signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread (an embedding program): leave signals alone
        return None


def _kind(exc: TrainlabError) -> str:
    """'recipe', 'data' or 'run' (the error class's name) for the JSON error line."""
    return type(exc).__name__.removesuffix("Error").lower()


def _fail(message: str, kind: str, code: int) -> None:
    _one_line(message)
    _emit_error(message, kind)
    sys.exit(code)


def _emit_error(message: str, kind: str) -> None:
    """With --json, the error as the last line of standard output too."""
    if "--json" in sys.argv[1:]:
        emit({"error": message, "kind": kind}, True)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings as one `warning:` line, without Python's file and source line."""
    from rich.markup import escape

    text = " ".join(str(message).split())
    err.print(f"[yellow]warning:[/] {escape(text)}", highlight=False, soft_wrap=True)


def _one_line(message: str) -> None:
    from rich.markup import escape

    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)


def _command_name() -> str:
    args = [a for a in sys.argv[1:] if not a.startswith("-")]
    return f"trainlab {args[0]}" if args else "trainlab"


if __name__ == "__main__":
    main()
