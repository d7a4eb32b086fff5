"""Faster weight layouts for CPU decoding, applied temporarily.

Decoding multiplies one row per sequence by every weight matrix, so it is bound by how fast
the weights stream from memory, and PyTorch's default CPU matrix-vector product leaves much of
the bandwidth unused. Measured on 2026-11-24 (AMD EPYC with AVX-512 BF16, torch 2.13 CPU,
2 threads), streaming the 49 GPT-2-small weight matrices once, as one decode step does:

=========================  ==============  ===============
layout                     float32         bfloat16
=========================  ==============  ===============
nn.Linear, (out, in)       26.0 ms         8.6 ms
``addmm``, (in, out) copy  20.3 ms         12.4 ms
oneDNN-packed weights      13.4 ms         5.9 ms
=========================  ==============  ===============

On an AMD EPYC with AVX2 only (2026-12-02, torch 2.13 CPU, oneDNN 3.12, 2 cores shared with
other jobs, so the rates are low and only their ratios mean much), the picture differs: a
oneDNN-packed batch-1 linear is *slower* than ``nn.Linear`` (0.7-0.9 ms vs 0.5-0.7 ms for a
SmolLM2-sized 960x576 or 576x1536 matrix) and costs ~0.2 ms per call more at any size, which
the 151 small linears of a SmolLM2-135M step pay 151 times. MKL's product with a contiguous
(in, out) copy streams ~1.5-2x faster than ``nn.Linear`` where out > in (a 3072x576
gate+up, 6.7 vs 4.0 GB/s; the 49152x576 head, 8.2 vs 4.4 GB/s) and slower where in > out
(576x1536: 3.7 vs 5.3 GB/s). bfloat16 has no native support there, and ``nn.Linear`` is the
fastest bf16 layout (an (in, out) bf16 copy is 4-20x slower).

So, while :func:`decode_layout` is active, CPU ``nn.Linear`` layers compute from a copy of
their weight in the fastest layout measured for the CPU (``layout="auto"``, see
:func:`layout_for`): oneDNN's blocked layout (``torch.ops.mkldnn._linear_pointwise`` on a
weight reordered for batch 1) on AVX-512 CPUs where PyTorch was built with oneDNN; elsewhere,
for float32 weights with more outputs than inputs, a contiguous (in, out) copy used by
``addmm``; other layers keep ``nn.Linear``. ``layout="packed"`` or ``"in_out"`` forces one
(for every layer it can serve). Parameters themselves are untouched and every module's
forward is restored on exit. Outputs equal the usual path up to summation order.

The copies cost memory (up to the weights' size again). Making them takes ~0.1-0.6 s for
GPT-2 small, so with ``keep=True`` (what ``qkv.generate`` uses) they are kept for the next
call, remade only when a weight changes (in-place updates bump its version), and freed by
:func:`release_decode_layout` or when the model is garbage-collected.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from typing import Literal
from weakref import WeakKeyDictionary

import torch
from torch import Tensor, nn


class _InOutLinear:
    """Replacement forward for one nn.Linear: y = bias + x @ weight_in_out."""

    def __init__(self, weight_in_out: Tensor, bias: Tensor | None) -> None:
        self.weight_in_out = weight_in_out  # (in, out), contiguous
        self.bias = bias

    def __call__(self, x: Tensor) -> Tensor:
        rows = x.reshape(-1, x.shape[-1])  # (N, in)
        if self.bias is not None:
            out = torch.addmm(self.bias, rows, self.weight_in_out)
        else:
            out = rows @ self.weight_in_out
        return out.view(*x.shape[:-1], out.shape[-1])  # (..., out)


class _PackedLinear:
    """Replacement forward for one nn.Linear: oneDNN's linear on a prepacked weight."""

    def __init__(self, weight: Tensor, bias: Tensor | None) -> None:
        self.packed = torch.ops.mkldnn._reorder_linear_weight(weight, 1)  # opaque, (out, in)
        self.bias = bias
        self.out_features = weight.shape[0]

    def __call__(self, x: Tensor) -> Tensor:
        rows = x.reshape(-1, x.shape[-1])  # (N, in)
        if not rows.is_contiguous():
            rows = rows.contiguous()
        out = torch.ops.mkldnn._linear_pointwise(rows, self.packed, self.bias, "none", [], "")
        return out.view(*x.shape[:-1], self.out_features)  # (..., out)


@cache
def _packing_works(dtype: torch.dtype) -> bool:
    """True where this PyTorch build can pack and run a ``dtype`` weight through oneDNN and
    gets the same answer as F.linear (checked once per dtype on a small case)."""
    if not torch.backends.mkldnn.is_available():
        return False
    if dtype == torch.bfloat16 and not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return False
    try:
        generator = torch.Generator().manual_seed(0)
        weight = torch.randn(24, 40, generator=generator).to(dtype)
        bias = torch.randn(24, generator=generator).to(dtype)
        x = torch.randn(3, 40, generator=generator).to(dtype)
        got = _PackedLinear(weight, bias)(x)
        expected = torch.nn.functional.linear(x, weight, bias)
        tolerance = 1e-4 if dtype == torch.float32 else 5e-2
        return bool(torch.allclose(got.float(), expected.float(), atol=tolerance, rtol=tolerance))
    except (RuntimeError, AttributeError):
        return False


Layout = Literal["auto", "packed", "in_out"]
_LAYOUTS = ("auto", "packed", "in_out")


def packing_pays() -> bool:
    """True on CPUs where oneDNN's packed batch-1 linear was measured faster than nn.Linear
    (AVX-512; on AVX2 it was slower, see the module docstring)."""
    return torch.backends.cpu.get_cpu_capability().startswith("AVX512")


def layout_for(weight: Tensor, layout: Layout = "auto") -> str | None:
    """'packed', 'in_out' or None (keep nn.Linear) for one (out, in) weight under ``layout``."""
    if weight.device.type != "cpu" or weight.dtype not in (torch.float32, torch.bfloat16):
        return None
    can_pack = _packing_works(weight.dtype)
    if layout == "packed" or (layout == "auto" and can_pack and packing_pays()):
        return "packed" if can_pack else None
    if weight.dtype != torch.float32:
        return None  # an (in, out) bf16 copy is several times slower than nn.Linear
    if layout == "in_out" or weight.shape[0] > weight.shape[1]:
        return "in_out"
    return None


def _check_layout(layout: str) -> None:
    if layout not in _LAYOUTS:
        raise ValueError(f"layout must be one of {_LAYOUTS}, got {layout!r}")


def copy_bytes(model: nn.Module, layout: Layout = "auto") -> int:
    """Bytes of the weight copies :func:`decode_layout` makes for ``model`` under ``layout``."""
    _check_layout(layout)
    weights = {id(m.weight): m.weight for m in model.modules() if isinstance(m, nn.Linear)}
    return sum(
        w.numel() * w.element_size() for w in weights.values() if layout_for(w, layout) is not None
    )


def worth_it(model: nn.Module, *, max_bytes: int = 2**31, layout: Layout = "auto") -> bool:
    """True where a faster decode layout exists for some linear weight (float32, or bfloat16
    on CPUs that pack it, on CPU) and its copies are small enough (≤ ``max_bytes``, 2 GiB by
    default) to be cheap beside the model."""
    size = copy_bytes(model, layout)
    return 0 < size <= max_bytes


def describe_layout(model: nn.Module, layout: Layout = "auto") -> str:
    """What :func:`decode_layout` does to ``model`` on this CPU, e.g. ``"in_out for 91 of 151
    linears (1.0 GiB of copies; CPU AVX2)"``."""
    chosen: dict[str, int] = {}
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    for module in linears:
        kind = layout_for(module.weight, layout) or "nn.Linear"
        chosen[kind] = chosen.get(kind, 0) + 1
    parts = ", ".join(f"{kind} for {n}" for kind, n in sorted(chosen.items()))
    size = copy_bytes(model, layout) / 2**30
    capability = torch.backends.cpu.get_cpu_capability()
    return f"{parts} of {len(linears)} linears ({size:.2f} GiB of copies; CPU {capability})"


# nn.Linear -> (what its weight and bias were when copied, the replacement forward)
_KEPT: WeakKeyDictionary[nn.Linear, tuple[tuple, Callable[[Tensor], Tensor] | None]] = (
    WeakKeyDictionary()
)


def _identity(module: nn.Linear, layout: Layout) -> tuple:
    """Changes whenever the weight or bias is replaced or updated in place, or the layout."""
    tensors = [module.weight] + ([] if module.bias is None else [module.bias])
    return (layout, *((t.data_ptr(), t._version, t.dtype, t.device, t.shape) for t in tensors))


def release_decode_layout(model: nn.Module) -> None:
    """Free the weight copies kept by ``decode_layout(model, keep=True)``."""
    for module in model.modules():
        _KEPT.pop(module, None)  # type: ignore[call-overload]


def _replacement(
    module: nn.Linear, keep: bool, layout: Layout
) -> Callable[[Tensor], Tensor] | None:
    if keep:
        kept = _KEPT.get(module)
        identity = _identity(module, layout)
        if kept is not None and kept[0] == identity:
            return kept[1]
        replacement = _make_replacement(module, layout)
        _KEPT[module] = (identity, replacement)
        return replacement
    _KEPT.pop(module, None)
    return _make_replacement(module, layout)


def _make_replacement(module: nn.Linear, layout: Layout) -> Callable[[Tensor], Tensor] | None:
    weight = module.weight.detach()
    bias = None if module.bias is None else module.bias.detach()
    chosen = layout_for(weight, layout)
    if chosen == "packed":
        return _PackedLinear(weight, bias)
    if chosen == "in_out":
        return _InOutLinear(weight.t().contiguous(), bias)  # (in, out)
    return None


@contextmanager
def decode_layout(
    model: nn.Module, *, enabled: bool = True, keep: bool = False, layout: Layout = "auto"
) -> Iterator[None]:
    """While active, the model's CPU nn.Linear layers compute from weight copies in the
    fastest layout measured for this CPU (``layout="auto"``, see the module docstring), or in
    the named one (``"packed"``, ``"in_out"``) where it can serve the weight. Inference only:
    no gradients flow through the copies. ``keep=True`` keeps the copies for the next call
    (until a weight changes, the layout differs, or :func:`release_decode_layout`).

    Example::

        >>> with torch.inference_mode(), decode_layout(model, enabled=worth_it(model)):
        ...     logits = model(token[:, None], cache=cache)
    """
    _check_layout(layout)
    if not enabled:
        yield
        return
    patched: list[nn.Linear] = []
    try:
        with torch.no_grad():
            for module in model.modules():
                if isinstance(module, nn.Linear) and "forward" not in module.__dict__:
                    replacement = _replacement(module, keep, layout)
                    if replacement is not None:
                        module.forward = replacement  # type: ignore[method-assign]
                        patched.append(module)
        yield
    finally:
        for module in patched:
            del module.forward
