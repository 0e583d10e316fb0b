"""The engine subscriber that feeds a run's loggers, without changing the run.

It samples the training loss and learning rate every few optimizer steps, hands each
epoch's history row (every key the row has) to the loggers at EPOCH_END, and the final
metrics at FIT_END. It runs after the epoch clock (so rows carry `epoch_seconds`) and
before the checkpoint (so what a logger wrote for an epoch is on disk before the epoch
counts as done: a resumed run neither loses nor repeats epochs).
"""

from __future__ import annotations

import contextlib
import random
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch

from trainlab.engine.loop import NON_FINITE
from trainlab.engine.order import Slot
from trainlab.engine.state import State
from trainlab.engine.technique import Technique
from trainlab.loggers.base import Logger, Point, ending

#: At most this many optimizer steps between two sampled points (Lightning's default
#: `log_every_n_steps`); fewer on short epochs, so an epoch has about ten points.
MAX_STEP_INTERVAL = 50
POINTS_PER_EPOCH = 10


def step_interval(batches_per_epoch: int) -> int:
    """Sample every this many optimizer steps: ~10 points per epoch, at least every 50."""
    return max(1, min(MAX_STEP_INTERVAL, batches_per_epoch // POINTS_PER_EPOCH))


@contextlib.contextmanager
def untouched_randomness() -> Iterator[None]:
    """Run a block without letting it move any random stream training draws from.

    The loggers' libraries have no business drawing random numbers, but a run must be the
    same with and without them whatever a library version does, so the Python, NumPy and
    torch (CPU and CUDA) generator states are put back afterwards.
    """
    py, npy, cpu = random.getstate(), np.random.get_state(), torch.get_rng_state()
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
    try:
        yield
    finally:
        random.setstate(py)
        np.random.set_state(npy)
        torch.set_rng_state(cpu)
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)


class Logging(Technique):
    """Sends the fit's scalars to its loggers (`train.loggers`); reads the state only.

    A logger that fails (a full disk, a store gone away) is reported once as a
    RuntimeWarning and dropped: the training goes on, and every file trainlab itself
    writes is unaffected.
    """

    order = Slot.LOGGERS  # shares the display's slot: after the epoch clock, before saving

    def __init__(self, loggers: list[Logger]) -> None:
        self.loggers = list(loggers)
        self._live = list(loggers)
        self._done: dict[int, tuple[int, int]] = {}  # id(logger) → (epoch, step) recorded
        self._points: list[Point] = []
        self._every = 1

    def on_fit_start(self, state: State) -> None:
        batches = state.train_batches
        self._every = step_interval(len(batches)) if batches is not None else 1
        with untouched_randomness():
            for logger in list(self._live):
                done = self._call(logger, "start", logger.start, state)
                self._done[id(logger)] = done if done is not None else (0, 0)
            self._emit(state)  # rows a logger lacks after a resume (restored history)

    def on_before_step(self, state: State) -> None:
        step = state.step + 1  # the step being taken, with the lr it is taken at
        if step % self._every == 0:
            lr = float(state.optimizer.param_groups[0]["lr"])
            self._points.append(Point(step, state.loss.item(), lr))

    def on_epoch_end(self, state: State) -> None:
        with untouched_randomness():
            self._emit(state)

    def on_fit_end(self, state: State) -> None:
        with untouched_randomness():
            self._emit(state)  # the last row, when a stop cut its EPOCH_END short
            end = ending(state, diverged=state.stop_reason in NON_FINITE)
            for logger in list(self._live):
                self._call(logger, "finish", logger.finish, end)
            self.close()

    def close(self) -> None:
        """Close every logger still open (each once)."""
        for logger in self._live:
            with contextlib.suppress(Exception):
                logger.close()
        self._live = []

    def _emit(self, state: State) -> None:
        """Give each logger the rows and points it has not recorded yet."""
        points, self._points = self._points, []
        for logger in list(self._live):
            epoch, step = self._done[id(logger)]
            rows = [r for r in state.history if r.get("epoch", 0) > epoch]
            new = [p for p in points if p.step > step]
            if not rows and not new:
                continue
            self._call(logger, "write", logger.write, rows, new)
            if rows:
                epoch, step = max(epoch, int(rows[-1]["epoch"])), max(step, int(rows[-1]["step"]))
            if new:
                step = max(step, new[-1].step)
            self._done[id(logger)] = (epoch, step)

    def _call(self, logger: Logger, what: str, method: Callable[..., Any], *args: Any) -> Any:
        """`method(*args)`; a failure drops the logger with a warning instead of the run."""
        try:
            return method(*args)
        except Exception as exc:  # noqa: BLE001 - a logger must never fail the training
            warnings.warn(
                f"train.loggers: {logger.name} failed at {what} ({type(exc).__name__}: "
                f"{exc}); the run goes on without it",
                RuntimeWarning,
                stacklevel=2,
            )
            self._live.remove(logger)
            with contextlib.suppress(Exception):
                logger.close()
            return None
