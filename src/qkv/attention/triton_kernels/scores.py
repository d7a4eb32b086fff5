"""``@triton.jit`` helpers shared by the forward and backward kernels.

Scores are kept in log2 units (natural-log scores × log2 e) so the kernels can use ``exp2``;
the saved log-sum-exp is in the same units. A removed score is −inf; a row with no key left
gets log-sum-exp +inf, so ``exp2(s − lse)`` is 0 there and its gradients vanish.
"""

from __future__ import annotations

import triton
import triton.language as tl

LOG2E: tl.constexpr = tl.constexpr(1.4426950408889634)


@triton.jit
def matmul(a, b, EMULATE_BF16: tl.constexpr):
    """``tl.dot(a, b)`` accumulating in float32.

    EMULATE_BF16 (interpreter only): the interpreter's dot misreads bfloat16 (numpy has no
    bfloat16), so bf16 operands arrive as float32 tensors holding bf16 values (see
    :func:`to_dtype`) and are multiplied as such — the GPU's products, summed in float32.
    """
    if EMULATE_BF16:
        a = a.to(tl.float32)
        b = b.to(tl.float32)
    return tl.dot(a, b)


@triton.jit
def round_to_bf16(x):
    """float32 → nearest bfloat16 value (ties to even), kept in float32."""
    bits = x.to(tl.uint32, bitcast=True)
    bits = bits + 0x7FFF + ((bits >> 16) & 1)
    bits = bits & 0xFFFF0000
    return bits.to(tl.float32, bitcast=True)


@triton.jit
def to_dtype(x, dtype: tl.constexpr, EMULATE_BF16: tl.constexpr):
    """``x.to(dtype)`` with the GPU's rounding.

    The interpreter converts float32 to bfloat16 by truncation, a biased error the GPU does not
    make; under EMULATE_BF16 the value is rounded to nearest here and stays float32 (a later
    conversion of an exact bf16 value is exact).
    """
    if EMULATE_BF16:
        y = round_to_bf16(x)
    else:
        y = x.to(dtype)
    return y


@triton.jit
def tanh(x):
    """tanh via the sigmoid, which every Triton backend (and the interpreter) provides."""
    return 2.0 * tl.sigmoid(2.0 * x) - 1.0


@triton.jit
def score_mod(
    qk,
    q_idx,
    k_idx,
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
    HAS_LEFT: tl.constexpr,
    HAS_RIGHT: tl.constexpr,
    MASK_KIND: tl.constexpr,
    HAS_ALIBI: tl.constexpr,
    HAS_SOFTCAP: tl.constexpr,
):
    """Turn raw q·kᵀ products into final scores, in log2 units.

    ``q_idx`` and ``k_idx`` are broadcastable index tiles (rows × 1 and 1 × cols in the forward
    and dQ kernels; transposed in the dK/dV kernel), so one helper serves both orientations.
    Returns (scores with −inf where removed, d(softcapped)/d(raw) — the tanh derivative, only
    meaningful when HAS_SOFTCAP).
    """
    x = qk * scale
    if HAS_SOFTCAP:
        t = tanh(x / softcap)
        x = softcap * t
        dcap = 1.0 - t * t
    else:
        dcap = x
    valid = (q_idx < q_len) & (k_idx < k_len)
    if HAS_ALIBI:
        distance = q_idx + offset - k_idx
        x = x - slope * tl.abs(distance).to(tl.float32)
    if MASK_KIND == 2:  # additive float mask
        bias = tl.load(mask_base + q_idx * stride_mm + k_idx * stride_mn, mask=valid, other=0.0)
        x = x + bias.to(tl.float32)
    if MASK_KIND == 1:  # boolean mask, stored as uint8 (nonzero = may attend)
        keep = tl.load(mask_base + q_idx * stride_mm + k_idx * stride_mn, mask=valid, other=0)
        valid = valid & (keep != 0)
    if HAS_RIGHT:  # causal is right = 0
        valid = valid & (k_idx <= q_idx + offset + right)
    if HAS_LEFT:
        valid = valid & (k_idx >= q_idx + offset - left)
    s = tl.where(valid, x * LOG2E, float("-inf"))
    return s, dcap


@triton.jit
def sequence_bounds(b, CU_Q, CU_K, KLEN, N_Q, N_K, VARLEN: tl.constexpr, HAS_KLEN: tl.constexpr):
    """(q_start, q_len, k_start, k_len, offset) of batch entry ``b``.

    Packed (VARLEN) sequences start at cu_seqlens[b] and align causally per sequence
    (offset = k_len − q_len); padded batches keep the call's offset N_K − N_Q and may stop
    keys early at key_lengths[b].
    """
    zero = b * 0
    if VARLEN:
        q_start = tl.load(CU_Q + b)
        q_len = tl.load(CU_Q + b + 1) - q_start
        k_start = tl.load(CU_K + b)
        k_len = tl.load(CU_K + b + 1) - k_start
        offset = k_len - q_len
    else:
        q_start = zero
        q_len = zero + N_Q
        k_start = zero
        k_len = zero + N_K
        offset = zero + (N_K - N_Q)
        if HAS_KLEN:
            k_len = zero + tl.load(KLEN + b)
    return q_start, q_len, k_start, k_len, offset


@triton.jit
def key_range(
    start_m,
    k_len,
    offset,
    left,
    right,
    HAS_LEFT: tl.constexpr,
    HAS_RIGHT: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
):
    """[lo, hi) of key positions that query tile ``start_m`` may see; lo is tile-aligned."""
    lo = start_m * 0
    hi = k_len
    if HAS_RIGHT:
        hi = tl.minimum(hi, start_m * BLOCK_M + BLOCK_M + offset + right)
    if HAS_LEFT:
        lo = tl.maximum(lo, start_m * BLOCK_M + offset - left)
        lo = (lo // BLOCK_N) * BLOCK_N
    return lo, hi


@triton.jit
def query_range(
    start_n,
    q_len,
    offset,
    left,
    right,
    HAS_LEFT: tl.constexpr,
    HAS_RIGHT: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
):
    """[lo, hi) of query rows that may see key tile ``start_n``; lo is tile-aligned."""
    lo = start_n * 0
    hi = q_len
    if HAS_RIGHT:  # k <= q + offset + right  <=>  q >= k - offset - right
        lo = tl.maximum(lo, start_n * BLOCK_N - offset - right)
        lo = (lo // BLOCK_M) * BLOCK_M
    if HAS_LEFT:  # k >= q + offset - left  <=>  q <= k - offset + left
        hi = tl.minimum(hi, start_n * BLOCK_N + BLOCK_N - offset + left)
    return lo, hi


@triton.jit
def _mix64(x):
    """SplitMix64's finaliser on uint64 (wrap-around multiplies, logical shifts)."""
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9
    x = (x ^ (x >> 27)) * 0x94D049BB133111EB
    return x ^ (x >> 31)


@triton.jit
def dropout_keep(seed, b, h, q_idx, k_idx, threshold):
    """Keep decision for scores (b, h, q_idx, k_idx): bit for bit ``qkv.attention.dropout``'s
    counter-based hash, so forward and backward (and the reference) draw the same mask.
    ``threshold`` = ceil(p·2⁵³): kept iff the top 53 hash bits are >= it."""
    # `+ 0 * b` turns a launch argument Triton specialised to the constant 1 into a tensor.
    seed = seed + 0 * b
    threshold = threshold + 0 * b
    x = seed.to(tl.uint64) + b.to(tl.uint64) * 0x100000001B3
    x = x * 0x9E3779B97F4A7C15 + h.to(tl.uint64) * 0x9E3779B1
    x = _mix64(x) + q_idx.to(tl.uint64) * 0x85EBCA77
    x = _mix64(x) + k_idx.to(tl.uint64)
    x = _mix64(x * 0x9E3779B97F4A7C15)
    return (x >> 11) >= threshold.to(tl.uint64)
