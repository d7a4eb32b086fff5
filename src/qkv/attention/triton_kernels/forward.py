"""The fused attention forward kernel: FlashAttention-2's online softmax over key tiles.

One program owns BLOCK_M query rows of one (batch, query head); it streams the key/value
tiles its rows may see (causal and window bounds skip the rest; with a mask it walks the
host-made list of key tiles that have any allowed score), keeps the running max and sum in
float32 and writes the output and the log-sum-exp (log2 units) that the backward needs.
"""

from __future__ import annotations

import triton
import triton.language as tl

from qkv.attention.triton_kernels.configs import FORWARD_CONFIGS, autotune
from qkv.attention.triton_kernels.scores import (
    dropout_keep,
    key_range,
    matmul,
    score_mod,
    sequence_bounds,
    to_dtype,
)


@triton.jit
def _forward_tile(
    acc,
    m_i,
    l_i,
    q,
    k_base,
    v_base,
    stride_kn,
    stride_vn,
    start_n,
    q_idx,
    q_len,
    k_len,
    offset,
    mask_base,
    stride_mm,
    stride_mn,
    slope,
    scale,
    softcap,
    left,
    right,
    b,
    h,
    seed,
    threshold,
    keep_scale,
    D_K: tl.constexpr,
    D_V: tl.constexpr,
    HAS_LEFT: tl.constexpr,
    HAS_RIGHT: tl.constexpr,
    MASK_KIND: tl.constexpr,
    HAS_ALIBI: tl.constexpr,
    HAS_SOFTCAP: tl.constexpr,
    HAS_DROPOUT: tl.constexpr,
    EMULATE_BF16: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_DK: tl.constexpr,
    BLOCK_DV: tl.constexpr,
):
    offs_n = start_n + tl.arange(0, BLOCK_N)
    offs_dk = tl.arange(0, BLOCK_DK)
    offs_dv = tl.arange(0, BLOCK_DV)
    k_mask = (offs_n[:, None] < k_len) & (offs_dk[None, :] < D_K)
    k = tl.load(k_base + offs_n[:, None] * stride_kn + offs_dk[None, :], mask=k_mask, other=0.0)
    qk = matmul(q, tl.trans(k), EMULATE_BF16)  # (BLOCK_M, BLOCK_N)
    s, _ = score_mod(
        qk, q_idx, offs_n[None, :], q_len, k_len, offset, mask_base, stride_mm, stride_mn,
        slope, scale, softcap, left, right,
        HAS_LEFT, HAS_RIGHT, MASK_KIND, HAS_ALIBI, HAS_SOFTCAP,
    )  # fmt: skip
    m_new = tl.maximum(m_i, tl.max(s, 1))
    # A row with nothing allowed yet keeps max −inf; subtract 0 instead so exp2 gives 0, not NaN.
    m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
    p = tl.exp2(s - m_safe[:, None])
    alpha = tl.exp2(m_i - m_safe)
    l_i = l_i * alpha + tl.sum(p, 1)
    v_mask = (offs_n[:, None] < k_len) & (offs_dv[None, :] < D_V)
    v = tl.load(v_base + offs_n[:, None] * stride_vn + offs_dv[None, :], mask=v_mask, other=0.0)
    if HAS_DROPOUT:  # the softmax sum uses every probability; the output only the kept ones
        keep = dropout_keep(seed, b, h, q_idx, offs_n[None, :], threshold)
        p = tl.where(keep, p * keep_scale, 0.0)
    acc = acc * alpha[:, None] + matmul(to_dtype(p, v.dtype, EMULATE_BF16), v, EMULATE_BF16)
    return acc, m_new, l_i


@autotune(FORWARD_CONFIGS)
@triton.jit
def attention_forward_kernel(
    Q, K, V, O, LSE, MASK, TABLE, SLOPES, CU_Q, CU_K, KLEN,
    stride_qb, stride_qh, stride_qn,
    stride_kb, stride_kh, stride_kn,
    stride_vb, stride_vh, stride_vn,
    stride_ob, stride_oh, stride_on,
    stride_lb, stride_lh, stride_ln,
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
    h_kv = h // GROUPS  # grouped-query: k/v shared by GROUPS query heads, never copied
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
    q_base = Q + b64 * stride_qb + h * stride_qh + q_start.to(tl.int64) * stride_qn
    k_base = K + b64 * stride_kb + h_kv * stride_kh + k_start.to(tl.int64) * stride_kn
    v_base = V + b64 * stride_vb + h_kv * stride_vh + k_start.to(tl.int64) * stride_vn
    mask_base = MASK + b64 * stride_mb + h * stride_mh
    table_row = TABLE + b * stride_tb + h * stride_th + start_m * stride_tm
    slope = 0.0
    if HAS_ALIBI:
        slope = tl.load(SLOPES + b * stride_sb + h * stride_sh)

    q_mask = (offs_m[:, None] < q_len) & (offs_dk[None, :] < D_K)
    q = tl.load(q_base + offs_m[:, None] * stride_qn + offs_dk[None, :], mask=q_mask, other=0.0)
    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, BLOCK_DV], dtype=tl.float32)
    q_idx = offs_m[:, None]
    lo, hi = key_range(start_m, k_len, offset, left, right, HAS_LEFT, HAS_RIGHT, BLOCK_M, BLOCK_N)
    if HAS_TABLE:  # the mask's active key tiles (position bounds folded in on the host)
        for i in range(0, tl.load(table_row)):
            start_n = tl.load(table_row + (i + 1) * stride_tn) * BLOCK_N
            acc, m_i, l_i = _forward_tile(
                acc, m_i, l_i, q, k_base, v_base, stride_kn, stride_vn, start_n, q_idx,
                q_len, k_len, offset, mask_base, stride_mm, stride_mn, slope, scale,
                softcap, left, right, b, h, seed, threshold, keep_scale, D_K, D_V, HAS_LEFT,
                HAS_RIGHT, MASK_KIND, HAS_ALIBI, HAS_SOFTCAP, HAS_DROPOUT, EMULATE_BF16,
                BLOCK_N, BLOCK_DK, BLOCK_DV,
            )  # fmt: skip
    else:
        for start_n in range(lo, hi, BLOCK_N):
            acc, m_i, l_i = _forward_tile(
                acc, m_i, l_i, q, k_base, v_base, stride_kn, stride_vn, start_n, q_idx,
                q_len, k_len, offset, mask_base, stride_mm, stride_mn, slope, scale,
                softcap, left, right, b, h, seed, threshold, keep_scale, D_K, D_V, HAS_LEFT,
                HAS_RIGHT, MASK_KIND, HAS_ALIBI, HAS_SOFTCAP, HAS_DROPOUT, EMULATE_BF16,
                BLOCK_N, BLOCK_DK, BLOCK_DV,
            )  # fmt: skip

    # Rows with no allowed key: output 0 and log-sum-exp +inf (so the backward sees p = 0).
    l_safe = tl.where(l_i == 0.0, 1.0, l_i)
    out = acc / l_safe[:, None]
    lse = tl.where(l_i == 0.0, float("inf"), m_i + tl.log2(l_safe))
    o_base = O + b64 * stride_ob + h * stride_oh + q_start.to(tl.int64) * stride_on
    o_mask = (offs_m[:, None] < q_len) & (offs_dv[None, :] < D_V)
    o_ptrs = o_base + offs_m[:, None] * stride_on + offs_dv[None, :]
    out = to_dtype(out, O.dtype.element_ty, EMULATE_BF16)
    tl.store(o_ptrs, out.to(O.dtype.element_ty), mask=o_mask)
    l_base = LSE + b64 * stride_lb + h * stride_lh + q_start.to(tl.int64) * stride_ln
    tl.store(l_base + offs_m * stride_ln, lse, mask=offs_m < q_len)
