"""GPT: a decoder-only transformer covering GPT-2 exactly and, by config, Llama.

Parameter names (nanoGPT style, so GPT-2 weights import key by key)::

    transformer.wte.weight                    (vocab, C)   token embeddings
    transformer.wpe.weight                    (P, C)       learned positions (position="learned")
    transformer.h.{i}.ln_1.{weight,bias}                   norm before attention
    transformer.h.{i}.attn.c_attn.{weight,bias} ((Hq+2Hkv)·D, C)  fused [q | k | v] projection
    transformer.h.{i}.attn.c_proj.{weight,bias} (C, Hq·D)
    transformer.h.{i}.attn.{q,k}_norm.weight   (D,)     per-head q/k norms (qk_norm)
    transformer.h.{i}.post_attn_norm.weight     (C,)     norm of the attention output (sandwich)
    transformer.h.{i}.ln_2.{weight,bias}                   norm before the MLP
    transformer.h.{i}.post_mlp_norm.weight      (C,)     norm of the MLP output (sandwich)
    transformer.h.{i}.mlp.c_fc / mlp.c_proj                GELU MLP (mlp="gelu")
    transformer.h.{i}.mlp.gate_proj / up_proj / down_proj  SwiGLU MLP (mlp="swiglu")
    transformer.ln_f.{weight,bias}                         final norm
    lm_head.weight                            (vocab, C)   tied to wte when tie_embeddings

Weights are ``nn.Linear`` (out, in): GPT-2's Conv1D stores (in, out), so its c_attn, c_proj,
c_fc and mlp.c_proj weights are transposed on import. Llama's q_proj/k_proj/v_proj rows
concatenate into c_attn; input_layernorm -> ln_1, post_attention_layernorm -> ln_2,
model.norm -> ln_f, embed_tokens -> wte. RMSNorm and bias-free LayerNorm have no ``bias``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from qkv.models.config import GPTConfig
from qkv.models.moved_arguments import ATTENTIONS, LM_LOSS, reject_moved_arguments
from qkv.nn.attention import MultiHeadAttention
from qkv.nn.hooks import HookedModel, HookPoint, norm_through_hook
from qkv.nn.kv_cache import KVCache, LayerKVCache
from qkv.nn.mlp import GeluMLP, SwiGLU
from qkv.nn.norms import make_norm
from qkv.nn.rotary import RopeScaling, RotaryEmbedding


def _window(config: GPTConfig, layer: int) -> tuple[int, int] | None:
    """A sliding layer's query sees ``sliding_window`` keys, itself included (HF's rule
    key > query − window): the kernel's window (sliding_window − 1 left, 0 right)."""
    assert config.layer_types is not None
    if config.layer_types[layer] != "sliding":
        return None
    assert config.sliding_window is not None
    return (config.sliding_window - 1, 0)


class Block(nn.Module):
    """Pre-norm decoder block: x + attn(ln_1(x)), then x + mlp(ln_2(x)). x (B, T, C).

    ``parallel_residual``: x + attn(ln_1(x)) + mlp(ln_2(x)) (GPT-NeoX). ``sandwich_norm``:
    the attention and MLP outputs are normed again before their residual adds (Gemma 2/3).
    """

    def __init__(self, config: GPTConfig, layer: int = 0) -> None:
        super().__init__()
        c = config
        self.parallel_residual = c.parallel_residual
        self.ln_1 = make_norm(c.norm, c.n_embd, eps=c.norm_eps, bias=c.bias)
        scale = None if c.query_pre_attn_scalar is None else c.query_pre_attn_scalar**-0.5
        self.attn = MultiHeadAttention(
            hidden_size=c.n_embd,
            n_heads=c.n_head,
            n_kv_heads=c.n_kv_head,
            head_dim=c.head_dim,
            bias=c.bias,
            qkv_bias=c.qkv_bias,
            out_bias=c.attn_out_bias,
            qk_norm=c.norm if c.qk_norm else None,
            norm_eps=c.norm_eps,
            causal=True,
            dropout=c.dropout,
            scale=scale,
            window=_window(c, layer),
            softcap=c.attn_softcap,
            backend=c.attention_backend,
        )
        self.ln_2 = make_norm(c.norm, c.n_embd, eps=c.norm_eps, bias=c.bias)
        if c.sandwich_norm:
            self.post_attn_norm = make_norm(c.norm, c.n_embd, eps=c.norm_eps, bias=c.bias)
            self.post_mlp_norm = make_norm(c.norm, c.n_embd, eps=c.norm_eps, bias=c.bias)
        assert c.intermediate_size is not None
        if c.mlp == "gelu":
            self.mlp: nn.Module = GeluMLP(
                c.n_embd,
                c.intermediate_size,
                bias=bool(c.mlp_bias),
                activation=c.activation,
                dropout=c.dropout,
            )
        else:
            self.mlp = SwiGLU(
                c.n_embd,
                c.intermediate_size,
                bias=bool(c.mlp_bias),
                dropout=c.dropout,
                activation="silu" if c.mlp == "swiglu" else "gelu_tanh",
            )
        self.resid_dropout = nn.Dropout(c.dropout)
        self.hook_resid_pre = HookPoint("(B, T, C)")  # hook points: identity unless hooked
        self.hook_attn_out = HookPoint("(B, T, C)")
        if not self.parallel_residual:  # a parallel block has no mid-point residual
            self.hook_resid_mid = HookPoint("(B, T, C)")
        self.hook_mlp_out = HookPoint("(B, T, C)")
        self.hook_resid_post = HookPoint("(B, T, C)")

    def forward(
        self,
        x: Tensor,
        *,
        mask: Tensor | None,
        rotary: tuple[Tensor, Tensor] | None,
        cache: LayerKVCache | None,
        need_weights: bool,
    ) -> tuple[Tensor, Tensor | None]:
        x = self.hook_resid_pre(x)
        attended = self.attn(
            self.ln_1(x), mask=mask, rotary=rotary, cache=cache, need_weights=need_weights
        )
        weights = None
        if need_weights:
            attended, weights = attended
        if hasattr(self, "post_attn_norm"):
            attended = self.post_attn_norm(attended)
        attended = self.hook_attn_out(self.resid_dropout(attended))
        if self.parallel_residual:  # NeoX: attention and MLP both read the block's input
            fed = self.hook_mlp_out(self.mlp(self.ln_2(x)))
            return self.hook_resid_post(x + attended + fed), weights
        x = self.hook_resid_mid(x + attended)
        fed = self.mlp(self.ln_2(x))
        if hasattr(self, "post_mlp_norm"):
            fed = self.post_mlp_norm(fed)
        return self.hook_resid_post(x + self.hook_mlp_out(fed)), weights


class GPT(HookedModel, nn.Module):
    """Decoder-only language model. See the module docstring for parameter names.

    Example::

        >>> model = GPT(qkv.models.preset("gpt-nano", vocab_size=100))
        >>> logits = model(torch.randint(0, 100, (2, 16)))  # (2, 16, 100)
        >>> loss = qkv.models.language_model_loss(model(inputs), targets)  # -100 ignored
        >>> logits, attentions = model.forward_with_attentions(ids)  # weights (B, H, T, T)
        >>> logits, cache = model.run_with_cache(ids)  # hook points: model.hook_names()
    """

    _HOOK_RENAMES = (("transformer.h.", "blocks."), ("hook_ln_final", "ln_final.hook_normalized"))

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        if not isinstance(config, GPTConfig):
            raise ValueError(f"GPT needs a GPTConfig, got {type(config).__name__}")
        self.config = config
        c = config
        self.transformer = nn.ModuleDict()
        self.transformer["wte"] = nn.Embedding(c.vocab_size, c.n_embd)
        if c.position == "learned":
            self.transformer["wpe"] = nn.Embedding(c.n_positions, c.n_embd)
        self.transformer["drop"] = nn.Dropout(c.dropout)
        self.transformer["h"] = nn.ModuleList(Block(c, i) for i in range(c.n_layer))
        self.transformer["ln_f"] = make_norm(c.norm, c.n_embd, eps=c.norm_eps, bias=c.bias)
        self.lm_head = nn.Linear(c.n_embd, c.vocab_size, bias=False)
        self.rotary, self.local_rotary = self._rotaries(c)
        self.apply(self._init_weights)
        # GPT-2: residual projections scaled by 1/sqrt(2·n_layer).
        for name, parameter in self.named_parameters():
            if name.endswith(("c_proj.weight", "down_proj.weight")):
                std = c.initializer_range / math.sqrt(2 * c.n_layer)
                nn.init.normal_(parameter, mean=0.0, std=std)
        if c.tie_embeddings:
            self.lm_head.weight = self.transformer["wte"].weight
        self.hook_embed = HookPoint("(B, T, C)")  # identity unless hooked (qkv.nn.hooks)
        if c.position == "learned":
            self.hook_pos_embed = HookPoint("(B, T, C)")
        self.hook_ln_final = HookPoint("(B, T, C) before the norm's weight and bias")

    @staticmethod
    def _rotaries(c: GPTConfig) -> tuple[RotaryEmbedding | None, RotaryEmbedding | None]:
        """The global layers' rotary and, with ``rope_local_theta``, the sliding layers' own
        (unscaled, as Gemma3's local RoPE)."""
        if c.position != "rotary":
            return None, None
        scaling = None
        if c.rope_scaling != "none":
            scaling = RopeScaling(
                kind=c.rope_scaling,
                factor=c.rope_factor,
                low_freq_factor=c.rope_low_freq_factor,
                high_freq_factor=c.rope_high_freq_factor,
                original_max_positions=c.rope_original_max_positions,
            )
        size = dict(head_dim=c.rotary_dim, max_positions=c.n_positions)
        rotary = RotaryEmbedding(**size, theta=c.rope_theta, scaling=scaling)
        local = None
        if c.rope_local_theta is not None:
            local = RotaryEmbedding(**size, theta=c.rope_local_theta)
        return rotary, local

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=self.config.initializer_range)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=self.config.initializer_range)

    def make_cache(
        self,
        *,
        batch_size: int,
        max_len: int | None = None,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> KVCache:
        """A static KV cache for this model: (B, Hkv, max_len, D) per layer and k/v; sliding
        layers hold a few windows only (see :class:`~qkv.nn.KVCache`)."""
        max_len = self.config.n_positions if max_len is None else max_len
        if max_len > self.config.n_positions:
            raise ValueError(
                f"cache max_len {max_len} exceeds the model's context n_positions="
                f"{self.config.n_positions}; shorten the sequence or use a longer-context model"
            )
        weight = self.transformer["wte"].weight
        assert self.config.n_kv_head is not None and self.config.head_dim is not None
        return KVCache(
            n_layers=self.config.n_layer,
            batch_size=batch_size,
            n_kv_heads=self.config.n_kv_head,
            head_dim=self.config.head_dim,
            max_len=max_len,
            dtype=dtype or weight.dtype,
            device=device or weight.device,
            windows=[
                None if w is None else w[0] + 1
                for w in (_window(self.config, i) for i in range(self.config.n_layer))
            ],
        )

    _MOVED = {"targets": LM_LOSS, "return_attentions": ATTENTIONS.format(output="logits")}

    def forward(
        self,
        input_ids: Tensor,
        *,
        attention_mask: Tensor | None = None,
        position_ids: Tensor | None = None,
        cache: KVCache | None = None,
        last_only: bool = False,
        **moved: Any,
    ) -> Tensor:
        """input_ids (B, T) -> logits (B, T, vocab).

        ``attention_mask`` (B, Tk), 1 = real token, 0 = padding, over every key including the
        cached ones (Tk = cache.length + T). ``position_ids`` (B, T); by default counted from
        the mask (so a left-padded prompt gets the positions it would have alone) or from
        the cache length. ``cache``: a :meth:`make_cache` cache, written in place and advanced
        by T. ``last_only``: compute logits for the last position only (B, 1, vocab).
        The loss is :func:`qkv.models.language_model_loss` of the logits; attention weights
        come from :meth:`forward_with_attentions`.
        """
        reject_moved_arguments("GPT", moved, self._MOVED)
        logits, _ = self._forward(
            input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            last_only=last_only,
            need_weights=False,
        )
        return logits

    def forward_with_attentions(
        self,
        input_ids: Tensor,
        *,
        attention_mask: Tensor | None = None,
        position_ids: Tensor | None = None,
        cache: KVCache | None = None,
        last_only: bool = False,
    ) -> tuple[Tensor, list[Tensor]]:
        """:meth:`forward`'s logits and each layer's attention weights (B, H, T, Tk),
        computed by the reference backend (the only source of weights)."""
        return self._forward(
            input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            last_only=last_only,
            need_weights=True,
        )

    def final_hidden(self, input_ids: Tensor, *, attention_mask: Tensor | None = None) -> Tensor:
        """input_ids (B, T) -> final-normed hidden states (B, T, C): ``lm_head``'s input."""
        options = dict(position_ids=None, cache=None, last_only=False, need_weights=False)
        return self._forward(input_ids, attention_mask=attention_mask, head=False, **options)[0]

    def _forward(
        self,
        input_ids: Tensor,
        *,
        attention_mask: Tensor | None,
        position_ids: Tensor | None,
        cache: KVCache | None,
        last_only: bool,
        need_weights: bool,
        head: bool = True,
    ) -> tuple[Tensor, list[Tensor]]:
        batch, length = self._check_inputs(input_ids, attention_mask, position_ids, cache)
        start = 0 if cache is None else cache.length
        if position_ids is None:
            position_ids = self._positions(attention_mask, batch, length, start, input_ids.device)
        x = self.transformer["wte"](input_ids)  # (B, T, C)
        if self.config.embed_scale:  # Gemma: √C rounded to the activations' dtype first
            x = x * torch.tensor(self.config.n_embd**0.5, dtype=x.dtype)
        x = self.hook_embed(x)
        if "wpe" in self.transformer:
            x = x + self.hook_pos_embed(self.transformer["wpe"](position_ids))
        x = self.transformer["drop"](x)
        rotary = self.rotary(position_ids) if self.rotary is not None else None
        local = self.local_rotary(position_ids) if self.local_rotary is not None else rotary
        assert self.config.layer_types is not None
        mask = None
        if attention_mask is not None:
            mask = attention_mask.bool()[:, None, None, :]  # (B, 1, 1, Tk)
        attentions: list[Tensor] = []
        for index, block in enumerate(self.transformer["h"]):
            layer_cache = cache.layer(index) if cache is not None else None
            layer_rotary = local if self.config.layer_types[index] == "sliding" else rotary
            x, weights = block(
                x, mask=mask, rotary=layer_rotary, cache=layer_cache, need_weights=need_weights
            )
            if weights is not None:
                attentions.append(weights)
        if cache is not None:
            cache.advance(length)
        x = norm_through_hook(self.transformer["ln_f"], self.hook_ln_final, x)
        if not head:
            return x, attentions
        logits = self.lm_head(x[:, -1:] if last_only else x)  # (B, T or 1, vocab)
        if self.config.final_softcap is not None:
            cap = self.config.final_softcap
            logits = torch.tanh(logits / cap) * cap
        return logits, attentions

    def _check_inputs(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None,
        position_ids: Tensor | None,
        cache: KVCache | None,
    ) -> tuple[int, int]:
        if input_ids.dim() != 2 or input_ids.dtype not in (torch.int64, torch.int32):
            raise ValueError(
                f"input_ids must be an integer tensor of shape (batch, seq), got "
                f"{input_ids.dtype} of shape {tuple(input_ids.shape)}; add a batch dim with "
                ".unsqueeze(0)"
            )
        batch, length = input_ids.shape
        start = 0 if cache is None else cache.length
        if start + length > self.config.n_positions:
            raise ValueError(
                f"sequence of {start + length} tokens exceeds the model's context "
                f"n_positions={self.config.n_positions}; truncate the input"
            )
        if attention_mask is not None and tuple(attention_mask.shape) != (batch, start + length):
            raise ValueError(
                f"attention_mask must have shape (batch, cached + new) = "
                f"{(batch, start + length)}, got {tuple(attention_mask.shape)}"
            )
        if position_ids is not None and tuple(position_ids.shape) != (batch, length):
            raise ValueError(
                f"position_ids must have shape {(batch, length)}, got {tuple(position_ids.shape)}"
            )
        return batch, length

    @staticmethod
    def _positions(
        attention_mask: Tensor | None, batch: int, length: int, start: int, device: torch.device
    ) -> Tensor:
        if attention_mask is None:
            positions = torch.arange(start, start + length, device=device)
            return positions.unsqueeze(0).expand(batch, length)  # (B, T)
        counted = attention_mask.long().cumsum(-1) - 1  # (B, Tk)
        return counted[:, -length:].clamp(min=0)  # (B, T)

    def num_parameters(self, *, exclude_embeddings: bool = False) -> int:
        """Parameter count (shared tensors once); optionally without the embeddings."""
        seen = {id(p): p.numel() for p in self.parameters()}
        total = sum(seen.values())
        if exclude_embeddings:
            total -= self.transformer["wte"].weight.numel()
            if "wpe" in self.transformer:
                total -= self.transformer["wpe"].weight.numel()
        return total
