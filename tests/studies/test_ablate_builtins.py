"""Every built-in ablation change against every shipped example recipe.

A built-in change either gives a valid recipe for every example it applies to, or is
refused before anything trains, with the reason (issue 13: `label_smoothing` on a `bce`
recipe once died with `train.loss: unknown key 'label_smoothing'`).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import EXAMPLES
from trainlab.config.loading import read_yaml
from trainlab.config.schema import validate_recipe
from trainlab.errors import RecipeError
from trainlab.studies.ablate import apply_changes, resolve_changes

BUILTINS = ("dropout", "batchnorm", "cosine", "weight_decay", "label_smoothing")
RECIPES = sorted(p for p in EXAMPLES.glob("*.yaml") if "space" not in p.stem)


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
@pytest.mark.parametrize("builtin", BUILTINS)
def test_builtin_change_is_valid_or_refused_with_its_reason(path, builtin):
    base = read_yaml(path)
    try:
        (change,) = resolve_changes([builtin], base)
    except RecipeError as exc:
        assert f"--techniques {builtin}: does not apply to this recipe" in str(exc)
        return
    changed = apply_changes(base, [change])
    # a recipe may already have it (mnist_fast/mnist_best use weight decay 5e-4)
    assert changed != base or builtin in ("batchnorm", "cosine", "weight_decay")
    validate_recipe(changed, str(path))


def test_label_smoothing_on_bce_uses_the_technique_and_on_cross_entropy_the_loss():
    bce = read_yaml(EXAMPLES / "breast_cancer_mlp.yaml")
    (change,) = resolve_changes(["label_smoothing"], bce)
    assert change.techniques == (("label_smoothing", (("smoothing", 0.1),)),)
    ce = read_yaml(EXAMPLES / "mnist_mlp_dropout.yaml")
    (change,) = resolve_changes(["label_smoothing"], ce)
    assert dict(change.overrides)["train.loss"]["label_smoothing"] == 0.1


def test_label_smoothing_and_norm_changes_refused_where_they_cannot_apply():
    regression = {"data": {"dataset": "diabetes"}, "model": "mlp", "train": {"loss": "mse"}}
    with pytest.raises(RecipeError, match="regression loss"):
        resolve_changes(["label_smoothing"], regression)
    text = read_yaml(EXAMPLES / "polarity_textcnn.yaml")
    with pytest.raises(RecipeError, match="model 'text_cnn' has no 'norm' setting"):
        resolve_changes(["batchnorm"], text)


def test_cli_ablate_label_smoothing_and_ema_on_a_bce_recipe(tmp_path):
    """The command from the issue, shortened to 2 epochs and 2 seeds."""
    result = subprocess.run(
        [
            sys.executable, "-m", "trainlab.cli", "ablate",
            str(EXAMPLES / "breast_cancer_mlp.yaml"),
            "--techniques", "label_smoothing,ema", "--seeds", "2", "--set", "train.epochs=2",
            "--study", "bce-ls", "--quiet", "--json",
        ],
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    data = json.loads(result.stdout.strip().splitlines()[-1])
    rows = {row["technique"]: row for row in data["effects"]}
    assert set(rows) == {"label_smoothing", "ema"}
    assert all(row["effect"]["n"] == 2 for row in rows.values())
