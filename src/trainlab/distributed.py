"""Data-parallel training over several processes on PyTorch's own runtime.

`trainlab train RECIPE --nproc N` starts N copies of `trainlab train RECIPE` through
`torch.distributed.run` (torchrun's launcher, used as a library: `launch`), and
`torchrun --nproc-per-node N -m trainlab train RECIPE` does the same by hand; several
machines follow torchrun's own flags (`--nnodes`, `--node-rank`, `--rdzv-endpoint`).
Each copy finds itself in torchrun's environment (`World.from_env`), joins the process
group (gloo on the CPU, nccl on CUDA, `init`) and trains its shard of every batch:

- `train.batch_size` is the **global** batch: each of N processes takes about 1/N of
  every batch of the same seeded permutation, the gradients are averaged (DDP), so the
  learning rate means what it means in one process and a plain SGD run matches the
  one-process run's weights (tests/distributed);
- validation and test metrics are computed over the whole split exactly once, gathered
  in every process (engine/collective.py), so early stopping agrees everywhere;
- rank 0 alone writes the run directory, checkpoints and index row; every process
  resumes from that directory's checkpoint (several machines: put it on a shared
  filesystem), and a run is resumed with the process count it started with;
- each process uses its share of the cores (`TRAINLAB_THREAD_CAP`; torchrun would set
  one thread), and reseeds its random generators from (seed, epoch, rank) at every epoch
  so dropout differs between processes and a resumed run draws what the uninterrupted
  one drew.

Techniques that run their own forward and backward passes through the unwrapped model
(sam, fgm) cannot run distributed and are refused before anything starts.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import torch

from trainlab.engine.collective import Collective
from trainlab.engine.determinism import derived_seed
from trainlab.engine.technique import Technique
from trainlab.errors import RecipeError, RunError

#: Techniques that change which parameters train during the fit: DDP must then expect
#: parameters without gradients (`find_unused_parameters`, an extra graph walk a step).
CHANGES_TRAINABLE = {"freeze", "stages"}
#: Techniques whose extra passes would bypass DistributedDataParallel's gradient averaging.
NOT_DISTRIBUTED = {
    "sam": "its second forward and backward pass bypass DDP's gradient averaging",
    "fgm": "its adversarial forward and backward pass bypass DDP's gradient averaging",
}


@dataclass(frozen=True)
class World:
    """This process's place in a data-parallel fit (torchrun's environment variables)."""

    rank: int
    size: int
    local_rank: int
    local_size: int

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes the run."""
        return self.rank == 0

    @property
    def shard(self) -> tuple[int, int]:
        """(rank, processes), as the batches take it."""
        return self.rank, self.size

    @classmethod
    def from_env(cls) -> World | None:
        """The world torchrun started this process in; None outside torchrun or alone."""
        size = int(os.environ.get("WORLD_SIZE", "1") or 1)
        if size <= 1:
            return None
        return cls(
            rank=int(os.environ["RANK"]),
            size=size,
            local_rank=int(os.environ.get("LOCAL_RANK", "0")),
            local_size=int(os.environ.get("LOCAL_WORLD_SIZE", str(size))),
        )


def check_recipe(recipe) -> None:
    """Refuse, before training, what cannot run over several processes."""
    for spec in recipe.techniques:
        if spec.name in NOT_DISTRIBUTED:
            raise RecipeError(
                f"techniques.{spec.name}: cannot run distributed: {NOT_DISTRIBUTED[spec.name]}; "
                "remove it, or train in one process"
            )
    if recipe.data.cv:
        raise RecipeError("data.cv: cross-validation folds train one after another; run it "
                          "without --nproc")  # fmt: skip


def init(world: World, device: torch.device) -> None:
    """Join the process group: nccl for CUDA, gloo for the CPU; each process its GPU."""
    import torch.distributed as dist

    if device.type == "cuda":
        torch.cuda.set_device(world.local_rank)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")


def device_for(world: World, device: torch.device) -> torch.device:
    """The device this process trains on: its own GPU (`cuda:LOCAL_RANK`) for CUDA."""
    if device.type == "cuda":
        return torch.device("cuda", world.local_rank)
    return device


def wrap(model: torch.nn.Module, world: World, device: torch.device, recipe) -> tuple:
    """(DistributedDataParallel around `model`, the engine's Collective) for this process.

    On the CPU batch norm keeps per-process statistics (SyncBatchNorm needs CUDA): said
    once, as a warning."""
    import warnings

    from torch.nn.parallel import DistributedDataParallel

    norms = any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules())
    if norms and device.type != "cuda" and world.is_main:
        warnings.warn(
            "batch norm over several CPU processes: each process normalises with its own "
            "shard's statistics (SyncBatchNorm needs CUDA)", stacklevel=2,
        )  # fmt: skip
    unused = any(spec.name in CHANGES_TRAINABLE for spec in recipe.techniques) or (
        recipe.model.name == "moe"
    )
    ids = [device.index] if device.type == "cuda" else None
    ddp = DistributedDataParallel(model, device_ids=ids, find_unused_parameters=unused)
    return ddp, Collective(world.rank, world.size, device)


class ProcessSeed(Technique):
    """Reseeds this process's random generators from (seed, epoch, rank) at every epoch:
    dropout and augmentation differ between processes, and a resumed run draws exactly
    what the uninterrupted one drew (rank 0's checkpoint holds only its own generators)."""

    order = -1000  # before every slot of engine/order.py: the epoch starts from these seeds

    def __init__(self, rank: int) -> None:
        self.rank = rank

    def on_epoch_start(self, state) -> None:
        """Seed torch, NumPy and Python's random for this epoch and process."""
        import random

        import numpy as np

        seed = derived_seed(state.seed, state.epoch, self.rank, 0x5EED)
        torch.manual_seed(seed)
        np.random.seed(seed % 2**32)
        random.seed(seed)


def check_process_count(nproc: int, device: str) -> None:
    """Refuse more processes per machine than it has GPUs (CUDA) or cores (CPU)."""
    if nproc < 1:
        raise RunError(f"--nproc must be at least 1 (got {nproc})")
    wants_cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if wants_cuda:
        gpus = torch.cuda.device_count()
        if nproc > gpus:
            raise RunError(
                f"--nproc {nproc}: this machine has {gpus} GPU(s); one process per GPU, so "
                f"use --nproc {max(gpus, 1)} (or train.device: cpu)"
            )
        return
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if nproc > (cores or 1):
        raise RunError(
            f"--nproc {nproc}: this machine has {cores} CPU core(s) for this process; "
            f"use --nproc {cores} or fewer"
        )


def share_cores(local_size: int) -> None:
    """Give each of `local_size` processes on this machine its share of the cores (the
    thread policy reads TRAINLAB_THREAD_CAP) unless a share was set already."""
    from trainlab.threads import CAP_VARIABLE, available_cores

    if CAP_VARIABLE not in os.environ:
        cores, _ = available_cores()
        os.environ[CAP_VARIABLE] = str(max(1, cores // max(local_size, 1)))


def launch(argv: list[str], nproc: int, nnodes: int = 1, node_rank: int = 0,
           rdzv_endpoint: str = "", module: str = "trainlab") -> None:  # fmt: skip
    """Run `python -m <module> <argv>` in `nproc` processes per node through torchrun's
    launcher; a failed process ends them all, reported in one RunError."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    from trainlab.threads import CAP_VARIABLE

    before = os.environ.get(CAP_VARIABLE)
    share_cores(nproc)  # the processes inherit it; this one gets its own value back
    config = LaunchConfig(
        min_nodes=nnodes, max_nodes=nnodes, nproc_per_node=nproc, run_id="trainlab",
        rdzv_backend="c10d", rdzv_endpoint=rdzv_endpoint or "127.0.0.1:0",
        rdzv_configs={"rank": node_rank} if nnodes > 1 else {},
        max_restarts=0, monitor_interval=0.1, start_method="spawn",
    )  # fmt: skip
    try:
        elastic_launch(config, sys.executable)("-m", module, *argv)
    except ChildFailedError as exc:
        rank, failure = next(iter(exc.failures.items()))
        raise RunError(
            f"process {rank} of the {nproc * nnodes} failed (exit {failure.exitcode}); its "
            "message is above; the others were stopped — run the same command to resume"
        ) from None
    finally:
        if before is None:
            os.environ.pop(CAP_VARIABLE, None)
        else:
            os.environ[CAP_VARIABLE] = before
