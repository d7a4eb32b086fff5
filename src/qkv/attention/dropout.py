"""Counter-based attention dropout: the keep/drop decision for score (b, h, i, j) is a pure
function of (seed, b, h, i, j), so a blockwise backend can regenerate exactly the mask its
forward used, block by block, and ``reference`` and ``tiled`` agree bit for bit.

The hash is SplitMix64's finaliser over a linear combination of the coordinates, computed with
int64 tensor arithmetic (wrap-around multiplication; logical shifts emulated with masks).
"""

from __future__ import annotations

import torch
from torch import Tensor

_GOLDEN = -7046029254386353131  # 0x9E3779B97F4A7C15 as signed int64
_MIX1 = -4658895280553007687  # 0xBF58476D1CE4E5B9
_MIX2 = -7723592293110705685  # 0x94D049BB133111EB
_PRIME_B, _PRIME_H, _PRIME_I = 0x100000001B3, 0x9E3779B1, 0x85EBCA77


def _shr(x: Tensor, bits: int) -> Tensor:
    """Logical right shift of int64 values."""
    return (x >> bits) & ((1 << (64 - bits)) - 1)


def _mix(x: Tensor) -> Tensor:
    x = (x ^ _shr(x, 30)) * _MIX1
    x = (x ^ _shr(x, 27)) * _MIX2
    return x ^ _shr(x, 31)


def keep_mask(
    seed: int,
    p: float,
    batch_idx: Tensor,
    head_idx: Tensor,
    rows: Tensor,
    cols: Tensor,
) -> Tensor:
    """Boolean keep mask (True = kept) of shape broadcast(batch_idx, head_idx, rows, cols).

    Each index tensor holds int64 positions already shaped for broadcasting, e.g.
    batch_idx (B, 1, 1, 1), head_idx (1, H, 1, 1), rows (1, 1, Nr, 1), cols (1, 1, 1, Nc).
    An element is kept with probability 1 - p.
    """
    x = seed + batch_idx * _PRIME_B
    x = x * _GOLDEN + head_idx * _PRIME_H
    x = _mix(x) + rows * _PRIME_I
    x = _mix(x) + cols
    x = _mix(x * _GOLDEN)
    uniform = _shr(x, 11).to(torch.float64) * (1.0 / (1 << 53))  # [0, 1)
    return uniform >= p


def full_keep_mask(
    seed: int, p: float, batch: int, heads: int, q_len: int, k_len: int, device: torch.device
) -> Tensor:
    """The whole (B, H, Nq, Nk) keep mask; what ``reference`` uses."""
    idx = lambda n: torch.arange(n, device=device, dtype=torch.int64)  # noqa: E731
    return keep_mask(
        seed,
        p,
        idx(batch).view(-1, 1, 1, 1),
        idx(heads).view(1, -1, 1, 1),
        idx(q_len).view(1, 1, -1, 1),
        idx(k_len).view(1, 1, 1, -1),
    )
