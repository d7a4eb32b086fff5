"""A static key/value cache (gpt-fast style): preallocated buffers indexed by position.

Each layer owns two buffers of shape (B, Hkv, max_len, D). A forward pass over T new tokens
writes their keys/values in place at positions [length, length + T) and attends over the
length-limited view [0, length + T); nothing is reallocated or concatenated while decoding.
The model advances ``length`` once per forward pass, after every layer has written.
"""

from __future__ import annotations

import torch
from torch import Tensor


class LayerKVCache:
    """One layer's slice of a :class:`KVCache`: the hook ``MultiHeadAttention`` calls."""

    def __init__(self, parent: KVCache, index: int) -> None:
        self.parent = parent
        self.index = index

    def update(self, keys: Tensor, values: Tensor) -> tuple[Tensor, Tensor]:
        """Write keys (B, Hkv, T, D) / values (B, Hkv, T, Dv) at the current position and
        return views of every cached key/value so far, (B, Hkv, length + T, D)."""
        return self.parent.write(self.index, keys, values)


class KVCache:
    """Preallocated keys/values for every layer of a decoder.

    Example::

        >>> cache = model.make_cache(batch_size=1, max_len=64)
        >>> logits = model(prompt, cache=cache)           # prefill: cache.length == T
        >>> logits = model(next_token[:, None], cache=cache)  # one step: cache.length == T + 1
    """

    def __init__(
        self,
        *,
        n_layers: int,
        batch_size: int,
        n_kv_heads: int,
        head_dim: int,
        max_len: int,
        dtype: torch.dtype,
        device: torch.device | str,
    ) -> None:
        shape = (batch_size, n_kv_heads, max_len, head_dim)
        self.keys = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(n_layers)]
        self.values = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(n_layers)]
        self.max_len = max_len
        self.batch_size = batch_size
        self.length = 0
        self._layers = [LayerKVCache(self, i) for i in range(n_layers)]

    def layer(self, index: int) -> LayerKVCache:
        return self._layers[index]

    def write(self, index: int, keys: Tensor, values: Tensor) -> tuple[Tensor, Tensor]:
        start, new = self.length, keys.shape[2]
        end = start + new
        if end > self.max_len:
            raise ValueError(
                f"KV cache holds {self.max_len} positions but {end} are needed "
                f"({start} cached + {new} new); make the cache with a larger max_len"
            )
        if keys.shape[0] != self.batch_size:
            raise ValueError(
                f"KV cache was made for batch {self.batch_size}, got batch {keys.shape[0]}; "
                "make a new cache for this batch size"
            )
        key_buffer, value_buffer = self.keys[index], self.values[index]
        key_buffer[:, :, start:end].copy_(keys)
        value_buffer[:, :, start:end].copy_(values)
        return key_buffer[:, :, :end], value_buffer[:, :, :end]  # (B, Hkv, end, D)

    def advance(self, steps: int) -> None:
        """Mark ``steps`` more positions as written (called by the model after all layers)."""
        self.length += steps

    def reset(self) -> None:
        """Forget every cached position (buffers are reused, not cleared)."""
        self.length = 0
