"""``MultiHeadAttention``: projections, rotary, cache and masks around the ``qkv.attention``
kernel.

The module owns the parameters and the bookkeeping; the attention math itself is one call to
``qkv.attention`` with the module's ``backend`` (``"auto"`` by default), so every backend the
registry knows can serve a model. Attention weights come from the ``reference`` backend,
requested per call (``need_weights=True``) or for every call while ``record_attention`` is
active.

Parameter names (nanoGPT / GPT-2): ``c_attn`` is the fused projection C -> (Hq + 2·Hkv)·D
whose output rows are [q heads | k heads | v heads], each head's D rows contiguous;
``c_proj`` maps Hq·D -> C. ``nn.Linear`` stores weights as (out, in), the transpose of
GPT-2's Conv1D. With ``qk_norm`` a norm of width D (``q_norm``, ``k_norm``) runs on every q and
k head before rotary (Qwen3, Gemma3). ``window`` (a sliding window) and ``softcap`` pass
straight to the kernel, which applies them bottom-right aligned, so they hold with a KV cache.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import Tensor, nn

from qkv.attention import attention, attention_with_weights
from qkv.nn.hooked_attention import attend_through_hooks, project_heads
from qkv.nn.hooks import HookPoint
from qkv.nn.norms import NormKind, make_norm
from qkv.nn.record import AttentionRecord, RecordableAttention
from qkv.nn.rotary import apply_rotary

if TYPE_CHECKING:
    from qkv.nn.kv_cache import LayerKVCache
    from qkv.nn.packing import PackedSequences


class MultiHeadAttention(nn.Module, RecordableAttention):
    """Multi-head self-attention with grouped-query heads, optional rotary positions, causal
    and padding masks, a KV-cache hook and attention weights on request.

    Shapes: x (B, T, C) -> (B, T, C); with ``need_weights=True`` also weights (B, Hq, T, Tk).

    Example::

        >>> mha = MultiHeadAttention(hidden_size=64, n_heads=8, n_kv_heads=2, causal=True)
        >>> y = mha(torch.randn(2, 10, 64))  # (2, 10, 64)
    """

    def __init__(
        self,
        *,
        hidden_size: int,
        n_heads: int,
        n_kv_heads: int | None = None,
        head_dim: int | None = None,
        bias: bool = True,
        causal: bool = False,
        dropout: float = 0.0,
        scale: float | None = None,
        backend: str = "auto",
        qkv_bias: bool | None = None,
        out_bias: bool | None = None,
        qk_norm: NormKind | None = None,
        norm_eps: float = 1e-6,
        window: tuple[int | None, int | None] | None = None,
        softcap: float | None = None,
    ) -> None:
        super().__init__()
        n_kv_heads = n_heads if n_kv_heads is None else n_kv_heads
        if head_dim is None:
            if hidden_size % n_heads != 0:
                raise ValueError(
                    f"hidden_size {hidden_size} is not divisible by n_heads {n_heads}; "
                    "pick n_heads dividing hidden_size or pass head_dim"
                )
            head_dim = hidden_size // n_heads
        if n_kv_heads < 1 or n_heads % n_kv_heads != 0:
            raise ValueError(
                f"n_heads ({n_heads}) must be a multiple of n_kv_heads ({n_kv_heads}); "
                "choose n_kv_heads dividing n_heads"
            )
        self.n_heads = n_heads
        self.n_kv_heads = n_kv_heads
        self.head_dim = head_dim
        self.causal = causal
        self.dropout = dropout
        self.scale = scale if scale is not None else head_dim**-0.5
        self.backend = backend
        self.window = window
        self.softcap = softcap
        qkv_bias = bias if qkv_bias is None else qkv_bias
        out_bias = bias if out_bias is None else out_bias
        self.c_attn = nn.Linear(hidden_size, (n_heads + 2 * n_kv_heads) * head_dim, bias=qkv_bias)
        self.c_proj = nn.Linear(n_heads * head_dim, hidden_size, bias=out_bias)
        if qk_norm is not None:
            self.q_norm = make_norm(qk_norm, head_dim, eps=norm_eps, bias=False)
            self.k_norm = make_norm(qk_norm, head_dim, eps=norm_eps, bias=False)
        # Set by qkv.nn.record_attention while recording.
        self.recorder: list[AttentionRecord] | None = None
        self.layer_index = 0
        # Identity unless hooked (qkv.nn.hooks); k and v have Hkv heads under GQA.
        self.hook_q = HookPoint("(B, T, H, d_head)")
        self.hook_k = HookPoint("(B, T, Hkv, d_head)")
        self.hook_v = HookPoint("(B, T, Hkv, d_head)")
        self.hook_attn_scores = HookPoint("(B, H, Tq, Tk)")
        self.hook_pattern = HookPoint("(B, H, Tq, Tk)")
        self.hook_z = HookPoint("(B, T, H, d_head)")
        self.hook_result = HookPoint("(B, T, H, C)")

    def forward(
        self,
        x: Tensor,
        *,
        mask: Tensor | None = None,
        rotary: tuple[Tensor, Tensor] | None = None,
        cache: LayerKVCache | None = None,
        need_weights: bool = False,
    ) -> Tensor | tuple[Tensor, Tensor]:
        """Attend x (B, T, C) over itself (and the cached keys/values before it).

        ``mask``: bool (True = may attend) or float, broadcastable to (B, Hq, T, Tk), where Tk
        is T plus the cached length. ``rotary``: (cos, sin) float32 (B, 1, T, D) for these T
        positions, or None for no rotary. ``cache``: a layer of a :class:`~qkv.nn.KVCache`.
        """
        batch, length, _ = x.shape
        hq, hkv, d = self.n_heads, self.n_kv_heads, self.head_dim
        qkv = self.c_attn(x)  # (B, T, (Hq + 2·Hkv)·D)
        q, k, v = qkv.split((hq * d, hkv * d, hkv * d), dim=-1)
        q = self.hook_q(q.view(batch, length, hq, d)).transpose(1, 2)  # (B, Hq, T, D)
        k = self.hook_k(k.view(batch, length, hkv, d)).transpose(1, 2)  # (B, Hkv, T, D)
        v = self.hook_v(v.view(batch, length, hkv, d)).transpose(1, 2)  # (B, Hkv, T, D)
        if hasattr(self, "q_norm"):
            q, k = self.q_norm(q), self.k_norm(k)
        if rotary is not None:
            cos, sin = rotary
            q = apply_rotary(q, cos, sin)
            k = apply_rotary(k, cos, sin)
        if cache is not None:
            k, v = cache.update(k, v)  # (B, Hkv, Tk, D)
            if mask is not None and mask.shape[-1] > k.shape[2]:
                mask = mask[..., -k.shape[2] :]  # a windowed cache keeps the last keys only
            if k.dtype != q.dtype:  # a wider cache, e.g. float32 for a bf16 model on CPU
                q = q.to(k.dtype)
        # One query per row at the end of the keys sees every key: no causal mask needed.
        causal = self.causal and length > 1
        recording = self.recorder is not None
        want_weights = need_weights or recording
        dropout_p = self.dropout if self.training else 0.0
        weights = None  # (B, Hq, T, Tk) when wanted
        if self.hook_attn_scores.active or self.hook_pattern.active:
            out, weights = attend_through_hooks(
                self, q, k, v, causal=causal, mask=mask, dropout_p=dropout_p
            )
        elif want_weights:
            out, weights = attention_with_weights(
                q,
                k,
                v,
                causal=causal,
                mask=mask,
                scale=self.scale,
                dropout_p=dropout_p,
                window=self.window,
                softcap=self.softcap,
                backend="reference",
            )
        else:
            out = attention(
                q,
                k,
                v,
                causal=causal,
                mask=mask,
                scale=self.scale,
                dropout_p=dropout_p,
                window=self.window,
                softcap=self.softcap,
                backend=self.backend,
            )
        # out: (B, Hq, T, D)
        if recording:
            self._record(q, k, v, weights, out, causal, mask)
        out = self.hook_z(out.to(x.dtype).transpose(1, 2))  # (B, T, Hq, D)
        if self.hook_result.active:
            y = project_heads(self, out)  # (B, T, C)
        else:
            y = self.c_proj(out.reshape(batch, length, hq * d))  # (B, T, C)
        if need_weights:
            return y, weights
        return y

    def forward_packed(self, x: Tensor, packing: PackedSequences) -> Tensor:
        """Attend each of several packed sequences over itself: x (N, C) -> (N, C).

        ``x`` holds the tokens of ``packing``'s sequences back to back (see
        :mod:`qkv.nn.packing`). The projections run on the N real tokens only; the attention
        kernel gets the padded (B, H, Lmax, D) layout with the key-padding mask. No rotary,
        no cache and no weights: this serves encoders such as BERT.
        """
        if self.recorder is not None:
            raise ValueError(
                "record_attention does not see packed attention calls; record the padded "
                "model forward instead"
            )
        hq, hkv, d = self.n_heads, self.n_kv_heads, self.head_dim
        qkv = packing.pad(self.c_attn(x))  # (B, Lmax, (Hq + 2·Hkv)·D)
        batch, width, _ = qkv.shape
        q, k, v = qkv.split((hq * d, hkv * d, hkv * d), dim=-1)
        q = q.view(batch, width, hq, d).transpose(1, 2)  # (B, Hq, Lmax, D)
        k = k.view(batch, width, hkv, d).transpose(1, 2)  # (B, Hkv, Lmax, D)
        v = v.view(batch, width, hkv, d).transpose(1, 2)  # (B, Hkv, Lmax, D)
        out = attention(
            q,
            k,
            v,
            causal=self.causal and width > 1,
            mask=packing.key_mask,
            scale=self.scale,
            dropout_p=self.dropout if self.training else 0.0,
            backend=self.backend,
        )  # (B, Hq, Lmax, D)
        out = out.to(x.dtype).transpose(1, 2).reshape(batch, width, hq * d)  # (B, Lmax, Hq·D)
        return self.c_proj(packing.unpad(out))  # (N, C)

    def extra_repr(self) -> str:
        return (
            f"n_heads={self.n_heads}, n_kv_heads={self.n_kv_heads}, head_dim={self.head_dim}, "
            f"causal={self.causal}, backend={self.backend!r}"
            + (f", window={self.window}" if self.window is not None else "")
            + (f", softcap={self.softcap:g}" if self.softcap is not None else "")
        )
