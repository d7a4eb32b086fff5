"""Records (see :mod:`qkv.data.records`) as padded training rows with loss masks.

Each record is one row: its segments' tokens (``add_special_tokens=False``) and the
tokenizer's end-of-sequence token, truncated to ``block_size + 1`` tokens and right-padded.
Under causal attention a position never attends to later ones, so padding after the record's
last token changes none of its logits: no attention mask is needed, and the padded positions
get label -100 (no loss). A target counts in the loss when its token is trained (completion,
assistant turn, plain text) or when ``mask_prompt`` is off.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from qkv.data.records import Segment

IGNORE = -100


@dataclass(kw_only=True)
class RecordRows:
    """Padded rows of records: ``ids`` (N, T+1) and ``trained`` (N, T+1) (False on padding
    and, with prompt masking, on prompt tokens); ``truncated`` counts records cut short."""

    ids: np.ndarray
    trained: np.ndarray
    truncated: int

    def __len__(self) -> int:
        return len(self.ids)


def encode_records(
    records: list[list[Segment]],
    tokenizer: object,
    *,
    block_size: int,
    mask_prompt: bool = True,
    source: str = "records",
) -> RecordRows:
    """Tokenize ``records`` into :class:`RecordRows` of width ``block_size + 1``. Records with
    no trained target left after truncation are dropped; ValueError when none is left."""
    width = block_size + 1
    eos = getattr(tokenizer, "eos_token_id", None)
    pad = getattr(tokenizer, "pad_token_id", None)
    pad = pad if pad is not None else (eos if eos is not None else 0)
    rows, masks, truncated = [], [], 0
    for segments in records:
        ids: list[int] = []
        trained: list[bool] = []
        for segment in segments:
            pieces = tokenizer.encode(segment.text, add_special_tokens=False)  # type: ignore[attr-defined]
            ids += pieces
            trained += [segment.trained or not mask_prompt] * len(pieces)
        if eos is not None:
            ids.append(eos)
            trained.append(segments[-1].trained or not mask_prompt)
        if len(ids) > width:
            truncated += 1
            ids, trained = ids[:width], trained[:width]
        if not any(trained[1:]):
            continue
        rows.append(ids + [pad] * (width - len(ids)))
        masks.append(trained + [False] * (width - len(trained)))
    if not rows:
        raise ValueError(
            f"{source}: no record has a trained token within --block-size {block_size} "
            "(prompts fill the whole context); use a larger --block-size or shorter prompts"
        )
    return RecordRows(
        ids=np.asarray(rows, dtype=np.int64),  # (N, T+1)
        trained=np.asarray(masks, dtype=bool),  # (N, T+1)
        truncated=truncated,
    )


def row_batch(rows: RecordRows, index: Tensor) -> tuple[Tensor, Tensor]:
    """(inputs (B, T), labels (B, T)) of rows ``index``: labels are the next tokens where
    they are trained, -100 elsewhere."""
    ids = torch.from_numpy(rows.ids[index.numpy()])  # (B, T+1)
    trained = torch.from_numpy(rows.trained[index.numpy()])  # (B, T+1)
    labels = torch.where(trained[:, 1:], ids[:, 1:], IGNORE)  # (B, T)
    return ids[:, :-1].contiguous(), labels.contiguous()


class RecordSampler:
    """Random training batches of record rows; its generator is the resumable state, as for
    :class:`qkv.data.batches.BatchSampler` (rank ``rank`` keeps its share of each batch)."""

    def __init__(
        self, rows: RecordRows, *, batch_size: int, seed: int, rank: int = 0, world_size: int = 1
    ) -> None:
        if batch_size % world_size:
            raise ValueError(
                f"batch_size={batch_size} does not split over {world_size} processes; pass a "
                f"multiple of {world_size}"
            )
        self.rows, self.batch_size = rows, batch_size
        self.rank, self.world_size = rank, world_size
        self.generator = torch.Generator().manual_seed(seed)

    def next(self) -> tuple[Tensor, Tensor]:
        index = torch.randint(len(self.rows), (self.batch_size,), generator=self.generator)
        per_rank = self.batch_size // self.world_size
        inputs, labels = row_batch(self.rows, index)
        shard = slice(self.rank * per_rank, (self.rank + 1) * per_rank)
        return inputs[shard].contiguous(), labels[shard].contiguous()  # (b, T) each

    def state_dict(self) -> dict[str, Tensor]:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        self.generator.set_state(state["generator"])


def sequential_row_batches(
    rows: RecordRows, *, batch_size: int, limit: int | None = None, rank: int = 0,
    world_size: int = 1,
) -> list[tuple[Tensor, Tensor]]:  # fmt: skip
    """Every row once, in order, as batches (at most ``limit``); this rank's share of each."""
    batches = []
    for start in range(0, len(rows), batch_size):
        index = torch.arange(start, min(start + batch_size, len(rows)))
        inputs, labels = row_batch(rows, index[rank::world_size])
        if len(inputs):
            batches.append((inputs, labels))
        if limit is not None and len(batches) == limit:
            break
    return batches


def completion_loss(logits: Tensor, labels: Tensor) -> tuple[float, int]:
    """(summed cross-entropy in nats, number of counted targets) of logits (B, T, V)."""
    loss = torch.nn.functional.cross_entropy(
        logits.flatten(0, 1).float(), labels.flatten(), ignore_index=IGNORE, reduction="sum"
    )
    return float(loss), int((labels != IGNORE).sum())
