"""The Hugging Face ``tokenizers.Tokenizer`` objects behind :class:`qkv.data.Tokenizer`: built
from a corpus (character level, byte-level BPE) or from a WordPiece ``vocab.txt`` (BERT).

* ``char``: one token per Unicode character seen in the corpus (a WordLevel model behind a
  pre-tokenizer that isolates every character, and a ``Fuse`` decoder that joins them back
  without spaces), so ``decode(encode(text)) == text`` for any text made of corpus characters.
* ``bpe``: byte-level BPE (GPT-2 style) trained on the corpus; any text round-trips.

Special tokens (``[UNK]``, and ``[PAD]``/``[MASK]`` for masked-LM training) sit at the end of
the char vocabulary so the ids of ordinary characters do not depend on them (BPE's trainer
puts them first).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

TokenizerKind = Literal["char", "bpe"]
TOKENIZER_KINDS: tuple[str, ...] = ("char", "bpe")
UNK = "[UNK]"
PAD = "[PAD]"
MASK = "[MASK]"


def special_tokens(masked_lm: bool) -> list[str]:
    """The special tokens appended to a vocabulary: [UNK], plus [PAD] and [MASK] for BERT."""
    return [UNK, PAD, MASK] if masked_lm else [UNK]


def char_backend(text: str, *, masked_lm: bool = False) -> Any:
    """A character-level ``tokenizers.Tokenizer`` over the sorted characters of ``text``."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers

    if not text:
        raise ValueError("cannot build a character tokenizer from an empty text; pass a corpus")
    vocab = {char: index for index, char in enumerate(sorted(set(text)))}
    for token in special_tokens(masked_lm):
        vocab[token] = len(vocab)
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    backend.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    backend.decoder = decoders.Fuse()
    backend.add_special_tokens(special_tokens(masked_lm))
    return backend


def bpe_backend(lines: Iterable[str], *, vocab_size: int, masked_lm: bool = False) -> Any:
    """A byte-level BPE ``tokenizers.Tokenizer`` with ``vocab_size`` tokens trained on
    ``lines``; ``vocab_size`` must leave room for the 256 byte tokens and the specials."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    minimum = 256 + len(special_tokens(masked_lm)) + 1
    if vocab_size < minimum:
        raise ValueError(
            f"BPE vocab_size={vocab_size} is too small: byte-level BPE needs at least {minimum} "
            f"(256 bytes + special tokens + 1 merge); pass --vocab-size {minimum} or more"
        )
    if vocab_size > 2**32 - 1:
        raise ValueError(f"BPE vocab_size={vocab_size} does not fit in uint32 token ids")
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=special_tokens(masked_lm),
        show_progress=False,
    )
    backend.train_from_iterator(lines, trainer=trainer)
    return backend


def wordpiece_backend(vocab_file: Path, *, roles: dict[str, str], config: dict[str, Any]) -> Any:
    """BERT's tokenizer from a WordPiece ``vocab.txt``: lower-casing and accents from
    ``tokenizer_config.json`` (``config``), [CLS] ... [SEP] around each text. ``roles`` names
    the special tokens (``{"unk": "[UNK]", ...}``) the configs gave."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    tokens = vocab_file.read_text(encoding="utf-8").splitlines()
    vocab = {token: index for index, token in enumerate(tokens) if token}
    unk, cls, sep = (roles.get(role, f"[{role.upper()}]") for role in ("unk", "cls", "sep"))
    for token in (unk, cls, sep):
        if token not in vocab:
            raise ValueError(f"{vocab_file} lacks the special token {token!r} BERT needs")
    backend = Tokenizer(models.WordPiece(vocab, unk_token=unk, max_input_chars_per_word=100))
    strip_accents = config.get("strip_accents")
    backend.normalizer = normalizers.BertNormalizer(
        clean_text=True,
        handle_chinese_chars=bool(config.get("tokenize_chinese_chars", True)),
        strip_accents=strip_accents if isinstance(strip_accents, bool) else None,
        lowercase=bool(config.get("do_lower_case", True)),
    )
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.post_processor = processors.TemplateProcessing(
        single=f"{cls} $A {sep}",
        pair=f"{cls} $A {sep} $B:1 {sep}:1",
        special_tokens=[(cls, vocab[cls]), (sep, vocab[sep])],
    )
    backend.decoder = decoders.WordPiece(prefix="##")
    specials = [token for token in roles.values() if token in vocab]
    backend.add_special_tokens(specials or [unk, cls, sep])
    return backend
