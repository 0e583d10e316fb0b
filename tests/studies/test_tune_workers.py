"""Parallel workers on one journal file, killed workers, resumed studies, the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from trainlab.studies.tune import tune

from ..conftest import ROOT, cli_process

GRID = {
    "train.lr": [0.003, 0.01, 0.03],
    "model.hidden": [[8], [16]],
}


def _journal_study(folder: Path, name: str) -> optuna.Study:
    backend = optuna.storages.journal.JournalFileBackend(str(folder / "study.journal"))
    return optuna.load_study(study_name=name, storage=optuna.storages.JournalStorage(backend))


def test_two_workers_on_one_journal_never_run_a_grid_point_twice(digits_recipe, tmp_path):
    digits_recipe["train"]["epochs"] = 2
    result = tune(
        digits_recipe,
        GRID,
        trials=20,  # more than the grid: the grid's end stops both workers
        sampler="grid",
        workers=2,
        out=tmp_path / "s",
        final=False,
        plots=False,
    )
    data = result.summary()
    assert data["worker_exit_codes"] == [0, 0]
    study = _journal_study(tmp_path / "s", data["study"])
    trials = study.trials
    points = [(t.params["train.lr"], t.params["model.hidden"]) for t in trials]
    assert len(points) == len(set(points)) == 6  # every point once, none lost
    assert all(t.state == TrialState.COMPLETE for t in trials)
    pids = {study._storage.get_trial_system_attrs(t._trial_id)["trainlab:pid"] for t in trials}
    assert len(pids) == 2 and os.getpid() not in pids  # really two worker processes
    for t in trials:  # every trial's run is on disk and finished
        info = json.loads((Path(t.user_attrs["run_dir"]) / "run.json").read_text())
        assert info["status"] == "completed"


def _cli(*args: str) -> subprocess.Popen:
    return cli_process(*args, cwd=ROOT)


def kill_mid_trial(args: list[str], out: Path, sig: int = signal.SIGKILL) -> None:
    """Start `trainlab tune`, signal it once trial 0 has a checkpoint, before it ends."""
    proc = _cli(*args)
    latest = out / "trial-0000" / "checkpoints" / "latest"
    deadline = time.time() + 120
    while time.time() < deadline and not latest.is_file():
        time.sleep(0.005)
    os.kill(proc.pid, sig)
    proc.wait(timeout=60)
    assert latest.is_file(), proc.stderr.read().decode()[-2000:]


def write_inputs(tmp_path: Path, recipe: dict, space: dict) -> tuple[Path, Path]:
    """The recipe and space as YAML files, as a user would pass them."""
    r, s = tmp_path / "recipe.yaml", tmp_path / "space.yaml"
    r.write_text(yaml.safe_dump(recipe))
    s.write_text(yaml.safe_dump(space))
    return r, s


@pytest.mark.parametrize(
    "sig", [signal.SIGKILL, pytest.param(signal.SIGINT, marks=pytest.mark.slow, id="SIGINT")]
)
def test_killed_worker_trial_is_failed_and_retried_from_its_checkpoint(
    sig, digits_recipe, tmp_path
):
    digits_recipe["train"]["epochs"] = 12  # long enough to be killed mid-trial
    recipe, space = write_inputs(tmp_path, digits_recipe, {"train.lr": [0.01]})
    out = tmp_path / "study"
    args = ["tune", str(recipe), "--space", str(space), "--trials", "1", "--sampler", "grid"]
    args += ["--out", str(out), "--study", "kill", "--no-final", "--no-plots", "--json", "-q"]
    kill_mid_trial(args, out, sig)
    latest = (out / "trial-0000" / "checkpoints" / "latest").read_text().strip()
    killed_at = int(latest.removeprefix("epoch-"))
    left = _journal_study(out, "kill").trials[0].state
    # SIGKILL leaves the trial RUNNING (the sweep finds it); Ctrl-C fails and re-queues it
    assert left == (TrialState.RUNNING if sig == signal.SIGKILL else TrialState.FAIL)

    again = _cli(*args)
    stdout, stderr = again.communicate(timeout=300)
    assert again.returncode == 0, stderr.decode()[-2000:]
    summary = json.loads(stdout.decode().strip().splitlines()[-1])
    assert summary["trials"]["complete"] == 1 and summary["trials"]["fail"] == 1
    assert summary["trials"]["running"] == 0
    study = _journal_study(out, "kill")
    first = study.trials[0]
    attrs = study._storage.get_trial_system_attrs
    assert first.state == TrialState.FAIL
    if sig == signal.SIGKILL:
        assert attrs(first._trial_id)["trainlab:fail_reason"] == "stale"
    retries = [t for t in study.trials if attrs(t._trial_id).get("failed_trial") == 0]
    assert len(retries) == 1 and retries[0].state == TrialState.COMPLETE
    assert retries[0].params == first.params
    # the retry continued the killed run from its last checkpoint: no finished epoch lost
    info = json.loads((out / "trial-0000" / "run.json").read_text())
    assert info["resumed_from_epoch"] == killed_at >= 1
    assert info["status"] == "completed" and info["epochs_completed"] == 12


def test_rerunning_the_same_command_continues_the_study(digits_recipe, tmp_path):
    digits_recipe["train"]["epochs"] = 2
    space = {"train.lr": {"low": 0.001, "high": 0.05, "log": True}}
    common = dict(sampler="random", out=tmp_path / "s", study="cont", final=False, plots=False)
    first = tune(digits_recipe, space, trials=3, **common).summary()
    assert first["trials"]["complete"] == 3
    again = tune(digits_recipe, space, trials=3, **common).summary()
    assert again["trials"]["complete"] == 3 and again["epochs_total"] == 6  # nothing re-run
    more = tune(digits_recipe, space, trials=5, **common).summary()
    assert more["trials"]["complete"] == 5
    lrs = [t.params["train.lr"] for t in _journal_study(tmp_path / "s", "cont").trials]
    assert len(set(lrs)) == 5  # the resumed sampler did not replay the first draws


def test_a_changed_space_cannot_continue_a_study(digits_recipe, tmp_path):
    import trainlab

    digits_recipe["train"]["epochs"] = 1
    common = dict(sampler="grid", out=tmp_path / "s", study="x", final=False, plots=False)
    tune(digits_recipe, {"train.lr": [0.01]}, trials=1, **common)
    with pytest.raises(trainlab.RecipeError, match="different space.*--study NEW_NAME"):
        tune(digits_recipe, {"train.lr": [0.02]}, trials=1, **common)


def test_cli_tune_json_and_one_line_errors(digits_recipe, tmp_path):
    digits_recipe["train"]["epochs"] = 2
    recipe, space = write_inputs(tmp_path, digits_recipe, {"train.lr": [0.003, 0.03]})
    out = tmp_path / "cli"
    proc = _cli(
        "tune", str(recipe), "--space", str(space), "--trials", "2", "--sampler", "grid",
        "--out", str(out), "--json",
    )  # fmt: skip
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr.decode()[-2000:]
    result = json.loads(stdout.decode().strip().splitlines()[-1])
    assert result["trials"]["complete"] == 2
    assert set(result["best_params"]) == {"train.lr"}
    assert Path(result["best_recipe"]).is_file()
    assert result["best_run"]["metrics"]["test_accuracy"] > 0.5
    for name in ("history", "importances", "parallel_coordinates"):
        assert result["plots"][name].endswith(".png") or result["plots"][name].startswith("skip")
    assert Path(result["plots"]["history"]).stat().st_size > 1000
    # the best recipe trains as it is
    best = yaml.safe_load(Path(result["best_recipe"]).read_text())
    assert best["train"]["lr"] == result["best_params"]["train.lr"]

    space.write_text("train.lrr: {low: 0.001, high: 0.1}\n")
    bad = _cli("tune", str(recipe), "--space", str(space), "--out", str(tmp_path / "bad"))
    _, err = bad.communicate(timeout=120)
    message = err.decode().strip()
    assert bad.returncode == 2
    assert len(message.splitlines()) == 1 and "did you mean 'lr'" in message


def test_storage_urls_resolve_to_journal_or_database(tmp_path):
    from trainlab.errors import RunError
    from trainlab.studies.storage import mask_password, resolve_storage

    assert resolve_storage(None, tmp_path).location == str(tmp_path / "study.journal")
    spec = resolve_storage(f"journal:{tmp_path}/x.log", tmp_path)
    assert (spec.kind, spec.location) == ("journal", str((tmp_path / "x.log").resolve()))
    db = resolve_storage("postgresql+psycopg://u:secret@db:5432/t", tmp_path, heartbeat=3)
    assert (db.kind, db.grace) == ("rdb", 6)
    assert db.describe() == "postgresql+psycopg://u:***@db:5432/t"
    assert mask_password("sqlite:///a.db") == "sqlite:///a.db"
    with pytest.raises(RunError, match="unknown scheme"):
        resolve_storage("redis://localhost", tmp_path)
    with pytest.raises(RunError, match="--heartbeat"):
        resolve_storage(None, tmp_path, heartbeat=0)


def test_an_unreachable_database_is_a_one_line_error_with_the_password_masked(
    digits_recipe, tmp_path
):
    from trainlab.errors import RunError

    with pytest.raises(RunError, match=r"cannot open study storage 'postgresql://u:\*\*\*@") as e:
        tune(
            digits_recipe,
            {"train.lr": [0.01]},
            trials=1,
            storage="postgresql://u:hunter2@127.0.0.1:1/db",
            out=tmp_path / "s",
        )
    assert "hunter2" not in str(e.value)
