"""The shipped examples train to the accuracy the issues promise."""

from __future__ import annotations

import trainlab

from .conftest import EXAMPLES


def test_mnist_mlp_dropout_example_reaches_094(tmp_path):
    run = trainlab.train(EXAMPLES / "mnist_mlp_dropout.yaml", out=tmp_path / "mnist")
    # issue 2's bar is 0.94 on average over seeds: seeds 0-9 give 0.9416 ± 0.0032
    # (0.937-0.9475, README). One run is not the mean: seed 0 gives 0.937 on one thread
    # and 0.9375 on two, so the floor sits ~4 seed standard deviations below the mean
    # (a floor of 0.935 was 4 test images away from failing on another CPU).
    assert run.metrics["test_accuracy"] >= 0.925
    assert len(run.history) == 5
    # the learning curve goes down
    assert run.history[-1]["train_loss"] < run.history[0]["train_loss"]


def test_breast_cancer_binary_mlp_example(tmp_path):
    run = trainlab.train(EXAMPLES / "breast_cancer_mlp.yaml", out=tmp_path / "bc")
    # 114 test rows: seeds 0-5 give 0.956-0.974 (109-111 right); 0.94 needed 108, one
    # row from failing at seed 0. 0.92 is 105 rows: far above the majority class (0.63).
    assert run.metrics["test_accuracy"] >= 0.92
    assert run.metrics["test_roc_auc"] >= 0.98  # seeds 0-5: 0.988-0.993


def test_mnist_fast_example_reaches_99_percent(tmp_path):
    """The time-to-accuracy recipe (issue 16): >= 99.0 % at seeds 0-2 (0.9935, 0.9920,
    0.9900, docs/speed.md). bf16 kernels differ between CPUs, so the floor sits below the
    worst seed; the speed itself is bench/peers.py's to measure, not a test's."""
    run = trainlab.train(EXAMPLES / "mnist_fast.yaml", out=tmp_path / "fast")
    assert run.metrics["test_accuracy"] >= 0.985
    assert run.recipe.data.val_size == 0 and len(run.history) == 10
