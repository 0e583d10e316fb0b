"""The technique registry's facts: validated at registration, symmetric conflicts, the
applicability and combination checks the recipe validator and the doctor use, and the
named pipeline slots."""

from __future__ import annotations

import subprocess
import sys

import pytest

from trainlab.catalog import TECHNIQUES
from trainlab.engine.order import Slot
from trainlab.engine.technique import Technique
from trainlab.errors import RecipeError
from trainlab.tasks import TaskInfo, modality
from trainlab.techniques.registry import check_applicable, check_combination


class _Probe(Technique):
    order = Slot.CLIP


@pytest.fixture
def temporary():
    """Register test-only techniques by name; unregister them afterwards."""
    added = []

    def add(name: str, builder=_Probe, **facts):
        TECHNIQUES.add(name, builder, description="test only", **facts)
        added.append(name)

    yield add
    for name in added:
        TECHNIQUES.remove(name)


def test_a_conflict_declared_on_one_side_holds_on_both_and_goes_with_its_declarer(temporary):
    temporary("probe_a", conflicts=["ema", "probe_b"])
    temporary("probe_b")  # registered after the declaration, declares nothing
    assert "probe_a" in TECHNIQUES.facts("ema").conflicts
    assert "probe_a" in TECHNIQUES.facts("probe_b").conflicts
    assert "probe_a" in TECHNIQUES.get("ema").metadata["conflicts"]  # what the CLI lists
    TECHNIQUES.remove("probe_a")
    assert "probe_a" not in TECHNIQUES.facts("ema").conflicts
    assert TECHNIQUES.facts("probe_b").conflicts == frozenset()


def test_slot_and_rewrites_targets_come_from_the_class(temporary):
    temporary("probe_c")
    facts = TECHNIQUES.facts("probe_c")
    assert facts.slot == Slot.CLIP and facts.rewrites_targets is False
    with pytest.raises(ValueError, match="rewrites_targets=True but _Probe"):
        TECHNIQUES.add("probe_d", _Probe, description="x", rewrites_targets=True)
    assert "probe_d" not in TECHNIQUES


@pytest.mark.parametrize(
    ("facts", "message"),
    [
        ({"modalities": "audio"}, r"modalities \['audio'\] not among image, text, tabular"),
        ({"tasks": ()}, r"tasks \(none\) not among"),
        ({"needs": "gpu"}, r"unknown fact \['needs'\]"),
        ({"conflicts": ["probe_e"]}, "conflict with itself"),
    ],
)
def test_bad_facts_are_refused_at_registration(facts, message):
    with pytest.raises(ValueError, match=message):
        TECHNIQUES.add("probe_e", _Probe, description="x", **facts)
    assert "probe_e" not in TECHNIQUES


def test_check_applicable_names_the_mismatch_and_the_fix():
    assert check_applicable("mixup", "multiclass", "image") is None
    assert check_applicable("mixup", "binary", "tabular") is None
    assert check_applicable("mixup", "multiclass", "text") == (
        "mixup works on image or tabular inputs, not text; for text use token_dropout or fgm"
    )
    assert check_applicable("label_smoothing", "regression", "tabular") == (
        "label_smoothing needs a multiclass or binary task, not regression; "
        "remove it for regression"
    )
    assert "fgm works on text inputs, not image" in check_applicable("fgm", "multiclass", "image")
    assert check_applicable("random_crop", "multiclass", "tabular").startswith(
        "random_crop works on image inputs, not tabular; use gaussian_noise"
    )
    assert check_applicable("ema", "regression", "text") is None
    with pytest.raises(RecipeError, match="did you mean 'mixup'"):
        check_applicable("mixpu", "multiclass", "image")


def test_check_combination_refuses_conflicts_and_unalternated_rewriters():
    assert check_combination(["ema", "mixup", "l2"]) is None
    assert check_combination(["precise_bn", "l2", "swa"]) == (
        "'precise_bn' conflicts with 'swa'; keep one"
    )
    assert "both rewrite the targets" in check_combination(["mixup", "cutmix"])
    assert "both rewrite" in check_combination(["mixup", "cutmix"], alternating={"mixup"})
    assert check_combination(["mixup", "cutmix"], alternating={"mixup", "cutmix"}) is None


def test_modality_comes_from_the_task_facts():
    assert modality(TaskInfo("multiclass", 10, (1, 28, 28), None)) == "image"
    assert modality(TaskInfo("binary", 1, (64,), None, features={"kind": "text"})) == "text"
    table = TaskInfo("regression", 1, (8,), None, features={"kind": "tabular", "numeric": 8})
    assert modality(table) == "tabular"
    assert modality(TaskInfo("multiclass", 3, (30,), None)) == "tabular"  # a plain array


def test_the_pipeline_slots_keep_their_order():
    # The named slots must not reorder the pipeline they replaced (numbers then in use).
    expected = [
        ("FREEZE", -300),
        ("PRECISION", -200),
        ("LAYOUT", -150),
        ("GUARD", -100),
        ("ADVERSARIAL", -60),
        ("ACCUMULATE", -50),
        ("SAM", -40),
        ("PENALTY", -20),
        ("DEFAULT", 0),
        ("GRAD_MONITOR", 5),
        ("CLIP", 10),
        ("MASK", 80),
        ("PRECISE_BN", 90),
        ("AVERAGE", 100),
        ("TUNE_REPORT", 400),
        ("EPOCH_CLOCK", 500),
        ("PROGRESS", 900),
        ("CHECKPOINT", 1000),
    ]
    assert [(s.name, int(s)) for s in Slot] == expected
    assert Slot.AUGMENT == Slot.EARLY_STOP == Slot.GUARD and Slot.SETUP == Slot.PRECISION


def test_the_engine_imports_no_technique():
    code = (
        "import sys, trainlab.engine, trainlab.engine.order, trainlab.engine.progress; "
        "print(any(m.startswith('trainlab.techniques') for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
