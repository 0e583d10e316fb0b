"""The `trainlab` command line (DESIGN.md's contract).

Every computing command takes `--json` and then prints one JSON object as the last line
of standard output. A user mistake exits non-zero with a one-line message, never a
traceback.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from trainlab.errors import TrainlabError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Train a model from a recipe, diagnose it, and prove which techniques help.",
)
out = Console()
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
        sys.stdout.write(json.dumps(result, default=_jsonable) + "\n")
        sys.stdout.flush()


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


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
    """List the datasets a recipe may name."""
    from trainlab.data.datasets import DATASETS

    _registry_table(
        "datasets",
        DATASETS,
        [
            ("task", lambda e: e.metadata.get("task")),
            ("source", lambda e: e.metadata.get("source")),
        ],
        as_json,
    )


@app.command()
def models(as_json: bool = JsonOpt) -> None:
    """List the architectures a recipe may name."""
    from trainlab.models import MODELS

    _registry_table(
        "models", MODELS, [("parameters", lambda e: ", ".join(e.params.model_fields))], as_json
    )


@app.command()
def techniques(as_json: bool = JsonOpt) -> None:
    """List the techniques a recipe's `techniques:` list may name."""
    from trainlab.techniques import TECHNIQUES

    _registry_table("techniques", TECHNIQUES, [], as_json)


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
    as_json: bool = JsonOpt,
) -> None:
    """Train a recipe; resumes when the run directory holds an unfinished run."""
    from trainlab.runs import raise_if_diverged
    from trainlab.runs import train as train_recipe

    run = train_recipe(recipe, overrides or [], out=out_dir, name=name, quiet=quiet, store=store)
    summary = run.summary()
    if not as_json:
        _print_metrics(f"run {run.run_dir} — {run.status}", run.metrics)
    emit(summary, as_json)
    raise_if_diverged(run)


def _print_metrics(title: str, metrics: dict[str, float]) -> None:
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for k, v in metrics.items():
        table.add_row(k, f"{v:.4f}" if isinstance(v, float) else str(v))
    out.print(table)


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
    inputs: Path = typer.Argument(..., help="Input rows: .npy, .npz or .csv."),
    out_file: Path | None = typer.Option(None, "--out", help="Write predictions to .csv or .npy."),
    as_json: bool = JsonOpt,
) -> None:
    """Predictions of a saved run for new inputs — no training."""
    import numpy as np

    from trainlab.predict import load, read_inputs

    model = load(run_dir)
    preds = model.predict(read_inputs(inputs))
    classes = model.info.classes
    if out_file is not None:
        if out_file.suffix == ".npy":
            np.save(out_file, preds)
        else:
            lines = ["prediction"] + [
                classes[int(p)]
                if classes and model.info.target_kind != "regression"
                else repr(float(p))
                for p in preds
            ]
            out_file.write_text("\n".join(lines) + "\n")
    elif not as_json:
        for p in preds[:20]:
            out.print(
                classes[int(p)] if classes and model.info.target_kind != "regression" else float(p)
            )
        if len(preds) > 20:
            out.print(f"… {len(preds) - 20} more (use --out FILE)")
    emit(
        {
            "run_dir": str(run_dir),
            "count": int(len(preds)),
            "out": str(out_file) if out_file else None,
            "predictions": preds.tolist(),
        },
        as_json,
    )


@app.command()
def runs(
    study: str | None = typer.Option(None, "--study"),
    limit: int = typer.Option(50, "--limit"),
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


def main() -> None:
    """Entry point: run the app, turning user mistakes into one-line errors."""
    from trainlab.errors import DivergenceError

    try:
        app()
    except TrainlabError as exc:
        message = " ".join(str(exc).split())
        err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
        sys.exit(3 if isinstance(exc, DivergenceError) else 2)
    except KeyboardInterrupt:
        err.print("interrupted; run `trainlab train` on the same run directory to resume")
        sys.exit(130)


if __name__ == "__main__":
    main()
