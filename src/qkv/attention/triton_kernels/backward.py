"""The fused attention backward kernels (FlashAttention-2 split, no atomics: deterministic).

Given delta = rowsum(dO·O) (computed by the launcher), probabilities are recomputed from the
saved log-sum-exp: p = exp2(s − lse), dp = dO·vᵀ, ds = p·(dp − delta) [× tanh′ with softcap].

- ``attention_dkdv_kernel``: one program per (key tile, batch, k/v head) accumulates dK and
  dV over every query tile — and, for grouped-query attention, over every query head of the
  group — so no two programs write the same output.
- ``attention_dq_kernel``: one program per (query tile, batch, query head) accumulates dQ
  over the key tiles its rows see.
"""

from __future__ import annotations

import triton
import triton.language as tl

from qkv.attention.triton_kernels.configs import BACKWARD_CONFIGS, autotune
from qkv.attention.triton_kernels.scores import (
    dropout_keep,
    key_range,
    matmul,
    query_range,
    score_mod,
    sequence_bounds,
    to_dtype,
)


@triton.jit
def _dkdv_tile(
    dk, dv, k, v, q_base, do_base, l_base, d_base, stride_qn, stride_don, stride_ln, start_m,
    k_idx, q_len, k_len, offset, mask_base, stride_mm, stride_mn, slope, scale, softcap,
    left, right, b, h, seed, threshold, keep_scale, D_K: tl.constexpr, D_V: tl.constexpr,
    HAS_LEFT: tl.constexpr, HAS_RIGHT: tl.constexpr, MASK_KIND: tl.constexpr,
    HAS_ALIBI: tl.constexpr, HAS_SOFTCAP: tl.constexpr, HAS_DROPOUT: tl.constexpr,
    EMULATE_BF16: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_DK: tl.constexpr,
    BLOCK_DV: tl.constexpr,
):  # fmt: skip
    offs_m = start_m + tl.arange(0, BLOCK_M)
    offs_dk = tl.arange(0, BLOCK_DK)
    offs_dv = tl.arange(0, BLOCK_DV)
    row_ok = offs_m < q_len
    q_mask = row_ok[:, None] & (offs_dk[None, :] < D_K)
    q = tl.load(q_base + offs_m[:, None] * stride_qn + offs_dk[None, :], mask=q_mask, other=0.0)
    do_mask = row_ok[:, None] & (offs_dv[None, :] < D_V)
    do_ptrs = do_base + offs_m[:, None] * stride_don + offs_dv[None, :]
    do = tl.load(do_ptrs, mask=do_mask, other=0.0)
    lse = tl.load(l_base + offs_m * stride_ln, mask=row_ok, other=float("inf"))
    delta = tl.load(d_base + offs_m * stride_ln, mask=row_ok, other=0.0)
    qk_t = matmul(k, tl.trans(q), EMULATE_BF16)  # (BLOCK_N, BLOCK_M): keys × queries
    s_t, dcap_t = score_mod(
        qk_t, offs_m[None, :], k_idx, q_len, k_len, offset, mask_base, stride_mm, stride_mn,
        slope, scale, softcap, left, right,
        HAS_LEFT, HAS_RIGHT, MASK_KIND, HAS_ALIBI, HAS_SOFTCAP,
    )  # fmt: skip
    p_t = tl.exp2(s_t - lse[None, :])
    dp_t = matmul(v, tl.trans(do), EMULATE_BF16)
    if HAS_DROPOUT:  # out used the kept, rescaled probabilities; so do dV and dP
        keep_t = dropout_keep(seed, b, h, offs_m[None, :], k_idx, threshold)
        dv += matmul(
            to_dtype(tl.where(keep_t, p_t * keep_scale, 0.0), do.dtype, EMULATE_BF16),
            do,
            EMULATE_BF16,
        )
        dp_t = tl.where(keep_t, dp_t * keep_scale, 0.0)
    else:
        dv += matmul(to_dtype(p_t, do.dtype, EMULATE_BF16), do, EMULATE_BF16)
    ds_t = p_t * (dp_t - delta[None, :])
    if HAS_SOFTCAP:
        ds_t = ds_t * dcap_t
    dk += matmul(to_dtype(ds_t, q.dtype, EMULATE_BF16), q, EMULATE_BF16)
    return dk, dv


@autotune(BACKWARD_CONFIGS)
@triton.jit
def attention_dkdv_kernel(
    Q, K, V, DO, LSE, DELTA, DK, DV, MASK, TABLE, SLOPES, CU_Q, CU_K, KLEN,
    stride_qb, stride_qh, stride_qn,
    stride_kb, stride_kh, stride_kn,
    stride_vb, stride_vh, stride_vn,
    stride_dob, stride_doh, stride_don,
    stride_lb, stride_lh, stride_ln,
    stride_dkb, stride_dkh, stride_dkn,
    stride_dvb, stride_dvh, stride_dvn,
    stride_mb, stride_mh, stride_mm, stride_mn,
    stride_tb, stride_th, stride_tm, stride_tn,
    stride_sb, stride_sh,
    KV_HEADS, GROUPS, N_Q, N_K, N_Q_KEY, N_K_KEY,
    D_K: tl.constexpr,
    D_V: tl.constexpr,
    scale, softcap, left, right, seed, threshold, keep_scale,
    HAS_LEFT: tl.constexpr,
    HAS_RIGHT: tl.constexpr,
    MASK_KIND: tl.constexpr,
    HAS_TABLE: tl.constexpr,
    HAS_ALIBI: tl.constexpr,
    HAS_SOFTCAP: tl.constexpr,
    HAS_DROPOUT: tl.constexpr,
    VARLEN: tl.constexpr,
    HAS_KLEN: tl.constexpr,
    EMULATE_BF16: tl.constexpr,
    BLOCK_DK: tl.constexpr,
    BLOCK_DV: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
):  # fmt: skip
    """Grid: (cdiv(max key length, BLOCK_N), batch × k/v heads)."""
    start_n = tl.program_id(0)
    bh = tl.program_id(1)
    b = bh // KV_HEADS
    h_kv = bh % KV_HEADS
    q_start, q_len, k_start, k_len, offset = sequence_bounds(
        b, CU_Q, CU_K, KLEN, N_Q, N_K, VARLEN, HAS_KLEN
    )
    if VARLEN:  # noqa: SIM102  (a compile-time guard: Triton cannot `and` it with a tensor)
        if start_n * BLOCK_N >= k_len:
            return
    b64 = b.to(tl.int64)
    h_kv = h_kv.to(tl.int64)
    offs_n = start_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_dk = tl.arange(0, BLOCK_DK)
    offs_dv = tl.arange(0, BLOCK_DV)
    col_ok = offs_n < k_len
    k_base = K + b64 * stride_kb + h_kv * stride_kh + k_start.to(tl.int64) * stride_kn
    v_base = V + b64 * stride_vb + h_kv * stride_vh + k_start.to(tl.int64) * stride_vn
    k_mask = col_ok[:, None] & (offs_dk[None, :] < D_K)
    v_mask = col_ok[:, None] & (offs_dv[None, :] < D_V)
    k = tl.load(k_base + offs_n[:, None] * stride_kn + offs_dk[None, :], mask=k_mask, other=0.0)
    v = tl.load(v_base + offs_n[:, None] * stride_vn + offs_dv[None, :], mask=v_mask, other=0.0)
    dk = tl.zeros([BLOCK_N, BLOCK_DK], dtype=tl.float32)
    dv = tl.zeros([BLOCK_N, BLOCK_DV], dtype=tl.float32)
    k_idx = offs_n[:, None]
    lo, hi = query_range(start_n, q_len, offset, left, right, HAS_LEFT, HAS_RIGHT, BLOCK_M, BLOCK_N)
    if HAS_KLEN:  # a tile wholly past this sequence's keys: nothing to accumulate, store zeros
        hi = tl.where(start_n * BLOCK_N < k_len, hi, lo)
    q_row = q_start.to(tl.int64)
    for g in range(0, GROUPS):
        h = h_kv * GROUPS + g
        q_base = Q + b64 * stride_qb + h * stride_qh + q_row * stride_qn
        do_base = DO + b64 * stride_dob + h * stride_doh + q_row * stride_don
        l_base = LSE + b64 * stride_lb + h * stride_lh + q_row * stride_ln
        d_base = DELTA + b64 * stride_lb + h * stride_lh + q_row * stride_ln
        mask_base = MASK + b64 * stride_mb + h * stride_mh
        table_row = TABLE + b * stride_tb + h * stride_th + start_n * stride_tm
        slope = 0.0
        if HAS_ALIBI:
            slope = tl.load(SLOPES + b * stride_sb + h * stride_sh)
        if HAS_TABLE:  # the mask's active query tiles for this key tile
            for i in range(0, tl.load(table_row)):
                start_m = tl.load(table_row + (i + 1) * stride_tn) * BLOCK_M
                dk, dv = _dkdv_tile(
                    dk, dv, k, v, q_base, do_base, l_base, d_base, stride_qn, stride_don,
                    stride_ln, start_m, k_idx, q_len, k_len, offset, mask_base, stride_mm,
                    stride_mn, slope, scale, softcap, left, right, b, h, seed, threshold,
                    keep_scale, D_K, D_V, HAS_LEFT, HAS_RIGHT, MASK_KIND, HAS_ALIBI, HAS_SOFTCAP,
                    HAS_DROPOUT, EMULATE_BF16, BLOCK_M, BLOCK_DK, BLOCK_DV,
                )  # fmt: skip
        else:
            for start_m in range(lo, hi, BLOCK_M):
                dk, dv = _dkdv_tile(
                    dk, dv, k, v, q_base, do_base, l_base, d_base, stride_qn, stride_don,
                    stride_ln, start_m, k_idx, q_len, k_len, offset, mask_base, stride_mm,
                    stride_mn, slope, scale, softcap, left, right, b, h, seed, threshold,
                    keep_scale, D_K, D_V, HAS_LEFT, HAS_RIGHT, MASK_KIND, HAS_ALIBI, HAS_SOFTCAP,
                    HAS_DROPOUT, EMULATE_BF16, BLOCK_M, BLOCK_DK, BLOCK_DV,
                )  # fmt: skip

    dk = dk * scale
    dk_base = DK + b64 * stride_dkb + h_kv * stride_dkh + k_start.to(tl.int64) * stride_dkn
    dv_base = DV + b64 * stride_dvb + h_kv * stride_dvh + k_start.to(tl.int64) * stride_dvn
    dk_ptrs = dk_base + offs_n[:, None] * stride_dkn + offs_dk[None, :]
    dv_ptrs = dv_base + offs_n[:, None] * stride_dvn + offs_dv[None, :]
    # Padded batches own every row up to N_K (keys past a sequence's length get zero grads);
    # packed sequences own only their own rows.
    if VARLEN:
        rows_owned = col_ok
    else:
        rows_owned = offs_n < N_K
    dk_mask = rows_owned[:, None] & (offs_dk[None, :] < D_K)
    dv_mask = rows_owned[:, None] & (offs_dv[None, :] < D_V)
    dk = to_dtype(dk, DK.dtype.element_ty, EMULATE_BF16)
    tl.store(dk_ptrs, dk.to(DK.dtype.element_ty), mask=dk_mask)
    dv = to_dtype(dv, DV.dtype.element_ty, EMULATE_BF16)
    tl.store(dv_ptrs, dv.to(DV.dtype.element_ty), mask=dv_mask)


@triton.jit
def _dq_tile(
    dq, q, do, lse, delta, k_base, v_base, stride_kn, stride_vn, start_n, q_idx, q_len, k_len,
    offset, mask_base, stride_mm, stride_mn, slope, scale, softcap, left, right,
    b, h, seed, threshold, keep_scale, D_K: tl.constexpr, D_V: tl.constexpr,
    HAS_LEFT: tl.constexpr, HAS_RIGHT: tl.constexpr, MASK_KIND: tl.constexpr,
    HAS_ALIBI: tl.constexpr, HAS_SOFTCAP: tl.constexpr, HAS_DROPOUT: tl.constexpr,
    EMULATE_BF16: tl.constexpr,
    BLOCK_N: tl.constexpr, BLOCK_DK: tl.constexpr, BLOCK_DV: tl.constexpr,
):  # fmt: skip
    offs_n = start_n + tl.arange(0, BLOCK_N)
    offs_dk = tl.arange(0, BLOCK_DK)
    offs_dv = tl.arange(0, BLOCK_DV)
    k_mask = (offs_n[:, None] < k_len) & (offs_dk[None, :] < D_K)
    v_mask = (offs_n[:, None] < k_len) & (offs_dv[None, :] < D_V)
    k = tl.load(k_base + offs_n[:, None] * stride_kn + offs_dk[None, :], mask=k_mask, other=0.0)
    v = tl.load(v_base + offs_n[:, None] * stride_vn + offs_dv[None, :], mask=v_mask, other=0.0)
    qk = matmul(q, tl.trans(k), EMULATE_BF16)  # (BLOCK_M, BLOCK_N)
    s, dcap = score_mod(
        qk, q_idx, offs_n[None, :], q_len, k_len, offset, mask_base, stride_mm, stride_mn,
        slope, scale, softcap, left, right,
        HAS_LEFT, HAS_RIGHT, MASK_KIND, HAS_ALIBI, HAS_SOFTCAP,
    )  # fmt: skip
    p = tl.exp2(s - lse[:, None])
    dp = matmul(do, tl.trans(v), EMULATE_BF16)
    if HAS_DROPOUT:
        keep = dropout_keep(seed, b, h, q_idx, offs_n[None, :], threshold)
        dp = tl.where(keep, dp * keep_scale, 0.0)
    ds = p * (dp - delta[:, None])
    if HAS_SOFTCAP:
        ds = ds * dcap
    dq += matmul(to_dtype(ds, k.dtype, EMULATE_BF16), k, EMULATE_BF16)
    return dq


@autotune(BACKWARD_CONFIGS)
@triton.jit
def attention_dq_kernel(
    Q, K, V, DO, LSE, DELTA, DQ, MASK, TABLE, SLOPES, CU_Q, CU_K, KLEN,
    stride_qb, stride_qh, stride_qn,
    stride_kb, stride_kh, stride_kn,
    stride_vb, stride_vh, stride_vn,
    stride_dob, stride_doh, stride_don,
    stride_lb, stride_lh, stride_ln,
    stride_dqb, stride_dqh, stride_dqn,
    stride_mb, stride_mh, stride_mm, stride_mn,
    stride_tb, stride_th, stride_tm, stride_tn,
    stride_sb, stride_sh,
    Q_HEADS, GROUPS, N_Q, N_K, N_Q_KEY, N_K_KEY,
    D_K: tl.constexpr,
    D_V: tl.constexpr,
    scale, softcap, left, right, seed, threshold, keep_scale,
    HAS_LEFT: tl.constexpr,
    HAS_RIGHT: tl.constexpr,
    MASK_KIND: tl.constexpr,
    HAS_TABLE: tl.constexpr,
    HAS_ALIBI: tl.constexpr,
    HAS_SOFTCAP: tl.constexpr,
    HAS_DROPOUT: tl.constexpr,
    VARLEN: tl.constexpr,
    HAS_KLEN: tl.constexpr,
    EMULATE_BF16: tl.constexpr,
    BLOCK_DK: tl.constexpr,
    BLOCK_DV: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
):  # fmt: skip
    """Grid: (cdiv(max query length, BLOCK_M), batch × query heads)."""
    start_m = tl.program_id(0)
    bh = tl.program_id(1)
    b = bh // Q_HEADS
    h = bh % Q_HEADS
    h_kv = h // GROUPS
    q_start, q_len, k_start, k_len, offset = sequence_bounds(
        b, CU_Q, CU_K, KLEN, N_Q, N_K, VARLEN, HAS_KLEN
    )
    if VARLEN:  # noqa: SIM102  (a compile-time guard: Triton cannot `and` it with a tensor)
        if start_m * BLOCK_M >= q_len:
            return
    b64 = b.to(tl.int64)
    h = h.to(tl.int64)
    offs_m = start_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_dk = tl.arange(0, BLOCK_DK)
    offs_dv = tl.arange(0, BLOCK_DV)
    row_ok = offs_m < q_len
    q_row = q_start.to(tl.int64)
    q_base = Q + b64 * stride_qb + h * stride_qh + q_row * stride_qn
    do_base = DO + b64 * stride_dob + h * stride_doh + q_row * stride_don
    k_base = K + b64 * stride_kb + h_kv * stride_kh + k_start.to(tl.int64) * stride_kn
    v_base = V + b64 * stride_vb + h_kv * stride_vh + k_start.to(tl.int64) * stride_vn
    mask_base = MASK + b64 * stride_mb + h * stride_mh
    table_row = TABLE + b * stride_tb + h * stride_th + start_m * stride_tm
    slope = 0.0
    if HAS_ALIBI:
        slope = tl.load(SLOPES + b * stride_sb + h * stride_sh)
    q_mask = row_ok[:, None] & (offs_dk[None, :] < D_K)
    q = tl.load(q_base + offs_m[:, None] * stride_qn + offs_dk[None, :], mask=q_mask, other=0.0)
    do_mask = row_ok[:, None] & (offs_dv[None, :] < D_V)
    do_ptrs = do_base + offs_m[:, None] * stride_don + offs_dv[None, :]
    do = tl.load(do_ptrs, mask=do_mask, other=0.0)
    l_base = LSE + b64 * stride_lb + h * stride_lh + q_row * stride_ln
    d_base = DELTA + b64 * stride_lb + h * stride_lh + q_row * stride_ln
    lse = tl.load(l_base + offs_m * stride_ln, mask=row_ok, other=float("inf"))
    delta = tl.load(d_base + offs_m * stride_ln, mask=row_ok, other=0.0)
    dq = tl.zeros([BLOCK_M, BLOCK_DK], dtype=tl.float32)
    q_idx = offs_m[:, None]
    lo, hi = key_range(start_m, k_len, offset, left, right, HAS_LEFT, HAS_RIGHT, BLOCK_M, BLOCK_N)
    if HAS_TABLE:  # the mask's active key tiles for this query tile
        for i in range(0, tl.load(table_row)):
            start_n = tl.load(table_row + (i + 1) * stride_tn) * BLOCK_N
            dq = _dq_tile(
                dq, q, do, lse, delta, k_base, v_base, stride_kn, stride_vn, start_n, q_idx,
                q_len, k_len, offset, mask_base, stride_mm, stride_mn, slope, scale,
                softcap, left, right, b, h, seed, threshold, keep_scale, D_K, D_V, HAS_LEFT,
                HAS_RIGHT, MASK_KIND, HAS_ALIBI, HAS_SOFTCAP, HAS_DROPOUT, EMULATE_BF16,
                BLOCK_N, BLOCK_DK, BLOCK_DV,
            )  # fmt: skip
    else:
        for start_n in range(lo, hi, BLOCK_N):
            dq = _dq_tile(
                dq, q, do, lse, delta, k_base, v_base, stride_kn, stride_vn, start_n, q_idx,
                q_len, k_len, offset, mask_base, stride_mm, stride_mn, slope, scale,
                softcap, left, right, b, h, seed, threshold, keep_scale, D_K, D_V, HAS_LEFT,
                HAS_RIGHT, MASK_KIND, HAS_ALIBI, HAS_SOFTCAP, HAS_DROPOUT, EMULATE_BF16,
                BLOCK_N, BLOCK_DK, BLOCK_DV,
            )  # fmt: skip
    dq = dq * scale
    dq_base = DQ + b64 * stride_dqb + h * stride_dqh + q_row * stride_dqn
    dq_ptrs = dq_base + offs_m[:, None] * stride_dqn + offs_dk[None, :]
    dq = to_dtype(dq, DQ.dtype.element_ty, EMULATE_BF16)
    tl.store(dq_ptrs, dq.to(DQ.dtype.element_ty), mask=q_mask)
