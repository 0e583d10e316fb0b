"""What the engine needs from the other processes of a data-parallel fit.

One fit over N processes (torchrun, `trainlab train --nproc N`): each process trains on
its shard of every global batch, DistributedDataParallel averages the gradients, and the
engine uses this object at three points so that every process sees the numbers one
process would have seen:

- `share`: a shard's loss is scaled so that the averaged gradient is the global batch's
  mean gradient even when the shards differ in size (the last batch of an epoch);
- `sum`: the training loss and the evaluation loss summed over the processes;
- `gather`: evaluation outputs and targets of every shard, in rank order, so that metrics
  (accuracy, ROC AUC, …) are computed over the whole split once, identically everywhere
  — which is also what makes early stopping decide the same in every process.

Nothing here starts processes (trainlab/distributed.py does); with one process the engine
holds no Collective and none of this runs.
"""

from __future__ import annotations

import torch
import torch.distributed as dist


class Collective:
    """The collective operations of an initialised process group (gloo or nccl)."""

    def __init__(self, rank: int, world_size: int, device: torch.device) -> None:
        self.rank = rank
        self.world_size = world_size
        #: where tensors travel: the GPU for nccl, the CPU for gloo
        self.device = device

    def share(self, local: int, total: int) -> float:
        """The factor for a shard of `local` rows of a global batch of `total`: the
        mean over the shard times it, averaged over the processes, is the global mean."""
        return local * self.world_size / total

    def sum(self, values: list[float]) -> list[float]:
        """Each value summed over every process (float64, so counts stay exact)."""
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t.tolist()

    def gather(self, tensor: torch.Tensor) -> torch.Tensor:
        """Every process's rows of `tensor`, concatenated in rank order (shards may have
        different lengths: they are padded for the exchange and cut back)."""
        local = tensor.to(self.device).contiguous()
        sizes = torch.zeros(self.world_size, dtype=torch.int64, device=self.device)
        sizes[self.rank] = len(local)
        dist.all_reduce(sizes, op=dist.ReduceOp.SUM)
        longest = int(sizes.max())
        padded = torch.zeros((longest, *local.shape[1:]), dtype=local.dtype, device=self.device)
        padded[: len(local)] = local
        parts = [torch.empty_like(padded) for _ in range(self.world_size)]
        dist.all_gather(parts, padded)
        rows = [part[: int(n)] for part, n in zip(parts, sizes.tolist(), strict=True)]
        return torch.cat(rows).to(tensor.device)

    def barrier(self) -> None:
        """Wait until every process is here."""
        dist.barrier()
