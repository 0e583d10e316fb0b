"""Search on a real PostgreSQL server: several processes share a study; dead trials retried.

The server is started by scripts/ensure_postgres.sh (Debian's postgresql, a private
cluster on 127.0.0.1). Without it these tests fail under CI=true and skip elsewhere.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from trainlab.studies.tune import tune

from .test_tune_workers import _cli, kill_mid_trial, write_inputs


def _study(url: str, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=url)


def test_two_workers_share_a_postgresql_study_end_to_end(pg_url, digits_recipe, tmp_path):
    digits_recipe["train"]["epochs"] = 3
    name = f"pg-{uuid.uuid4().hex[:8]}"
    space = {
        "train.lr": {"low": 1e-5, "high": 0.05, "log": True},
        "model.hidden": [[8], [32]],
    }
    result = tune(
        digits_recipe,
        space,
        trials=8,
        sampler="tpe",
        sampler_options={"n_startup_trials": 3},
        pruner="median",
        pruner_options={"n_startup_trials": 2, "n_warmup_steps": 0},
        workers=2,
        storage=pg_url,
        study=name,
        out=tmp_path / "s",
        plots=False,
    )
    data = result.summary()
    assert data["storage"].startswith("postgresql://trainlab:***@")
    assert data["worker_exit_codes"] == [0, 0]
    # Two workers may both start a trial when one remains in the budget (Optuna's own
    # MaxTrialsCallback has the same race), so the total is 8 or 9, never fewer.
    finished = data["trials"]["complete"] + data["trials"]["pruned"]
    assert 8 <= finished <= 9
    study = _study(pg_url, name)  # the study lives in the database
    assert len(study.trials) == finished
    pids = {
        study._storage.get_trial_system_attrs(t._trial_id)["trainlab:pid"] for t in study.trials
    }
    assert len(pids) == 2
    assert study.best_value == pytest.approx(data["best_value"])
    assert data["best_run"]["metrics"]["test_accuracy"] > 0.5


@pytest.mark.slow  # the journal variant (tests/studies/test_tune_workers.py) runs by default
def test_killed_worker_trial_is_failed_by_heartbeat_and_retried(pg_url, digits_recipe, tmp_path):
    digits_recipe["train"]["epochs"] = 12
    recipe, space = write_inputs(tmp_path, digits_recipe, {"train.lr": [0.01]})
    name = f"pgkill-{uuid.uuid4().hex[:8]}"
    out = tmp_path / "study"
    args = ["tune", str(recipe), "--space", str(space), "--trials", "1", "--sampler", "grid"]
    args += ["--storage", pg_url, "--study", name, "--heartbeat", "1", "--out", str(out)]
    args += ["--no-final", "--no-plots", "--json", "-q"]
    kill_mid_trial(args, out)
    assert _study(pg_url, name).trials[0].state == TrialState.RUNNING
    time.sleep(2.5)  # past the grace period (2 heartbeats) of the dead trial
    again = _cli(*args)
    stdout, stderr = again.communicate(timeout=300)
    assert again.returncode == 0, stderr.decode()[-2000:]
    summary = json.loads(stdout.decode().strip().splitlines()[-1])
    assert summary["trials"]["fail"] == 1 and summary["trials"]["complete"] == 1
    study = _study(pg_url, name)
    first = study.trials[0]
    assert first.state == TrialState.FAIL
    retry = [t for t in study.trials if t.number != 0]
    attrs = study._storage.get_trial_system_attrs(retry[0]._trial_id)
    assert attrs["failed_trial"] == 0 and retry[0].state == TrialState.COMPLETE
    info = json.loads((Path(out) / "trial-0000" / "run.json").read_text())
    assert info["resumed_from_epoch"] >= 1 and info["epochs_completed"] == 12
