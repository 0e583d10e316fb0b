"""Real source runs the compression tests share (trained once per test session)."""

from __future__ import annotations

import pytest

import trainlab
from tests.conftest import EXAMPLES


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """Real runs: the seed MLP and a narrow seed-style CNN, one epoch each."""
    root = tmp_path_factory.mktemp("runs")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRAINLAB_RUNS", str(root))
        mp.setenv("TRAINLAB_STORE", f"sqlite:///{root / 'index.db'}")
        mlp = trainlab.train(
            EXAMPLES / "mnist_mlp_dropout.yaml", ["train.epochs=1"], out=root / "mlp"
        )
        cnn = trainlab.train(
            EXAMPLES / "mnist_cnn_bn.yaml",
            ["train.epochs=1", "model.channels=[8,16]", "model.dense=[32]"],
            out=root / "cnn",
        )
        yield {"mlp": mlp.run_dir, "cnn": cnn.run_dir}
