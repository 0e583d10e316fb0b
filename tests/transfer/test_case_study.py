"""The shipped transfer case study end to end: digits 0-4 source, digits 5-9 from 10
labels per class (examples/transfer_mnist*.yaml), shortened."""

from __future__ import annotations

import trainlab
from tests.conftest import EXAMPLES


def test_transfer_mnist_example_reuses_the_source_backbone(tmp_path):
    source = trainlab.train(EXAMPLES / "transfer_mnist_source.yaml", ["train.epochs=2"],
                            out=tmp_path / "source")  # fmt: skip
    assert trainlab.load(source.run_dir).info.classes == ["0", "1", "2", "3", "4"]
    run = trainlab.train(
        EXAMPLES / "transfer_mnist.yaml",
        {"model.init_from.run": str(source.run_dir), "train.epochs": 6,
         "techniques": [{"name": "freeze", "layers": ["backbone"], "epochs": 2}]},
        out=tmp_path / "transfer",
    )  # fmt: skip
    report = run.info["init_from"]
    assert report["counts"]["new"] == 2 and report["counts"]["loaded"] >= 10  # head re-made
    predictor = trainlab.load(run.run_dir)
    assert predictor.info.classes == ["5", "6", "7", "8", "9"]
    # 50 training images, 6 epochs: far above chance (0.2); seeds 0-4 of the full
    # 30-epoch recipe give 0.876-0.902 (docs/transfer.md)
    assert run.metrics["test_accuracy"] > 0.5
