"""Launchers: tensors + :class:`Problem` → kernel launches, for the padded (B, H, N, D) and the
packed (T, H, D) layouts. Autotuned on a GPU; fixed 16×16 tiles under the interpreter."""

from __future__ import annotations

import torch
import triton
from torch import Tensor

from qkv.attention.triton_kernels.backward import attention_dkdv_kernel, attention_dq_kernel
from qkv.attention.triton_kernels.configs import (
    INTERPRET,
    INTERPRET_BLOCK_M,
    INTERPRET_BLOCK_N,
    MASK_TILE,
    length_key,
)
from qkv.attention.triton_kernels.forward import attention_forward_kernel
from qkv.attention.triton_kernels.problem import Problem


def _bhn(t: Tensor, varlen: bool) -> tuple[int, int, int]:
    """(batch, head, position) strides; packed tensors (T, H, D) have no batch stride."""
    if varlen:
        return 0, t.stride(1), t.stride(0)
    return t.stride(0), t.stride(1), t.stride(2)


def _lse_strides(lse: Tensor, varlen: bool) -> tuple[int, int, int]:
    if varlen:  # (H, T)
        return 0, lse.stride(0), lse.stride(1)
    return lse.stride(0), lse.stride(1), lse.stride(2)  # (B, H, N)


def _last_dim_contiguous(t: Tensor) -> Tensor:
    return t if t.stride(-1) == 1 else t.contiguous()


def _shape(q: Tensor, k: Tensor, v: Tensor, problem: Problem) -> dict[str, int]:
    if problem.varlen:
        assert problem.cu_seqlens_q is not None
        batch = problem.cu_seqlens_q.shape[0] - 1
        q_heads, kv_heads = q.shape[1], k.shape[1]
        n_q, n_k = problem.max_seqlen_q, problem.max_seqlen_k
    else:
        batch, q_heads, n_q = q.shape[0], q.shape[1], q.shape[2]
        kv_heads, n_k = k.shape[1], k.shape[2]
    return {
        "batch": batch,
        "q_heads": q_heads,
        "kv_heads": kv_heads,
        "n_q": n_q,
        "n_k": n_k,
        "d_k": q.shape[-1],
        "d_v": v.shape[-1],
    }


def _common_args(q: Tensor, problem: Problem, shape: dict[str, int]) -> tuple[list, dict]:
    """Mask/table/slopes/lengths pointers and strides, scalars and constexpr flags."""
    device = q.device
    dummy = torch.zeros(2, dtype=torch.int32, device=device)
    batch, heads, n_q, n_k = shape["batch"], shape["q_heads"], shape["n_q"], shape["n_k"]
    mask = problem.mask if problem.mask is not None else dummy
    if problem.mask is not None:
        mask_strides = list(problem.mask.expand(batch, heads, n_q, n_k).stride())
    else:
        mask_strides = [0, 0, 0, 0]
    slopes = problem.alibi_slopes if problem.alibi_slopes is not None else dummy
    if problem.alibi_slopes is not None:
        slope_strides = list(problem.alibi_slopes.expand(batch, heads).stride())
    else:
        slope_strides = [0, 0]
    cu_q = problem.cu_seqlens_q if problem.cu_seqlens_q is not None else dummy
    cu_k = problem.cu_seqlens_k if problem.cu_seqlens_k is not None else dummy
    klen = problem.key_lengths if problem.key_lengths is not None else dummy
    pointers = [mask, slopes, cu_q, cu_k, klen]
    strides = [mask_strides, slope_strides]
    scalars = [
        shape["q_heads"] // shape["kv_heads"],  # GROUPS
        n_q,
        n_k,
        length_key(n_q),
        length_key(n_k),
        shape["d_k"],
        shape["d_v"],
        problem.scale,
        problem.softcap if problem.softcap is not None else 1.0,
        problem.left if problem.left is not None else 0,
        problem.right if problem.right is not None else 0,
        problem.dropout_seed,
        problem.dropout_threshold,
        1.0 / (1.0 - problem.dropout_p),
    ]
    flags = {
        "HAS_LEFT": problem.left is not None,
        "HAS_RIGHT": problem.right is not None,
        "MASK_KIND": problem.mask_kind,
        "HAS_TABLE": problem.has_tiles,
        "HAS_ALIBI": problem.alibi_slopes is not None,
        "HAS_SOFTCAP": problem.softcap is not None,
        "HAS_DROPOUT": problem.dropout_p > 0,
        "VARLEN": problem.varlen,
        "HAS_KLEN": problem.key_lengths is not None,
        "EMULATE_BF16": INTERPRET and q.dtype == torch.bfloat16,
        "BLOCK_DK": max(16, triton.next_power_of_2(shape["d_k"])),
        "BLOCK_DV": max(16, triton.next_power_of_2(shape["d_v"])),
    }
    return [pointers, strides, scalars], flags


def _with_table(
    pointers: list, strides: list, table: Tensor | None, batch: int, heads: int
) -> tuple[list, list]:
    """Kernel pointer and stride arguments with a tile list (or a dummy) in second place."""
    mask, slopes, cu_q, cu_k, klen = pointers
    mask_strides, slope_strides = strides
    if table is None:
        table, table_strides = klen, [0, 0, 0, 0]
    else:
        table_strides = list(table.expand(batch, heads, *table.shape[2:]).stride())
    return (
        [mask, table, slopes, cu_q, cu_k, klen],
        [*mask_strides, *table_strides, *slope_strides],
    )


def _tiles(problem: Problem) -> dict[str, int]:
    """Explicit tile sizes under the interpreter (no autotuning there)."""
    if not INTERPRET:
        return {}
    if problem.has_tiles:
        return {"BLOCK_M": MASK_TILE, "BLOCK_N": MASK_TILE, "num_warps": 4}
    return {"BLOCK_M": INTERPRET_BLOCK_M, "BLOCK_N": INTERPRET_BLOCK_N, "num_warps": 4}


def _grid(length: int, block: str, programs: int, tiles: dict[str, int]):  # noqa: ANN202
    if tiles:
        return (triton.cdiv(length, tiles[block]), programs)
    return lambda meta: (triton.cdiv(length, meta[block]), programs)


def attention_forward(q: Tensor, k: Tensor, v: Tensor, problem: Problem) -> tuple[Tensor, Tensor]:
    """Run the forward kernel. Returns (out in q's layout with v's head dim, lse float32 in log2
    units: (B, Hq, Nq) padded, (Hq, Tq) packed)."""
    q, k, v = (_last_dim_contiguous(t) for t in (q, k, v))
    shape = _shape(q, k, v, problem)
    out = torch.empty((*q.shape[:-1], v.shape[-1]), dtype=q.dtype, device=q.device)
    if problem.varlen:
        lse = torch.empty((q.shape[1], q.shape[0]), dtype=torch.float32, device=q.device)
    else:
        lse = torch.empty(q.shape[:-1], dtype=torch.float32, device=q.device)
    (pointers, strides, scalars), flags = _common_args(q, problem, shape)
    varlen = problem.varlen
    tiles = _tiles(problem)
    grid = _grid(shape["n_q"], "BLOCK_M", shape["batch"] * shape["q_heads"], tiles)
    pointers, strides = _with_table(
        pointers, strides, problem.tiles_per_query_tile, shape["batch"], shape["q_heads"]
    )
    attention_forward_kernel[grid](
        q, k, v, out, lse, *pointers,
        *_bhn(q, varlen), *_bhn(k, varlen), *_bhn(v, varlen), *_bhn(out, varlen),
        *_lse_strides(lse, varlen),
        *strides,
        shape["q_heads"], *scalars,
        **flags, **tiles,
    )  # fmt: skip
    return out, lse


def attention_backward(
    q: Tensor, k: Tensor, v: Tensor, out: Tensor, lse: Tensor, grad_out: Tensor, problem: Problem
) -> tuple[Tensor, Tensor, Tensor]:
    """Run the backward kernels. Returns (dq, dk, dv) shaped like q, k, v."""
    q, k, v, out, grad_out = (_last_dim_contiguous(t) for t in (q, k, v, out, grad_out))
    shape = _shape(q, k, v, problem)
    varlen = problem.varlen
    # delta_i = Σ_d dO_id · O_id, in lse's layout.
    delta = (grad_out.float() * out.float()).sum(dim=-1)  # (B, Hq, Nq) or (Tq, Hq)
    if varlen:
        delta = delta.transpose(0, 1)  # (Hq, Tq)
    delta = delta.contiguous()
    dq = torch.empty_like(q)
    dk = torch.empty_like(k)
    dv = torch.empty_like(v)
    (pointers, strides, scalars), flags = _common_args(q, problem, shape)
    tiles = _tiles(problem)
    lse_strides = _lse_strides(lse, varlen)
    assert delta.stride() == lse.stride(), "delta must share the log-sum-exp layout"
    grid_kv = _grid(shape["n_k"], "BLOCK_N", shape["batch"] * shape["kv_heads"], tiles)
    key_pointers, key_strides = _with_table(
        pointers, strides, problem.tiles_per_key_tile, shape["batch"], shape["q_heads"]
    )
    attention_dkdv_kernel[grid_kv](
        q, k, v, grad_out, lse, delta, dk, dv, *key_pointers,
        *_bhn(q, varlen), *_bhn(k, varlen), *_bhn(v, varlen), *_bhn(grad_out, varlen),
        *lse_strides, *_bhn(dk, varlen), *_bhn(dv, varlen),
        *key_strides,
        shape["kv_heads"], *scalars,
        **flags, **tiles,
    )  # fmt: skip
    grid_q = _grid(shape["n_q"], "BLOCK_M", shape["batch"] * shape["q_heads"], tiles)
    query_pointers, query_strides = _with_table(
        pointers, strides, problem.tiles_per_query_tile, shape["batch"], shape["q_heads"]
    )
    attention_dq_kernel[grid_q](
        q, k, v, grad_out, lse, delta, dq, *query_pointers,
        *_bhn(q, varlen), *_bhn(k, varlen), *_bhn(v, varlen), *_bhn(grad_out, varlen),
        *lse_strides, *_bhn(dq, varlen),
        *query_strides,
        shape["q_heads"], *scalars,
        **flags, **tiles,
    )  # fmt: skip
    return dq, dk, dv
