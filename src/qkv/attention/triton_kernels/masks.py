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
