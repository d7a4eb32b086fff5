"""A model's own generation defaults, read from ``generation_config.json`` (else ``config.json``)
as transformers reads them, so ``qkv generate MODEL`` samples and stops where transformers'
``generate`` would.

transformers fills a field the file leaves unset from ``GenerationConfig``'s global defaults
(``do_sample=False``: greedy; ``temperature=1``, ``top_k=50``, ``top_p=1`` when sampling;
``repetition_penalty=1``); :class:`GenerationDefaults` does the same. Fields that change the
output but that qkv does not implement (beam search, ``min_new_tokens``, ``min_p``, ...) are
listed in :attr:`GenerationDefaults.unsupported` when the file sets them, so a caller can say
so instead of silently generating something else.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qkv.atomic import read_json
from qkv.configs import Serialisable, check_positive_int

# Output-changing GenerationConfig fields qkv does not implement, with the value that turns
# each off (a file that sets one to another value is reported, not followed silently).
_NEUTRAL: dict[str, Any] = {
    "num_beams": 1,
    "num_beam_groups": 1,
    "min_length": 0,
    "min_new_tokens": None,
    "no_repeat_ngram_size": 0,
    "encoder_no_repeat_ngram_size": 0,
    "typical_p": 1.0,
    "min_p": None,
    "epsilon_cutoff": 0.0,
    "eta_cutoff": 0.0,
    "encoder_repetition_penalty": 1.0,
    "bad_words_ids": None,
    "suppress_tokens": None,
    "begin_suppress_tokens": None,
    "forced_bos_token_id": None,
    "forced_eos_token_id": None,
    "sequence_bias": None,
    "stop_strings": None,
    "guidance_scale": None,
    "penalty_alpha": None,
    "exponential_decay_length_penalty": None,
    "top_h": None,
}


@dataclass(kw_only=True)
class GenerationDefaults(Serialisable):
    """Generation settings of a model, with transformers' defaults for unset fields.

    Example::

        >>> defaults = GenerationDefaults.from_dir("llama-3.2-1b-instruct")
        >>> defaults.eos_token_id, defaults.sampling()
        ((128001, 128008, 128009), {'temperature': 0.6, 'top_k': 50, 'top_p': 0.9})
    """

    eos_token_id: tuple[int, ...] = ()
    bos_token_id: int | None = None
    pad_token_id: int | None = None
    do_sample: bool = False
    temperature: float = 1.0
    top_k: int | None = 50
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    max_new_tokens: int | None = None
    max_length: int | None = None
    unsupported: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self.eos_token_id = tuple(self.eos_token_id)
        self.unsupported = tuple(self.unsupported)
        for value in self.eos_token_id:
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(
                    f"GenerationDefaults.eos_token_id must hold ids >= 0, got {self.eos_token_id}"
                )
        if not isinstance(self.do_sample, bool):
            raise ValueError(f"GenerationDefaults.do_sample must be a bool, got {self.do_sample!r}")
        for name in ("temperature", "top_p", "repetition_penalty"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"GenerationDefaults.{name} must be a number, got {value!r}")
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"GenerationDefaults.{name} must be >= 0, got {value!r}")
        if not 0 <= self.top_p <= 1:
            raise ValueError(f"GenerationDefaults.top_p must be in [0, 1], got {self.top_p!r}")
        if self.top_k is not None and (isinstance(self.top_k, bool) or self.top_k < 0):
            raise ValueError(f"GenerationDefaults.top_k must be >= 0 or None, got {self.top_k!r}")
        for name in ("max_new_tokens", "max_length"):
            if getattr(self, name) is not None:
                check_positive_int(self, name)

    @classmethod
    def from_dir(cls, path: str | os.PathLike[str]) -> GenerationDefaults:
        """The defaults of the model in folder ``path``: ``generation_config.json`` where it
        exists (end/begin/pad ids it leaves unset come from ``config.json``), else the ids of
        ``config.json``; transformers' global defaults for the rest."""
        directory = Path(path)
        model = _optional_json(directory / "config.json")
        generation = _optional_json(directory / "generation_config.json")
        text = model.get("text_config") if isinstance(model.get("text_config"), dict) else {}
        fields: dict[str, Any] = {}
        for name in ("eos_token_id", "bos_token_id", "pad_token_id"):
            for source in (generation, model, text):
                if source.get(name) is not None:
                    fields[name] = source[name]
                    break
        return cls.from_generation_config({**generation, **fields})

    @classmethod
    def from_generation_config(cls, raw: dict[str, Any]) -> GenerationDefaults:
        """From the fields of a generation_config.json (None-valued ones count as unset)."""
        raw = {key: value for key, value in raw.items() if value is not None}
        eos = raw.get("eos_token_id", ())
        fields: dict[str, Any] = {"eos_token_id": (eos,) if isinstance(eos, int) else tuple(eos)}
        for name in ("bos_token_id", "pad_token_id", "max_new_tokens", "max_length"):
            if name in raw:
                fields[name] = raw[name]
        for name in ("do_sample", "temperature", "top_k", "top_p", "repetition_penalty"):
            if name in raw:
                fields[name] = raw[name]
        if isinstance(fields.get("pad_token_id"), list):  # some configs list one pad id
            fields["pad_token_id"] = fields["pad_token_id"][0] if fields["pad_token_id"] else None
        unsupported = [
            f"{name}={raw[name]!r}"
            for name, neutral in _NEUTRAL.items()
            if name in raw and raw[name] != neutral and raw[name] != []
        ]
        return cls(**fields, unsupported=tuple(unsupported))

    def sampling(self) -> dict[str, Any]:
        """``temperature`` / ``top_k`` / ``top_p`` for :func:`qkv.generate`: temperature 0
        (greedy) unless ``do_sample``; top_k 0 and top_p 1 mean no filter (None)."""
        if not self.do_sample or self.temperature == 0:
            return {"temperature": 0.0, "top_k": None, "top_p": None}
        return {
            "temperature": float(self.temperature),
            "top_k": self.top_k or None,
            "top_p": None if self.top_p >= 1 else float(self.top_p),
        }

    def new_tokens(self, prompt_length: int) -> int | None:
        """How many tokens the model's config asks for after a prompt of ``prompt_length``:
        ``max_new_tokens``, else what ``max_length`` (prompt included) leaves; None if unset."""
        if self.max_new_tokens is not None:
            return self.max_new_tokens
        if self.max_length is not None:
            return max(self.max_length - prompt_length, 0)
        return None


def _optional_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    data = read_json(path)
    return data if isinstance(data, dict) else {}
