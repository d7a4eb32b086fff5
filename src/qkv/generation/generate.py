"""Autoregressive generation with a static KV cache: prefill the prompt once, then one token
per step.

The cache holds (B, Hkv, max_len, D) buffers per layer, written in place; a left-padded
batch carries its padding mask in one preallocated (B, max_len) buffer and each row's
positions are counted from its own first real token, so a padded batch produces what each
prompt would alone. The decode step has a single query per row, which is not causal-masked,
so the attention kernel sees just a length-limited view of the cache.

Two CPU measures make batch-1 decoding about 2x faster than plain PyTorch (measured
2026-11-24, GPT-2 small, 2 threads; see ``benchmarks/results/models-cpu.md``):

- float32 and bfloat16 models decode with copies of their linear weights in the layout
  measured fastest for the CPU (``qkv.generation.decode_layout``: oneDNN-packed on AVX-512,
  (in, out) float32 copies of the wider-output matrices on AVX2; the copies are kept for the
  next call until a weight changes, ``qkv.generation.release_decode_layout(model)`` frees
  them);
- a bfloat16 or float16 model keeps its KV cache in float32 on CPU, because PyTorch's CPU
  attention at one query is several times slower in bf16 than in fp32 (78 vs 12 us per call
  at 160 keys). The keys and values are the model's own low-precision numbers, stored
  exactly; the softmax is computed in fp32 either way.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from qkv.generation.decode_layout import decode_layout, worth_it
from qkv.generation.sampling import (
    check_eos,
    check_repetition_penalty,
    check_sampling,
    penalise_repeats,
    sample_next,
    seen_tokens,
)


def cache_dtype(model: nn.Module) -> torch.dtype:
    """The KV cache dtype generation uses: float32 for a bf16/fp16 model on CPU (see the
    module docstring), else the model's dtype."""
    weight = next(model.parameters())
    if weight.device.type == "cpu" and weight.dtype in (torch.bfloat16, torch.float16):
        return torch.float32
    return weight.dtype


def _check_inputs(
    model: nn.Module,
    input_ids: Tensor,
    max_new_tokens: int,
    attention_mask: Tensor | None,
) -> int:
    if not hasattr(model, "make_cache") or not hasattr(model, "config"):
        raise ValueError(
            f"generate needs a decoder with a KV cache such as qkv.models.GPT, got "
            f"{type(model).__name__}"
        )
    if not isinstance(input_ids, Tensor) or input_ids.dim() != 2:
        shape = tuple(input_ids.shape) if isinstance(input_ids, Tensor) else type(input_ids)
        raise ValueError(
            f"input_ids must be a (batch, seq) integer tensor, got {shape}; add a batch dim "
            "with .unsqueeze(0)"
        )
    if input_ids.dtype not in (torch.int64, torch.int32) or input_ids.shape[1] == 0:
        raise ValueError(
            f"input_ids must be a non-empty integer tensor, got {input_ids.dtype} of shape "
            f"{tuple(input_ids.shape)}"
        )
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int):
        raise ValueError(f"max_new_tokens must be an int >= 1, got {max_new_tokens!r}")
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    context = model.config.n_positions
    total = input_ids.shape[1] + max_new_tokens
    if total > context:
        raise ValueError(
            f"prompt of {input_ids.shape[1]} tokens + max_new_tokens={max_new_tokens} = {total} "
            f"exceeds the model's context of {context} positions (n_positions); lower "
            f"max_new_tokens to at most {max(context - input_ids.shape[1], 0)} or shorten the "
            "prompt"
        )
    if attention_mask is not None and tuple(attention_mask.shape) != tuple(input_ids.shape):
        raise ValueError(
            f"attention_mask must have the shape of input_ids {tuple(input_ids.shape)}, got "
            f"{tuple(attention_mask.shape)}"
        )
    if attention_mask is not None and not bool(attention_mask[:, -1].bool().all()):
        raise ValueError(
            "attention_mask has padding at the end of a row, but generation continues each "
            "row from its last position; pad prompts on the LEFT (tokenizer padding_side='left')"
        )
    return total


def generate_stream(
    model: nn.Module,
    input_ids: Tensor,
    *,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    eos_token_id: int | Sequence[int] | None = None,
    seed: int | None = None,
    attention_mask: Tensor | None = None,
    repetition_penalty: float = 1.0,
) -> Iterator[Tensor]:
    """Yield the next token of every row, (B,) int64, step by step (see :func:`generate`).

    Stops after the step in which every row has produced one of ``eos_token_id``.

    Example::

        >>> for token in qkv.generate_stream(model, ids, max_new_tokens=20, temperature=0):
        ...     print(tokenizer.decode(token.tolist()), end="")
    """
    # Arguments are checked here, at the call, not at the first next().
    check_sampling(temperature, top_k, top_p)
    check_repetition_penalty(repetition_penalty)
    max_len = _check_inputs(model, input_ids, max_new_tokens, attention_mask)
    return _stream(
        model,
        input_ids.long(),
        max_len=max_len,
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        eos_ids=check_eos(eos_token_id, model.config.vocab_size),
        seed=seed,
        attention_mask=attention_mask,
        repetition_penalty=float(repetition_penalty),
    )


@torch.inference_mode()
def _stream(model: nn.Module, input_ids: Tensor, **options: Any) -> Iterator[Tensor]:
    """Eval mode and the decode weight layout around :func:`_decode`, undone at the end."""
    was_training = model.training
    model.eval()
    try:
        with decode_layout(model, enabled=worth_it(model), keep=True):
            yield from _decode(model, input_ids, **options)
    finally:
        model.train(was_training)


def _decode(
    model: nn.Module,
    input_ids: Tensor,
    *,
    max_len: int,
    max_new_tokens: int,
    temperature: float,
    top_k: int | None,
    top_p: float | None,
    eos_ids: tuple[int, ...],
    seed: int | None,
    attention_mask: Tensor | None,
    repetition_penalty: float,
) -> Iterator[Tensor]:
    batch, prompt_len = input_ids.shape
    device = input_ids.device
    generator = None
    if seed is not None:
        generator = torch.Generator(device=device)
        generator.manual_seed(seed)
    cache = model.make_cache(batch_size=batch, max_len=max_len, dtype=cache_dtype(model))

    # Padding: a (B, max_len) mask buffer, views of which each step passes; None when the
    # batch has no padding so the kernel gets no mask at all (the fast path).
    mask_buffer = None
    if attention_mask is not None and not bool(attention_mask.bool().all()):
        mask_buffer = torch.ones(batch, max_len, dtype=torch.bool, device=device)
        mask_buffer[:, :prompt_len] = attention_mask.bool()
        positions = (mask_buffer[:, :prompt_len].long().cumsum(-1) - 1).clamp(min=0)  # (B, T)
    else:
        positions = torch.arange(prompt_len, device=device).expand(batch, prompt_len)

    logits = model(
        input_ids,
        attention_mask=None if mask_buffer is None else mask_buffer[:, :prompt_len],
        position_ids=positions,
        cache=cache,
        last_only=True,
    )[:, -1]  # (B, V)
    next_position = positions[:, -1:] + 1  # (B, 1)
    done = torch.zeros(batch, dtype=torch.bool, device=device)
    eos = torch.tensor(eos_ids, dtype=torch.long, device=device)  # (E,)
    seen = None  # (B, V): the tokens of each row so far, for the repetition penalty
    if repetition_penalty != 1.0:
        seen = seen_tokens(input_ids, attention_mask, logits.shape[-1])
    for step in range(max_new_tokens):
        if seen is not None:
            logits = penalise_repeats(logits, seen, repetition_penalty)
        token = sample_next(
            logits, temperature=temperature, top_k=top_k, top_p=top_p, generator=generator
        )
        if eos_ids:
            token = token.masked_fill(done, eos_ids[0])  # finished rows are padded with eos
            done |= torch.isin(token, eos)
        if seen is not None:
            seen.scatter_(1, token[:, None], True)
        yield token
        if step + 1 == max_new_tokens or (eos_ids and bool(done.all())):
            return
        length = prompt_len + step + 1
        logits = model(
            token[:, None],
            attention_mask=None if mask_buffer is None else mask_buffer[:, :length],
            position_ids=next_position,
            cache=cache,
            last_only=True,
        )[:, -1]  # (B, V)
        next_position = next_position + 1


def generate(
    model: nn.Module,
    input_ids: Tensor,
    *,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    eos_token_id: int | Sequence[int] | None = None,
    seed: int | None = None,
    attention_mask: Tensor | None = None,
    repetition_penalty: float = 1.0,
) -> Tensor:
    """Continue each prompt: input_ids (B, T) -> (B, T + new) int64 with new <= max_new_tokens.

    ``temperature=0`` is greedy; otherwise logits / temperature are filtered by ``top_k`` and
    ``top_p`` and sampled from a generator seeded with ``seed`` (None: torch's global RNG).
    ``attention_mask`` (B, T) marks real tokens with 1 and LEFT padding with 0; positions
    are counted from each row's first real token, so a padded batch equals each prompt run
    alone. ``eos_token_id`` is one id or a list (Llama 3 ends on any of
    ``[128001, 128008, 128009]``): a row that emits one of them is padded with the first
    afterwards, and generation stops early once every row has, as transformers' ``generate``
    does. ``repetition_penalty`` (transformers' ``RepetitionPenaltyLogitsProcessor``, applied
    before temperature and filtering): the logit of every token already in the row (prompt or
    generated) is divided by it when positive and multiplied by it when negative; left padding
    is not counted as seen. T + max_new_tokens must fit the model's context
    (``config.n_positions``), else ValueError.

    Example::

        >>> out = qkv.generate(model, ids, max_new_tokens=50, temperature=0.8, top_k=40, seed=0)
        >>> out = qkv.generate(model, ids, max_new_tokens=50, temperature=0,
        ...                    eos_token_id=[128001, 128008, 128009])
    """
    tokens = list(
        generate_stream(
            model,
            input_ids,
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            eos_token_id=eos_token_id,
            seed=seed,
            attention_mask=attention_mask,
            repetition_penalty=repetition_penalty,
        )
    )
    return torch.cat([input_ids.long(), torch.stack(tokens, dim=1)], dim=1)
