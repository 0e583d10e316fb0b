"""Generic tests every registered technique passes, driven by the settings registry.

(a) it trains on real data; (b) its state round-trips through a checkpoint; (c) a run
crashed in the middle of training and resumed ends exactly like an uninterrupted one;
(d) it combines with every technique it does not declare a conflict with. A technique
added to the registry is covered here as soon as it has an entry in settings.py — and
the first test fails until it does.
"""

from __future__ import annotations

import copy
import itertools
import json
import math

import pytest
import torch
from safetensors.torch import load_file

import trainlab
from trainlab.catalog import TECHNIQUES
from trainlab.engine import Technique
from trainlab.engine.checkpoint import CheckpointStore
from trainlab.engine.order import Slot
from trainlab.errors import RecipeError

from .conftest import IMAGES, TEXT, CrashAt
from .settings import SETTINGS, data_of, min_accuracy, technique_entry, works_on

NAMES = TECHNIQUES.names()


def recipe_with(*names: str, epochs: int | None = None) -> dict:
    """The base recipe the techniques `names` run on, with them and their overrides."""
    kinds = {data_of(n) for n in names} - {"images"}
    recipe = copy.deepcopy(TEXT if "text" in kinds else IMAGES)
    for name in names:
        recipe.update(copy.deepcopy(SETTINGS[name].overrides))
    recipe["techniques"] = [technique_entry(n) for n in names]
    if epochs is not None:
        recipe["train"]["epochs"] = epochs
    return recipe


def compatible(a: str, b: str) -> bool:
    """Whether a and b can act on the same data and model (a modality, not a conflict)."""
    sa, sb = SETTINGS[a], SETTINGS[b]
    kind = data_of(a) if data_of(a) != "images" else data_of(b)
    clash = any(sa.overrides[k] != sb.overrides[k] for k in sa.overrides.keys() & sb.overrides)
    return kind in works_on(a) and kind in works_on(b) and not clash


def augmentation(name: str) -> bool:
    """Data augmentations (data/augment.py) are paired with everything only in -m slow."""
    return TECHNIQUES.facts(name).augmentation


def build(name: str) -> Technique:
    """A fresh instance of technique `name` with its test settings."""
    entry = TECHNIQUES.get(name)
    return entry.builder(entry.params(**SETTINGS[name].params))


def conflicting(a: str, b: str) -> bool:
    """Declared conflicts, or two target rewriters (which need `alternate`)."""
    fa, fb = TECHNIQUES.facts(a), TECHNIQUES.facts(b)
    declared = b in fa.conflicts or a in fb.conflicts
    return declared or (fa.rewrites_targets and fb.rewrites_targets)


def assert_same(a, b, where="state") -> None:
    """Deep equality of nested dicts/lists of tensors and plain values."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and torch.equal(a.cpu(), b.cpu()), where
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), where
        for k in a:
            assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def weights(run_dir) -> dict[str, torch.Tensor]:
    return load_file(run_dir / "model.safetensors")


def no_times(history):
    return [{k: v for k, v in row.items() if k != "epoch_seconds"} for row in history]


def test_every_registered_technique_has_settings():
    missing = sorted(set(NAMES) - set(SETTINGS))
    assert not missing, f"add settings for {missing} to tests/techniques/settings.py"
    stale = sorted(set(SETTINGS) - set(NAMES))
    assert not stale, f"settings for unregistered techniques: {stale}"
    idle = [n for n in NAMES if not works_on(n)]
    assert not idle, f"{idle}: their facts fit neither base data set (images, text)"


@pytest.mark.parametrize("name", NAMES)
def test_registry_metadata_is_consistent(name):
    entry = TECHNIQUES.get(name)
    facts = TECHNIQUES.facts(name)
    technique = build(name)
    assert isinstance(technique, Technique)
    assert technique.rewrites_targets == facts.rewrites_targets
    assert technique.order in set(Slot), f"{name}: order {technique.order} is no named slot"
    assert facts.slot is None or facts.slot == technique.order
    # a one-line lower-case phrase, unless it opens with an acronym ("L1 weight penalty")
    description = entry.description
    assert description and "\n" not in description, name
    assert description[0].islower() or description.split()[0].isupper(), description
    for other in facts.conflicts:
        assert other in TECHNIQUES, f"{name} declares a conflict with unknown '{other}'"
        assert name in TECHNIQUES.facts(other).conflicts, "not symmetric"
    module = __import__(type(technique).__module__, fromlist=["_"])
    assert "Method card" in (module.__doc__ or ""), f"{name}: module docstring lacks a method card"


@pytest.mark.parametrize("name", NAMES)
def test_trains_round_trips_and_resumes_exactly(name, tmp_path):
    recipe = recipe_with(name)
    full = trainlab.train(recipe, out=tmp_path / "full")

    # (a) it trains on real data: finite losses, far better than chance (0.1)
    assert full.status in ("completed", "stopped"), full.info.get("stop_message")
    losses = [row["train_loss"] for row in full.history]
    assert all(math.isfinite(v) for v in losses) and losses[-1] < losses[0], losses
    assert full.metrics["test_accuracy"] > min_accuracy(name), full.metrics

    # (b) its state survives a checkpoint: a fresh instance loaded from it saves the same
    store = CheckpointStore(full.run_dir / "checkpoints")
    saved = store.load_state(store.latest())["techniques"]
    (key,) = [k for k in saved if k.startswith("0:")]
    fresh = build(name)
    fresh.load_state_dict(saved[key])
    assert_same(fresh.state_dict(), saved[key])

    # (c) crash in the middle of epoch 2, resume: identical weights, metrics and history
    out = tmp_path / "crashed"
    with pytest.raises(KeyboardInterrupt):
        trainlab.train(recipe, out=out, extra_techniques=[CrashAt(1, 3)])
    assert json.loads((out / "run.json").read_text())["status"] == "interrupted"
    resumed = trainlab.train(recipe, out=out)
    assert resumed.info["resumed_from_epoch"] == 1
    assert resumed.metrics == full.metrics
    assert no_times(resumed.history) == no_times(full.history)
    assert_same(weights(out), weights(full.run_dir), "weights")


ALL_PAIRS = [p for p in itertools.combinations(NAMES, 2) if compatible(*p)]
PAIRS = [
    pytest.param(*p, marks=[pytest.mark.slow] if augmentation(p[0]) or augmentation(p[1]) else [])
    for p in ALL_PAIRS
    if not conflicting(*p)
]
CONFLICTS = [p for p in ALL_PAIRS if conflicting(*p)]


@pytest.mark.parametrize("a,b", PAIRS, ids=[f"{p.values[0]}+{p.values[1]}" for p in PAIRS])
def test_combines_with_every_non_conflicting_technique(a, b, tmp_path):
    run = trainlab.train(recipe_with(a, b, epochs=2), out=tmp_path / "r")
    assert run.status in ("completed", "stopped"), run.info.get("stop_message")
    assert math.isfinite(run.metrics["val_loss"]) and math.isfinite(run.metrics["test_loss"])
    losses = [row["train_loss"] for row in run.history]
    assert losses[-1] < losses[0], losses  # it learns (2 epochs: accuracy bars would be noise)


@pytest.mark.parametrize("pair", CONFLICTS, ids=["+".join(p) for p in CONFLICTS])
def test_conflicting_pairs_are_refused_with_a_clear_message(pair, tmp_path):
    with pytest.raises(RecipeError, match="techniques: .*(conflicts|rewrite the targets)"):
        trainlab.train(recipe_with(*pair), out=tmp_path / "r")
    assert not (tmp_path / "r" / "checkpoints").exists()


def test_target_rewriters_take_turns_when_asked(tmp_path):
    recipe = recipe_with("mixup", "cutmix", epochs=2)
    for item in recipe["techniques"]:
        item["alternate"] = True
    run = trainlab.train(recipe, out=tmp_path / "r")
    assert run.status == "completed" and run.metrics["test_accuracy"] > 0.3


def test_alternating_rewriters_get_one_turn_each_batch(small_datasets):
    from trainlab.assembly import build_techniques
    from trainlab.config import load_recipe
    from trainlab.engine.state import State

    recipe = recipe_with("mixup", "cutmix")
    for item in recipe["techniques"]:
        item["alternate"] = True
    mixup, cutmix = build_techniques(load_recipe(recipe))
    state = State(model=None, optimizer=None, loss_fn=None, device="cpu", max_epochs=2)
    state.train_batches = range(5)  # 5 batches per epoch
    turns = []
    for epoch in range(2):
        for b in range(5):
            state.epoch, state.batch_index = epoch, b
            turns.append((mixup.my_turn(state), cutmix.my_turn(state)))
    assert turns == [(True, False), (False, True)] * 5
