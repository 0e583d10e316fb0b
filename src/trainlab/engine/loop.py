"""The training loop: one small engine that fires events and knows no technique.

Everything optional — regularizers, mixed precision, checkpoints, progress, early
stopping — subscribes to events (see `Technique`). With no subscribers the loop is a
plain PyTorch loop; `bench/parity.py` checks it adds no measurable overhead.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable
from typing import Any

import torch

from trainlab.engine.events import Event, StopFit, StopReason
from trainlab.engine.metrics import compute_metrics
from trainlab.engine.state import State
from trainlab.engine.technique import Technique

NON_FINITE = (StopReason.NON_FINITE_LOSS, StopReason.NON_FINITE_GRADIENT)


class Engine:
    """Runs epochs of training with validation after each and a test evaluation at the end.

    Args:
        state: the fit's state (model, optimizer, loss, schedule, …).
        train_batches: re-iterable of (x, y) batches; `set_epoch(e)` is called if present.
        val_batches / test_batches: re-iterables of evaluation batches (or None).
        train_eval_batches: a fixed subset of the training data evaluated after every
            epoch in eval mode (keys `train_eval_*`): training metrics on the same
            footing as validation, for the bias/variance diagnosis, at a fraction of the
            cost of tracking them batch by batch.
        techniques: subscribers, called per event in ascending `order` (the named slots
            of `engine.order.Slot`; ties keep this list's order).
        target_kind: "multiclass", "binary" or "regression" — how outputs become metrics.
        target_shift / target_scale: regression only, the `TaskInfo`'s numbers that turn
            outputs and targets back into original units before mae/rmse/r2 are computed;
            the losses stay in the units the model trains on (standardized targets).
    """

    def __init__(
        self,
        state: State,
        train_batches: Iterable,
        val_batches: Iterable | None,
        test_batches: Iterable | None,
        techniques: list[Technique],
        target_kind: str,
        train_eval_batches: Iterable | None = None,
        target_shift: Any = 0.0,
        target_scale: Any = 1.0,
    ) -> None:
        self.state = state
        self.target_shift, self.target_scale = target_shift, target_scale
        state.train_batches = train_batches
        self.train_eval_batches = train_eval_batches
        self.train_batches = train_batches
        self.val_batches = val_batches
        self.test_batches = test_batches
        self.target_kind = target_kind
        self.eval_loss_fn = state.loss_fn
        self.techniques = sorted(techniques, key=lambda t: t.order)
        self._handlers: dict[Event, list[Any]] = {e: [] for e in Event}
        for technique in self.techniques:
            for event, method in technique.handlers().items():
                self._handlers[event].append(method)

    def fire(self, event: Event) -> None:
        """Call every subscriber of `event` with the state."""
        for handler in self._handlers[event]:
            handler(self.state)

    def fit(self) -> State:
        """Train until `max_epochs` or until a technique stops the fit; then test."""
        s = self.state
        try:
            self.fire(Event.FIT_START)
            while s.epoch < s.max_epochs:
                self._train_epoch()
                measured: dict[str, float] = {}
                if self.train_eval_batches is not None:
                    measured.update(self.evaluate("train_eval", self.train_eval_batches))
                if self.val_batches is not None:
                    measured.update(self.evaluate("val"))
                s.eval_metrics = measured
                s.epoch += 1
                s.epoch_metrics = {
                    "epoch": s.epoch,
                    "step": s.step,
                    **s.epoch_metrics,
                    **s.eval_metrics,
                    "lr": _current_lr(s.optimizer),
                }
                s.history.append(s.epoch_metrics)
                if s.schedule is not None:
                    s.schedule.step_epoch(s.eval_metrics.get("val_loss"))
                self.fire(Event.EPOCH_END)
        except StopFit as stop:
            s.stop_reason, s.stop_message = stop.reason, stop.message
        else:
            s.stop_reason = StopReason.COMPLETED
        if self.test_batches is not None and s.stop_reason not in NON_FINITE:
            s.test_metrics = self.evaluate("test")
        self.fire(Event.FIT_END)
        return s

    def _train_epoch(self) -> None:
        s = self.state
        h = self._handlers
        s.model.train()
        if hasattr(self.train_batches, "set_epoch"):
            self.train_batches.set_epoch(s.epoch)
        self.fire(Event.EPOCH_START)
        loss_sum, seen = 0.0, 0
        forward = s.ddp if s.ddp is not None else s.model
        s.optimizer.zero_grad(set_to_none=True)
        for s.batch_index, s.batch in enumerate(self.train_batches):
            if h[Event.BATCH_START]:
                self.fire(Event.BATCH_START)
            x, y = s.batch
            with autocast(s.device, s.autocast_dtype):
                s.outputs = forward(x)
                if h[Event.AFTER_FORWARD]:
                    self.fire(Event.AFTER_FORWARD)
                s.loss = s.loss_fn(s.outputs, y)
            if h[Event.AFTER_LOSS]:
                self.fire(Event.AFTER_LOSS)
            n = len(y)
            if s.collective is not None:
                value, n = self._shard_loss(n)
            else:
                value = s.loss.item()
            if not math.isfinite(value):
                raise StopFit(
                    StopReason.NON_FINITE_LOSS,
                    f"loss became {value} at epoch {s.epoch + 1}, batch {s.batch_index + 1} "
                    f"(step {s.step + 1})",
                )
            if s.grad_scaler is not None:
                s.grad_scaler.scale(s.loss).backward()
            else:
                s.loss.backward()
            if h[Event.AFTER_BACKWARD]:
                self.fire(Event.AFTER_BACKWARD)
            if not s.skip_step:
                self._step()
            s.skip_step = False
            if h[Event.BATCH_END]:
                self.fire(Event.BATCH_END)
            loss_sum += value * n
            seen += n
        s.epoch_metrics = {"train_loss": loss_sum / max(seen, 1)}

    def _shard_loss(self, local: int) -> tuple[float, int]:
        """A data-parallel step: scale this shard's loss so the averaged gradients are
        the global batch's, and return the global batch's mean loss and size (the same
        in every process, so a non-finite loss stops every process at once)."""
        s = self.state
        total = self.train_batches.global_size
        if local == 0:  # a last batch smaller than the process count
            s.loss = s.outputs.sum() * 0.0
        else:
            s.loss = s.loss * s.collective.share(local, total)
        (summed,) = s.collective.sum([s.loss.item()])
        return summed / s.collective.world_size, total

    def _step(self) -> None:
        s = self.state
        if self._handlers[Event.BEFORE_STEP]:
            self.fire(Event.BEFORE_STEP)
        if s.grad_scaler is not None:
            s.grad_scaler.step(s.optimizer)
            s.grad_scaler.update()
        else:
            s.optimizer.step()
        s.optimizer.zero_grad(set_to_none=True)
        s.step += 1
        if s.schedule is not None:
            s.schedule.step_batch()
        if self._handlers[Event.AFTER_STEP]:
            self.fire(Event.AFTER_STEP)

    @torch.no_grad()
    def evaluate(self, split: str, batches: Iterable | None = None) -> dict[str, float]:
        """Loss and task metrics on `split`, keys prefixed with the split name."""
        s = self.state
        batches = (
            batches
            if batches is not None
            else (self.val_batches if split == "val" else self.test_batches)
        )
        s.eval_split = split
        self.fire(Event.EVAL_START)
        was_training = s.model.training
        s.model.eval()
        outputs, targets, loss_sum, seen = [], [], 0.0, 0
        with autocast(s.device, s.autocast_dtype):
            for x, y in batches:
                out = s.model(x)
                loss_sum += float(self.eval_loss_fn(out, y)) * len(y)
                seen += len(y)
                outputs.append(out.float())
                targets.append(y)
        s.model.train(was_training)
        outputs = torch.cat(outputs) if outputs else None
        targets = torch.cat(targets) if targets else None
        if s.collective is not None and outputs is not None:  # every shard's rows, in order
            outputs, targets = s.collective.gather(outputs), s.collective.gather(targets)
            loss_sum, seen = s.collective.sum([loss_sum, seen])
        metrics = {"loss": loss_sum / max(seen, 1)}
        if seen:
            metrics.update(
                compute_metrics(
                    outputs,
                    targets,
                    self.target_kind,
                    self.target_shift,
                    self.target_scale,
                )
            )
        s.eval_metrics = {f"{split}_{k}": v for k, v in metrics.items()}
        self.fire(Event.EVAL_END)
        return s.eval_metrics


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """`torch.autocast` for mixed precision, or a no-op context when `dtype` is None.

    The engine's forward passes use it with the state's `autocast_dtype`; a technique's
    extra pass (sam, fgm, a batch-norm update) uses it too, so all passes agree.
    """
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def _current_lr(optimizer: torch.optim.Optimizer) -> float:
    return float(optimizer.param_groups[0]["lr"])
