"""Studies across machines: `trainlab ablate --store URL` workers share one study's runs.

Workers are separate `trainlab ablate` processes, each in its own working directory (as on
two machines), against the real PostgreSQL server that scripts/ensure_postgres.sh starts;
without it these tests skip (and fail under CI=true). The claims table's own rules
(atomic claims, leases, tokens) are checked on SQLite, which needs no server.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
import yaml

from trainlab.errors import RecipeError, RunError
from trainlab.store.index import RunIndex
from trainlab.studies.ablate import SharedWork, _train_claimed, ablate
from trainlab.studies.claims import DONE, FAILED, PENDING, RUNNING, open_claims, worker_id

from ..test_cli import cli

EPOCHS = 10
TECHNIQUES = ["cosine"]


@pytest.fixture(scope="module")
def recipe_file(tmp_path_factory) -> Path:
    """A digits MLP that trains in about a second per run: 2 variants x 2 seeds."""
    from ..conftest import DIGITS

    path = tmp_path_factory.mktemp("recipe") / "digits.yaml"
    path.write_text(yaml.safe_dump({**DIGITS, "train": {**DIGITS["train"], "epochs": EPOCHS}}))
    return path


@pytest.fixture(scope="module")
def reference(recipe_file, tmp_path_factory) -> dict:
    """The same study with one worker and no database: what every shared study must equal."""
    root = tmp_path_factory.mktemp("one-worker")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRAINLAB_STORE", f"sqlite:///{root / 'index.db'}")
        result = ablate(recipe_file, TECHNIQUES, seeds=2, study="reference", runs_root=root)
    return result.to_dict()


def _jobs(reference: dict) -> list[tuple[str, int]]:
    return sorted((v, s) for v in ("baseline", *TECHNIQUES) for s in reference["seeds"])


def _worker(recipe: Path, cwd: Path, url: str, study: str, *extra: str, runs: Path | None = None):
    """`trainlab ablate … --store URL` as a worker on its own "machine": its own folder."""
    cwd.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in ("TRAINLAB_RUNS", "TRAINLAB_STORE")}
    env["OMP_NUM_THREADS"] = "1"
    if runs is not None:  # a shared filesystem: both machines see the same run folders
        env["TRAINLAB_RUNS"] = str(runs)
    args = ["ablate", str(recipe), "-t", ",".join(TECHNIQUES), "--seeds", "2"]
    args += ["--store", url, "--study", study, "--json", "-q", *extra]
    return subprocess.Popen(
        [sys.executable, "-m", "trainlab.cli", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _result(proc: subprocess.Popen) -> dict:
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr.decode()[-3000:]
    return json.loads(stdout.decode().strip().splitlines()[-1])


def _run_infos(runs: Path, study: str) -> dict[tuple[str, int], dict]:
    """run.json of every run folder of the study under `runs`, by (variant, seed)."""
    found = {}
    for info in sorted((runs / "studies" / study).glob("*/seed-*/run.json")):
        seed = int(info.parent.name.removeprefix("seed-"))
        found[(info.parent.parent.name, seed)] = json.loads(info.read_text())
    return found


def _same_numbers(result: dict, reference: dict) -> None:
    assert result["baseline"]["values"] == reference["baseline"]["values"]
    assert result["baseline"]["test_values"] == reference["baseline"]["test_values"]
    for name, arm in reference["arms"].items():
        assert result["arms"][name]["values"] == arm["values"]
    assert [r["effect"] for r in result["effects"]] == [r["effect"] for r in reference["effects"]]


def test_two_workers_in_separate_folders_train_every_run_exactly_once(
    pg_url, recipe_file, reference, tmp_path
):
    study = f"mm-{uuid.uuid4().hex[:8]}"
    machines = [tmp_path / "machine-a", tmp_path / "machine-b"]
    procs = [_worker(recipe_file, m, pg_url, study) for m in machines]
    results = [_result(p) for p in procs]

    rows = open_claims(pg_url).jobs(study, reference["seeds"])  # one row per run, each done
    assert sorted((r.variant, r.seed) for r in rows) == _jobs(reference)
    assert all(r.status == DONE and r.attempts == 1 for r in rows)
    assert len({r.worker for r in rows}) == 2, "both worker processes took runs"
    # on disk: every run trained to the end once, in the folder of the worker that claimed it
    per_machine = [_run_infos(m / "runs", study) for m in machines]
    assert not set(per_machine[0]) & set(per_machine[1])
    finished = {**per_machine[0], **per_machine[1]}
    assert sorted(finished) == _jobs(reference)
    for info in finished.values():
        assert info["status"] == "completed" and info["epochs_completed"] == EPOCHS
        assert not info.get("resumed_from_epoch")
    indexed = RunIndex(pg_url).list(study=study)  # the runs are indexed in the shared store
    assert len(indexed) == 4 and {r["status"] for r in indexed} == {"completed"}
    for result in results:  # each worker reports the whole study, equal to one worker's
        _same_numbers(result, reference)
        assert result["store"]["url"].startswith("postgresql://trainlab:***@")
        assert sum(result["store"]["runs_by_worker"].values()) == 4
    assert sum(r["store"]["trained_here"] for r in results) == 4


def _kill_mid_run(proc: subprocess.Popen, runs: Path, study: str) -> None:
    """SIGKILL the worker once one of its runs has a checkpoint, before that run ends."""
    deadline = time.time() + 180
    while time.time() < deadline and proc.poll() is None:
        if list((runs / "studies" / study).glob("*/seed-*/checkpoints/latest")):
            break
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]


@pytest.mark.parametrize(
    "shared_folder",
    [True, pytest.param(False, marks=pytest.mark.slow)],
    ids=["shared-filesystem", "separate-folders"],
)
def test_a_killed_workers_run_is_reclaimed_after_its_lease_and_finished_once(
    pg_url, recipe_file, reference, tmp_path, shared_folder
):
    study = f"lease-{uuid.uuid4().hex[:8]}"
    runs_a = tmp_path / "shared-runs"
    lease = ["--heartbeat", "0.5", "--lease", "2"]  # seconds: short, to keep the test short
    a = _worker(recipe_file, tmp_path / "machine-a", pg_url, study, *lease, runs=runs_a)
    _kill_mid_run(a, runs_a, study)
    store = open_claims(pg_url)
    held = [r for r in store.jobs(study, reference["seeds"]) if r.status == RUNNING]
    assert len(held) == 1, "the killed worker holds one run"
    killed = (held[0].variant, held[0].seed)
    assert _run_infos(runs_a, study)[killed]["status"] == "running"  # killed mid-run

    runs_b = runs_a if shared_folder else tmp_path / "machine-b-runs"
    started = time.monotonic()
    result = ablate(  # worker B: this process, joining the study by its name
        recipe_file,
        TECHNIQUES,
        seeds=2,
        study=study,
        store=pg_url,
        heartbeat=0.5,
        lease=2,
        runs_root=runs_b,
    )
    rows = {(r.variant, r.seed): r for r in store.jobs(study, reference["seeds"])}
    assert sorted(rows) == _jobs(reference) and {r.status for r in rows.values()} == {DONE}
    assert rows[killed].attempts == 2 and rows[killed].worker == worker_id()
    assert result.store["reclaimed"] == 1
    assert time.monotonic() - started < 120
    info = _run_infos(runs_b, study)[killed]
    assert info["status"] == "completed" and info["epochs_completed"] == EPOCHS
    if shared_folder:  # the new worker continued the dead one's checkpoint
        assert info["resumed_from_epoch"] >= 1
    else:  # it could not see it: the run started over in its own folder
        assert not info.get("resumed_from_epoch")
        assert _run_infos(runs_a, study)[killed]["status"] == "running"
    _same_numbers(result.to_dict(), reference)


def test_a_worker_with_another_recipe_under_the_same_study_name_is_refused(digits_recipe, tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    digits_recipe["train"]["epochs"] = 1
    first = ablate(digits_recipe, TECHNIQUES, seeds=2, study="s", store=url)
    assert first.store["trained_here"] == 4
    digits_recipe["train"]["lr"] = 0.05
    with pytest.raises(RunError, match="study 's' in sqlite.* was started with a different recipe"):
        ablate(digits_recipe, TECHNIQUES, seeds=2, study="s", store=url, runs_root=tmp_path / "b")
    # the same command on "another machine" only reports: every run is already done there
    digits_recipe["train"]["lr"] = 0.01  # the first worker's recipe again
    again = ablate(
        digits_recipe, TECHNIQUES, seeds=2, study="s", store=url, runs_root=tmp_path / "b"
    )
    assert (again.runs_reused, again.runs_trained, again.store["trained_here"]) == (4, 0, 0)
    assert again.baseline["values"] == first.baseline["values"]
    assert not (tmp_path / "b" / "studies" / "s" / "baseline").exists()


def test_an_unreachable_database_is_one_line_naming_host_and_port(tmp_path, digits_recipe):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump(digits_recipe))
    url = "postgresql://trainlab:hunter2@127.0.0.1:1/trainlab"
    result = cli("ablate", str(recipe), "-t", "cosine", "--seeds", "2", "--store", url)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert "cannot reach the study database at 127.0.0.1:1 " in lines[0]
    assert "trainlab:***@127.0.0.1:1" in lines[0] and "hunter2" not in result.stderr
    assert not list(tmp_path.rglob("run.json"))  # refused before anything was trained
    bad = cli("ablate", str(recipe), "-t", "cosine", "--store", "redis://localhost:6379")
    assert bad.returncode == 2 and "not a database URL" in bad.stderr
    with pytest.raises(RecipeError, match="--heartbeat"):
        ablate(recipe, TECHNIQUES, store=f"sqlite:///{tmp_path}/x.db", lease=5, heartbeat=5)
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump({"train.lr": [0.01]}))
    tune = cli("tune", str(recipe), "--space", str(space), "--store", "redis://localhost")
    assert tune.returncode == 2 and "--store 'redis://localhost': unknown scheme" in tune.stderr


def test_claims_are_atomic_and_a_lost_lease_locks_its_old_holder_out(tmp_path):
    store = open_claims(f"sqlite:///{tmp_path / 'claims.db'}")
    store.register_study("s", "ablate", {"recipe_hash": "x"})
    keys = [(f"v{i}", s) for i in range(10) for s in range(3)]
    store.add_jobs("s", keys)
    store.add_jobs("s", keys)  # a second worker registering the same runs adds none
    taken: list[tuple[str, int]] = []

    def claimer(n: int) -> None:
        while (c := store.claim("s", [0, 1, 2], f"w{n}", 60, 3)) is not None:
            taken.append((c.variant, c.seed))

    threads = [threading.Thread(target=claimer, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(taken) == sorted(keys)  # every run claimed once, none lost

    store.add_jobs("t", [("a", 0)])
    old = store.claim("t", [0], "w-old", 0.2, 2)
    assert store.claim("t", [0], "w-new", 60, 2) is None  # held: nothing to claim
    time.sleep(0.4)  # past the lease
    new = store.claim("t", [0], "w-new", 0.2, 2)
    assert (new.variant, new.attempts) == ("a", 2)
    assert not store.renew(old, 60) and not store.finish(old, {"metrics": {}})  # locked out
    assert store.release(new) and store.counts("t", [0])[PENDING] == 1  # back, uncounted
    again = store.claim("t", [0], "w-new", 0.2, 2)
    assert again.attempts == 2
    time.sleep(0.4)  # its worker died twice: the run is failed, not claimed a third time
    assert store.claim("t", [0], "w-3", 60, 2) is None
    assert store.counts("t", [0])[FAILED] == 1
    store.add_jobs("t", [("a", 0)])  # a study command starting again retries failed runs
    assert store.counts("t", [0])[PENDING] == 1


def test_a_worker_whose_lease_was_taken_over_stops_its_run_and_records_nothing(
    digits_recipe, tmp_path
):
    url = f"sqlite:///{tmp_path / 'claims.db'}"
    store = open_claims(url)
    store.add_jobs("s", [("baseline", 0)])
    digits_recipe["train"]["epochs"] = 20
    stale = store.claim("s", [0], "cut-off", 0.05, 3)
    time.sleep(0.1)
    thief = store.claim("s", [0], "other", 60, 3)  # the lease expired: another worker took it
    assert thief is not None
    from trainlab.studies.ablate import Job

    job = Job("baseline", 0, digits_recipe, tmp_path / "run")
    work = SharedWork(url, "s", [job], heartbeat=0.02, lease=0.05, max_attempts=3, threads=None)
    with pytest.warns(RuntimeWarning, match="lease expired and another worker took the run"):
        assert _train_claimed(store, stale, job, work) is False
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["status"] == "failed" and info.get("epochs_completed", 0) < 20
    row = store.jobs("s", [0])[0]
    assert (row.status, row.worker, row.result) == (RUNNING, "other", None)


@pytest.mark.slow  # spawns a process; the two-machine test above covers claiming by default
def test_local_workers_on_a_store_give_the_one_worker_numbers(recipe_file, reference, tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    result = ablate(recipe_file, TECHNIQUES, seeds=2, study="local", store=url, workers=2)
    rows = open_claims(url).jobs("local", reference["seeds"])
    assert {r.status for r in rows} == {DONE} and all(r.attempts == 1 for r in rows)
    assert sum(result.store["runs_by_worker"].values()) == 4
    _same_numbers(result.to_dict(), reference)
