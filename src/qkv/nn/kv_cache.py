"""A static key/value cache (gpt-fast style): preallocated buffers indexed by position.

Each layer owns two buffers of shape (B, Hkv, max_len, D). A forward pass over T new tokens
writes their keys/values in place at positions [length, length + T) and attends over the
length-limited view [0, length + T); nothing is reallocated or concatenated while decoding.
The model advances ``length`` once per forward pass, after every layer has written.

A layer with a sliding window of W keys (``windows[i] = W``) never looks further back than
W − 1 keys before its first new query, so its buffers hold only a few windows
(``window_capacity``), whatever ``max_len`` is: keys are kept in order, and when the next
write would overflow, the last W − 1 move to the front (one copy of W − 1 per
``capacity − W + 1`` written positions). The layer then gets the last ``stored`` keys, and the
attention module keeps the matching last columns of a key mask.
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
        windows: list[int | None] | None = None,
    ) -> None:
        self.windows = list(windows) if windows is not None else [None] * n_layers
        if len(self.windows) != n_layers:
            raise ValueError(f"KVCache windows needs one entry per layer ({n_layers})")
        lengths = [max_len if w is None else window_capacity(w, max_len) for w in self.windows]
        self.keys = [
            torch.zeros((batch_size, n_kv_heads, n, head_dim), dtype=dtype, device=device)
            for n in lengths
        ]  # (B, Hkv, max_len or capacity, D) per layer
        self.values = [torch.zeros_like(k) for k in self.keys]
        self.stored = [0] * n_layers  # keys held by each windowed layer's buffer
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
        if self.windows[index] is not None:
            return self._write_windowed(index, keys, values)
        key_buffer[:, :, start:end].copy_(keys)
        value_buffer[:, :, start:end].copy_(values)
        return key_buffer[:, :, :end], value_buffer[:, :, :end]  # (B, Hkv, end, D)

    def _write_windowed(self, index: int, keys: Tensor, values: Tensor) -> tuple[Tensor, Tensor]:
        window = self.windows[index]
        assert window is not None
        key_buffer, value_buffer = self.keys[index], self.values[index]
        capacity, new, stored = key_buffer.shape[2], keys.shape[2], self.stored[index]
        keep = min(stored, window - 1)  # the most the first new query can still see
        if stored + new <= capacity:
            key_buffer[:, :, stored : stored + new].copy_(keys)
            value_buffer[:, :, stored : stored + new].copy_(values)
            self.stored[index] = stored + new
            return key_buffer[:, :, : stored + new], value_buffer[:, :, : stored + new]
        old_keys = key_buffer[:, :, stored - keep : stored].clone()  # (B, Hkv, keep, D)
        old_values = value_buffer[:, :, stored - keep : stored].clone()
        if keep + new <= capacity:
            key_buffer[:, :, :keep].copy_(old_keys)
            value_buffer[:, :, :keep].copy_(old_values)
            key_buffer[:, :, keep : keep + new].copy_(keys)
            value_buffer[:, :, keep : keep + new].copy_(values)
            self.stored[index] = keep + new
            return key_buffer[:, :, : keep + new], value_buffer[:, :, : keep + new]
        # A chunk longer than the buffer (a long prefill): attend over it whole, keep its tail.
        all_keys = torch.cat((old_keys, keys), dim=2)  # (B, Hkv, keep + T, D)
        all_values = torch.cat((old_values, values), dim=2)
        tail = window - 1
        key_buffer[:, :, :tail].copy_(all_keys[:, :, -tail:])
        value_buffer[:, :, :tail].copy_(all_values[:, :, -tail:])
        self.stored[index] = tail
        return all_keys, all_values

    def advance(self, steps: int) -> None:
        """Mark ``steps`` more positions as written (called by the model after all layers)."""
        self.length += steps

    def reset(self) -> None:
        """Forget every cached position (buffers are reused, not cleared)."""
        self.length = 0
        self.stored = [0] * len(self.stored)


def window_capacity(window: int, max_len: int) -> int:
    """Positions a windowed layer's buffers hold: W − 1 kept keys plus room for W + 64 new
    ones (fewer when the whole sequence is shorter)."""
    return min(max_len, 2 * window + 64)
