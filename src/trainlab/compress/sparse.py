"""Whether zeros make a pruned Linear layer faster here: CSR matmul against dense, timed.

Zeroed weights in a dense tensor cost the same multiply-adds as any others. A sparse
format (CSR: the non-zeros of each row with their column indices) skips them, but pays
for the indirection, and a dense GEMM on a CPU is tuned to the limit; so whether sparse
wins depends on the sparsity, the layer's shape, the batch and the machine. This module
measures it rather than assuming it: `measure_sparse` times each pruned Linear layer both
ways on this CPU, `SparseLinear` is a Linear with a CSR weight (inference only), and
`sparsify` swaps in only the layers measured faster.

What it found for the seed's MNIST MLP (its 784→128 layer pruned to 90 % by `magnitude`;
torch 2.13 CPU build, one thread, on the 2-core development machine while other
processes kept it busy, so the figures moved from run to run): at batch 256, over six
runs, dense 0.54–1.6 ms and CSR 0.40–1.45 ms, CSR's speedup 0.37–1.7× — no reliable gain
at 90 %; at 95 % CSR won in every run (1.1–4.8×). At batch 1 CSR was 1.2–4.8× slower at
both sparsities: one row cannot pay for the indirection. So zeros pay on this CPU only
for large batches at very high sparsity, and `sparsify`'s own measurement decides.

A sparsified model is for inference in this process: the saved run keeps dense masked
weights (safetensors stores dense tensors), and whoever loads it decides whether to call
`sparsify`.
"""

from __future__ import annotations

import statistics
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from trainlab.errors import RecipeError, RunError


def to_csr(weight: torch.Tensor) -> torch.Tensor:
    """`weight` as a CSR tensor (without torch's warning that CSR support is in beta)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Sparse CSR tensor support is in beta")
        return weight.detach().to_sparse_csr()


def sparse_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """`F.linear(x, weight, bias)` for a CSR `weight` (out × in): W·xᵀ as sparse × dense."""
    rows = x.reshape(-1, x.shape[-1])
    if bias is None:
        out = torch.sparse.mm(weight, rows.t()).t()
    else:
        out = torch.addmm(bias.unsqueeze(1), weight, rows.t()).t()
    return out.reshape(*x.shape[:-1], weight.shape[0])


class SparseLinear(nn.Module):
    """A Linear layer whose weight is stored as CSR, computing the same outputs (to float
    rounding) with a sparse × dense product. Inference only: the weight is a buffer, not
    a parameter, so nothing trains it."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.register_buffer("weight", to_csr(linear.weight))
        bias = None if linear.bias is None else linear.bias.detach().clone()
        self.register_buffer("bias", bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The layer's output for `x` (…, in_features)."""
        return sparse_linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        nnz = self.weight.values().numel()
        total = self.in_features * self.out_features
        return f"in_features={self.in_features}, out_features={self.out_features}, " + (
            f"nonzeros={nnz}/{total}"
        )


def _calls_per_sample(fn: Callable[[], Any], min_sample_s: float) -> int:
    """How many calls of `fn` take at least `min_sample_s` (powers of 4, at most 4096)."""
    number = 1
    while number < 4096:
        start = time.perf_counter()
        for _ in range(number):
            fn()
        if time.perf_counter() - start >= min_sample_s:
            break
        number *= 4
    return number


def time_ms(
    fns: Sequence[Callable[[], Any]], repeats: int = 7, min_sample_s: float = 0.002
) -> list[float]:
    """Median milliseconds of one call of each of `fns`: two warm-up calls each, then
    `repeats` rounds in which each is timed once over as many calls as take
    `min_sample_s` (so sub-millisecond calls are timed over several), with
    `time.perf_counter`. The rounds interleave the functions, so a load that comes and
    goes on the machine weighs on all of them alike."""
    for fn in fns:
        fn()
        fn()
    numbers = [_calls_per_sample(fn, min_sample_s) for fn in fns]
    samples: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, number, times in zip(fns, numbers, samples, strict=True):
            start = time.perf_counter()
            for _ in range(number):
                fn()
            times.append((time.perf_counter() - start) / number)
    return [statistics.median(times) * 1000.0 for times in samples]


@torch.inference_mode()
def measure_linear(linear: nn.Linear, batch: int = 256, repeats: int = 15) -> dict[str, Any]:
    """Dense `F.linear` against the CSR product for one layer on this CPU, at `batch` rows
    of random input: {shape, sparsity, batch, threads, dense_ms, sparse_ms, speedup,
    faster}. Checks first that both give the same output (within 1e-5)."""
    w = linear.weight.detach().cpu().float()
    b = None if linear.bias is None else linear.bias.detach().cpu().float()
    csr = to_csr(w)
    x = torch.randn(batch, w.shape[1], generator=torch.Generator().manual_seed(0))
    dense, sparse = F.linear(x, w, b), sparse_linear(x, csr, b)
    if not torch.allclose(dense, sparse, rtol=1e-5, atol=1e-5):
        raise RuntimeError("the CSR product differs from the dense one (a torch bug?)")
    dense_ms, sparse_ms = time_ms(
        [lambda: F.linear(x, w, b), lambda: sparse_linear(x, csr, b)], repeats
    )
    return {
        "shape": list(w.shape),
        "sparsity": float((w == 0).float().mean()),
        "batch": batch,
        "threads": torch.get_num_threads(),
        "dense_ms": dense_ms,
        "sparse_ms": sparse_ms,
        "speedup": dense_ms / sparse_ms,
        "faster": sparse_ms < dense_ms,
    }


def _pruned_linears(
    model: nn.Module, masks: dict[str, torch.Tensor] | None
) -> dict[str, nn.Linear]:
    """Linear layers by module name: those whose weight `masks` names, or (None) every
    Linear layer holding at least one zero weight."""
    found = {}
    for name, module in model.named_modules():
        if not isinstance(module, nn.Linear):
            continue
        key = f"{name}.weight" if name else "weight"
        if (masks is not None and key in masks) or (masks is None and (module.weight == 0).any()):
            found[name] = module
    return found


def measure_sparse(
    model: nn.Module,
    masks: dict[str, torch.Tensor] | None = None,
    batch: int = 256,
    repeats: int = 15,
) -> dict[str, dict[str, Any]]:
    """`measure_linear` for each pruned Linear layer (see `_pruned_linears`), keyed by the
    weight's state-dict name. Conv layers are not measured: torch has no CSR convolution."""
    layers = _pruned_linears(model, masks)
    return {
        (f"{name}.weight" if name else "weight"): measure_linear(m, batch, repeats)
        for name, m in layers.items()
    }


def sparsify(
    model: nn.Module,
    min_speedup: float = 1.1,
    batch: int = 256,
    masks: dict[str, torch.Tensor] | None = None,
) -> tuple[nn.Module, dict[str, dict[str, Any]]]:
    """Replace by `SparseLinear` each pruned Linear layer whose CSR product was measured
    at least `min_speedup` times faster than dense at `batch` on this CPU; the others stay
    dense. In place (also returned), with `measure_sparse`'s report plus `swapped` per
    layer. The model must be on the CPU, where the measurement was made."""
    if not min_speedup > 0:
        raise RecipeError(f"sparsify: min_speedup must be positive (got {min_speedup}), e.g. 1.1")
    devices = {p.device.type for p in model.parameters()}
    if devices - {"cpu"}:
        raise RunError(
            f"sparsify: the model is on {sorted(devices - {'cpu'})[0]}; sparse layers are "
            "measured and used on the CPU, so move it first (model.cpu())"
        )
    report = measure_sparse(model, masks, batch)
    for key, row in report.items():
        name = key.removesuffix("weight").removesuffix(".")
        row["swapped"] = bool(name) and row["speedup"] >= min_speedup  # a bare Linear stays
        if row["swapped"]:
            parent_name, _, child = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            setattr(parent, child, SparseLinear(getattr(parent, child)))
    return model, report
