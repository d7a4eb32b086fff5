"""Sliding-window layers: the trimmed KV cache against the uncached path, and a Gemma-2-shaped
prefill whose attention never builds an N×N tensor (memory linear in N)."""

from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import qkv
from qkv.models import GPT, GPTConfig


def _gemma2_shaped(window: int, positions: int) -> GPT:
    torch.manual_seed(0)
    config = GPTConfig(
        vocab_size=53, n_positions=positions, n_layer=2, n_head=4, n_kv_head=2, n_embd=32,
        head_dim=16, position="rotary", norm="gemma_rmsnorm", mlp="geglu", bias=False,
        sandwich_norm=True, embed_scale=True, sliding_window=window,
        layer_types=("sliding", "global"), attn_softcap=5.0, final_softcap=3.0,
        query_pre_attn_scalar=16.0, tie_embeddings=True, initializer_range=0.3,
    )  # fmt: skip
    return GPT(config).eval()


def _uncached_greedy(model: GPT, ids: torch.Tensor, steps: int) -> torch.Tensor:
    with torch.no_grad():
        for _ in range(steps):
            next_token = model(ids)[:, -1].argmax(-1, keepdim=True)  # (B, 1)
            ids = torch.cat((ids, next_token), dim=1)
    return ids


def test_windowed_cache_is_trimmed_and_matches_the_uncached_path() -> None:
    model = _gemma2_shaped(window=2, positions=256)
    cache = model.make_cache(batch_size=1, max_len=256)
    capacity = cache.keys[0].shape[2]
    assert capacity < 256 and cache.keys[1].shape[2] == 256  # sliding, global
    generator = torch.Generator().manual_seed(1)
    # Decoding past the sliding layer's buffer (the kept keys move to the front) ...
    prompt = torch.randint(0, 53, (1, capacity - 8), generator=generator)
    ours = qkv.generate(model, prompt, max_new_tokens=14, temperature=0)
    assert ours.tolist() == _uncached_greedy(model, prompt, 14).tolist()
    # ... and a prompt longer than the buffer.
    prompt = torch.randint(0, 53, (1, capacity + 6), generator=generator)
    ours = qkv.generate(model, prompt, max_new_tokens=4, temperature=0)
    assert ours.tolist() == _uncached_greedy(model, prompt, 4).tolist()


@pytest.mark.slow
def test_windowed_cache_with_left_padding_matches_the_uncached_path() -> None:
    model = _gemma2_shaped(window=3, positions=256)
    generator = torch.Generator().manual_seed(2)
    batch = torch.randint(1, 53, (2, 30), generator=generator)
    mask = torch.ones_like(batch)
    mask[0, :7] = 0
    ours = qkv.generate(model, batch, attention_mask=mask, max_new_tokens=50, temperature=0)
    ids, full = batch, mask
    with torch.no_grad():
        for _ in range(50):
            logits = model(ids, attention_mask=full)[:, -1]
            ids = torch.cat((ids, logits.argmax(-1, keepdim=True)), dim=1)
            full = torch.cat((full, torch.ones(2, 1, dtype=full.dtype)), dim=1)
    assert ours.tolist() == ids.tolist()


class _LargestTensor(TorchDispatchMode):
    """Records the most elements any op output had (a proxy for peak attention memory)."""

    def __init__(self) -> None:
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        out = func(*args, **(kwargs or {}))
        for tensor in out if isinstance(out, tuple | list) else (out,):
            if isinstance(tensor, torch.Tensor):
                self.largest = max(self.largest, tensor.numel())
        return out


def _largest_prefill_tensor(n: int) -> int:
    model = _gemma2_shaped(window=64, positions=n)
    ids = torch.randint(0, 53, (1, n), generator=torch.Generator().manual_seed(3))
    q = torch.zeros(1, 4, n, 16)
    kv = torch.zeros(1, 2, n, 16)
    for window in ((63, 0), None):  # the sliding and the global layer's calls
        why = qkv.explain_backend(q, kv, kv, causal=True, window=window, softcap=5.0)
        assert "O(N) memory" in str(why).splitlines()[0], why
    with torch.no_grad(), _LargestTensor() as probe:
        model(ids, last_only=True)
    return probe.largest


@pytest.mark.slow
def test_gemma2_shaped_prefill_attention_memory_is_linear_in_n() -> None:
    small, large = _largest_prefill_tensor(1024), _largest_prefill_tensor(2048)
    # Quadratic memory would grow 4× from N to 2N; the tiled path's grows at most 2×, and
    # stays below one head's N×N score matrix.
    assert large <= 2 * small and large < 2048 * 2048, (small, large)
