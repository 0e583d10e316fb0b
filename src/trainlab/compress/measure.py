"""What a compressed model costs and scores, measured the same way before and after.

Accuracy on the validation and test splits; parameters and non-zero parameters; the
size of the weights as stored (dense safetensors float32 — masked zeros cost as much as
any weight — and, for comparison, as a CSR file would hold them); multiply-accumulates
of one sample (torch's FlopCounterMode on the float model); and real CPU latency at
batch 1 and batch 256: warm-up, then the median of timed repeats under
`torch.inference_mode`, with the thread count recorded. Both models are measured in one
process, alternately, so a busy machine slows both alike.
"""

from __future__ import annotations

import io
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
from torch import nn

from trainlab.compress.context import CompressContext

LATENCY_BATCHES = (1, 256)


@dataclass
class Measurement:
    """One model's figures (`--json`'s `before` / `after`)."""

    test_accuracy: float
    val_accuracy: float | None
    params: int
    nonzero_params: int
    size_bytes: int
    sparse_size_bytes: int
    macs: int
    latency_ms_b1: float
    latency_ms_b256: float
    threads: int

    def to_dict(self) -> dict:
        """Plain numbers for JSON."""
        return asdict(self)


def weight_counts(model: nn.Module) -> tuple[int, int]:
    """(parameters, non-zero parameters) of a float model (quantization keeps both)."""
    params = list(model.parameters())
    return sum(p.numel() for p in params), sum(int(torch.count_nonzero(p)) for p in params)


def _is_quantized(model: nn.Module) -> bool:
    return any(getattr(t, "is_quantized", False) for t in model.state_dict().values()) or any(
        "quantized" in type(m).__module__ for m in model.modules()
    )


def size_bytes(model: nn.Module) -> int:
    """Bytes of the weights as a file holds them: safetensors for a float model (masked
    zeros cost as much as any weight); a quantized model's packed int8 state serialized
    by torch (measured only: trainlab stores float weights and quantizes at load)."""
    state = model.state_dict()
    if _is_quantized(model):
        buffer = io.BytesIO()
        torch.save(state, buffer)
        return buffer.getbuffer().nbytes
    from safetensors.torch import save

    tensors = {k: v.detach().contiguous() for k, v in state.items() if isinstance(v, torch.Tensor)}
    return len(save(tensors))


def sparse_size_bytes(model: nn.Module) -> int:
    """Bytes a CSR encoding of the float model's 2-D and larger weights would take
    (values + 32-bit column indices + row pointers; never more than dense)."""
    total = 0
    for t in model.state_dict().values():
        if not isinstance(t, torch.Tensor) or getattr(t, "is_quantized", False):
            continue
        nbytes = t.numel() * t.element_size()
        if t.ndim >= 2:
            rows, nnz = t.shape[0], int(torch.count_nonzero(t))
            nbytes = min(nbytes, nnz * (t.element_size() + 4) + (rows + 1) * 4)
        total += nbytes
    return total


def macs(model: nn.Module, sample: torch.Tensor) -> int:
    """Multiply-accumulates of one sample (half the FLOPs torch counts); 0 when the model
    runs operators the counter does not know (quantized kernels)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    try:
        with torch.no_grad(), counter:
            model(sample[:1])
    except Exception:  # quantized or custom kernels the counter cannot trace
        return 0
    return int(counter.get_total_flops() // 2)


def latency_ms(model: nn.Module, x: torch.Tensor, repeats: int = 15, warmup: int = 3) -> float:
    """Median wall time of one forward pass of `x`, in milliseconds."""
    times = []
    with torch.inference_mode():
        for i in range(warmup + repeats):
            start = time.perf_counter()
            model(x)
            if i >= warmup:
                times.append(time.perf_counter() - start)
    return 1000.0 * statistics.median(times)


def latency_batch(ctx: CompressContext, size: int) -> torch.Tensor:
    """`size` test inputs (repeated when the split is smaller)."""
    x, _ = ctx.prepared.tensors("test", limit=size)
    if len(x) < size:
        x = x.repeat((size + len(x) - 1) // len(x), *([1] * (x.ndim - 1)))[:size]
    return x


def measure(
    models: dict[str, nn.Module],
    ctx: CompressContext,
    float_models: dict[str, nn.Module] | None = None,
    repeats: int = 15,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Measurement]:
    """Figures of each named model; latencies taken alternately, model by model, so the
    machine's state weighs on all alike. `float_models` gives the float model to count
    MACs on for a quantized one."""
    float_models = float_models or {}
    batches = {b: latency_batch(ctx, b) for b in LATENCY_BATCHES}
    latencies: dict[str, dict[int, list[float]]] = {n: {b: [] for b in batches} for n in models}
    for _ in range(3):  # three alternating rounds, each a median of repeats
        for name, model in models.items():
            model.eval()
            for b, x in batches.items():
                latencies[name][b].append(latency_ms(model, x, repeats))
    out = {}
    for name, model in models.items():
        if progress:
            progress(f"measuring {name}")
        out[name] = _figures(model, ctx, float_models.get(name, model), latencies[name], batches)
    return out


def _figures(model, ctx, float_model, lat, batches) -> Measurement:
    """Scores, counts and sizes of one model, with its measured latencies."""
    has_val = len(ctx.prepared.splits.val) > 0
    params, nonzero = weight_counts(float_model)
    return Measurement(
        test_accuracy=round(ctx.score(model, "test"), 6),
        val_accuracy=round(ctx.score(model, "val"), 6) if has_val else None,
        params=params,
        nonzero_params=nonzero,
        size_bytes=size_bytes(model),
        sparse_size_bytes=sparse_size_bytes(float_model),
        macs=macs(float_model, batches[1]),
        latency_ms_b1=round(statistics.median(lat[1]), 4),
        latency_ms_b256=round(statistics.median(lat[256]), 4),
        threads=torch.get_num_threads(),
    )
