"""ALiBi (Press et al., "Train Short, Test Long", 2022): per-head linear distance penalties.

``qkv.attention(..., alibi_slopes=s)`` adds −s_h·|i + Nk − Nq − j| to the scores of head h;
:func:`alibi_slopes` gives the slopes of the paper.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def _power_of_two_slopes(n_heads: int) -> list[float]:
    start = 2.0 ** (-8.0 / n_heads)  # the geometric sequence 2^(-8/n), 2^(-16/n), ...
    return [start ** (head + 1) for head in range(n_heads)]


def alibi_slopes(n_heads: int, *, device: torch.device | str | None = None) -> Tensor:
    """The standard ALiBi slopes, shape (n_heads,), float32.

    For a power of two n the slopes are 2^(-8/n·h) for h = 1..n. Otherwise (as in the
    paper's reference code) take the n' = 2^⌊log2 n⌋ slopes and then every other slope of
    the 2n' sequence until there are n.

    Example::

        >>> alibi_slopes(8)
        tensor([0.5000, 0.2500, 0.1250, 0.0625, 0.0312, 0.0156, 0.0078, 0.0039])
        >>> out = qkv.attention(q, k, v, causal=True, alibi_slopes=alibi_slopes(q.shape[1]))
    """
    if isinstance(n_heads, bool) or not isinstance(n_heads, int) or n_heads < 1:
        raise ValueError(f"n_heads must be a positive int, got {n_heads!r}")
    closest = 2 ** int(math.floor(math.log2(n_heads)))
    slopes = _power_of_two_slopes(closest)
    if closest != n_heads:
        slopes += _power_of_two_slopes(2 * closest)[0::2][: n_heads - closest]
    return torch.tensor(slopes, dtype=torch.float32, device=device)
