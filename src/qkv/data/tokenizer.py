"""``Tokenizer``: qkv's one tokenizer type, for training, generation, visualisation and the CLI.

It wraps a Hugging Face ``tokenizers.Tokenizer`` (the *backend*) with the model's special
tokens and a small interface: build one (:meth:`Tokenizer.train_char`,
:meth:`Tokenizer.train_bpe`), open one (:meth:`Tokenizer.from_dir`, :meth:`Tokenizer.from_file`,
:func:`load_tokenizer`), convert (``encode``, ``encode_batch``, ``decode``, ``tokens``,
``tokenizer(texts)`` for padded batches), render a conversation with the model's chat
template (``apply_chat_template``, :mod:`qkv.data.chat`), save (``save(dir)``:
tokenizer.json, tokenizer_config.json and the chat template). The backend's own accessors
that training code needs (``get_vocab``,
``get_vocab_size``, ``get_added_tokens_decoder``, ``token_to_id``, ``id_to_token``,
``to_str``) are offered under the same names, so code written against a raw backend works
unchanged; ``sha256`` identifies the tokenizer (of ``to_str()``).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from qkv.atomic import write_atomic, write_json_atomic
from qkv.data.chat import Templates, render_chat, select_template
from qkv.data.tokenizer_backends import bpe_backend, char_backend
from qkv.data.tokenizer_files import read_tokenizer, special_token_roles

if TYPE_CHECKING:
    from qkv.data.unknown import UnknownReport


class Tokenizer:
    """A text ↔ token-id converter wrapping a ``tokenizers.Tokenizer``.

    Example::

        >>> tok = qkv.load_tokenizer(qkv.io.pretrained_path("all-minilm-l6-v2"))
        >>> tok.encode("Hello world")
        [101, 7592, 2088, 102]
        >>> batch = tok(["a b", "a"], max_length=16)   # input_ids (2, 4), attention_mask ...
        >>> char = Tokenizer.train_char("to be or not")
        >>> char.decode(char.encode("be"))
        'be'
    """

    def __init__(
        self,
        backend: Any,
        *,
        special_tokens: dict[str, str] | None = None,
        model_max_length: int | None = None,
        chat_template: Templates | None = None,
        template_tokens: dict[str, str] | None = None,
    ) -> None:
        backend.no_padding()
        backend.no_truncation()
        self.backend = backend
        self.model_max_length = model_max_length
        self._special_tokens = dict(special_tokens or {})
        self._truncation: int | None = None
        # The model's Jinja chat template(s): one string, or {name: template}; None for none.
        self.chat_template = chat_template
        # {role: token} given to the template as ``<role>_token`` (the configs' spelling).
        self._template_tokens = dict(
            template_tokens if template_tokens is not None else self._special_tokens
        )

    # --- building and opening -----------------------------------------------------------
    @classmethod
    def train_char(cls, text: str, *, masked_lm: bool = False) -> Tokenizer:
        """One token per character of ``text`` (sorted), then [UNK] (and [PAD], [MASK] for
        masked-LM training). ``decode(encode(t)) == t`` for text of those characters."""
        return cls.wrap(char_backend(text, masked_lm=masked_lm))

    @classmethod
    def train_bpe(
        cls, text: str | Iterable[str], *, vocab_size: int, masked_lm: bool = False
    ) -> Tokenizer:
        """Byte-level BPE (GPT-2 style) with ``vocab_size`` tokens trained on ``text`` (a
        string, or an iterable of lines); any text round-trips."""
        lines = text.splitlines(keepends=True) if isinstance(text, str) else text
        return cls.wrap(bpe_backend(lines, vocab_size=vocab_size, masked_lm=masked_lm))

    @classmethod
    def from_dir(cls, path: str | os.PathLike[str]) -> Tokenizer:
        """The tokenizer saved in directory ``path``: tokenizer.json, or a WordPiece vocab.txt
        (BERT); special tokens and model_max_length from tokenizer_config.json."""
        if not Path(path).is_dir():
            raise FileNotFoundError(f"no tokenizer directory at {path}")
        return load_tokenizer(path)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> Tokenizer:
        """The tokenizer in a ``tokenizer.json`` file (special tokens from a
        tokenizer_config.json beside it, else by their conventional names)."""
        if not Path(path).is_file():
            raise FileNotFoundError(f"no tokenizer file at {path}")
        return load_tokenizer(path)

    @classmethod
    def wrap(cls, tokenizer: Tokenizer | Any) -> Tokenizer:
        """``tokenizer`` itself, or a raw ``tokenizers.Tokenizer`` wrapped (special tokens by
        their conventional names: [UNK], [PAD], <|endoftext|>, ...)."""
        from tokenizers import Tokenizer as Backend

        if isinstance(tokenizer, Tokenizer):
            return tokenizer
        if not isinstance(tokenizer, Backend):
            raise ValueError(
                "expected a qkv Tokenizer or a tokenizers.Tokenizer, got "
                f"{type(tokenizer).__name__}"
            )
        return cls(tokenizer, special_tokens=special_token_roles(tokenizer))

    # --- metadata -----------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        """Number of ids, added tokens included (the embedding table needs this many rows)."""
        return int(self.backend.get_vocab_size(with_added_tokens=True))

    def __len__(self) -> int:
        return self.vocab_size

    @property
    def special_tokens(self) -> dict[str, str]:
        """{role: token} of the named special tokens (pad, eos, bos, unk, cls, sep, mask)."""
        return dict(self._special_tokens)

    def token_id(self, role: str) -> int | None:
        """The id of the special token playing ``role`` (pad, eos, bos, unk, cls, sep, mask)."""
        token = self._special_tokens.get(role)
        return None if token is None else self.backend.token_to_id(token)

    @property
    def pad_token_id(self) -> int | None:
        return self.token_id("pad")

    @property
    def eos_token_id(self) -> int | None:
        return self.token_id("eos")

    @property
    def bos_token_id(self) -> int | None:
        return self.token_id("bos")

    @property
    def mask_token_id(self) -> int | None:
        return self.token_id("mask")

    @property
    def special_ids(self) -> list[int]:
        """Sorted ids of every special token (added special tokens and named roles)."""
        ids = {index for index, token in self.get_added_tokens_decoder().items() if token.special}
        ids |= {self.token_id(role) for role in self._special_tokens}
        return sorted(i for i in ids if isinstance(i, int))

    @property
    def sha256(self) -> str:
        """Hex SHA-256 of :meth:`to_str`: equal for tokenizers that tokenize identically."""
        return hashlib.sha256(self.to_str().encode("utf-8")).hexdigest()

    # --- the backend's accessors, same names and meaning --------------------------------
    def get_vocab(self, with_added_tokens: bool = True) -> dict[str, int]:
        """{token: id}."""
        return self.backend.get_vocab(with_added_tokens=with_added_tokens)

    def get_vocab_size(self, with_added_tokens: bool = True) -> int:
        return int(self.backend.get_vocab_size(with_added_tokens=with_added_tokens))

    def get_added_tokens_decoder(self) -> dict[int, Any]:
        """{id: tokenizers.AddedToken} (``.content``, ``.special``) of the added tokens."""
        return self.backend.get_added_tokens_decoder()

    def token_to_id(self, token: str) -> int | None:
        return self.backend.token_to_id(token)

    def id_to_token(self, index: int) -> str | None:
        return self.backend.id_to_token(index)

    def to_str(self, pretty: bool = False) -> str:
        """The tokenizer.json text (without any truncation a batch call set)."""
        self._set_truncation(None)
        return self.backend.to_str(pretty=pretty)

    # --- conversion ---------------------------------------------------------------------
    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        """Token ids of ``text`` (no truncation), with the model's special tokens if asked."""
        self._set_truncation(None)
        return list(self.backend.encode(text, add_special_tokens=add_special_tokens).ids)

    def encode_batch(
        self,
        texts: Sequence[str],
        add_special_tokens: bool = True,
        max_length: int | None = None,
    ) -> list[list[int]]:
        """Token ids of each text (in Rust, in parallel), cut to ``max_length`` if given."""
        self._set_truncation(max_length)
        encodings = self.backend.encode_batch(list(texts), add_special_tokens=add_special_tokens)
        return [list(e.ids) for e in encodings]

    def decode(self, ids: Sequence[int] | Tensor, skip_special_tokens: bool = False) -> str:
        """Text of ``ids`` (a list or 1-D tensor)."""
        return self.backend.decode(_as_list(ids), skip_special_tokens=skip_special_tokens)

    def tokens(self, ids: Sequence[int] | Tensor) -> list[str]:
        """The token string of each id (``"##ing"``, ``"Ġthe"``, ...), for display."""
        vocab_size = self.vocab_size
        out = []
        for i in _as_list(ids):
            if not 0 <= i < vocab_size:
                raise ValueError(f"token id {i} is out of range for a vocabulary of {vocab_size}")
            out.append(self.backend.id_to_token(i))
        return out

    def unknown_report(self, text: str, *, examples: int = 5) -> UnknownReport:
        """How many tokens of ``text`` are the unknown token ([UNK]) and the characters (for
        WordPiece: words) they replaced, most frequent first: a char-level vocabulary knows
        only its corpus's characters. ``report.describe()`` says it in one sentence."""
        from qkv.data.unknown import unknown_report

        return unknown_report(self, text, examples=examples)

    def __call__(
        self,
        texts: str | Sequence[str],
        padding: bool = True,
        truncation: bool = True,
        max_length: int | None = None,
    ) -> dict[str, Tensor]:
        """Encode a batch: ``input_ids``, ``attention_mask``, ``token_type_ids``, each (B, T).

        ``padding=True`` pads to the longest text (right side) with the pad token (id 0 when
        the tokenizer has none; ``attention_mask`` marks the real tokens either way).
        ``truncation=True`` cuts each text to ``max_length`` tokens, special tokens included
        (default: the tokenizer's ``model_max_length``, when it has one). With
        ``padding=False`` every text must have the same length.
        """
        if isinstance(texts, str):
            texts = [texts]
        if not texts:
            raise ValueError("texts is empty; pass at least one string")
        limit = (max_length or self.model_max_length) if truncation else None
        if limit is not None and limit < 1:
            raise ValueError(f"max_length must be ≥ 1, got {limit}")
        self._set_truncation(limit)
        encodings = self.backend.encode_batch(list(texts))
        lengths = [len(e.ids) for e in encodings]
        width = max(lengths)
        if not padding and len(set(lengths)) > 1:
            raise ValueError(
                f"texts encode to different lengths {sorted(set(lengths))} and padding=False; "
                "pass padding=True or texts of equal token length"
            )
        pad_id = self.pad_token_id if self.pad_token_id is not None else 0
        ids = torch.full((len(encodings), width), pad_id, dtype=torch.long)  # (B, T)
        mask = torch.zeros((len(encodings), width), dtype=torch.long)  # (B, T)
        types = torch.zeros((len(encodings), width), dtype=torch.long)  # (B, T)
        for row, encoding in enumerate(encodings):
            n = lengths[row]
            ids[row, :n] = torch.tensor(encoding.ids, dtype=torch.long)
            mask[row, :n] = 1
            types[row, :n] = torch.tensor(encoding.type_ids, dtype=torch.long)
        return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}

    def apply_chat_template(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        add_generation_prompt: bool = False,
        tokenize: bool = True,
        chat_template: str | None = None,
        tools: Sequence[Mapping[str, Any]] | None = None,
        **variables: Any,
    ) -> list[int] | str:
        """The prompt of ``messages`` under the model's chat template: token ids, or the text
        with ``tokenize=False``; equal to transformers' ``apply_chat_template``.

        ``add_generation_prompt`` ends the prompt with the header of an assistant turn.
        ``chat_template`` is a template string, or the name of one of the model's templates.
        The template sees ``bos_token``, ``eos_token``, ... and ``variables``. The text is
        encoded without adding special tokens (the template writes them). Raises ValueError
        (:class:`qkv.data.chat.ChatTemplateError`) when the model has no template.

        Example::

            >>> tok.apply_chat_template([{"role": "user", "content": "Hi"}],
            ...                         add_generation_prompt=True, tokenize=False)
            '<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n'
        """
        template = select_template(self.chat_template, chat_template, tools)
        tokens = {f"{role}_token": token for role, token in self._template_tokens.items()}
        text = render_chat(
            template,
            messages,
            add_generation_prompt=add_generation_prompt,
            tools=tools,
            **{**tokens, **variables},
        )
        return self.encode(text, add_special_tokens=False) if tokenize else text

    def _set_truncation(self, limit: int | None) -> None:
        if limit == self._truncation:
            return
        if limit is None:
            self.backend.no_truncation()
        else:
            self.backend.enable_truncation(limit)
        self._truncation = limit

    # --- persistence --------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write ``tokenizer.json``, ``tokenizer_config.json`` and the chat template
        (``chat_template.jinja``, named ones in ``additional_chat_templates/``) into directory
        ``path``.

        Each file is written atomically; :meth:`from_dir` and Hugging Face
        ``AutoTokenizer`` open the directory. Returns the directory.
        """
        directory = Path(path)
        directory.mkdir(parents=True, exist_ok=True)
        text = self.to_str(pretty=True)
        write_atomic(directory / "tokenizer.json", lambda tmp: tmp.write_text(text, "utf-8"))
        config: dict[str, Any] = {"tokenizer_class": "PreTrainedTokenizerFast"}
        config.update({f"{role}_token": tok for role, tok in self._special_tokens.items()})
        if self.model_max_length is not None:
            config["model_max_length"] = self.model_max_length
        write_json_atomic(directory / "tokenizer_config.json", config)
        templates = self.chat_template
        if isinstance(templates, str):
            templates = {"default": templates}
        for name, template in (templates or {}).items():
            file = directory / (
                "chat_template.jinja"
                if name == "default"
                else f"additional_chat_templates/{name}.jinja"
            )
            file.parent.mkdir(exist_ok=True)
            write_atomic(file, lambda tmp, text=template: tmp.write_text(text, "utf-8"))
        return directory

    def __repr__(self) -> str:
        roles = ", ".join(f"{r}={t!r}" for r, t in self._special_tokens.items())
        return f"Tokenizer(vocab_size={self.vocab_size}, {roles})"


def _as_list(ids: Sequence[int] | Tensor) -> list[int]:
    if isinstance(ids, Tensor):
        if ids.dim() != 1:
            raise ValueError(f"ids must be 1-D, got shape {tuple(ids.shape)}; decode one row")
        return [int(i) for i in ids.tolist()]
    return [int(i) for i in ids]


def load_tokenizer(path: str | os.PathLike[str]) -> Tokenizer:
    """Open the tokenizer saved in directory ``path`` (or a ``tokenizer.json`` file).

    Prefers ``tokenizer.json``; falls back to a WordPiece ``vocab.txt`` (BERT) with
    ``do_lower_case`` from ``tokenizer_config.json`` (default True, as BERT's).

    Example::

        >>> tok = qkv.load_tokenizer("runs/shakespeare")
        >>> tok.decode(tok.encode("To be"))
        'To be'
    """
    saved = read_tokenizer(path)
    return Tokenizer(
        saved.backend,
        special_tokens=saved.roles,
        model_max_length=saved.model_max_length,
        chat_template=saved.chat_template,
        template_tokens=saved.template_tokens,
    )
