"""Sequences of different lengths packed back to back, without padding.

A packed batch stores the tokens of B sequences one after another, (N, ...) with N the sum of
the lengths. Position-wise layers (linear layers, norms, MLPs) run on the packed tokens, so
their cost is proportional to the real tokens only; attention, which needs each sequence's
keys, scatters the tokens into a padded (B, Lmax, ...) layout with a key-padding mask and
gathers them back (:meth:`PackedSequences.pad` / :meth:`PackedSequences.unpad`). When every
length is equal the layouts coincide: no copy and no mask.

Example::

    >>> packing = PackedSequences.from_lengths([3, 1], device="cpu")
    >>> packing.positions.tolist(), packing.rows.tolist()
    ([0, 1, 2, 0], [0, 0, 0, 1])
    >>> packing.pad(torch.arange(4.0)[:, None]).squeeze(-1)   # (B, Lmax)
    tensor([[0., 1., 2.],
            [3., 0., 0.]])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True, kw_only=True)
class PackedSequences:
    """The layout of B packed sequences (build it with :meth:`from_lengths`).

    ``lengths`` (B,) int64 on the CPU; ``width`` the longest length (Lmax); on the tokens'
    device: ``positions`` (N,) each token's position in its sequence, ``rows`` (N,) its
    sequence, ``slots`` (N,) its index in the flattened padded (B·Lmax) layout (None when
    every length is equal), ``key_mask`` (B, 1, 1, Lmax) bool, True = a real key (None when
    every length is equal), ``starts`` (B,) each sequence's first token.
    """

    lengths: Tensor
    width: int
    positions: Tensor
    rows: Tensor
    slots: Tensor | None
    key_mask: Tensor | None
    starts: Tensor

    @classmethod
    def from_lengths(
        cls, lengths: Sequence[int] | Tensor, *, device: torch.device | str = "cpu"
    ) -> PackedSequences:
        """The layout of sequences of ``lengths`` tokens (each ≥ 0), packed in that order."""
        lengths = torch.as_tensor(lengths, dtype=torch.long).cpu().reshape(-1)  # (B,)
        if lengths.numel() == 0 or bool((lengths < 0).any()):
            raise ValueError(
                f"lengths must be a non-empty list of token counts ≥ 0, got {lengths.tolist()}"
            )
        count, width = len(lengths), int(lengths.max())
        positions = torch.cat([torch.arange(n) for n in lengths.tolist()])  # (N,)
        rows = torch.repeat_interleave(torch.arange(count), lengths)  # (N,)
        uniform = bool((lengths == width).all())
        slots = key_mask = None
        if not uniform:
            slots = (rows * width + positions).to(device)  # (N,)
            key_mask = (torch.arange(width)[None, :] < lengths[:, None]).to(device)  # (B, Lmax)
            key_mask = key_mask[:, None, None, :]  # (B, 1, 1, Lmax)
        return cls(
            lengths=lengths,
            width=width,
            positions=positions.to(device),
            rows=rows.to(device),
            slots=slots,
            key_mask=key_mask,
            starts=(torch.cumsum(lengths, 0) - lengths).to(device),
        )

    @property
    def batch_size(self) -> int:
        return len(self.lengths)

    @property
    def total(self) -> int:
        """N, the number of packed tokens."""
        return len(self.positions)

    def pad(self, packed: Tensor) -> Tensor:
        """(N, F) packed tokens -> (B, Lmax, F), zeros at the padded positions."""
        features = packed.shape[-1]
        if self.slots is None:
            return packed.view(self.batch_size, self.width, features)
        padded = packed.new_zeros(self.batch_size * self.width, features)  # (B·Lmax, F)
        padded[self.slots] = packed
        return padded.view(self.batch_size, self.width, features)

    def unpad(self, padded: Tensor) -> Tensor:
        """(B, Lmax, F) -> (N, F), the real positions in packed order."""
        flat = padded.reshape(self.batch_size * self.width, padded.shape[-1])  # (B·Lmax, F)
        return flat if self.slots is None else flat[self.slots]
