"""`init_from` sources and misfits, on models built without data (fast)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file, save_model

import trainlab
from trainlab.config.schema import InitFromConfig
from trainlab.transfer.init import init_from

from .helpers import IMAGES, build, with_classes

CNN = {"channels": [4, 8], "dense": [16], "norm": "batch"}


def _spec(**kw) -> InitFromConfig:
    return InitFromConfig(**{k: str(v) if isinstance(v, Path) else v for k, v in kw.items()})


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _source(tmp_path, classes: int = 10) -> tuple[torch.nn.Module, Path]:
    model = build("cnn", with_classes(IMAGES, classes), seed=1, **CNN)
    path = tmp_path / "source.safetensors"
    save_model(model, str(path))
    return model, path


def test_safetensors_file_loads_everything_but_the_head(tmp_path):
    source, path = _source(tmp_path)
    before = _digest(path)
    model = build("cnn", seed=2, **CNN)
    fresh = {k: v.clone() for k, v in model.state_dict().items()}
    report = init_from(model, _spec(weights=path), IMAGES, "cnn")
    head = ["11.weight", "11.bias"]
    assert report["kind"] == "safetensors" and report["new"] == head
    assert [s["name"] for s in report["skipped"]] == head
    assert report["counts"] == {"loaded": len(model.state_dict()) - 2, "skipped": 2, "new": 2}
    for name, value in model.state_dict().items():
        expected = fresh[name] if name in head else source.state_dict()[name]
        assert torch.equal(value, expected), name
    assert _digest(path) == before  # the source is never written


def test_head_keep_loads_a_head_that_fits_and_refuses_one_that_does_not(tmp_path):
    source, path = _source(tmp_path, classes=5)
    five = build("cnn", with_classes(IMAGES, 5), seed=2, **CNN)
    report = init_from(five, _spec(weights=path, head="keep"), with_classes(IMAGES, 5), "cnn")
    assert report["counts"]["new"] == 0
    assert torch.equal(five.state_dict()["11.weight"], source.state_dict()["11.weight"])
    ten = build("cnn", seed=2, **CNN)
    with pytest.raises(trainlab.RecipeError) as err:
        init_from(ten, _spec(weights=path, head="keep"), IMAGES, "cnn")
    message = str(err.value)
    assert "head layer '11'" in message and "[5, 16]" in message and "[10, 16]" in message
    assert "head: new" in message
    report = init_from(ten, _spec(weights=path), IMAGES, "cnn")  # a 5-class source, 10 classes
    assert report["new"] == ["11.weight", "11.bias"]


def test_a_backbone_mismatch_names_the_tensor_shapes_and_the_fix(tmp_path):
    _, path = _source(tmp_path)
    wider = build("cnn", **{**CNN, "channels": [6, 8]})
    with pytest.raises(trainlab.RecipeError) as err:
        init_from(wider, _spec(weights=path), IMAGES, "cnn")
    message = str(err.value)
    assert "tensor '0.weight'" in message and "[4, 1, 3, 3]" in message
    assert "[6, 1, 3, 3]" in message and "'0.*' to model.init_from.exclude" in message


def test_exclude_patterns_and_groups_leave_tensors_fresh(tmp_path):
    _, path = _source(tmp_path)
    wider = build("cnn", seed=3, **{**CNN, "channels": [6, 8]})
    fresh = {k: v.clone() for k, v in wider.state_dict().items()}
    spec = _spec(weights=path, exclude=["0.*", "1.*", "4.weight", "block3"])
    report = init_from(wider, spec, IMAGES, "cnn")
    reasons = {s["name"]: s["reason"] for s in report["skipped"]}
    assert reasons["0.weight"] == "excluded by '0.*'"
    assert reasons["9.weight"] == "excluded by 'block3'"
    assert reasons["4.weight"] == "excluded by '4.weight'"
    assert "4.weight" in report["new"] and "5.weight" in report["loaded"]
    for name in report["new"]:
        assert torch.equal(wider.state_dict()[name], fresh[name]), name
    with pytest.raises(trainlab.RecipeError, match="'conv1.*' matches no tensor"):
        init_from(build("cnn", **CNN), _spec(weights=path, exclude=["conv1.*"]), IMAGES, "cnn")


def test_torch_checkpoint_wrapped_and_from_dataparallel(tmp_path):
    source = build("cnn", seed=1, **CNN)
    wrapped = {f"module.{k}": v for k, v in source.state_dict().items()}
    path = tmp_path / "ckpt.pt"
    torch.save({"state_dict": wrapped, "epoch": 7, "optimizer": {"lr": 0.1}}, path)
    model = build("cnn", seed=2, **CNN)
    report = init_from(model, _spec(weights=path), IMAGES, "cnn")
    assert report["kind"] == "torch" and report["counts"]["loaded"] == len(wrapped) - 2
    assert torch.equal(model.state_dict()["0.weight"], source.state_dict()["0.weight"])
    torch.save({"model_state_dict": source.state_dict()}, path)
    again = init_from(build("cnn", **CNN), _spec(weights=path), IMAGES, "cnn")
    assert again["counts"] == report["counts"]


class Sneaky:
    """Unpickling this would create a file (a stand-in for running any code)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


class Meta:
    """A plain custom object saved beside the weights."""

    def __init__(self) -> None:
        self.classes = 10


@pytest.mark.parametrize("extra", ["sneaky", "meta"])
def test_checkpoint_with_pickled_objects_is_refused_unexecuted(tmp_path, extra):
    marker = tmp_path / "executed"
    obj = Sneaky(marker) if extra == "sneaky" else Meta()
    path = tmp_path / "ckpt.pt"
    torch.save({"state_dict": build("cnn", **CNN).state_dict(), "extra": obj}, path)
    with pytest.raises(trainlab.RunError, match="pickled Python objects.*refused"):
        init_from(build("cnn", **CNN), _spec(weights=path), IMAGES, "cnn")
    assert not marker.exists()


def test_unreadable_and_missing_files_are_run_errors(tmp_path):
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"not a checkpoint at all")
    with pytest.raises(trainlab.RunError, match="cannot read .*junk.bin"):
        init_from(build("cnn", **CNN), _spec(weights=junk), IMAGES, "cnn")
    with pytest.raises(trainlab.RunError, match="'.*nothing.safetensors' is not found"):
        init_from(build("cnn", **CNN), _spec(weights=tmp_path / "nothing.safetensors"), IMAGES,
                  "cnn")  # fmt: skip
    other = tmp_path / "other.safetensors"
    save_file({"encoder.weight": torch.zeros(3)}, str(other))
    with pytest.raises(trainlab.RecipeError, match="nothing to load"):
        init_from(build("cnn", **CNN), _spec(weights=other), IMAGES, "cnn")


def _fake_run(path: Path, status: str, weights: bool = True) -> Path:
    path.mkdir(parents=True)
    (path / "run.json").write_text(json.dumps({"status": status}))
    (path / "recipe.yaml").write_text("model: {name: cnn}\n")
    if weights:
        save_model(build("cnn", **CNN), str(path / "model.safetensors"))
    return path


def test_run_sources_must_exist_and_be_finished(tmp_path):
    model = build("cnn", **CNN)
    with pytest.raises(trainlab.RunError, match="run directory '.*absent' not found"):
        init_from(model, _spec(run=tmp_path / "absent"), IMAGES, "cnn")
    (tmp_path / "plain").mkdir()
    with pytest.raises(trainlab.RunError, match="not a trainlab run directory"):
        init_from(model, _spec(run=tmp_path / "plain"), IMAGES, "cnn")
    running = _fake_run(tmp_path / "running", "interrupted")
    with pytest.raises(trainlab.RunError) as err:
        init_from(model, _spec(run=running), IMAGES, "cnn")
    assert "is interrupted, not finished" in str(err.value)
    assert f"trainlab train {running / 'recipe.yaml'} --out {running}" in str(err.value)
    diverged = _fake_run(tmp_path / "diverged", "diverged")
    with pytest.raises(trainlab.RunError, match="diverged.*init_from.weights"):
        init_from(model, _spec(run=diverged), IMAGES, "cnn")
    empty = _fake_run(tmp_path / "empty", "completed", weights=False)
    with pytest.raises(trainlab.RunError, match="weights file '.*empty/model.safetensors' not"):
        init_from(model, _spec(run=empty), IMAGES, "cnn")
    done = _fake_run(tmp_path / "done", "stopped")
    report = init_from(model, _spec(run=done), IMAGES, "cnn")
    assert report["source_architecture"] == "cnn" and report["kind"] == "run"
