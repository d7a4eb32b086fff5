"""What a tokenizer cannot represent in a text: the ``[UNK]`` tokens, counted, with the
characters (or words, for WordPiece) they replaced, so commands can say so instead of
computing on placeholders as if the model saw the text.

Example::

    >>> tok = Tokenizer.train_char("abc ")
    >>> report = tok.unknown_report("a café")
    >>> report.count, report.total, report.examples
    (2, 6, [('f', 1), ('é', 1)])
    >>> report.describe()
    "2 of 6 tokens (33.3%) are [UNK], standing for text the vocabulary lacks: 'f' x1, ..."
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

_CHUNK = 1 << 16  # characters encoded at a time: bounded memory for the offsets of big texts


@dataclass(frozen=True, kw_only=True)
class UnknownReport:
    """``count`` of ``total`` tokens are the unknown token ``unk_token``; ``examples`` holds
    the most frequent texts they replaced with their counts, ``distinct`` how many different
    texts there were in all."""

    count: int
    total: int
    unk_token: str | None
    examples: list[tuple[str, int]] = field(default_factory=list)
    distinct: int = 0

    @property
    def fraction(self) -> float:
        return self.count / self.total if self.total else 0.0

    def describe(self) -> str:
        """One sentence: how many tokens are unknown, and the first examples."""
        shown = ", ".join(f"{text!r} x{n}" for text, n in self.examples)
        more = (
            f" and {self.distinct - len(self.examples)} more"
            if self.distinct > len(self.examples)
            else ""
        )
        return (
            f"{self.count:,} of {self.total:,} tokens ({100 * self.fraction:.1f}%) are "
            f"{self.unk_token}, standing for text the vocabulary lacks: {shown}{more}; the "
            "model does not see it"
        )


def unknown_report(tokenizer: Any, text: str, *, examples: int = 5) -> UnknownReport:
    """Count the unknown tokens of ``text`` (special tokens not added) and collect the texts
    they stand for, most frequent first (ties in order of appearance). Texts over 64k
    characters are encoded in pieces cut after whitespace."""
    unk_token = tokenizer.special_tokens.get("unk")
    unk_id = tokenizer.token_id("unk")
    backend = tokenizer.backend
    seen: Counter[str] = Counter()
    total = 0
    for piece in _pieces(text):
        encoding = backend.encode(piece, add_special_tokens=False)
        total += len(encoding.ids)
        if unk_id is None:
            continue
        for token_id, (begin, end) in zip(encoding.ids, encoding.offsets):
            if token_id == unk_id:
                seen[piece[begin:end]] += 1
    count = sum(seen.values())
    return UnknownReport(
        count=count,
        total=total,
        unk_token=unk_token,
        examples=seen.most_common(examples),
        distinct=len(seen),
    )


def _pieces(text: str):
    """``text`` in pieces of about ``_CHUNK`` characters, each ending after whitespace so no
    word is split (a text of one piece is encoded exactly as ``encode`` does)."""
    position = 0
    while position < len(text):
        end = min(position + _CHUNK, len(text))
        while end < len(text) and not text[end - 1].isspace():
            end += 1
        yield text[position:end]
        position = end
