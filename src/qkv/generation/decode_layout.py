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

So, while :func:`decode_layout` is active, every CPU ``nn.Linear`` of the model computes from a
copy of its weight in the fastest layout available: oneDNN's blocked layout
(``torch.ops.mkldnn._linear_pointwise`` on a weight reordered for batch 1) where PyTorch was
built with oneDNN, else, for float32, a contiguous (in, out) copy used by ``addmm``.
Parameters themselves are untouched and every module's forward is restored on exit. Outputs
equal the usual path up to summation order.

The copies double the weights' memory. Making them takes ~0.1-0.6 s for GPT-2 small, so with
``keep=True`` (what ``qkv.generate`` uses) they are kept for the next call, remade only when a
weight changes (in-place updates bump its version), and freed by
:func:`release_decode_layout` or when the model is garbage-collected.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
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


def _layout_for(weight: Tensor) -> str | None:
    """'packed', 'in_out' or None (keep nn.Linear) for one weight."""
    if weight.device.type != "cpu" or weight.dtype not in (torch.float32, torch.bfloat16):
        return None
    if _packing_works(weight.dtype):
        return "packed"
    return "in_out" if weight.dtype == torch.float32 else None


def worth_it(model: nn.Module, *, max_bytes: int = 2**30) -> bool:
    """True where a faster decode layout exists for every linear weight (float32 or bfloat16
    on CPU) and the weights are small enough (≤ ``max_bytes``, 1 GiB by default) that a
    second copy is cheap."""
    weights = [m.weight for m in model.modules() if isinstance(m, nn.Linear)]
    if not weights or any(_layout_for(w) is None for w in weights):
        return False
    return sum(w.numel() * w.element_size() for w in weights) <= max_bytes


# nn.Linear -> (what its weight and bias were when copied, the replacement forward)
_KEPT: WeakKeyDictionary[nn.Linear, tuple[tuple, Callable[[Tensor], Tensor] | None]] = (
    WeakKeyDictionary()
)


def _identity(module: nn.Linear) -> tuple:
    """Changes whenever the weight or bias is replaced or updated in place."""
    tensors = [module.weight] + ([] if module.bias is None else [module.bias])
    return tuple((t.data_ptr(), t._version, t.dtype, t.device, t.shape) for t in tensors)


def release_decode_layout(model: nn.Module) -> None:
    """Free the weight copies kept by ``decode_layout(model, keep=True)``."""
    for module in model.modules():
        _KEPT.pop(module, None)  # type: ignore[call-overload]


def _replacement(module: nn.Linear, keep: bool) -> Callable[[Tensor], Tensor] | None:
    if keep:
        kept = _KEPT.get(module)
        identity = _identity(module)
        if kept is not None and kept[0] == identity:
            return kept[1]
        replacement = _make_replacement(module)
        _KEPT[module] = (identity, replacement)
        return replacement
    _KEPT.pop(module, None)
    return _make_replacement(module)


def _make_replacement(module: nn.Linear) -> Callable[[Tensor], Tensor] | None:
    weight = module.weight.detach()
    bias = None if module.bias is None else module.bias.detach()
    layout = _layout_for(weight)
    if layout == "packed":
        return _PackedLinear(weight, bias)
    if layout == "in_out":
        return _InOutLinear(weight.t().contiguous(), bias)  # (in, out)
    return None


@contextmanager
def decode_layout(model: nn.Module, *, enabled: bool = True, keep: bool = False) -> Iterator[None]:
    """While active, the model's CPU nn.Linear layers compute from weight copies in the
    fastest measured layout (see the module docstring). Inference only: no gradients flow
    through the copies. ``keep=True`` keeps the copies for the next call (until a weight
    changes or :func:`release_decode_layout`).

    Example::

        >>> with torch.inference_mode(), decode_layout(model, enabled=worth_it(model)):
        ...     logits = model(token[:, None], cache=cache)
    """
    if not enabled:
        yield
        return
    patched: list[nn.Linear] = []
    try:
        with torch.no_grad():
            for module in model.modules():
                if isinstance(module, nn.Linear) and "forward" not in module.__dict__:
                    replacement = _replacement(module, keep)
                    if replacement is not None:
                        module.forward = replacement  # type: ignore[method-assign]
                        patched.append(module)
        yield
    finally:
        for module in patched:
            del module.forward
