"""Real runs and studies for the report tests, made once per session on small real data.

Every kind of folder `trainlab report` reads: a digits run with both monitors and an LR
range test, a diabetes regression run, an ablation, a two-objective search with pruning, a
compressed run and a doctor folder with --apply. Each trains a few epochs on scikit-learn's
digits, diabetes or breast-cancer data (about 20 s in all on one core).
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from tests.conftest import BREAST_CANCER, DIGITS, EXAMPLES

MONITORED = {
    **copy.deepcopy(DIGITS),
    "name": "digits_monitored",
    "techniques": [
        {"name": "gradient_monitor", "every": 10},
        {"name": "activation_stats", "every": 10},
    ],
}
DIABETES = {
    "name": "diabetes",
    "data": {"dataset": "diabetes", "preprocessing": {"scale": "standard"}},
    "model": {"name": "mlp", "hidden": [16]},
    "train": {"epochs": 3, "batch_size": 32, "lr": 0.01},
}
SPACE = {
    "train.lr": {"low": 1e-3, "high": 3e-2, "log": True},
    "model.hidden": {"choices": [[4], [32]]},
}


def _train(recipe: dict, out: Path, *overrides: str) -> Path:
    import trainlab

    return trainlab.train(copy.deepcopy(recipe), list(overrides), out=out, quiet=True).run_dir


def _study_folders(root: Path) -> dict[str, Path]:
    from trainlab.compress.api import compress
    from trainlab.compress.methods import MethodOptions
    from trainlab.studies.ablate import ablate
    from trainlab.studies.doctor import doctor
    from trainlab.studies.lr_finder import lr_find
    from trainlab.studies.tune import tune

    run = _train(MONITORED, root / "digits")
    lr_find(copy.deepcopy(MONITORED), [], seeds=2, steps=30, out=run / "lr_find")
    found = {"run": run, "regression": _train(DIABETES, root / "diabetes")}
    found["ablation"] = ablate(
        copy.deepcopy(BREAST_CANCER),
        ["label_smoothing"],
        seeds=2,
        study="abl",
        runs_root=root,
        overrides=["train.epochs=2"],
    ).study_dir
    found["tune"] = tune(
        copy.deepcopy(DIGITS),
        SPACE,
        trials=4,
        sampler="random",
        pruner="median",
        objective=["val_accuracy", "params"],
        out=root / "tune",
        study="tune",
        final=False,
        plots=False,
    ).out
    compress(
        run,
        ["neurons:0.5"],
        finetune=1,
        vs_scratch=2,
        out=root / "compressed",
        options=MethodOptions(),
    )
    found["compress"] = root / "compressed"
    doctor(
        EXAMPLES / "broken" / "underfitting_one_unit.yaml",
        {"train.epochs": 6},
        out=root / "doctor",
        apply=True,
        seeds=2,
        max_apply=1,
        lr_find=False,
    )
    found["doctor"] = root / "doctor"
    return found


@pytest.fixture(scope="session")
def folders(tmp_path_factory) -> dict[str, Path]:
    """kind → folder: run, regression, ablation, tune, compress, doctor."""
    root = tmp_path_factory.mktemp("report-runs")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRAINLAB_RUNS", str(root))
        mp.setenv("TRAINLAB_STORE", f"sqlite:///{root / 'index.db'}")
        yield _study_folders(root)


@pytest.fixture(scope="session")
def pages(folders, tmp_path_factory) -> dict[str, object]:
    """name → the written Report of every folder (run pages with their predictions), and
    a comparison of two runs."""
    from trainlab.cli import _report_predictions
    from trainlab.report.html import compare_report, report

    out = tmp_path_factory.mktemp("report-pages")
    written = {}
    for name, folder in folders.items():
        preds = (
            _report_predictions(folder, "test")
            if name in ("run", "regression", "compress")
            else None
        )
        written[name] = report(folder, out / f"{name}.html", predictions=preds)
    written["compare"] = compare_report([folders["run"], folders["compress"]], out / "compare.html")
    return written
