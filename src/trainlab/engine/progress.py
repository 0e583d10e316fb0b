"""A rich progress display for the terminal: epoch, batch, loss, metric, time left."""

from __future__ import annotations

import sys

from trainlab.engine.order import Slot
from trainlab.engine.state import State
from trainlab.engine.technique import Technique


class ProgressDisplay(Technique):
    """Shows training progress on standard error; a no-op when it is not a terminal.

    Updates are throttled (rich refreshes in its own thread), so the display costs a few
    microseconds per batch.
    """

    order = Slot.PROGRESS

    def __init__(self, steps_per_epoch: int, title: str = "train") -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.console = Console(stderr=True)
        self.steps_per_epoch = steps_per_epoch
        self.title = title
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=self.console,
            transient=False,
        )
        self.task = None
        self._every = max(1, steps_per_epoch // 50)

    def on_fit_start(self, state: State) -> None:
        total = state.max_epochs * self.steps_per_epoch
        self.progress.start()
        self.task = self.progress.add_task(
            self.title, total=total, completed=state.epoch * self.steps_per_epoch, info=""
        )

    def on_batch_end(self, state: State) -> None:
        if state.batch_index % self._every == 0:
            done = state.epoch * self.steps_per_epoch + state.batch_index + 1
            self.progress.update(
                self.task,
                completed=done,
                description=f"{self.title} epoch {state.epoch + 1}/{state.max_epochs}",
                info=f"loss {state.loss.item():.4f}",
            )

    def on_epoch_end(self, state: State) -> None:
        m = state.epoch_metrics
        shown = "  ".join(
            f"{k} {m[k]:.4f}"
            for k in ("train_loss", "val_loss", "val_accuracy", "val_rmse")
            if k in m
        )
        self.progress.update(self.task, completed=state.epoch * self.steps_per_epoch, info=shown)
        self.progress.console.print(f"epoch {state.epoch}/{state.max_epochs}  {shown}")

    def on_fit_end(self, state: State) -> None:
        self.progress.stop()


def interactive() -> bool:
    """True when standard error is a terminal a person is looking at."""
    return sys.stderr.isatty()
