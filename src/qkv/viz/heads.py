"""Head-role scores: what each attention head does, as one number per (layer, head).

Scores are measured on repeated random token sequences, as in the mechanistic
interpretability literature (Olsson et al. 2022, "In-context learning and induction heads"):
a block of ``period`` random tokens followed by the same block again. In the second repeat,
query position i

- **previous-token** head attends to key i - 1,
- **duplicate-token** head attends to key i - period (the same token, seen before),
- **induction** head attends to key i - period + 1 (the token that followed the previous
  occurrence of the current token, i.e. what should come next).

Plus the **sink** share (mean attention to the first token, or to special tokens) and the
**entropy** of each row (nats, mean over queries; log T for uniform attention).

Every score function takes weights of shape (..., T, T) and returns shape (...).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

SCORE_NAMES = ("previous_token", "duplicate_token", "induction", "sink", "entropy")


def _check_square(weights: Tensor) -> int:
    if weights.dim() < 2 or weights.shape[-1] != weights.shape[-2]:
        raise ValueError(f"attention weights must be (..., T, T), got shape {tuple(weights.shape)}")
    return weights.shape[-1]


def _diagonal_mean(weights: Tensor, queries: range, lag: int) -> Tensor:
    """Mean over query positions i in ``queries`` of weights[..., i, i - lag]."""
    if len(queries) == 0:
        raise ValueError(
            f"no query positions to score (T={weights.shape[-1]}, lag={lag}); use a longer sequence"
        )
    rows = torch.tensor(list(queries), device=weights.device)
    return weights[..., rows, rows - lag].float().mean(dim=-1)


def previous_token_score(weights: Tensor, *, start: int = 0) -> Tensor:
    """Mean attention from query i to key i - 1, over i in [start + 1, T). Shape (...)."""
    t = _check_square(weights)
    return _diagonal_mean(weights, range(start + 1, t), 1)


def _check_period(t: int, period: int, start: int) -> None:
    if period < 2 or start + 2 * period > t:
        raise ValueError(
            f"period={period} with start={start} needs T >= start + 2·period and period >= 2, "
            f"got T={t}; pass the period used to build the repeated sequence"
        )


def duplicate_token_score(weights: Tensor, *, period: int, start: int = 0) -> Tensor:
    """Mean attention from query i to key i - period over the repeats (i >= start + period)."""
    t = _check_square(weights)
    _check_period(t, period, start)
    return _diagonal_mean(weights, range(start + period, t), period)


def induction_score(weights: Tensor, *, period: int, start: int = 0) -> Tensor:
    """Mean attention from query i to key i - period + 1 over the repeats (i >= start + period).

    The key after the previous occurrence of the current token: a head that does this copies
    the continuation of an earlier match (the induction mechanism).
    """
    t = _check_square(weights)
    _check_period(t, period, start)
    return _diagonal_mean(weights, range(start + period, t), period - 1)


def sink_share(weights: Tensor, sink: Tensor | list[bool] | None = None) -> Tensor:
    """Mean (over queries) total attention to the sink keys. Shape (...).

    ``sink`` is a bool mask over the T keys (True = sink: the first token and/or special
    tokens); default: only the first token.
    """
    t = _check_square(weights)
    if sink is None:
        mask = torch.zeros(t, dtype=torch.bool, device=weights.device)
        mask[0] = True
    else:
        mask = torch.as_tensor(sink, dtype=torch.bool, device=weights.device)
        if mask.shape != (t,):
            raise ValueError(
                f"sink mask must have {t} entries (one per key), got {tuple(mask.shape)}"
            )
    return weights[..., mask].float().sum(dim=-1).mean(dim=-1)


def entropy(weights: Tensor) -> Tensor:
    """Mean over query rows of -Σ_j w_ij·log w_ij, in nats (0·log 0 = 0). Shape (...).

    Rows that sum to 0 (no key allowed) are left out of the mean. Uniform attention over T
    keys gives log T.
    """
    _check_square(weights)
    w = weights.double()
    per_row = -(torch.where(w > 0, w * torch.log(w), torch.zeros_like(w))).sum(dim=-1)
    live = (w.sum(dim=-1) > 0).double()
    count = live.sum(dim=-1).clamp(min=1)
    return ((per_row * live).sum(dim=-1) / count).float()


@dataclass(kw_only=True)
class HeadScores:
    """One (L, H) tensor per score, with how they were measured."""

    previous_token: Tensor  # (L, H)
    duplicate_token: Tensor  # (L, H)
    induction: Tensor  # (L, H)
    sink: Tensor  # (L, H)
    entropy: Tensor  # (L, H) nats
    period: int
    num_sequences: int
    seq_len: int
    model_name: str = ""
    notes: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        shapes = {name: tuple(getattr(self, name).shape) for name in SCORE_NAMES}
        if len(set(shapes.values())) != 1 or len(shapes["induction"]) != 2:
            raise ValueError(f"HeadScores tensors must all be (L, H), got {shapes}")

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.induction.shape)  # type: ignore[return-value]

    def top(self, score: str, k: int = 3) -> list[tuple[int, int, float]]:
        """The ``k`` highest (layer, head, value) for ``score``."""
        if score not in SCORE_NAMES:
            raise ValueError(f"unknown score {score!r}; expected one of {SCORE_NAMES}")
        values = getattr(self, score)
        flat = values.flatten()
        order = torch.argsort(flat, descending=True)[:k]
        heads = values.shape[1]
        return [(int(i) // heads, int(i) % heads, float(flat[i])) for i in order]

    def to_json_dict(self, digits: int = 4) -> dict[str, Any]:
        layers, heads = self.shape
        return {
            "model_name": self.model_name,
            "num_layers": layers,
            "num_heads": heads,
            "period": self.period,
            "num_sequences": self.num_sequences,
            "seq_len": self.seq_len,
            "scores": {
                name: torch.round(getattr(self, name).float(), decimals=digits).tolist()
                for name in SCORE_NAMES
            },
            "top": {name: [list(t) for t in self.top(name)] for name in SCORE_NAMES},
        }


def score_weights(
    weights: Tensor, *, period: int, start: int = 0, sink: Tensor | list[bool] | None = None
) -> dict[str, Tensor]:
    """All five scores of weights (..., T, T) measured on a repeated sequence; each (...)."""
    return {
        "previous_token": previous_token_score(weights, start=start),
        "duplicate_token": duplicate_token_score(weights, period=period, start=start),
        "induction": induction_score(weights, period=period, start=start),
        "sink": sink_share(weights, sink),
        "entropy": entropy(weights),
    }


def repeated_random_tokens(
    *,
    vocab: int | list[int],
    period: int,
    repeats: int = 2,
    batch: int = 1,
    prefix: list[int] | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """(batch, len(prefix) + repeats·period) ids: ``prefix`` then a random block repeated.

    ``vocab`` is a vocabulary size (ids drawn from [0, vocab)) or the list of ids to draw
    from. Tokens within a block are distinct when the vocabulary allows, so that the
    duplicate / induction targets are unambiguous.
    """
    pool = torch.arange(vocab) if isinstance(vocab, int) else torch.as_tensor(vocab)
    if pool.numel() < 2 or period < 2 or repeats < 2 or batch < 1:
        raise ValueError(
            f"need a vocabulary of >= 2 ids, period >= 2, repeats >= 2, batch >= 1; got "
            f"{pool.numel()} ids, period={period}, repeats={repeats}, batch={batch}"
        )
    rows = []
    for _ in range(batch):
        if pool.numel() >= period:
            block = pool[torch.randperm(pool.numel(), generator=generator)[:period]]
        else:
            block = pool[torch.randint(pool.numel(), (period,), generator=generator)]
        rows.append(block.repeat(repeats))
    ids = torch.stack(rows)  # (batch, repeats·period)
    if prefix:
        head = torch.as_tensor(prefix, dtype=ids.dtype).expand(batch, len(prefix))
        ids = torch.cat([head, ids], dim=1)
    return ids.long()


def head_scores(
    model: Any,
    *,
    vocab: int | list[int] | None = None,
    period: int = 20,
    num_sequences: int = 8,
    prefix: list[int] | None = None,
    sink: list[bool] | None = None,
    seed: int = 0,
    model_name: str | None = None,
) -> HeadScores:
    """Score every head of ``model`` on ``num_sequences`` repeated random sequences.

    Each sequence is ``prefix`` (e.g. [bos] or [CLS]) then ``period`` random ids twice;
    the scores are averaged over sequences. ``vocab`` defaults to the model's vocabulary
    size (``model.config.vocab_size``). ``sink`` marks sink keys over the whole sequence
    (default: the first token). Returns :class:`HeadScores` with (L, H) tensors.

    Example::

        >>> scores = head_scores(model, period=20)
        >>> scores.top("induction")  # [(layer, head, score), ...]
    """
    from qkv.viz.capture import capture_weights

    if vocab is None:
        config = getattr(model, "config", None)
        vocab = getattr(config, "vocab_size", None)
        if vocab is None:
            raise ValueError("pass vocab=: the model has no config.vocab_size to draw ids from")
    generator = torch.Generator().manual_seed(seed)
    ids = repeated_random_tokens(
        vocab=vocab, period=period, batch=num_sequences, prefix=prefix, generator=generator
    )  # (S, T)
    start = len(prefix or [])
    totals: dict[str, Tensor] = {}
    for row in ids:
        weights = capture_weights(model, row)  # (L, H, T, T)
        for name, value in score_weights(weights, period=period, start=start, sink=sink).items():
            totals[name] = totals.get(name, 0) + value / num_sequences
    return HeadScores(
        **totals,
        period=period,
        num_sequences=num_sequences,
        seq_len=int(ids.shape[1]),
        model_name=model_name or getattr(model, "name", None) or type(model).__name__,
    )


def max_entropy(num_keys: int) -> float:
    """log(num_keys): the entropy of uniform attention over ``num_keys`` keys."""
    return math.log(num_keys)


def vocab_pool(tokenizer: Any, vocab_size: int) -> list[int]:
    """Ids to draw random sequences from: all of ``range(vocab_size)`` minus special tokens
    and placeholder tokens such as ``[unused12]`` or ``<extra_id_3>`` (never seen in training)."""
    import re

    if tokenizer is None:
        return list(range(vocab_size))
    special = set(getattr(tokenizer, "special_ids", []) or [])
    # A model's embedding table may be padded past the tokenizer's vocabulary (50304 rows for
    # GPT-2's 50257 tokens): ids the tokenizer never produces are left out.
    vocab_size = min(vocab_size, int(getattr(tokenizer, "vocab_size", vocab_size)))
    strings = tokenizer.tokens(list(range(vocab_size)))
    placeholder = re.compile(r"^(\[.*\]|<.*>)$")
    pool = [
        i
        for i, s in enumerate(strings)
        if i not in special and s is not None and not placeholder.match(s)
    ]
    return pool if len(pool) >= 2 else list(range(vocab_size))


def default_prefix(tokenizer: Any) -> list[int]:
    """[CLS] for BERT-style tokenizers, else <bos> when there is one, else nothing."""
    if tokenizer is None:
        return []
    for role in ("cls", "bos"):
        token_id = tokenizer.token_id(role) if hasattr(tokenizer, "token_id") else None
        if token_id is not None:
            return [int(token_id)]
    return []


def format_table(values: Tensor, *, digits: int = 2, color: bool = False, high: float = 0.4) -> str:
    """A layers × heads table; with ``color``, values >= ``high`` in bold yellow."""
    layers, heads = values.shape
    width = max(5, digits + 3)
    lines = ["    " + "".join(f"{'H' + str(h):>{width + 1}}" for h in range(heads))]
    for layer in range(layers):
        cells = []
        for head in range(heads):
            text = f"{float(values[layer, head]):>{width + 1}.{digits}f}"
            if color and float(values[layer, head]) >= high:
                text = f"\x1b[1;33m{text}\x1b[0m"
            cells.append(text)
        lines.append(f"L{layer:<3d}" + "".join(cells))
    return "\n".join(lines)


_TITLES = {
    "previous_token": "previous-token score: attention from i to key i-1",
    "duplicate_token": "duplicate-token score: attention from i to key i-period (same token)",
    "induction": "induction score: attention from i to key i-period+1 (what followed it before)",
    "sink": "sink share: attention to the first token",
    "entropy": "entropy of each row (nats; log T for uniform attention)",
}


def format_scores(scores: HeadScores, *, color: bool = False) -> str:
    """Every score as a layers × heads table, then the top heads of each."""
    lines = [
        f"{scores.model_name}: head roles measured on {scores.num_sequences} repeated random "
        f"sequences (period {scores.period}, {scores.seq_len} tokens)"
    ]
    for name in SCORE_NAMES:
        values = getattr(scores, name)
        lines += ["", _TITLES[name]]
        high = 0.6 * math.log(scores.seq_len) if name == "entropy" else 0.4
        lines.append(format_table(values, color=color and name != "entropy", high=high))
    lines += ["", "top heads:"]
    for name in SCORE_NAMES[:4]:
        top = ", ".join(f"L{l}H{h} {v:.2f}" for l, h, v in scores.top(name))
        lines.append(f"  {name.replace('_', '-'):<16} {top}")
    return "\n".join(lines)
