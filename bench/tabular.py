"""Real tables, untouched: the network trainlab trains from a data-only recipe against
gradient boosting and a linear model on the same split.

    python bench/tabular.py [--files a,b] [--seeds N] [--set key=value ...] [--quick]
                            [--corpus DIR] [--runs DIR]

The corpus is bench/data/tabular/ (see its README.md: ten public tables kept byte for byte,
with missing headers, whitespace and semicolon delimiters, quoting, CRLF, '?'/'NA'/empty
missing values, ID and free-text columns). For each file of corpus.json the bench

1. checks its sha256 against SHA256SUMS (a changed file is a failure row, nothing is trained);
2. trains the recipe that names only the data,
   `{"data": {"dataset": {"name": "csv", "path": FILE, "target": COL}}}`, plus the `--set`
   overrides, with `trainlab.train` into a temporary run directory and a temporary index.
   If the recipe schema still requires a model section, `model: mlp` is added and the
   output says so (`model_fallback`);
3. reads the network's test accuracy (classification) or test R² (regression), and the
   baselines on the same split: `run.baselines` / the run's baselines.json when trainlab
   fits them, otherwise this script fits them itself on the run's own prepared split
   (`trainlab.prepare.prepare(run.recipe)`): HistGradientBoosting{Classifier,Regressor}
   (defaults, random_state = train.seed) and LogisticRegression(max_iter=1000) / Ridge(),
   fitted on the training split and scored on the test split (`baselines_source`).

Bars, on the means over seeds:
- the network is within 1.0 accuracy point (classification) or 0.03 R² (regression) of
  gradient boosting;
- the network is never below the linear model;
- the ~20k-row table (every file of at least 10,000 rows) trains in under 60 s. The time is
  the wall time of `trainlab.train`, less the baselines' fit time when trainlab fits them
  inside that call.

A run that fails (DataError, RecipeError, anything) becomes a failure row with a one-line
error. The bench itself does not crash. `--seeds N` trains with train.seed = s..s+N-1, where s
is a `--set train.seed` value or 0. The split (data.split_seed) stays the same, so every
seed is compared on the same test rows. `--quick` runs three small files that cover the
three ways of reading a table (header + ID/text, semicolons, no header + whitespace).
The table goes to stderr. The last line of standard output is one JSON object with every
figure and a summary.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

import trainlab
from trainlab.config.loading import load_recipe, parse_override
from trainlab.errors import RecipeError

CORPUS = Path(__file__).resolve().parent / "data" / "tabular"
QUICK = ("titanic_train.csv", "winequality-red.csv", "auto-mpg.data")
ACCURACY_POINTS = 1.0  # the network may trail gradient boosting by this many accuracy points
R2_MARGIN = 0.03  # … or by this much R²
SPEED_ROWS = 10_000  # files this large carry the speed bar
SPEED_SECONDS = 60.0
BASELINES = ("hist_gradient_boosting", "linear")

console = Console(stderr=True, highlight=False, width=200)


def log(message: str) -> None:
    console.print(message, markup=False)


# ------------------------------------------------------------------------ corpus
def read_corpus(folder: Path) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """corpus.json entries and the expected sha256 of each file (SHA256SUMS)."""
    entries = json.loads((folder / "corpus.json").read_text(encoding="utf-8"))
    sums = {}
    for line in (folder / "SHA256SUMS").read_text(encoding="utf-8").splitlines():
        if line.strip():
            digest, name = line.split(maxsplit=1)
            sums[name.lstrip("*").strip()] = digest
    return entries, sums


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def one_line(exc: BaseException) -> str:
    """`Type: first line of the message`, at most 300 characters."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
    line = f"{type(exc).__name__}: {text}"
    return line if len(line) <= 300 else line[:297] + "..."


# ------------------------------------------------------------------------ recipes
def data_only(path: Path, target: str) -> dict[str, Any]:
    """The recipe that names only the data."""
    return {"data": {"dataset": {"name": "csv", "path": str(path), "target": target}}}


def model_section_required(overrides: list[str]) -> bool:
    """Whether the recipe schema still refuses a recipe without a model section.

    Checked once, against a file that exists, so only the schema's answer matters.
    """
    probe = data_only(CORPUS / "corpus.json", "file")
    try:
        load_recipe(probe, overrides)
    except RecipeError as exc:
        if "model" not in str(exc):
            return False  # some other problem (a bad --set): each run reports it
        try:
            load_recipe({**probe, "model": "mlp"}, overrides)
        except RecipeError:
            return False
        return True
    return False


# ------------------------------------------------------------------------ baselines
def metric_key(regression: bool) -> str:
    return "test_r2" if regression else "test_accuracy"


def run_baselines(run: Any) -> dict[str, Any] | None:
    """The baselines trainlab fitted beside the run (`run.baselines` or baselines.json)."""
    found = getattr(run, "baselines", None)
    if not found:
        path = Path(run.run_dir) / "baselines.json"
        if path.is_file():
            try:
                found = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                found = None
    if isinstance(found, dict) and any(name in found for name in BASELINES):
        return found
    return None


def fit_baselines_here(run: Any, seed: int) -> dict[str, Any]:
    """Gradient boosting and a linear model on the run's own prepared split."""
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.metrics import accuracy_score, r2_score

    from trainlab.prepare import prepare

    prepared = prepare(run.recipe)
    regression = prepared.info.target_kind == "regression"
    train, test = prepared.splits.train, prepared.splits.test
    X = np.asarray(train.X, dtype=np.float64).reshape(len(train.X), -1)
    Xt = np.asarray(test.X, dtype=np.float64).reshape(len(test.X), -1)
    y, yt = np.asarray(train.y), np.asarray(test.y)
    models = {
        "hist_gradient_boosting": (
            HistGradientBoostingRegressor(random_state=seed)
            if regression
            else HistGradientBoostingClassifier(random_state=seed)
        ),
        "linear": Ridge() if regression else LogisticRegression(max_iter=1000),
    }
    out: dict[str, Any] = {}
    for name, model in models.items():
        try:
            start = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # lbfgs convergence chatter
                model.fit(X, y)
            seconds = time.perf_counter() - start
            pred = model.predict(Xt)
            # R² is unchanged by the standardization of prepared regression targets
            score = r2_score(yt, pred) if regression else accuracy_score(yt, pred)
            out[name] = {metric_key(regression): float(score), "fit_seconds": round(seconds, 4)}
        except Exception as exc:  # noqa: BLE001 - a failing baseline is a note, not a crash
            out[name] = {"error": one_line(exc)}
    return out


# ------------------------------------------------------------------------ one file
def train_once(
    recipe: dict[str, Any], overrides: list[str], seed: int, out: Path, store: str
) -> dict[str, Any]:
    """One seed of one file: the network's test metric, the baselines', the time."""
    start = time.perf_counter()
    run = trainlab.train(
        recipe, [*overrides, f"train.seed={seed}"], out=out, store=store, quiet=True
    )
    wall = time.perf_counter() - start
    metrics = run.metrics
    if "test_r2" in metrics:
        regression = True
    elif "test_accuracy" in metrics:
        regression = False
    else:
        raise RuntimeError(
            f"run ended {run.status} ({run.info.get('stop_message') or run.stop_reason}) "
            "without a test accuracy or R²"
        )
    key = metric_key(regression)
    baselines = run_baselines(run)
    source = "run"
    inside = 0.0  # seconds trainlab.train spent fitting baselines
    if baselines is None:
        source = "bench"
        baselines = fit_baselines_here(run, seed)
    else:
        inside = sum(
            float(b.get("fit_seconds") or 0.0) for b in baselines.values() if isinstance(b, dict)
        )
    row: dict[str, Any] = {
        "seed": seed,
        "task": "regression" if regression else "classification",
        "nn": float(metrics[key]),
        "wall_seconds": round(wall, 3),
        "train_seconds": round(wall - inside, 3),
        "fit_seconds": run.info.get("timings", {}).get("fit_seconds"),
        "epochs": run.info.get("epochs_completed"),
        "status": run.status,
        "baselines_source": source,
    }
    for name in BASELINES:
        entry = baselines.get(name) if isinstance(baselines, dict) else None
        if isinstance(entry, dict) and key in entry:
            row[name] = float(entry[key])
            row[f"{name}_fit_seconds"] = entry.get("fit_seconds")
        else:
            row[name] = None
            err = entry.get("error") if isinstance(entry, dict) else "not fitted"
            row[f"{name}_error"] = err or f"no {key}"
    return row


def mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.fmean(present) if len(present) == len(values) and present else None


def judge(result: dict[str, Any]) -> None:
    """Gap to gradient boosting and the three bars, from the means over seeds."""
    regression = result["task"] == "regression"
    nn, hgb, lin = result["nn"], result["hist_gradient_boosting"], result["linear"]
    if hgb is not None:
        gap = nn - hgb
        result["gap_to_hgb"] = round(gap if regression else 100 * gap, 4)
        result["gap_unit"] = "R²" if regression else "accuracy points"
        result["pass_hgb"] = gap >= -R2_MARGIN if regression else 100 * gap >= -ACCURACY_POINTS
    else:
        result["gap_to_hgb"], result["gap_unit"], result["pass_hgb"] = None, None, None
    result["pass_linear"] = None if lin is None else nn >= lin
    if result["rows"] is not None and result["rows"] >= SPEED_ROWS:
        result["pass_speed"] = result["train_seconds"] < SPEED_SECONDS
    else:
        result["pass_speed"] = None  # the bar does not apply


def bench_file(
    entry: dict[str, Any],
    folder: Path,
    sums: dict[str, str],
    overrides: list[str],
    seeds: list[int],
    model_fallback: bool,
    runs: Path,
    store: str,
) -> dict[str, Any]:
    """Every seed of one corpus file, averaged and judged; a failure row on any error."""
    name = entry["file"]
    path = folder / name
    result: dict[str, Any] = {
        "file": name,
        "rows": entry.get("rows"),
        "target": entry["target"],
        "expected_task": entry.get("task"),
        "status": "ok",
    }
    try:
        digest = sha256(path)
    except OSError as exc:
        return {**result, "status": "failed", "error": one_line(exc)}
    if sums.get(name) != digest:
        return {
            **result,
            "status": "failed",
            "error": f"sha256 mismatch: {digest} != {sums.get(name)} (SHA256SUMS)",
        }
    recipe = data_only(path, entry["target"])
    if model_fallback:
        recipe["model"] = "mlp"
    per_seed = []
    for seed in seeds:
        out = runs / f"{Path(name).stem.replace('.', '_')}-seed{seed}"
        try:
            per_seed.append(train_once(recipe, overrides, seed, out, store))
        except Exception as exc:  # noqa: BLE001 - a failed run is a row, never a crash
            return {**result, "status": "failed", "error": one_line(exc), "per_seed": per_seed}
    result["task"] = per_seed[0]["task"]
    result["task_mismatch"] = bool(
        result["expected_task"] and result["expected_task"] != result["task"]
    )
    for key in ("nn", *BASELINES, "wall_seconds", "train_seconds"):
        value = mean([r[key] for r in per_seed])
        result[key] = None if value is None else round(value, 4)
    for name_ in BASELINES:
        errors = [r[f"{name_}_error"] for r in per_seed if f"{name_}_error" in r]
        if errors:
            result[f"{name_}_error"] = errors[0]
    result["baselines_source"] = per_seed[0]["baselines_source"]
    if len(per_seed) > 1:
        result["nn_std"] = round(statistics.stdev(r["nn"] for r in per_seed), 4)
    result["per_seed"] = per_seed
    judge(result)
    return result


# ------------------------------------------------------------------------ report
def fmt(value: float | None, task: str | None, digits: int = 3) -> str:
    if value is None:
        return "-"
    return f"{100 * value:.1f}%" if task == "classification" else f"{value:.{digits}f}"


def mark(flag: bool | None) -> str:
    return "n/a" if flag is None else ("[green]pass[/]" if flag else "[red]FAIL[/]")


def show(results: list[dict[str, Any]], title: str) -> None:
    table = Table(title=title, title_justify="left")
    for col, justify in (
        ("file", "left"),
        ("rows", "right"),
        ("task", "left"),
        ("target", "left"),
        ("network", "right"),
        ("HGB", "right"),
        ("linear", "right"),
        ("gap", "right"),
        ("≈HGB", "center"),
        ("≥linear", "center"),
        ("<60s", "center"),
        ("train s", "right"),
    ):
        table.add_column(col, justify=justify)
    for r in results:
        rows = "-" if r.get("rows") is None else f"{r['rows']:,}"
        if r["status"] != "ok":
            table.add_row(
                r["file"],
                rows,
                f"{r.get('expected_task') or '?'} (expected)",
                r["target"],
                "[red]failed[/]",
                "",
                "",
                "",
                "",
                "",
                "",
                "",
            )
            continue
        task = r["task"] + (f" (expected {r['expected_task']})" if r["task_mismatch"] else "")
        gap = r["gap_to_hgb"]
        gap_text = (
            "-"
            if gap is None
            else (f"{gap:+.1f} pt" if r["task"] == "classification" else f"{gap:+.3f}")
        )
        table.add_row(
            r["file"],
            rows,
            task,
            r["target"],
            fmt(r["nn"], r["task"]) + (f" ±{fmt(r['nn_std'], r['task'])}" if "nn_std" in r else ""),
            fmt(r["hist_gradient_boosting"], r["task"]),
            fmt(r["linear"], r["task"]),
            gap_text,
            mark(r["pass_hgb"]),
            mark(r["pass_linear"]),
            mark(r["pass_speed"]),
            f"{r['train_seconds']:.1f}",
        )
    console.print(table)
    for r in results:
        if r["status"] != "ok":
            log(f"  {r['file']}: {r['error']}")
        for name in BASELINES:
            if r.get(f"{name}_error"):
                log(f"  {r['file']}: baseline {name}: {r[f'{name}_error']}")


def summarize(results: list[dict[str, Any]]) -> dict[str, Any]:
    ok = [r for r in results if r["status"] == "ok"]

    def count(key: str) -> dict[str, int]:
        judged = [r[key] for r in ok if r.get(key) is not None]
        return {"pass": sum(judged), "of": len(judged)}

    return {
        "files": len(results),
        "trained": len(ok),
        "failed": len(results) - len(ok),
        "pass_hgb": count("pass_hgb"),
        "pass_linear": count("pass_linear"),
        "pass_speed": count("pass_speed"),
        "pass_all": sum(
            1
            for r in ok
            if all(r.get(k) is not False for k in ("pass_hgb", "pass_linear", "pass_speed"))
            and r.get("pass_hgb") is not None
        ),
        "task_mismatch": [r["file"] for r in ok if r.get("task_mismatch")],
        "failures": {r["file"]: r["error"] for r in results if r["status"] != "ok"},
    }


# ------------------------------------------------------------------------ main
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--files", help="comma-separated corpus file names (default: all)")
    p.add_argument("--seeds", type=int, default=1, help="seeds to average over (default 1)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="recipe override, e.g. train.epochs=30 (repeatable)",
    )
    p.add_argument("--quick", action="store_true", help=f"smoke run: {', '.join(QUICK)}")
    p.add_argument("--corpus", type=Path, default=CORPUS, help="corpus folder")
    p.add_argument("--runs", type=Path, help="keep the run directories here (default: temp)")
    args = p.parse_args(argv)
    if args.seeds < 1:
        p.error("--seeds must be at least 1")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    entries, sums = read_corpus(args.corpus)
    if args.files:
        wanted = [f.strip() for f in args.files.split(",") if f.strip()]
        unknown = [f for f in wanted if f not in {e["file"] for e in entries}]
        if unknown:
            sys.exit(f"not in {args.corpus}/corpus.json: {', '.join(unknown)}")
        entries = [e for e in entries if e["file"] in wanted]
    elif args.quick:
        entries = [e for e in entries if e["file"] in QUICK]
    base = 0
    for text in args.overrides:
        key, value = parse_override(text)
        if key == "train.seed":
            base = int(value)
    seeds = list(range(base, base + args.seeds))
    fallback = model_section_required(args.overrides)
    if fallback:
        log("the recipe schema still requires a model section: adding `model: mlp`")
    with tempfile.TemporaryDirectory(prefix="trainlab-tabular-") as tmp:
        runs = args.runs or Path(tmp) / "runs"
        runs.mkdir(parents=True, exist_ok=True)
        store = f"sqlite:///{Path(tmp) / 'index.db'}"
        results = []
        for entry in entries:
            log(f"{entry['file']} ...")
            start = time.perf_counter()
            result = bench_file(
                entry, args.corpus, sums, args.overrides, seeds, fallback, runs, store
            )
            took = time.perf_counter() - start
            done = result.get("error") or (
                f"{result['task']} network {fmt(result['nn'], result['task'])} "
                f"HGB {fmt(result['hist_gradient_boosting'], result['task'])} "
                f"linear {fmt(result['linear'], result['task'])}"
            )
            log(f"  {done} ({took:.1f} s)")
            results.append(result)
    title = (
        f"tabular corpus: data-only recipe{' + model: mlp' if fallback else ''}"
        f"{' + ' + ' '.join(args.overrides) if args.overrides else ''}, "
        f"seeds {seeds[0]}..{seeds[-1]}"
    )
    show(results, title)
    summary = summarize(results)
    log(
        f"trained {summary['trained']}/{summary['files']}; within the HGB margin "
        f"{summary['pass_hgb']['pass']}/{summary['pass_hgb']['of']}; not below linear "
        f"{summary['pass_linear']['pass']}/{summary['pass_linear']['of']}; speed "
        f"{summary['pass_speed']['pass']}/{summary['pass_speed']['of']}"
    )
    print(
        json.dumps(
            {
                "bench": "tabular",
                "corpus": str(args.corpus),
                "recipe": "data only"
                + (" + model: mlp (model section still required)" if fallback else ""),
                "model_fallback": fallback,
                "overrides": args.overrides,
                "seeds": seeds,
                "bars": {
                    "hgb_accuracy_points": ACCURACY_POINTS,
                    "hgb_r2": R2_MARGIN,
                    "linear": "network >= linear",
                    "speed_seconds": SPEED_SECONDS,
                    "speed_rows": SPEED_ROWS,
                },
                "files": results,
                "summary": summary,
            }
        )
    )


if __name__ == "__main__":
    main()
