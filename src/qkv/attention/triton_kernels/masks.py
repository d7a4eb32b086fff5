"""Host-side mask analysis: which (query tile, key tile) pairs have any allowed key, and
whether a padding mask is a plain per-sequence key length."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def allowed_keys(mask: Tensor) -> Tensor:
    """Bool view of a mask: True where a key may be attended (float masks: score > −inf)."""
    if mask.dtype == torch.bool:
        return mask
    return ~torch.isneginf(mask)


def tile_table(mask: Tensor, tile: int) -> Tensor:
    """(B|1, H|1, ceil(Nq/tile)|1, ceil(Nk/tile)|1) int8: 1 where the tile has an allowed key.

    ``mask`` is 4-D with each dim 1 or full; a dim of 1 stays 1 (broadcast by stride 0).
    """
    allowed = allowed_keys(mask)
    b, h, nq, nk = allowed.shape
    pad_q = (-nq) % tile if nq > 1 else 0
    pad_k = (-nk) % tile if nk > 1 else 0
    if pad_q or pad_k:
        allowed = F.pad(allowed, (0, pad_k, 0, pad_q), value=False)
    tiles_q = 1 if nq == 1 else allowed.shape[2] // tile
    tiles_k = 1 if nk == 1 else allowed.shape[3] // tile
    rows = 1 if nq == 1 else tile
    cols = 1 if nk == 1 else tile
    grid = allowed.reshape(b, h, tiles_q, rows, tiles_k, cols)  # (B, H, Tq, tile, Tk, tile)
    return grid.any(dim=5).any(dim=3).to(torch.int8).contiguous()


def prefix_key_lengths(mask: Tensor) -> Tensor | None:
    """Per-batch key lengths (int32, (B,)) when ``mask`` is a bool padding mask of shape
    (B, 1, 1, Nk) that allows exactly a prefix of keys in each row; None otherwise.

    Bounding the key loop by a length skips the padded keys without reading the mask.
    Costs one device synchronisation (the prefix test).
    """
    if mask.dtype != torch.bool or mask.shape[1] != 1 or mask.shape[2] != 1:
        return None
    rows = mask.reshape(mask.shape[0], mask.shape[3])  # (B, Nk)
    lengths = rows.sum(dim=1)
    positions = torch.arange(rows.shape[1], device=rows.device)
    prefix = positions[None, :] < lengths[:, None]
    if not bool(torch.equal(prefix, rows)):
        return None
    return lengths.to(torch.int32).contiguous()


def fold_positions(
    table: Tensor, tile: int, q_len: int, k_len: int, left: int | None, right: int | None
) -> Tensor:
    """``table`` expanded to (B|1, H|1, Tq, Tk) and cleared where causal/window bounds leave
    no (query, key) pair of the tile allowed (query i sits at key position i + Nk − Nq)."""
    tiles_q, tiles_k = -(-q_len // tile), -(-k_len // tile)
    table = table.expand(table.shape[0], table.shape[1], tiles_q, tiles_k)
    device = table.device
    first_q = torch.arange(tiles_q, device=device) * tile  # (Tq,)
    last_q = torch.clamp(first_q + tile - 1, max=q_len - 1)
    first_k = torch.arange(tiles_k, device=device) * tile  # (Tk,)
    last_k = torch.clamp(first_k + tile - 1, max=k_len - 1)
    offset = k_len - q_len
    keep = torch.ones(tiles_q, tiles_k, dtype=torch.bool, device=device)
    if right is not None:  # some j <= i + offset + right
        keep &= first_k[None, :] <= last_q[:, None] + offset + right
    if left is not None:  # some j >= i + offset - left
        keep &= last_k[None, :] >= first_q[:, None] + offset - left
    return table * keep.to(table.dtype)  # (B|1, H|1, Tq, Tk)


def tile_lists(table: Tensor) -> Tensor:
    """Per row of tiles, the count then the indices of its active tiles, ascending.

    ``table`` (B|1, H|1, R, C) of 0/1 → int32 (B|1, H|1, R, 1 + C): entry [..., 0] is the count
    n, entries [..., 1 : 1 + n] the active column tiles. A kernel loops over exactly those,
    with no branch in the loop body (a branch there stops Triton's software pipelining).
    """
    counts = table.sum(dim=-1, keepdim=True, dtype=torch.int32)
    order = torch.argsort(table.to(torch.int32), dim=-1, descending=True, stable=True)
    return torch.cat([counts, order.to(torch.int32)], dim=-1).contiguous()
