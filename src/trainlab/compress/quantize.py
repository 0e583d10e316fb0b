"""int8 quantization on the CPU: `trainlab compress --quantize int8`.

Dynamic int8 (weights int8 ahead of time, activations quantized per batch at run time)
for `nn.LSTM`, `nn.GRU` and every `nn.Linear` of at least `MIN_LINEAR_WEIGHTS` weights,
through `torch.ao.quantization.quantize_dynamic` on the quantized engine torch reports
(x86 here; fbgemm/onednn/qnnpack elsewhere). torch 2.13 marks `torch.ao.quantization`
deprecated in favour of torchao (not a dependency): its warnings are caught into the
details, never printed, and a torch without a working `quantize_dynamic` gets a one-line
RecipeError rather than a float model named int8.

Dynamic int8 is a function of the float weights alone, so a quantized run stores float
weights and `quantize_for_inference` rebuilds the int8 model at load (predict.load): the
loaded model gives exactly the outputs compress measured.

Static int8 (FX: prepare_fx/convert_fx, the x86 mapping with min/max observers,
calibrated on `calibration_batches` training batches; PT2E's X86InductorQuantizer is no
longer in torch.ao in 2.13) quantizes a model with convolutions: the recorded ranges
travel in the compressed run's recipe (`compression.calibration`), and
`quantize_for_inference(model, calibration)` rebuilds it exactly from them at load.

Measured on this machine (2 cores shared with other jobs, load average 4-5; torch
2.13.0+cpu, engine x86; trained shipped recipes; first 256 test rows; median of 30
interleaved runs under inference_mode after 5 warm-ups; one thread, as two threads only
measured the contention):

  run (test accuracy float → int8)         batch 1 ms          batch 256 ms
  adult_wide_deep, dynamic (0.8584→0.8583)  0.289 → 0.350 0.83x  0.567 → 0.563 1.01x
  polarity_bilstm, dynamic (0.7623→0.7628)  0.746 → 1.479 0.50x  68.4 → 57.1 1.20x
  mnist_cnn_bn, dynamic Linear (0.9750→0.9755) 0.277 → 0.293 0.95x 33.6 → 33.3 1.01x
  mnist_cnn_bn, static FX (0.9750→0.9765)   0.277 → 0.367 0.76x  33.6 → 11.2 3.01x

Why dynamic int8 misses 1.5x on the first two: each dynamic call quantizes its input
(~15 us whatever the size), and the int8 matrix products are a small share of the time.
In the BiLSTM (profile, batch 256) the gate matrix products are ~1/3 of the forward; the
cell's elementwise ops, the embedding lookup and attention's tanh stay float, so even
free matrix products would give ~1.5x. Wide & Deep's MLP is 0.17 of 0.57 ms (the rest is
embedding lookups) and its Linear layers are too small to gain. Dynamic convolutions
(nnqd.Conv2d after conv+BN folding) ran the seed CNN 1.47x faster but lost 0.95 point
(0.9750 → 0.9655; torch warns of their poor accuracy): not used.
"""

from __future__ import annotations

import copy
import math
import warnings
from typing import Any

import torch
from torch import nn

from trainlab.compress.context import CompressContext, MethodResult
from trainlab.compress.methods import METHODS, MethodOptions
from trainlab.errors import RecipeError

#: The layer types dynamic int8 replaces (exact types: subclasses such as
#: MultiheadAttention's NonDynamicallyQuantizableLinear stay float).
DYNAMIC_KINDS: tuple[type[nn.Module], ...] = (nn.Linear, nn.LSTM, nn.GRU)
#: The smallest Linear (in x out weights) dynamic int8 pays off on: measured at batch 256 on
#: one thread of this CPU, 64x10 ran 0.76x float's speed, 70x128 1.15x, 128x128 1.63x,
#: 256x256 2.65x (each call quantizes its input: ~15 us, whatever the layer's size).
MIN_LINEAR_WEIGHTS = 4096
#: Quantized engines in order of preference when the current one is unusable.
ENGINES = ("x86", "fbgemm", "onednn", "qnnpack")
#: What the static post-training measurement on the seed CNN found (module docstring).
STATIC_CONV_FINDING = (
    "static int8 (calibrated, FX) ran the seed CNN 3.0x faster at batch 256 (0.76x at batch "
    "1); with it off (STATIC_CONV_SHIPPED) convolutions stay float"
)
#: Whether `int8` quantizes a conv model statically (calibrated activations): measured
#: 3.0x at batch 256 on the seed CNN (module docstring). The run carries the calibration
#: (`compression.calibration`) to load time, so the loaded model is the one measured.
STATIC_CONV_SHIPPED = True
_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_NORMS = (nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm)


def quantized_engine() -> str:
    """The quantized engine the int8 kernels run on (weights are packed for it).

    The current `torch.backends.quantized.engine` when it is a real one, else the first
    supported of `ENGINES` (set globally, as torch's quantized kernels read it).
    """
    supported = [e for e in torch.backends.quantized.supported_engines if e != "none"]
    current = torch.backends.quantized.engine
    if current in supported:
        return current
    for name in ENGINES:
        if name in supported:
            torch.backends.quantized.engine = name
            return name
    raise RecipeError(
        f"int8: this torch build ({torch.__version__}) has no quantized CPU engine "
        f"(supported: {torch.backends.quantized.supported_engines}); install a torch "
        "build for x86 or ARM CPUs, or compress without --quantize"
    )


def _is_router(parent: nn.Module | None, leaf: str) -> bool:
    """Whether a Linear is a mixture of experts' router (kept float: see `_float_reason`)."""
    from trainlab.models.layers import MixtureOfExperts

    return isinstance(parent, MixtureOfExperts) and leaf == "router"


def _float_reason(parent: nn.Module | None, leaf: str, module: nn.Module) -> str:
    """Why a layer with weights stays float."""
    if _is_router(parent, leaf):
        return "mixture-of-experts router: int8 error could change which experts are chosen"
    if isinstance(module, _CONV):
        return f"convolution: {STATIC_CONV_FINDING}"
    if isinstance(module, nn.Embedding | nn.EmbeddingBag):
        return "table lookup: int8 would shrink it but not speed it up"
    if isinstance(module, _NORMS):
        return "normalization: a few numbers per channel, kept float"
    if isinstance(module, DYNAMIC_KINDS):
        return f"a subclass of {type(module).__mro__[1].__name__} that dynamic int8 leaves alone"
    return "its parameters are used directly in its forward (no Linear/LSTM/GRU call)"


def plan(model: nn.Module) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Which layers dynamic int8 quantizes and which layers with weights stay float (why).

    Decided from the model's structure alone, so `quantize_for_inference` makes the
    same choice at load as the method did at compress time. A Linear under
    `MIN_LINEAR_WEIGHTS` weights stays float unless every one is that small. Each entry
    is a dict with `name` (the module's path; "" for the model itself), `kind` (its
    class) and `params` (its own parameter count); float ones add `reason`.
    """
    quantized, small, kept = [], [], []
    modules = dict(model.named_modules())
    for name, module in modules.items():
        own = sum(p.numel() for p in module.parameters(recurse=False))
        parent_name, _, leaf = name.rpartition(".")
        parent = modules.get(parent_name) if name else None
        entry: dict[str, Any] = {"name": name, "kind": type(module).__name__, "params": own}
        if isinstance(module, nn.Linear):
            entry["shape"] = [module.out_features, module.in_features]
        if type(module) not in DYNAMIC_KINDS or _is_router(parent, leaf):
            if own:
                kept.append({**entry, "reason": _float_reason(parent, leaf, module)})
        elif isinstance(module, nn.Linear) and module.weight.numel() < MIN_LINEAR_WEIGHTS:
            small.append(entry)
        else:
            quantized.append(entry)
    if not quantized:  # every Linear is small: int8 as asked, though it will not pay
        return small, kept
    reason = f"under {MIN_LINEAR_WEIGHTS} weights: quantizing its input costs more than int8 saves"
    return quantized, kept + [{**e, "reason": reason} for e in small]


def _no_layer_error(model: nn.Module, model_name: str, kept: list[dict[str, Any]]) -> RecipeError:
    """The one-line error for a model dynamic int8 cannot touch."""
    if any("quantized" in type(m).__module__ for m in model.modules()):
        return RecipeError(
            f"int8: model '{model_name}' is already quantized; compress its float source "
            "run instead (trainlab compress SOURCE_RUN --quantize int8)"
        )
    kinds = sorted({k["kind"] for k in kept}) or ["none with weights"]
    return RecipeError(
        f"int8: model '{model_name}' has no Linear, LSTM or GRU layer to quantize (its "
        f"layers: {', '.join(kinds)}); prune it instead (--prune channels:0.5) or give a "
        "model with a dense layer"
    )


def _check_cpu(model: nn.Module) -> None:
    """Dynamic int8 kernels are CPU kernels: refuse a model on another device."""
    devices = {p.device.type for p in model.parameters()}
    if devices - {"cpu"}:
        raise RecipeError(
            f"int8: the model is on {', '.join(sorted(devices))}, but int8 kernels run on "
            "the CPU; compress or load the run with device cpu (--device cpu)"
        )


def _warning_lines(caught: list[warnings.WarningMessage]) -> list[str]:
    """The distinct warnings torch raised, first line of each (for details, not stderr)."""
    lines: list[str] = []
    for w in caught:
        line = f"{w.category.__name__}: {str(w.message).strip().splitlines()[0].strip()}"
        if line not in lines:
            lines.append(line)
    return lines


def _convert(model: nn.Module, names: list[str]) -> tuple[nn.Module, list[str]]:
    """`quantize_dynamic` on the named layers of a copy of `model`, its warnings caught.

    A RecipeError says so when torch.ao's dynamic quantization is missing or fails, rather
    than returning a float model under the name int8.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            from torch.ao.quantization import quantize_dynamic
        except ImportError as exc:
            raise RecipeError(
                f"int8: torch {torch.__version__} has no torch.ao.quantization."
                f"quantize_dynamic ({exc}); use a torch that has it (2.13 does) or "
                "compress without --quantize"
            ) from None
        root = type(model) in DYNAMIC_KINDS  # quantize_dynamic swaps children only
        target = nn.Sequential(model) if root else model
        spec = {"0" if root else n for n in names}
        try:
            quantized = quantize_dynamic(target, qconfig_spec=spec, dtype=torch.qint8)
        except Exception as exc:  # torch's message says what is unsupported
            raise RecipeError(
                f"int8: torch.ao.quantization.quantize_dynamic failed on this model "
                f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
                "compress without --quantize"
            ) from None
    return (quantized[0] if root else quantized), _warning_lines(caught)


def _quantize(model: nn.Module, model_name: str) -> tuple[nn.Module, dict[str, Any]]:
    """A dynamic-int8 copy of `model` and the facts of what was done (details)."""
    _check_cpu(model)
    quantized_layers, kept = plan(model)
    if not quantized_layers:
        raise _no_layer_error(model, model_name, kept)
    engine = quantized_engine()
    names = [e["name"] for e in quantized_layers]
    qmodel, caught = _convert(model.eval(), names)
    qmodules = dict(qmodel.named_modules())
    missed = [n or "(model)" for n in names if "quantized" not in type(qmodules[n]).__module__]
    if missed:
        raise RecipeError(
            f"int8: quantize_dynamic left {', '.join(missed)} float on engine '{engine}'; "
            "compress without --quantize"
        )
    for entry in quantized_layers:
        kind = type(qmodules[entry["name"]])
        entry["int8_kind"] = f"{kind.__module__}.{kind.__qualname__}"
    details = _layer_details(
        "dynamic int8: int8 weights, activations quantized per batch",
        "torch.ao.quantization.quantize_dynamic", engine, quantized_layers, kept,
    )  # fmt: skip
    details["warnings"] = caught
    if any(isinstance(m, _CONV) for m in model.modules()):
        details["static_conv"] = STATIC_CONV_FINDING
    return qmodel.eval(), details


def _static_mapping(engine: str):
    """The engine's default FX mapping with min/max activation observers, whose whole
    state is two numbers (JSON) and which the measurement in the docstring used."""
    from torch.ao.quantization import QConfig, get_default_qconfig_mapping
    from torch.ao.quantization.observer import MinMaxObserver, default_per_channel_weight_observer

    activation = MinMaxObserver.with_args(reduce_range=engine in ("x86", "fbgemm"))
    qconfig = QConfig(activation=activation, weight=default_per_channel_weight_observer)
    return get_default_qconfig_mapping(engine).set_global(qconfig)


def _observers(prepared: nn.Module) -> dict[str, nn.Module]:
    """The activation observers FX inserted, by name."""
    from torch.ao.quantization.observer import ObserverBase

    return {n: m for n, m in prepared.named_modules() if isinstance(m, ObserverBase)}


def _prepare_static(model: nn.Module, engine: str, example_shape: list[int]) -> nn.Module:
    """A traced copy of `model` with observers (FX `prepare_fx`); raises if untraceable."""
    from torch.ao.quantization.quantize_fx import prepare_fx

    example = (torch.zeros(example_shape),)
    return prepare_fx(copy.deepcopy(model).eval(), _static_mapping(engine), example)


def _buffers(observer: nn.Module) -> dict[str, list]:
    """An observer's state as JSON: buffer name → [dtype, values]."""
    return {
        k: [str(v.dtype).removeprefix("torch."), v.tolist()]
        for k, v in observer.state_dict().items()
    }


def calibrate_static(model: nn.Module, batches, max_batches: int) -> dict[str, Any]:
    """Static int8's calibration: the activation ranges seen on `max_batches` batches.

    JSON-able ({"engine", "example_shape", "batches", "observers": name → buffers}), and
    with the float weights all `quantize_for_inference(model, calibration)` needs to
    rebuild the static model exactly. Raises what FX raises on an untraceable model.
    """
    engine, prepared, seen, shape = quantized_engine(), None, 0, []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao's deprecation warnings: not shown
        with torch.no_grad():
            for x, _ in batches:
                if seen >= max_batches:
                    break
                if prepared is None:
                    shape = [1, *x.shape[1:]]
                    prepared = _prepare_static(model, engine, shape)
                prepared(x)
                seen += 1
    if prepared is None:
        raise RecipeError("int8: no training batch to calibrate static int8 on")
    observers = {name: _buffers(obs) for name, obs in _observers(prepared).items()}
    return {"engine": engine, "example_shape": shape, "batches": seen, "observers": observers}


def _static_from(model: nn.Module, calibration: dict[str, Any]) -> nn.Module:
    """The static int8 model from the float weights and a `calibrate_static` record."""
    from torch.ao.quantization.quantize_fx import convert_fx

    engine = calibration["engine"]
    if engine not in torch.backends.quantized.supported_engines:
        raise RecipeError(
            f"int8: this run was calibrated for the '{engine}' engine, which this torch "
            f"lacks ({torch.backends.quantized.supported_engines}); load it on an x86 CPU"
        )
    torch.backends.quantized.engine = engine
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prepared = _prepare_static(model, engine, calibration["example_shape"])
        observers = _observers(prepared)
        if set(observers) != set(calibration["observers"]):
            raise RecipeError(
                "int8: the run's calibration does not match its model's layers; compress "
                "the source run again"
            )
        for name, state in calibration["observers"].items():
            tensors = {k: torch.tensor(v, dtype=getattr(torch, d)) for k, (d, v) in state.items()}
            observers[name].load_state_dict(tensors)
        return convert_fx(prepared).eval()


def quantize_for_inference(
    model: nn.Module, calibration: dict[str, Any] | None = None
) -> nn.Module:
    """The int8 model of a quantized run, rebuilt from its float weights at load.

    What `trainlab compress --quantize int8` measured: the same layers, quantized the
    same way — dynamic int8 is a function of the weights alone; static int8 (given the
    `calibration` the method recorded in `details["calibration"]`) of the weights and
    those ranges — so the loaded model's outputs equal the compressed model's exactly.
    `model` is left float; a new module is returned, in eval mode. Warnings of the
    deprecated torch.ao API are not shown.
    """
    if calibration is not None:
        _check_cpu(model)
        return _static_from(model, calibration)
    return _quantize(model, type(model).__name__)[0]


def _static_details(model: nn.Module, qmodel: nn.Module, calibration: dict) -> dict[str, Any]:
    """What static int8 did to each float layer with weights (the `details`)."""
    qmodules = dict(qmodel.named_modules())
    quantized, kept = [], []
    for name, module in model.named_modules():
        own = sum(p.numel() for p in module.parameters(recurse=False))
        if not own:
            continue
        entry = {"name": name, "kind": type(module).__name__, "params": own}
        q = qmodules.get(name)
        if q is not None and "quantized" in type(q).__module__:
            kind = type(q)
            quantized.append({**entry, "int8_kind": f"{kind.__module__}.{kind.__qualname__}"})
        elif q is None:
            kept.append({**entry, "reason": "folded into the int8 layer before it (fusion)"})
        else:
            kept.append({**entry, "reason": "no int8 kernel for it: runs float between "
                         "dequantize and quantize"})  # fmt: skip
    details = _layer_details(
        "static int8: int8 weights (per channel) and activations (calibrated)",
        "torch.ao.quantization.quantize_fx (prepare_fx/convert_fx)", calibration["engine"],
        quantized, kept,
    )  # fmt: skip
    return {**details, "calibration": calibration, "warnings": []}


def _layer_details(scheme: str, api: str, engine: str, quantized: list, kept: list) -> dict:
    """What a quantization did, layer by layer: the shared part of both schemes' details."""
    return {
        "scheme": scheme,
        "api": api,
        "engine": engine,
        "supported_engines": list(torch.backends.quantized.supported_engines),
        "torch": torch.__version__,
        "quantized": quantized,
        "float": kept,
        "int8_params": sum(e["params"] for e in quantized),
        "float_params": sum(e["params"] for e in kept),
    }


def _try_static(model: nn.Module, ctx: CompressContext, options: MethodOptions):
    """Static int8 of a conv model: (model, details), or the reason it cannot be."""
    size = ctx.prepared.recipe.train.eval_batch_size
    batches = ctx.train_batches(options.calibration_batches * size)
    try:
        calibration = calibrate_static(model, batches, options.calibration_batches)
        qmodel = _static_from(model, calibration)  # as the loader will: from the record
    except RecipeError:
        raise
    except Exception as exc:  # FX cannot trace it (data-dependent control flow, …)
        return f"static int8 needs an FX-traceable model ({type(exc).__name__})"
    return qmodel, _static_details(model, qmodel, calibration)


def _notes(details: dict[str, Any], static_failed: str | None) -> list[str]:
    """The sentences a user of the int8 run must read."""
    static = "calibration" in details
    rebuilt = "from them and the recorded calibration" if static else "deterministic from them"
    notes = [
        f"The run stores float weights and quantizes them to int8 when it is loaded ({rebuilt}):"
        " model.safetensors is not smaller; the int8 size is the loaded model's.",
        f"torch {details['torch']} marks torch.ao.quantization deprecated in favour of "
        "torchao; it still works here (its warnings are caught, not shown"
        f"{'; details lists them' if details['warnings'] else ''}).",
    ]
    if static:
        notes.append(
            f"Static int8 calibrated on {details['calibration']['batches']} training batches; "
            "at batch 1 it can be slower than float (quantize/dequantize dominate)."
        )
    else:
        notes.append(
            "Dynamic int8 quantizes activations per batch at run time, so a row's outputs "
            "can change in the last digits with the rows batched beside it."
        )
    small = [e for e in details["float"] if e["reason"].startswith("under ")]
    if small:
        notes.append(
            f"{len(small)} Linear layer(s) under {MIN_LINEAR_WEIGHTS} weights stay float "
            f"({', '.join(e['name'] for e in small[:4])}): int8 would slow them down."
        )
    if all(math.prod(e.get("shape", [MIN_LINEAR_WEIGHTS])) < MIN_LINEAR_WEIGHTS
           for e in details["quantized"]):  # fmt: skip
        notes.append(
            f"Every Linear layer is under {MIN_LINEAR_WEIGHTS} weights: quantized as asked, "
            "but int8 is likely slower than float on such small layers."
        )
    convs = [e["name"] for e in details["float"] if e["kind"].startswith("Conv")]
    if convs:
        notes.append(
            f"Convolutions stay float ({', '.join(convs[:4])}{'…' if len(convs) > 4 else ''}); "
            f"only the Linear/LSTM/GRU layers are int8: {static_failed or STATIC_CONV_FINDING}."
        )
    return notes


@METHODS.register(
    "int8",
    description="int8 quantization on the CPU (dynamic Linear/LSTM/GRU layers)",
)
def build(
    model: nn.Module, amount: float | None, ctx: CompressContext, options: MethodOptions
) -> MethodResult:
    """`--quantize int8`: the model with its Linear, LSTM and GRU layers dynamic int8
    (a model with convolutions static int8, calibrated on `options.calibration_batches`
    training batches).

    `amount` is None (int8 has none). The selection-split score before and after goes
    into the details; `met_target` is False when int8 loses more than `ctx.target_drop`.
    """
    if amount is not None:
        raise RecipeError(f"int8 takes no amount (got int8:{amount:g}); write --quantize int8")
    name = ctx.prepared.recipe.model.name
    if ctx.prepared.device.type != "cpu":
        raise RecipeError(
            f"int8: the run is loaded on {ctx.prepared.device}, but int8 kernels run on the "
            "CPU; compress with --device cpu"
        )
    static: Any = None
    if STATIC_CONV_SHIPPED and any(isinstance(m, _CONV) for m in model.modules()):
        static = _try_static(model, ctx, options)
    if isinstance(static, tuple):
        qmodel, details = static
    else:
        qmodel, details = _quantize(copy.deepcopy(model), name)
        if isinstance(static, str):  # static int8 was tried and could not be
            details["static_conv"] = static
            for entry in details["float"]:
                if entry["kind"].startswith("Conv"):
                    entry["reason"] = f"convolution: {static}"
    return _scored(model, qmodel, details, ctx, name, static)


def _scored(model, qmodel, details, ctx: CompressContext, name: str, static) -> MethodResult:
    """The method's result: scores before/after in the details, notes, the target."""
    split = ctx.selection_split
    before = ctx.score(model, split)
    try:
        after = ctx.score(qmodel, split)
    except Exception as exc:  # a layer the model's forward uses as a float module
        raise RecipeError(
            f"int8: model '{name}' fails to run once quantized ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}); compress without --quantize"
        ) from None
    details["score"] = {"split": split, "float": before, "int8": after}
    notes = _notes(details, static if isinstance(static, str) else None)
    met = ctx.meets_target(after)
    if not met:
        notes.append(
            f"int8 scores {after:.4f} on {split} against the source's {ctx.reference_val:.4f}: "
            f"more than the target drop of {ctx.target_drop:g}."
        )
    ctx.progress(
        f"int8: {len(details['quantized'])} layers int8, {split} {before:.4f} → {after:.4f}"
    )
    return MethodResult(qmodel, "int8", details=details, notes=notes, met_target=met)
