"""Reading the residual stream in vocabulary space: the logit lens and direct logit
attribution per head.

``logit_lens`` puts each layer's residual stream through the final norm, recomputed from
that residual (not a scale cached from the last layer), and the unembedding.
``head_attribution`` splits one token's logit into each head's direct contribution plus the
rest; this split needs the final norm to be linear, so its scale is frozen from the real run
(as TransformerLens's direct logit attribution does), and says so in ``note``. Example::

    >>> lens = qkv.interp.logit_lens(model, ids)           # (L + 1, B, T, vocab)
    >>> parts = qkv.interp.head_attribution(model, ids, answer_id)
    >>> parts.heads.shape                                  # (L, H, B, T)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from qkv.interp.sweep import check_ids
from qkv.models import GPT

FROZEN_SCALE_NOTE = (
    "the final norm's scale (its 1/std or 1/rms per position) is frozen from the real run, "
    "so each part's share is exact for this input but is not what the part alone would give"
)


def _check_decoder(model: nn.Module, what: str) -> GPT:
    if not isinstance(model, GPT):
        raise ValueError(
            f"{what} reads the residual stream through a final norm and an unembedding: it "
            f"needs a qkv decoder (qkv.models.GPT), got {type(model).__name__}"
        )
    return model


def logit_lens(model: nn.Module, ids: Tensor) -> Tensor:
    """(n_layer + 1, B, T, vocab): row l is ``blocks.{l}.hook_resid_pre`` (row 0 the
    embeddings) through the final norm and the unembedding; the last row is the final
    residual stream, which equals the model's logits."""
    gpt = _check_decoder(model, "logit_lens")
    check_ids(ids, "ids")
    n_layer = gpt.config.n_layer
    names = [f"blocks.{layer}.hook_resid_pre" for layer in range(n_layer)]
    names.append(f"blocks.{n_layer - 1}.hook_resid_post")
    with torch.no_grad():
        _, cache = gpt.run_with_cache(ids, names_filter=names)
        residuals = torch.stack([cache[name] for name in names])  # (L + 1, B, T, C)
        logits = gpt.lm_head(gpt.transformer["ln_f"](residuals))  # (L + 1, B, T, vocab)
        cap = gpt.config.final_softcap
        return logits if cap is None else torch.tanh(logits / cap) * cap


@dataclass(kw_only=True)
class HeadAttribution:
    """One token's logit, split. ``heads`` (L, H, B, T): each head's direct contribution;
    ``embeddings``, ``norm_bias`` (B, T); ``mlps``, ``attn_biases`` (L, B, T);
    ``rest`` (B, T) the sum of those; ``logit`` (B, T) the model's logit, equal to
    heads.sum((0, 1)) + rest up to rounding. ``note`` says how the final norm was treated."""

    heads: Tensor
    embeddings: Tensor
    mlps: Tensor
    attn_biases: Tensor
    norm_bias: Tensor
    rest: Tensor
    logit: Tensor
    note: str = FROZEN_SCALE_NOTE


def head_attribution(model: nn.Module, ids: Tensor, tokens: int | Tensor) -> HeadAttribution:
    """Direct logit attribution of token ``tokens`` (an id, or (B, T) ids) at every position
    of ``ids`` (B, T): each head's ``hook_result`` through the final norm with its scale
    frozen from the real run, dotted with the token's unembedding row. See
    :class:`HeadAttribution`."""
    gpt = _check_decoder(model, "head_attribution")
    check_ids(ids, "ids")
    config = gpt.config
    batch, length = ids.shape
    if isinstance(tokens, int):
        if not 0 <= tokens < config.vocab_size:
            raise ValueError(f"token {tokens} is out of range for vocab_size {config.vocab_size}")
        tokens = torch.full_like(ids, tokens)
    if not isinstance(tokens, Tensor) or tokens.shape != ids.shape:
        raise ValueError(f"tokens must be an int or a tensor of shape {tuple(ids.shape)}")
    why = None
    if config.final_softcap is not None:
        why = "its logits are soft-capped (final_softcap), which is not linear in the parts"
    elif config.sandwich_norm:
        why = "each block normalises its attention output (sandwich_norm), so heads do not add"
    elif config.norm == "gemma_rmsnorm":
        why = "its final norm is Gemma's (1 + w) RMSNorm, which this split does not model"
    if why is not None:
        raise ValueError(
            f"head_attribution splits a logit into a sum of parts, and this model has none: "
            f"{why}; use qkv.interp.ablate or patch_heads to measure its heads instead"
        )
    norm = gpt.transformer["ln_f"]
    with torch.no_grad():
        logits, cache = gpt.run_with_cache(ids)
        final = cache[f"blocks.{config.n_layer - 1}.hook_resid_post"]  # (B, T, C)
        centred = isinstance(norm, nn.LayerNorm)
        if centred:
            scale = (final.var(-1, unbiased=False, keepdim=True) + norm.eps).sqrt()  # (B, T, 1)
        else:
            scale = (final.float().pow(2).mean(-1, keepdim=True) + norm.eps).sqrt().to(final.dtype)
        weight = norm.weight if getattr(norm, "weight", None) is not None else 1.0
        direction = gpt.lm_head.weight[tokens] * weight  # (B, T, C)

        def through_norm(part: Tensor) -> Tensor:  # part (B, T, ..., C) -> (B, T, ...)
            if centred:
                part = part - part.mean(-1, keepdim=True)
            extra = part.dim() - 3
            frozen = scale.view(batch, length, *([1] * extra), 1)
            along = direction.view(batch, length, *([1] * extra), -1)
            return (part / frozen * along).sum(-1)

        heads = []
        mlps, attn_biases = [], []
        total = cache["hook_embed"] + cache.get("hook_pos_embed", 0.0)
        embeddings = through_norm(total)
        for layer, block in enumerate(gpt.transformer["h"]):
            prefix = f"blocks.{layer}."
            result = cache[prefix + "attn.hook_result"]  # (B, T, H, C)
            heads.append(through_norm(result).permute(2, 0, 1))  # (H, B, T)
            bias = block.attn.c_proj.bias
            bias_part = torch.zeros_like(final) if bias is None else bias.expand_as(final)
            attn_biases.append(through_norm(bias_part))
            mlps.append(through_norm(cache[prefix + "hook_mlp_out"]))
            total = total + result.sum(2) + bias_part + cache[prefix + "hook_mlp_out"]
        if not torch.allclose(total, final, rtol=1e-4, atol=1e-4 * float(final.abs().max())):
            raise ValueError(
                "this model's final residual stream is not the sum of its embeddings, heads, "
                "attention biases and MLP outputs, so head attribution cannot split it"
            )
        norm_bias_vector = getattr(norm, "bias", None)
        if norm_bias_vector is None:
            norm_bias = torch.zeros(batch, length, dtype=final.dtype)
        else:
            norm_bias = (gpt.lm_head.weight[tokens] * norm_bias_vector).sum(-1)
        mlps_t, biases_t = torch.stack(mlps), torch.stack(attn_biases)
        rest = embeddings + mlps_t.sum(0) + biases_t.sum(0) + norm_bias
        logit = logits.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)  # (B, T)
    return HeadAttribution(
        heads=torch.stack(heads),
        embeddings=embeddings,
        mlps=mlps_t,
        attn_biases=biases_t,
        norm_bias=norm_bias,
        rest=rest,
        logit=logit,
    )
