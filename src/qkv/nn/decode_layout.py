"""A faster weight layout for CPU float32 decoding, applied temporarily.

Decoding multiplies one row per sequence by every weight matrix, so it is bound by how fast
the weights stream from memory. Measured on 2026-11-24 (AMD EPYC, torch 2.13 CPU, 1-2
threads, 40 GPT-2-sized (3072, 768) weights): ``x @ W`` with W stored (in, out) runs in
~0.75× the time of ``F.linear(x, W)`` with nn.Linear's (out, in) storage for float32, and is
slower for bfloat16. So, while :func:`decode_layout` is active, every float32 ``nn.Linear``
of the model computes ``addmm(bias, x, Wᵀ)`` from a contiguous (in, out) copy of its weight.
The copies double the weights' memory for the duration; parameters themselves are untouched
and every module's forward is restored on exit. Outputs equal the usual path up to float32
summation order.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

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


def worth_it(model: nn.Module, *, max_bytes: int = 2**30) -> bool:
    """True where the (in, out) layout measured faster: float32 weights on CPU, and small
    enough (≤ ``max_bytes``, 1 GiB by default) that a second copy is cheap."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        return False
    weights = [m.weight for m in linears]
    if any(w.dtype != torch.float32 or w.device.type != "cpu" for w in weights):
        return False
    return sum(w.numel() * w.element_size() for w in weights) <= max_bytes


@contextmanager
def decode_layout(model: nn.Module, *, enabled: bool = True) -> Iterator[None]:
    """While active, the model's nn.Linear layers compute from (in, out) weight copies.

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
                    weight = module.weight.detach().t().contiguous()  # (in, out)
                    bias = None if module.bias is None else module.bias.detach()
                    module.forward = _InOutLinear(weight, bias)  # type: ignore[method-assign]
                    patched.append(module)
        yield
    finally:
        for module in patched:
            del module.forward
