"""Batches from a token array: random LM windows, masked-LM corruption, full evaluation passes.

Every random choice comes from a ``torch.Generator`` owned by the sampler, whose state is saved
in checkpoints so a resumed run draws exactly the batches the uninterrupted run would have.
Under data parallelism every rank draws the same *global* batch and keeps its own contiguous
shard, so N processes see the same data as one process with the same global batch.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

IGNORE_INDEX = -100  # label of positions that do not count in the loss (PyTorch / HF convention)


@dataclass(frozen=True, kw_only=True)
class MaskingSpec:
    """BERT masking: pick ``probability`` of positions; of those 80% [MASK], 10% random, 10% kept.

    ``random_low``/``random_high`` bound the ids a random replacement is drawn from (the
    ordinary tokens, specials excluded).
    """

    mask_id: int
    random_low: int
    random_high: int
    probability: float = 0.15

    def __post_init__(self) -> None:
        if not 0.0 < self.probability < 1.0:
            raise ValueError(f"masking probability={self.probability} must be in (0, 1)")
        if not self.random_low < self.random_high:
            raise ValueError(f"random token range [{self.random_low}, {self.random_high}) is empty")


def windows(tokens: np.ndarray, starts: Tensor, length: int) -> Tensor:
    """Stack ``tokens[s : s + length]`` for each start: (B,) -> (B, length) int64."""
    rows = [np.asarray(tokens[int(s) : int(s) + length], dtype=np.int64) for s in starts]
    return torch.from_numpy(np.stack(rows))  # (B, length)


def mask_tokens(
    input_ids: Tensor, spec: MaskingSpec, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """BERT-style corruption of ``input_ids`` (B, T) -> (corrupted (B, T), labels (B, T)).

    Labels hold the original id where a position was picked and IGNORE_INDEX elsewhere; at
    least one position per batch is always picked so the loss is defined.
    """
    picked = torch.rand(input_ids.shape, generator=generator) < spec.probability  # (B, T)
    if not picked.any():
        picked.view(-1)[0] = True
    labels = torch.where(picked, input_ids, torch.full_like(input_ids, IGNORE_INDEX))
    roll = torch.rand(input_ids.shape, generator=generator)  # (B, T)
    random_ids = torch.randint(
        spec.random_low, spec.random_high, input_ids.shape, generator=generator
    )
    corrupted = input_ids.clone()
    corrupted[picked & (roll < 0.8)] = spec.mask_id
    swap = picked & (roll >= 0.8) & (roll < 0.9)
    corrupted[swap] = random_ids[swap]
    return corrupted, labels


class BatchSampler:
    """Random training batches of ``block_size`` windows from ``tokens``.

    ``batch_size`` is the global micro-batch; rank ``rank`` of ``world_size`` keeps rows
    ``[rank·b, (rank+1)·b)`` with ``b = batch_size // world_size``. ``next()`` returns
    (inputs (b, T), targets (b, T)): for causal LM targets are inputs shifted by one; with a
    ``masking`` spec they are masked-LM labels.
    """

    def __init__(
        self,
        tokens: np.ndarray,
        *,
        block_size: int,
        batch_size: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        masking: MaskingSpec | None = None,
    ) -> None:
        span = block_size if masking is not None else block_size + 1
        if len(tokens) < span + 1:
            raise ValueError(
                f"the token stream has {len(tokens)} tokens, fewer than one context window "
                f"(block_size={block_size} needs {span + 1}); use a longer corpus or a smaller "
                "--block-size"
            )
        if batch_size % world_size:
            raise ValueError(
                f"batch_size={batch_size} does not split over {world_size} processes; pass a "
                f"multiple of {world_size}"
            )
        self.tokens = tokens
        self.block_size = block_size
        self.batch_size = batch_size
        self.rank = rank
        self.world_size = world_size
        self.masking = masking
        self.span = span
        self.generator = torch.Generator().manual_seed(seed)

    def next(self) -> tuple[Tensor, Tensor]:
        starts = torch.randint(
            len(self.tokens) - self.span + 1, (self.batch_size,), generator=self.generator
        )  # (B_global,)
        per_rank = self.batch_size // self.world_size
        rows = windows(self.tokens, starts, self.span)  # (B_global, span)
        if self.masking is not None:
            inputs, labels = mask_tokens(rows, self.masking, self.generator)
        else:
            inputs, labels = rows[:, :-1], rows[:, 1:]
        shard = slice(self.rank * per_rank, (self.rank + 1) * per_rank)
        return inputs[shard].contiguous(), labels[shard].contiguous()  # (b, T) each

    def state_dict(self) -> dict[str, Tensor]:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        self.generator.set_state(state["generator"])


def fixed_eval_batches(
    tokens: np.ndarray,
    *,
    block_size: int,
    batch_size: int,
    n_batches: int,
    seed: int,
    rank: int = 0,
    world_size: int = 1,
    masking: MaskingSpec | None = None,
) -> list[tuple[Tensor, Tensor]]:
    """The same ``n_batches`` random batches at every evaluation (lower-variance curves),
    drawn from their own generator so evaluation never disturbs the training data order."""
    sampler = BatchSampler(
        tokens,
        block_size=block_size,
        batch_size=batch_size,
        seed=seed,
        rank=rank,
        world_size=world_size,
        masking=masking,
    )
    return [sampler.next() for _ in range(n_batches)]


def sequential_windows(
    tokens: np.ndarray, *, block_size: int, batch_size: int
) -> Iterator[tuple[Tensor, Tensor]]:
    """Every token after the first, predicted once: consecutive windows with stride
    ``block_size`` as (inputs (B, T), targets (B, T)); the last window is shorter if needed
    and comes alone in its batch."""
    n = len(tokens)
    span = block_size + 1
    # Starts are ranges, never lists: a corpus of 2 G tokens has 62 M windows of 32.
    n_full = (n - span) // block_size + 1 if n >= span else 0  # starts s with s + span <= n
    for first in range(0, n_full, batch_size):
        starts = torch.arange(first, min(first + batch_size, n_full)) * block_size  # (B,)
        rows = windows(tokens, starts, span)  # (B, T + 1)
        yield rows[:, :-1], rows[:, 1:]
    for s in range(n_full * block_size, max(n - 1, 0), block_size):  # the shorter last window
        row = torch.from_numpy(np.asarray(tokens[s:n], dtype=np.int64))[None]  # (1, n - s)
        yield row[:, :-1], row[:, 1:]
