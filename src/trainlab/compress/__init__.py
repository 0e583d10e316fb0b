"""Compression of a trained run: pruning (magnitude, neurons/channels by activation,
structured with Torch-Pruning's dependency graph) and int8 quantization, measured as
accuracy, size, MACs and real CPU latency, and proved against training the small
architecture from scratch.

The pieces are separate, as in Torch-Pruning: `importance` (which units matter),
`slicing` (how a layer is physically narrowed), `masks`/`magnitude` (which weights are
zeroed), `structured` (what must be removed together), `quantize`, `measure`, and
`api` (the command: a source run in, a new run out).
"""

import sys
import types


class _CallableModule(types.ModuleType):
    """`trainlab.compress(run_dir, ...)` calls `api.compress` (the package stays a package)."""

    def __call__(self, *args, **kwargs):
        from trainlab.compress.api import compress

        return compress(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
