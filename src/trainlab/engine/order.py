"""The slots of the training pipeline: where each subscriber runs within every event.

At each event the engine calls its subscribers in ascending `order` (ties keep the
order they were given: the recipe's, then extra callbacks). A technique picks the slot
whose neighbours it must follow or precede; the table below is the whole pipeline, so
read it before inventing a number. Several techniques share a slot when they never
need to see each other's effect. The optimizer step itself is the engine's, between
BEFORE_STEP (gradient slots) and AFTER_STEP (weight slots).
"""

from __future__ import annotations

from enum import IntEnum


class Slot(IntEnum):
    """Named positions of the per-event pipeline, first to last."""

    FREEZE = -300  # freeze: fix the trainable set before anything lists parameters
    PRECISION = -200  # mixed_precision: autocast dtype and grad scaler, read by all passes
    SETUP = PRECISION  # the doctor: monitors' sampling interval, before the monitors start
    LAYOUT = -150  # channels_last: memory format, before weights are snapshotted per epoch
    GUARD = -100  # divergence_guard: a non-finite loss or gradient is caught before use
    AUGMENT = GUARD  # data augmentation: inputs changed before mixup/cutmix mix them
    EARLY_STOP = GUARD  # early_stopping: snapshot evaluated weights before ema/swa swap them
    ADVERSARIAL = -60  # fgm: second pass on moved embeddings, before accumulation weighs it
    ACCUMULATE = -50  # grad_accumulation: .grad is the group mean before anything reads it
    SAM = -40  # sam: gradient replaced by the one at the perturbed weights
    PENALTY = -20  # l1, l2: penalty gradients added to the (final) gradient
    DEFAULT = 0  # everything without a constraint: mixup, cutmix, dropout, lookahead, …
    GRAD_MONITOR = 5  # gradient_monitor: raw gradients, before clipping changes them
    CLIP = 10  # clip_norm, clip_value, agc: the last change before the optimizer step
    MASK = 80  # compress' KeepMasks: pruned weights back to zero after the step's update
    PRECISE_BN = 90  # precise_bn: statistics for the live weights, before weight swaps
    AVERAGE = 100  # ema, swa: averaged weights swapped in around evaluation
    TUNE_REPORT = 400  # tune: the epoch's objective to the trial (may prune the fit)
    EPOCH_CLOCK = 500  # runs: the epoch's wall time into its history row
    PROGRESS = 900  # the terminal progress display
    LOGGERS = 900  # train.loggers: after the epoch clock, with the progress display
    CHECKPOINT = 1000  # last: save once every technique has updated its state
