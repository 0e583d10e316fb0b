"""`train.loggers: [tensorboard]` — event files in `<run_dir>/tensorboard/`.

Written with `torch.utils.tensorboard.SummaryWriter`; `tensorboard --logdir runs/` shows
every run that has them. Tags, all against the optimizer step:

- `train/loss`, `train/lr`: sampled steps (about ten per epoch, at least every 50);
- `epoch/<key>`: every key of each epoch's history row (`epoch/val_loss`, `epoch/lr`,
  `epoch/epoch_seconds`, …), at the step the epoch ended on;
- `final/<key>`: metrics.json's values, at the last step, also shown in the HParams tab
  beside the recipe (flattened to dotted keys) once the fit has ended.

Resuming: the writer reopens the folder with `purge_step` one past the checkpoint's step,
so TensorBoard hides whatever a killed run wrote after its last checkpoint; the events up
to the checkpoint were flushed before it was saved.
"""

from __future__ import annotations

from typing import Any

from trainlab.engine.state import State
from trainlab.loggers.base import Ending, LogContext, Logger, Point, numeric

FOLDER = "tensorboard"


class TensorBoardLogger(Logger):
    """Scalars and hyper-parameters as TensorBoard event files in the run directory."""

    name = "tensorboard"
    requires = (("tensorboard", "tensorboard"), ("torch.utils.tensorboard", "tensorboard"))

    def __init__(self, context: LogContext) -> None:
        super().__init__(context)
        self.folder = context.run_dir / FOLDER
        self.writer: Any = None

    def start(self, state: State) -> tuple[int, int]:
        """Open the writer; a folder with events from an earlier attempt is purged past
        the step this fit resumes from."""
        from torch.utils.tensorboard import SummaryWriter

        earlier = self.folder.is_dir() and any(self.folder.glob("events.out.tfevents.*"))
        self.writer = SummaryWriter(
            str(self.folder),
            purge_step=state.step + 1 if earlier else None,
            max_queue=1000,  # the training thread never waits on the writer's queue
        )
        return state.epoch, state.step

    def write(self, rows: list[dict[str, Any]], points: list[Point]) -> None:
        """Add the points and rows, then flush: the epoch is on disk before its checkpoint."""
        add = self.writer.add_scalar
        for p in points:
            add("train/loss", p.loss, p.step)
            add("train/lr", p.lr, p.step)
        for row in rows:
            for key, value in numeric(row).items():
                add(f"epoch/{key}", value, int(row["step"]))
        self.writer.flush()

    def finish(self, end: Ending) -> None:
        """The final metrics as `final/*` scalars and the recipe in the HParams tab."""
        from torch.utils.tensorboard.summary import hparams

        final = {f"final/{k}": float(v) for k, v in end.metrics.items()}
        for tag, value in final.items():
            self.writer.add_scalar(tag, value, end.step)
        for summary in hparams(dict(self.context.hparams), final):
            self.writer.file_writer.add_summary(summary, end.step)
        self.writer.flush()

    def close(self) -> None:
        """Flush and close the event file."""
        if self.writer is not None:
            self.writer.close()
            self.writer = None
