"""``SentenceEncoder``: sentence embeddings as sentence-transformers computes them (mean
pooling over real tokens, then L2 normalisation, per the directory's ``modules.json``), with
a packed forward pass that never computes padding.

Why it is faster than padding a batch: for a small encoder such as MiniLM (C=384) nearly all
the work is in the linear layers, whose cost is proportional to the tokens fed to them.
``encode`` sorts sentences by length, cuts batches, and runs each batch through
:meth:`qkv.models.Bert.forward_packed`, which computes the linear layers, LayerNorms and
GELUs on the *packed* tokens (total, C) of a batch; only the attention call scatters them into
a (B, H, Lmax, D) layout with a key-padding mask (a few percent of the FLOPs at these
lengths). Batches of sentences of one length skip the mask altogether. This module is the
encoding API around it: tokenize, batch, pool, normalise.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from qkv.data.tokenizer import Tokenizer, load_tokenizer
from qkv.nn.packing import PackedSequences

Pooling = Literal["mean", "cls"]


class SentenceEncoder:
    """Encode sentences to (N, C) embeddings with a qkv BERT and its tokenizer.

    Example::

        >>> encoder = SentenceEncoder.from_pretrained("all-minilm-l6-v2")
        >>> emb = encoder.encode(["A man is eating food.", "A man eats."])  # (2, 384), unit norm
        >>> float(emb[0] @ emb[1])   # cosine similarity
    """

    def __init__(
        self,
        model: nn.Module,
        tokenizer: Tokenizer,
        *,
        max_length: int = 256,
        pooling: Pooling = "mean",
        normalize: bool = True,
    ) -> None:
        from qkv.models import Bert, BertForMaskedLM

        if isinstance(model, BertForMaskedLM):
            model = model.bert
        if not isinstance(model, Bert):
            raise ValueError(
                f"SentenceEncoder needs a qkv Bert (or BertForMaskedLM), got {type(model).__name__}"
            )
        if pooling not in ("mean", "cls"):
            raise ValueError(f"pooling must be 'mean' or 'cls', got {pooling!r}")
        if not 1 <= max_length <= model.config.n_positions:
            raise ValueError(
                f"max_length must be in [1, {model.config.n_positions}] (the model's positions), "
                f"got {max_length}"
            )
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.pooling: Pooling = pooling
        self.normalize = normalize

    @classmethod
    def from_pretrained(
        cls, name_or_path: str | os.PathLike[str], *, dtype: torch.dtype | str | None = None
    ) -> SentenceEncoder:
        """Open a sentence-transformers directory (or a known name such as
        ``"all-minilm-l6-v2"``): model, tokenizer, ``max_seq_length`` from
        ``sentence_bert_config.json``, pooling and normalisation from ``modules.json``."""
        from qkv.io.api import load
        from qkv.io.pretrained import pretrained_path

        directory = Path(name_or_path)
        if not directory.exists():
            directory = pretrained_path(str(name_or_path))  # a known name, or a clear error
        pooling, normalize = _read_modules(directory)
        max_length = 512
        settings = directory / "sentence_bert_config.json"
        if settings.is_file():
            max_length = int(json.loads(settings.read_text()).get("max_seq_length", max_length))
        model = load(directory, dtype=dtype)
        return cls(
            model,
            load_tokenizer(directory),
            max_length=min(max_length, model.config.n_positions),  # type: ignore[union-attr]
            pooling=pooling,
            normalize=normalize,
        )

    @torch.inference_mode()
    def encode(
        self, sentences: str | Sequence[str], *, batch_size: int = 32, packed: bool = True
    ) -> Tensor:
        """Embeddings (N, C) float32 of ``sentences`` (a string gives (C,)), in input order.

        ``packed=False`` runs the plain padded ``Bert.forward`` + pooling instead (the oracle
        the packed path is tested against).
        """
        single = isinstance(sentences, str)
        texts = [sentences] if single else list(sentences)
        if batch_size < 1:
            raise ValueError(f"batch_size must be ≥ 1, got {batch_size}")
        if not texts:
            return torch.empty(0, self.model.config.n_embd)
        ids = self.tokenizer.encode_batch(texts, max_length=self.max_length)
        order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
        device = self.model.embeddings.word_embeddings.weight.device
        out = torch.empty(len(ids), self.model.config.n_embd)
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            batch = [ids[i] for i in chunk]
            pooled = self._packed(batch, device) if packed else self._padded(batch, device)
            if self.normalize:
                pooled = F.normalize(pooled.float(), p=2.0, dim=-1)
            out[torch.tensor(chunk)] = pooled.float().cpu()
        return out[0] if single else out

    def _padded(self, batch: list[list[int]], device: torch.device) -> Tensor:
        width = max(len(row) for row in batch)
        pad = self.tokenizer.pad_token_id or 0
        ids = torch.full((len(batch), width), pad, dtype=torch.long)  # (B, T)
        mask = torch.zeros((len(batch), width), dtype=torch.long)  # (B, T)
        for row, tokens in enumerate(batch):
            ids[row, : len(tokens)] = torch.tensor(tokens)
            mask[row, : len(tokens)] = 1
        ids, mask = ids.to(device), mask.to(device)
        hidden = self.model(ids, mask)  # (B, T, C)
        return self.model.pool(hidden, mask, how=self.pooling)  # (B, C)

    def _packed(self, batch: list[list[int]], device: torch.device) -> Tensor:
        return packed_bert_forward(self.model, batch, pooling=self.pooling, device=device)


def packed_bert_forward(
    model: nn.Module, batch: list[list[int]], *, pooling: Pooling, device: torch.device
) -> Tensor:
    """Pooled (B, C) outputs of qkv ``Bert`` for token-id lists of different lengths, from
    :meth:`Bert.forward_packed` (every position-wise layer on the packed (N, C) tokens only).
    """
    hidden_size = model.config.n_embd
    packing = PackedSequences.from_lengths([len(row) for row in batch], device=device)
    if packing.width == 0:  # only empty texts (a tokenizer without special tokens): zero vectors
        return torch.zeros(packing.batch_size, hidden_size, device=device)
    ids = torch.tensor([t for row in batch for t in row], dtype=torch.long, device=device)
    x = model.forward_packed(ids, packing)  # (N, C)
    lengths = packing.lengths
    if pooling == "cls":
        if bool((lengths == 0).any()):
            raise ValueError("cls pooling needs at least one token per text; got an empty one")
        return x[packing.starts]  # (B, C)
    sums = x.new_zeros(packing.batch_size, hidden_size).index_add_(0, packing.rows, x)  # (B, C)
    return sums / lengths.clamp(min=1).to(device=device, dtype=x.dtype)[:, None]


def _read_modules(directory: Path) -> tuple[Pooling, bool]:
    """Pooling mode and normalisation from a sentence-transformers ``modules.json``."""
    modules_file = directory / "modules.json"
    if not modules_file.is_file():
        return "mean", True
    modules = json.loads(modules_file.read_text())
    kinds = [m.get("type", "") for m in modules]
    normalize = any(kind.endswith("Normalize") for kind in kinds)
    pooling: Pooling = "mean"
    for module in modules:
        if module.get("type", "").endswith("Pooling"):
            config_file = directory / module.get("path", "") / "config.json"
            config = json.loads(config_file.read_text()) if config_file.is_file() else {}
            if config.get("pooling_mode_cls_token"):
                pooling = "cls"
            elif not config.get("pooling_mode_mean_tokens", True):
                raise ValueError(
                    f"{config_file}: only mean or CLS pooling is supported, got {config}"
                )
    return pooling, normalize


def encode(
    sentences: str | Sequence[str], model: str | os.PathLike[str] = "all-minilm-l6-v2", **kw: int
) -> Tensor:
    """Embeddings of ``sentences`` with a sentence-transformers model (default all-MiniLM-L6-v2);
    see :meth:`SentenceEncoder.encode`. The encoder is cached per model."""
    key = str(model)
    if key not in _CACHE:
        _CACHE[key] = SentenceEncoder.from_pretrained(model)
    return _CACHE[key].encode(sentences, **kw)  # type: ignore[arg-type]


_CACHE: dict[str, SentenceEncoder] = {}
