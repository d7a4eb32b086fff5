"""The host-side description of one fused-attention launch: every option the kernels need,
already reduced to their terms (causal folded into the window's right bound, bool masks
viewed as uint8, lengths as int32)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True, kw_only=True)
class Problem:
    """Options of one attention problem, in kernel terms.

    Padded layout: q (B, Hq, Nq, Dk), k (B, Hkv, Nk, Dk), v (B, Hkv, Nk, Dv); query i sits at
    key position i + Nk − Nq. Packed layout (``cu_seqlens_q`` set): q (Tq, Hq, Dk),
    k (Tk, Hkv, Dk), v (Tk, Hkv, Dv) holding B sequences back to back, sequence b at rows
    cu_seqlens[b]:cu_seqlens[b + 1]; each aligns causally on its own (offset Lk_b − Lq_b).

    ``left``/``right``: keys j with pos − left <= j <= pos + right are allowed (pos = i + offset);
    None is unbounded; causal is right = 0. ``mask`` is 4-D (B|1, Hq|1, Nq|1, Nk|1), uint8
    (nonzero = may attend, ``mask_kind`` 1) or floating (added, ``mask_kind`` 2). With a mask,
    ``tiles_per_query_tile`` lists for each query tile the key tiles with any allowed score
    and ``tiles_per_key_tile`` the reverse (see ``masks.tile_lists``; tiles of ``MASK_TILE``).
    """

    scale: float
    softcap: float | None = None
    left: int | None = None
    right: int | None = None
    mask: Tensor | None = None
    mask_kind: int = 0
    tiles_per_query_tile: Tensor | None = None
    tiles_per_key_tile: Tensor | None = None
    alibi_slopes: Tensor | None = None
    dropout_p: float = 0.0
    dropout_seed: int = 0
    key_lengths: Tensor | None = None
    cu_seqlens_q: Tensor | None = None
    cu_seqlens_k: Tensor | None = None
    max_seqlen_q: int = 0
    max_seqlen_k: int = 0

    def __post_init__(self) -> None:
        if self.mask_kind not in (0, 1, 2):
            raise ValueError(
                f"mask_kind must be 0 (none), 1 (bool) or 2 (float), got {self.mask_kind}"
            )
        if (self.mask is None) != (self.mask_kind == 0):
            raise ValueError("mask and mask_kind disagree: pass both or neither")
        if (self.tiles_per_query_tile is None) != (self.tiles_per_key_tile is None):
            raise ValueError("tiles_per_query_tile and tiles_per_key_tile go together")
        if (self.cu_seqlens_q is None) != (self.cu_seqlens_k is None):
            raise ValueError("cu_seqlens_q and cu_seqlens_k must be given together")
        if not 0.0 <= self.dropout_p < 1.0:
            raise ValueError(f"dropout_p must be in [0, 1), got {self.dropout_p}")
        if self.key_lengths is not None and self.key_lengths.dtype != torch.int32:
            raise ValueError(f"key_lengths must be int32, got {self.key_lengths.dtype}")

    @property
    def dropout_threshold(self) -> int:
        """ceil(p·2⁵³): a score is kept iff the top 53 bits of its hash are >= this (see
        ``qkv.attention.dropout``: uniform = bits·2⁻⁵³ >= p, exact in integers)."""
        return math.ceil(self.dropout_p * 2.0**53)

    @property
    def has_tiles(self) -> bool:
        return self.tiles_per_query_tile is not None

    @property
    def varlen(self) -> bool:
        return self.cu_seqlens_q is not None
