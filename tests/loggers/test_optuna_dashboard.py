"""optuna-dashboard on a trainlab tune study: the storage opens with Optuna's own API, the
way the dashboard opens it (docs/loggers.md), and holds the trials trainlab ran.

optuna-dashboard itself is not a dependency: `optuna-dashboard PATH` opens a journal file
as `JournalStorage(JournalFileBackend(PATH))` and a URL as `RDBStorage(URL,
skip_compatibility_check=True, skip_table_creation=True)` (its `_storage_url.py`); these
tests open the storages exactly so.
"""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from optuna.storages import JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from trainlab.studies.storage import open_storage, resolve_storage
from trainlab.studies.tune import tune

SPACE = {"train.lr": [0.003, 0.03]}


def _tiny_study(recipe: dict, out: Path, **options) -> dict:
    recipe["train"]["epochs"] = 2
    # a pruner that never prunes two trials: trials report each epoch's objective
    result = tune(recipe, SPACE, trials=2, sampler="grid", pruner="median",
                  pruner_options={"n_startup_trials": 10}, out=out, final=False, plots=False,
                  **options)  # fmt: skip
    return result.summary()


def _check_trials(storage: optuna.storages.BaseStorage, data: dict) -> None:
    assert data["study"] in optuna.get_all_study_names(storage)
    study = optuna.load_study(study_name=data["study"], storage=storage)
    trials = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(trials) == 2
    assert sorted(t.params["train.lr"] for t in trials) == [0.003, 0.03]
    assert study.best_value == data["best_value"] and 0.3 < study.best_value <= 1.0
    for t in trials:  # the dashboard's intermediate-values chart: the objective per epoch
        assert sorted(t.intermediate_values) == [1, 2]
        assert t.intermediate_values[2] == t.value
        assert Path(t.user_attrs["run_dir"]).is_dir()  # each trial is a trainlab run
    assert study.user_attrs["trainlab:space_keys"] == ["train.lr"]


def test_a_tune_journal_opens_as_optuna_dashboard_opens_it(digits_recipe, tmp_path):
    data = _tiny_study(digits_recipe, tmp_path / "study")
    journal = tmp_path / "study" / "study.journal"  # `optuna-dashboard <this path>`
    assert journal.is_file()
    _check_trials(JournalStorage(JournalFileBackend(str(journal))), data)
    # the same study through trainlab's own storage (its flock-based lock), as the
    # docs' run_server snippet opens it for a dashboard that also writes
    _check_trials(open_storage(resolve_storage(str(journal), tmp_path)), data)


@pytest.mark.slow
def test_a_tune_study_in_postgresql_opens_as_optuna_dashboard_opens_it(
    pg_url,
    digits_recipe,
    tmp_path,
):
    import uuid

    data = _tiny_study(digits_recipe, tmp_path / "study", storage=pg_url,
                       study=f"dash-{uuid.uuid4().hex[:8]}")  # fmt: skip
    storage = RDBStorage(pg_url, skip_compatibility_check=True, skip_table_creation=True)
    _check_trials(storage, data)
