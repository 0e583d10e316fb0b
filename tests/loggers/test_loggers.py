"""train.loggers: what TensorBoard, MLflow and the CSV read back is what the run recorded.

Every destination is read with its own tool's reader (TensorBoard's EventAccumulator,
MlflowClient, csv), and compared with metrics.json, history.jsonl and model.safetensors.
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import trainlab
from trainlab.engine import Technique
from trainlab.loggers import LOGGERS, LogContext, Logger, Logging, build_loggers, flatten_recipe
from trainlab.loggers.csv import CsvLogger
from trainlab.loggers.subscriber import step_interval

from ..conftest import EXAMPLES
from .conftest import csv_rows, mlflow_run, read_json, tensorboard_events, tensorboard_scalars

ALL = ["tensorboard", "mlflow", "csv"]


def _with_loggers(recipe: dict, loggers=ALL) -> dict:
    recipe["train"]["loggers"] = list(loggers)
    return recipe


def _f32(value: float) -> float:
    """What TensorBoard keeps of a number: scalar summaries are float32."""
    return float(np.float32(value))


def _check_tensorboard(run_dir: Path, history: list[dict], metrics: dict) -> None:
    scalars = tensorboard_scalars(run_dir)
    for key, value in metrics.items():
        assert scalars[f"final/{key}"] == [(history[-1]["step"], _f32(value))]
    steps = [row["step"] for row in history]
    for key in ("val_loss", "val_accuracy", "train_loss", "lr", "epoch_seconds", "epoch"):
        assert [s for s, _ in scalars[f"epoch/{key}"]] == steps, key
        assert [v for _, v in scalars[f"epoch/{key}"]] == [_f32(r[key]) for r in history]
    every = step_interval(history[0]["step"])
    sampled = [s for s, _ in scalars["train/loss"]]
    assert sampled == list(range(every, steps[-1] + 1, every))
    assert all(v == pytest.approx(0.01) for _, v in scalars["train/lr"])
    assert all(0 < v < 5 for _, v in scalars["train/loss"])
    from tensorboard.plugins.hparams import plugin_data_pb2

    content = tensorboard_events(run_dir).PluginTagToContent("hparams")
    start = next(
        plugin_data_pb2.HParamsPluginData.FromString(c).session_start_info
        for tag, c in content.items()
        if tag.endswith("session_start_info")
    )
    assert start.hparams["train.lr"].number_value == pytest.approx(0.01)
    assert start.hparams["model.name"].string_value == "mlp"
    assert start.hparams["model.hidden"].string_value == "[32]"


def _check_mlflow(run_dir: Path, history: list[dict], metrics: dict, tmp_path: Path) -> None:
    client, run = mlflow_run(run_dir)
    assert run.info.status == "FINISHED"
    assert run.info.run_name == run_dir.name
    assert {k: run.data.metrics[f"final/{k}"] for k in metrics} == metrics  # exact: float64
    assert run.data.params["train.lr"] == "0.01"
    assert run.data.params["model.hidden"] == "[32]"
    assert run.data.tags["trainlab.stop_reason"] == "completed"
    val = client.get_metric_history(run.info.run_id, "epoch/val_loss")
    assert sorted((m.step, m.value) for m in val) == [(r["step"], r["val_loss"]) for r in history]
    files = {f.path for f in client.list_artifacts(run.info.run_id, "model")}
    assert files == {"model/model.safetensors", "model/recipe.yaml"}
    local = Path(client.download_artifacts(run.info.run_id, "model", str(tmp_path)))
    saved, logged = load_file(run_dir / "model.safetensors"), load_file(local / "model.safetensors")
    assert saved.keys() == logged.keys() and all(torch.equal(saved[k], logged[k]) for k in saved)
    assert (local / "recipe.yaml").read_text() == (run_dir / "recipe.yaml").read_text()


def test_every_logger_reads_back_the_runs_metrics_history_and_model(
    digits_recipe, tmp_path, cache_home
):
    # the MLflow store is the run's own (no MLFLOW_TRACKING_URI): <run_dir>/mlflow/mlflow.db
    run = trainlab.train(_with_loggers(digits_recipe), out=tmp_path / "run")
    metrics = read_json(run.run_dir / "metrics.json")
    assert set(metrics) == {"val_loss", "val_accuracy", "test_loss", "test_accuracy"}
    assert len(run.history) == 3
    _check_tensorboard(run.run_dir, run.history, metrics)
    _check_mlflow(run.run_dir, run.history, metrics, tmp_path / "download")
    assert (run.run_dir / "mlflow" / "mlflow.db").is_file()
    assert len(list((cache_home / "trainlab").glob("mlflow-*-empty.db"))) == 1  # copied from
    rows = csv_rows(run.run_dir)
    assert rows == [{k: float(v) for k, v in r.items()} for r in run.history]


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(run_dir / "model.safetensors")


def _untimed(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "epoch_seconds"} for r in history]


def test_loggers_do_not_change_training(digits_recipe, tmp_path, shared_store):
    digits_recipe["techniques"] = [{"name": "mixup", "alpha": 0.2}]  # draws random numbers
    plain = trainlab.train(digits_recipe, out=tmp_path / "plain")
    logged = trainlab.train(_with_loggers(digits_recipe), out=tmp_path / "logged")
    assert logged.metrics == plain.metrics
    assert _untimed(logged.history) == _untimed(plain.history)
    a, b = _weights(plain.run_dir), _weights(logged.run_dir)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


class CrashAfterLogging(Technique):
    """A crash after the loggers wrote an epoch but before its checkpoint was saved."""

    order = 950  # between Slot.PROGRESS (the loggers) and Slot.CHECKPOINT

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_epoch_end(self, state):
        if state.epoch == self.epoch:
            raise KeyboardInterrupt


@pytest.mark.parametrize("sent", ["everything", "epoch 1 only"])
def test_a_resumed_run_logs_every_epoch_once(
    sent, digits_recipe, tmp_path, shared_store, monkeypatch
):
    # everything: MLflow got epochs 1-3 before the crash and must not get 3 again;
    # epoch 1 only: a kill cut the sender short, epoch 2 is re-sent from the history
    from trainlab.loggers.mlflow import MlflowLogger

    send, dropping = MlflowLogger._send, [sent != "everything"]

    def flaky_send(self, metrics, tags):
        if not (dropping[0] and any(m.key == "epoch/epoch" and m.value > 1 for m in metrics)):
            send(self, metrics, tags)

    monkeypatch.setattr(MlflowLogger, "_send", flaky_send)
    monkeypatch.setattr("trainlab.loggers.mlflow.SEND_SECONDS", 0.0)  # a send every epoch
    digits_recipe["train"]["epochs"] = 4
    out = tmp_path / "run"
    crash = [CrashAfterLogging(3)]
    with pytest.raises(KeyboardInterrupt):  # epoch 3 logged everywhere, its checkpoint not saved
        trainlab.train(_with_loggers(digits_recipe), out=out, extra_techniques=crash)
    first_id = read_json(out / "mlflow" / "run.json")["run_id"]
    assert len(csv_rows(out)) == 3
    dropping[0] = False
    run = trainlab.train(_with_loggers(digits_recipe), out=out)  # resumes from epoch 2
    assert run.info["resumed_from_epoch"] == 2
    steps = [r["step"] for r in run.history]
    assert len(steps) == 4
    scalars = tensorboard_scalars(out)  # epoch 3 twice on disk; purge_step hides the first
    assert [s for s, _ in scalars["epoch/val_loss"]] == steps
    every = step_interval(steps[0])
    assert [s for s, _ in scalars["train/loss"]] == list(range(every, steps[-1] + 1, every))
    client, mlrun = mlflow_run(out)
    assert mlrun.info.run_id == first_id and mlrun.info.status == "FINISHED"
    val = client.get_metric_history(first_id, "epoch/val_loss")
    expected = [(r["step"], r["val_loss"]) for r in run.history]
    assert sorted((m.step, m.value) for m in val) == expected
    loss_steps = sorted(m.step for m in client.get_metric_history(first_id, "train/loss"))
    if sent == "everything":  # every sampled step is there, once
        assert loss_steps == list(range(every, steps[-1] + 1, every))
    else:  # epoch 2's sampled steps are gone; those of epoch 1 and after the resume are not
        lost = range(steps[0] + 1, steps[1] + 1)
        assert loss_steps == [s for s in range(every, steps[-1] + 1, every) if s not in lost]
    assert len(client.search_runs([mlrun.info.experiment_id])) == 1
    metrics = read_json(out / "metrics.json")
    assert {k: mlrun.data.metrics[f"final/{k}"] for k in metrics} == metrics
    assert [r["epoch"] for r in csv_rows(out)] == [1, 2, 3, 4]


def test_a_diverged_run_is_a_failed_mlflow_run_with_the_weights_it_kept(tmp_path, shared_store):
    recipe = trainlab.load_recipe(EXAMPLES / "broken" / "exploding_lr10.yaml")
    recipe = recipe.to_dict() | {"train": {**recipe.to_dict()["train"], "loggers": ALL}}
    run = trainlab.train(recipe, out=tmp_path / "run")
    assert run.status == "diverged"
    client, mlrun = mlflow_run(run.run_dir)
    assert mlrun.info.status == "FAILED"
    assert mlrun.data.tags["trainlab.stop_reason"] == "non_finite_loss"
    assert run.history == []  # the loss blew up within the first epoch: no weights kept
    files = {f.path for f in client.list_artifacts(mlrun.info.run_id, "model")}
    assert files == {"model/recipe.yaml"} and not (run.run_dir / "model.safetensors").exists()
    assert read_json(run.run_dir / "metrics.json") == {}
    assert not any(k.startswith("final/") for k in mlrun.data.metrics)
    assert not (run.run_dir / "log.csv").exists()
    assert tensorboard_events(run.run_dir).PluginTagToContent("hparams")  # finished there too


@pytest.mark.parametrize(
    "logger, modules, package",
    [
        ("mlflow", ["mlflow", "mlflow.tracking"], "mlflow-skinny"),
        ("tensorboard", ["tensorboard", "torch.utils.tensorboard"], "tensorboard"),
    ],
)
def test_a_missing_package_is_a_recipe_error_before_training(
    logger, modules, package, digits_recipe, tmp_path, monkeypatch
):
    for module in modules:  # None in sys.modules: importing it raises ImportError
        monkeypatch.setitem(sys.modules, module, None)
    out = tmp_path / "run"
    with pytest.raises(trainlab.RecipeError) as info:
        trainlab.train(_with_loggers(digits_recipe, [logger, "csv"]), out=out)
    message = str(info.value)
    assert f"{logger} needs {package}" in message
    assert "pip install 'trainlab[loggers]'" in message
    assert not (out / "history.jsonl").exists() and not (out / "checkpoints").exists()


def test_an_unusable_tracking_store_is_refused_before_training(
    digits_recipe, tmp_path, monkeypatch
):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"file:{tmp_path / 'mlruns'}")  # MLflow 3 refuses
    out = tmp_path / "run"
    with pytest.raises(trainlab.RunError, match="MLFLOW_TRACKING_URI"):
        trainlab.train(_with_loggers(digits_recipe, ["mlflow"]), out=out)
    assert not (out / "history.jsonl").exists()


class Broken(Logger):
    """A destination that fails on its first write."""

    name = "broken"

    def write(self, rows, points):
        raise OSError("No space left on device")


def test_a_failing_logger_is_dropped_with_a_warning_and_the_run_goes_on(digits_recipe, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    context = LogContext(out, trainlab.load_recipe(digits_recipe), {})
    loggers = Logging([Broken(context), CsvLogger(context)])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = trainlab.train(digits_recipe, out=out, extra_techniques=[loggers])
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert sum("broken failed at write (OSError" in m for m in messages) == 1
    assert run.status == "completed"
    assert [r["epoch"] for r in csv_rows(out)] == [1, 2, 3]  # the other logger kept going


def test_the_recipe_becomes_dotted_hyper_parameters(digits_recipe):
    digits_recipe["techniques"] = [{"name": "mixup", "alpha": 0.3}, {"name": "ema"}]
    flat = flatten_recipe(trainlab.load_recipe(digits_recipe))
    assert flat["train.lr"] == 0.01 and flat["model.name"] == "mlp"
    assert flat["model.hidden"] == "[32]"
    assert flat["techniques"] == "mixup,ema" and flat["techniques.mixup.alpha"] == 0.3
    assert flat["data.dataset.name"] == "digits"
    assert all(isinstance(v, str | int | float | bool) for v in flat.values())
    assert flat["train.optimizer.name"] == "adam"  # nested specs flattened, never dicts


def test_no_loggers_without_a_recipe_entry_or_a_run_directory(digits_recipe, tmp_path):
    recipe = trainlab.load_recipe(digits_recipe)
    assert build_loggers(recipe, tmp_path) == []
    assert build_loggers(trainlab.load_recipe(_with_loggers(digits_recipe)), None) == []
    assert LOGGERS.names() == sorted(ALL)


def test_steps_are_sampled_about_ten_times_an_epoch_and_at_least_every_50():
    assert [step_interval(n) for n in (1, 15, 41, 225, 500, 10_000)] == [1, 1, 4, 22, 50, 50]


def test_mlflow_telemetry_is_off_unless_the_user_chose(monkeypatch):
    from trainlab.loggers.mlflow import MlflowLogger

    monkeypatch.delenv("MLFLOW_DISABLE_TELEMETRY", raising=False)
    MlflowLogger.before_import()
    assert os.environ["MLFLOW_DISABLE_TELEMETRY"] == "true"  # nothing leaves the machine
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "false")
    MlflowLogger.before_import()
    assert os.environ["MLFLOW_DISABLE_TELEMETRY"] == "false"
