"""Fine-tuning on instruction and chat records (JSONL, see :mod:`qkv.data.records`).

A ``--data`` file ending in ``.jsonl`` of a fine-tune (``--init-from``) is read as records,
tokenized with the base's tokenizer into padded rows with loss masks
(:mod:`qkv.data.record_batches`); validation is ``--val-data`` (records too) or the last
``val_fraction`` of the records. The result stands in for a text corpus' PreparedData.
"""

from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qkv.data.record_batches import (
    RecordRows,
    RecordSampler,
    encode_records,
    sequential_row_batches,
)
from qkv.data.records import DEFAULT_CHAT_JINJA, read_records
from qkv.training.config import TrainConfig

if TYPE_CHECKING:
    from torch import Tensor

    from qkv.data.tokenizer import Tokenizer
    from qkv.training.distributed import Distributed


@dataclass(kw_only=True)
class PreparedRecords:
    """Tokenizer and record rows of a records run (the PreparedData of records)."""

    tokenizer: Tokenizer
    train: RecordRows
    val: RecordRows
    corpus_sha256: str
    corpus_path: str
    masking: None = None


def chat_renderer(tokenizer: Any) -> Any:
    """``(messages, add_generation_prompt) -> text`` with the tokenizer's chat template, or
    None when it has none (records then use the documented default)."""
    if not getattr(tokenizer, "chat_template", None):
        return None
    return lambda messages, prompt: tokenizer.apply_chat_template(
        messages, add_generation_prompt=prompt, tokenize=False
    )


def _sha256(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.read_bytes())
    return digest.hexdigest()


def prepare_records(
    config: TrainConfig, tokenizer: Tokenizer, *, masked_lm: bool, quiet: bool = False
) -> PreparedRecords:
    """Read, check and tokenize ``config.data`` (and ``config.val_data``) as records."""
    if masked_lm:
        raise ValueError(
            f"--data {config.data}: instruction and chat records train a causal LM; a BERT "
            "fine-tunes on plain text (a .txt file or folder)"
        )
    assert config.data is not None
    path = Path(config.data).expanduser()
    if not getattr(tokenizer, "chat_template", None):
        # the documented default; saved with the checkpoint's tokenizer for `qkv chat`
        tokenizer.chat_template = DEFAULT_CHAT_JINJA  # type: ignore[attr-defined]
    render = chat_renderer(tokenizer)
    records = read_records(path, chat_template=render)
    options = {"block_size": config.block_size, "mask_prompt": config.mask_prompt}
    paths = [path]
    if config.val_data is not None:
        val_path = Path(config.val_data).expanduser()
        paths.append(val_path)
        val_records = read_records(val_path, chat_template=render)
    else:
        cut = min(max(1, round(len(records) * (1 - config.val_fraction))), len(records) - 1)
        if cut < 1:
            raise ValueError(
                f"--data {path} has {len(records)} record; a validation split needs at least "
                "2 records, or pass --val-data FILE"
            )
        records, val_records = records[:cut], records[cut:]
    train = encode_records(records, tokenizer, source=str(path), **options)
    val = encode_records(val_records, tokenizer, source=str(paths[-1]), **options)
    cut_short = train.truncated + val.truncated
    if cut_short and not quiet:
        print(
            f"qkv: {cut_short} records are longer than --block-size {config.block_size} + 1 "
            "tokens and were truncated",
            file=sys.stderr,
        )
    return PreparedRecords(
        tokenizer=tokenizer,
        train=train,
        val=val,
        corpus_sha256=_sha256(paths),
        corpus_path=str(path.resolve()),
    )


def record_sources(
    config: TrainConfig, env: Distributed, data: PreparedRecords
) -> tuple[RecordSampler, list[tuple[Tensor, Tensor]]]:
    """The training sampler (seed ``config.seed``) and the fixed validation batches (the
    first ``eval_iters`` batches of the validation rows, in order)."""
    sampler = RecordSampler(
        data.train, batch_size=config.batch_size, seed=config.seed, rank=env.rank,
        world_size=env.world_size,
    )  # fmt: skip
    eval_batches = sequential_row_batches(
        data.val, batch_size=config.batch_size, limit=config.eval_iters, rank=env.rank,
        world_size=env.world_size,
    )  # fmt: skip
    return sampler, eval_batches
