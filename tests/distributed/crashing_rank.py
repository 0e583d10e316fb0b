"""A torchrun entry point for the tests: a 2-process fit whose rank 1 raises in epoch 2
(python -m tests.distributed.crashing_rank RECIPE OUT)."""

from __future__ import annotations

import os
import sys

import trainlab
from trainlab.engine import Technique


class CrashOnRankOne(Technique):
    """Raises in rank 1 after its first epoch; rank 0 carries on into a collective."""

    order = 2000

    def on_epoch_end(self, state) -> None:
        if os.environ.get("RANK") == "1" and state.epoch == 1:
            raise RuntimeError("rank 1 fails on purpose")


if __name__ == "__main__":
    trainlab.train(sys.argv[1], out=sys.argv[2], extra_techniques=[CrashOnRankOne()])
