"""`model.init_from` in real runs: a trained MNIST CNN as the source of a new run, the
CLI's --json, freezing the backbone, and a killed run resuming bit for bit."""

from __future__ import annotations

import copy
import json
import shutil

import pytest
import torch
import yaml
from safetensors.torch import load_file

import trainlab
from trainlab.assembly import assemble
from trainlab.config.loading import load_recipe
from trainlab.engine import Technique
from trainlab.prepare import prepare

from ..conftest import DIGITS, EXAMPLES, cli_process
from .helpers import Probe, snapshot

#: The seed MNIST CNN, narrowed so one epoch takes a second or two.
SMALL_CNN = ["train.epochs=1", "model.channels=[8,16]", "model.dense=[32]", "train.batch_size=128"]
HEAD = ["10.weight", "10.bias"]


@pytest.fixture(scope="module")
def cnn_run(tmp_path_factory):
    """A finished one-epoch run of examples/mnist_cnn_bn.yaml (trained once)."""
    root = tmp_path_factory.mktemp("source")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRAINLAB_RUNS", str(root))
        mp.setenv("TRAINLAB_STORE", f"sqlite:///{root / 'index.db'}")
        run = trainlab.train(EXAMPLES / "mnist_cnn_bn.yaml", SMALL_CNN, out=root / "cnn")
    assert run.status == "completed"
    return run.run_dir


def _cnn_recipe(source, *more: str):
    return load_recipe(
        EXAMPLES / "mnist_cnn_bn.yaml",
        [*SMALL_CNN, f"model.init_from={{run: '{source}'}}", "train.seed=1", *more],
    )


def test_a_new_run_starts_from_the_source_backbone_with_a_fresh_head(cnn_run):
    saved = load_file(cnn_run / "model.safetensors")
    fit = assemble(prepare(_cnn_recipe(cnn_run)))
    report, weights = fit.init_report, fit.model.state_dict()
    assert report["source"] == str(cnn_run) and report["source_architecture"] == "cnn"
    assert report["new"] == HEAD and [s["name"] for s in report["skipped"]] == HEAD
    assert report["loaded"] == [k for k in weights if k not in HEAD]
    assert report["counts"] == {"loaded": len(saved) - 2, "skipped": 2, "new": 2}
    for name in report["loaded"]:
        assert torch.equal(weights[name], saved[name]), name
    for name in HEAD:
        assert not torch.equal(weights[name], saved[name]), name
    plain = assemble(prepare(load_recipe(EXAMPLES / "mnist_cnn_bn.yaml", SMALL_CNN)))
    assert plain.init_report is None


def test_freeze_backbone_trains_only_the_head_for_the_frozen_epochs(cnn_run, tmp_path):
    frozen = ["train.epochs=2", "techniques=[{name: freeze, layers: [backbone], epochs: 1}]"]
    snaps = []
    probes = [Probe("fit_start", lambda s: snaps.append(snapshot(s.model))),
              Probe("epoch_end", lambda s: snaps.append(snapshot(s.model)))]  # fmt: skip
    run = trainlab.train(_cnn_recipe(cnn_run, *frozen), out=tmp_path / "r", extra_techniques=probes)
    start, epoch1, epoch2 = snaps
    backbone = [k for k in start if k not in HEAD]
    assert all(torch.equal(start[k], epoch1[k]) for k in backbone)  # frozen for epoch 1
    assert all(not torch.equal(start[k], epoch1[k]) for k in HEAD)  # while the head trains
    assert any(not torch.equal(epoch1[k], epoch2[k]) for k in backbone)  # then released
    loaded = run.info["init_from"]["counts"]["loaded"]  # parameters and batch-norm buffers
    assert loaded == len(load_file(cnn_run / "model.safetensors")) - len(HEAD)


def test_cli_json_reports_what_was_loaded(cnn_run, tmp_path):
    recipe = yaml.safe_load((EXAMPLES / "mnist_cnn_bn.yaml").read_text())
    recipe["model"]["init_from"] = {"run": str(cnn_run), "exclude": ["0.*"]}
    path = tmp_path / "transfer.yaml"
    path.write_text(yaml.safe_dump(recipe))
    sets = [a for o in SMALL_CNN for a in ("--set", o)] + ["--set", "techniques=[]"]
    proc = cli_process("train", str(path), "--out", str(tmp_path / "t"), *sets, "--quiet", "--json")
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr.decode()
    summary = json.loads(stdout.decode().strip().splitlines()[-1])
    total = len(load_file(cnn_run / "model.safetensors"))
    assert summary["init_from"]["counts"] == {"loaded": total - 3, "skipped": 3, "new": 3}
    assert summary["init_from"]["new"] == ["0.weight", *HEAD]
    recorded = json.loads((tmp_path / "t" / "run.json").read_text())["init_from"]
    assert recorded == summary["init_from"]


class CrashAt(Technique):
    """Interrupts the fit at a batch of an epoch, as a kill would."""

    def __init__(self, epoch: int, batch: int) -> None:
        self.epoch, self.batch = epoch, batch

    def on_batch_end(self, state) -> None:
        if state.epoch == self.epoch and state.batch_index == self.batch:
            raise KeyboardInterrupt


def _digits(source=None) -> dict:
    recipe = copy.deepcopy(DIGITS)
    recipe["model"]["norm"] = "batch"
    recipe["train"].update(epochs=3, schedule={"name": "cosine"})
    if source is not None:
        recipe["model"]["init_from"] = {"run": str(source)}
        recipe["train"]["seed"] = 5
    return recipe


def test_a_killed_transfer_run_resumes_identically_even_without_its_source(tmp_path):
    source = trainlab.train(_digits(), out=tmp_path / "source").run_dir
    full = trainlab.train(_digits(source), out=tmp_path / "full")
    out = tmp_path / "killed"
    with pytest.raises(KeyboardInterrupt):
        trainlab.train(_digits(source), out=out, extra_techniques=[CrashAt(1, 5)])
    shutil.move(source, tmp_path / "moved")  # the source is not needed to resume
    resumed = trainlab.train(_digits(source), out=out)
    assert resumed.info["resumed_from_epoch"] == 1
    assert resumed.metrics == full.metrics
    strip = [{k: v for k, v in r.items() if k != "epoch_seconds"} for r in resumed.history]
    assert strip == [{k: v for k, v in r.items() if k != "epoch_seconds"} for r in full.history]
    a, b = load_file(out / "model.safetensors"), load_file(full.run_dir / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.summary()["init_from"] == full.summary()["init_from"]
    assert full.summary()["init_from"]["counts"]["new"] == 2


def test_a_transfer_run_is_refused_when_the_source_is_unfinished(tmp_path):
    out = tmp_path / "source"
    with pytest.raises(KeyboardInterrupt):
        trainlab.train(_digits(), out=out, extra_techniques=[CrashAt(0, 3)])
    with pytest.raises(trainlab.RunError, match="is interrupted, not finished: finish it with"):
        trainlab.train(_digits(out), out=tmp_path / "t")
    assert not (tmp_path / "t").exists()  # a mistake found before training leaves no trace
