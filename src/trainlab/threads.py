"""How many CPU threads a fit (or a prediction) uses: `train.threads: auto`.

torch's default is one intra-op thread per core. Two measurements on a 2-core machine
made that a bad default:

- a shared CPU: with one other CPU-bound process, OpenMP threads that wait for the core
  the other process holds spin, so two threads ran the seed MLP 6-10x slower than one
  (8.3-15.7 s against 1.4 s) and the seed CNN's step 29 ms against 16 ms;
- little work per step: the seed MLP (batch 32) gains 8 % from a second thread, for
  twice the CPU.

So `auto` takes the cores this process may use (its affinity mask and its cgroup CPU
quota, shared among the study's workers), leaves out the cores other processes keep
busy (sampled from /proc/stat for a quarter of a second before training), and uses one
thread when a training step is too small to split (forward FLOPs of a batch, counted
by torch's FlopCounterMode, times three). The choice and its reason go into run.json;
a resumed run keeps the count it started with, so its arithmetic stays the same.
A number in the recipe always wins.

The OpenMP wait policy is left as it is: `OMP_WAIT_POLICY=PASSIVE` protects threads
from spinning, but on a quiet machine it made the CNN step 54 % slower (14.3 against
9.3 ms) and the tabular MLP step 2x slower; choosing the thread count from the load
avoids the spinning without that cost.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

#: A training step below this many floating-point operations runs on one thread. On the
#: 2-core machine, from a second thread: the seed MLP (2e7 per step) gains 13 % (5-epoch
#: fit 1.19 s -> 1.03 s), the tabular preset at batch 256 (2.6e8) 1.9x, the seed CNN
#: (4.9e8) 1.7x; an iris-sized MLP (2e5) gains nothing.
MIN_FLOPS_PER_THREAD = 1e7
#: Other processes using at least this share of a core take that core away.
BUSY_SHARE = 0.5
#: A study's worker sets this to its share of the cores (trainlab's own workers).
CAP_VARIABLE = "TRAINLAB_THREAD_CAP"


@dataclass(frozen=True)
class ThreadChoice:
    """The intra-op thread count in force and why (run.json `threads`)."""

    threads: int
    reason: str
    cores: int
    busy_cores: float | None = None
    step_flops: float | None = None

    def to_dict(self) -> dict[str, object]:
        """JSON form."""
        return asdict(self)


def available_cores() -> tuple[int, str]:
    """Cores this process may run on: its affinity mask, capped by a cgroup CPU quota."""
    try:
        cores = len(os.sched_getaffinity(0))
        where = "affinity mask"
    except (AttributeError, OSError):
        cores, where = os.cpu_count() or 1, "cpu count"
    quota = _cgroup_quota()
    if quota is not None and quota < cores:
        return max(1, math.floor(quota)), f"cgroup CPU quota {quota:g}"
    return max(1, cores), where


def _cgroup_quota() -> float | None:
    """The CPU quota in cores (cgroup v2 cpu.max or v1 cfs files), None without one."""
    try:
        text = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if text and text[0] != "max":
            return int(text[0]) / int(text[1])
    except (OSError, ValueError, IndexError):
        pass
    try:
        quota = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
        period = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
        return quota / period if quota > 0 else None
    except (OSError, ValueError):
        return None


def _cpu_jiffies() -> tuple[int, int] | None:
    """(busy, total) clock ticks of all cores since boot, from /proc/stat."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except (OSError, IndexError):
        return None
    values = [int(v) for v in fields[:8]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


def _own_ticks() -> int:
    """CPU clock ticks used so far by this process (all its threads)."""
    t = os.times()
    return round((t.user + t.system) * os.sysconf("SC_CLK_TCK"))


def busy_cores(window: float = 0.25) -> float | None:
    """Cores kept busy by other processes over `window` seconds (None where unknown)."""
    start, own = _cpu_jiffies(), _own_ticks()
    if start is None:
        return None
    time.sleep(window)
    end = _cpu_jiffies()
    if end is None or end[1] <= start[1]:
        return None
    ncpu = os.cpu_count() or 1
    per_core = (end[1] - start[1]) / ncpu
    others = (end[0] - start[0]) - (_own_ticks() - own)
    return max(0.0, others / per_core)


def choose_threads(
    requested: int | str | None,
    step_flops: float | None = None,
    previous: dict | None = None,
    measure_load: bool = True,
) -> ThreadChoice:
    """The thread count for `train.threads` = `requested` (a number, or auto/None).

    `previous` is the run.json `threads` entry of the run being resumed.
    """
    cores, where = available_cores()
    if isinstance(requested, int):
        return ThreadChoice(requested, "set in the recipe (train.threads)", cores)
    if previous and isinstance(previous.get("threads"), int):
        return ThreadChoice(previous["threads"], "as when the run started", cores)
    cap = os.environ.get(CAP_VARIABLE, "")
    if cap.isdigit() and int(cap) < cores:
        cores, where = max(1, int(cap)), "this worker's share of the cores"
    if step_flops is not None and step_flops < MIN_FLOPS_PER_THREAD:
        reason = f"a step is {step_flops:.2g} FLOPs: too little work to split"
        return ThreadChoice(1, reason, cores, None, step_flops)
    busy = busy_cores() if measure_load and cores > 1 else None
    taken = 0 if busy is None else math.floor(busy + 1 - BUSY_SHARE)
    free = max(1, cores - taken)
    if free < cores:
        reason = f"{cores} cores ({where}), {busy:.1f} kept busy by other processes"
        return ThreadChoice(free, reason, cores, busy, step_flops)
    return ThreadChoice(cores, f"{cores} cores ({where}), none busy", cores, busy, step_flops)


def apply(choice: ThreadChoice) -> None:
    """Set torch's intra-op thread count."""
    import torch

    if torch.get_num_threads() != choice.threads:
        torch.set_num_threads(choice.threads)


def step_flops(model, batch) -> float | None:
    """Floating-point operations of one training step of `model` on `batch` (inputs):
    the forward pass counted by torch's FlopCounterMode, times three for the backward."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    was_training = model.training
    try:
        model.eval()
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(batch)
        return 3.0 * float(counter.get_total_flops())
    except Exception:  # a model the counter cannot trace: decide without the estimate
        return None
    finally:
        model.train(was_training)


@contextmanager
def worker_share(threads: int | None) -> Iterator[None]:
    """Within the block, torch and `train.threads: auto` use at most `threads` threads
    (a study worker's share of the cores); both are restored after it."""
    if not threads:
        yield
        return
    import torch

    before, cap = torch.get_num_threads(), os.environ.get(CAP_VARIABLE)
    torch.set_num_threads(threads)
    os.environ[CAP_VARIABLE] = str(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)
        if cap is None:
            os.environ.pop(CAP_VARIABLE, None)
        else:
            os.environ[CAP_VARIABLE] = cap
