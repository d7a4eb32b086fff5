"""What a run needs before its first step: the corpus, a tokenizer, token splits and a model.

The corpus is streamed into token shards once (:mod:`qkv.data.prepare_stream`); every later run,
and every rank under torchrun, reads them through memmaps."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from qkv.atomic import write_text_atomic
from qkv.data.batches import MaskingSpec
from qkv.data.corpus import split_point
from qkv.data.prepare_stream import PrepareOptions, prepare_corpus
from qkv.data.shards import ShardedTokens
from qkv.data.sources import SourceSpec
from qkv.data.tokenizers import MASK, PAD
from qkv.training.config import TrainConfig

if TYPE_CHECKING:
    from qkv.data.tokenizer import Tokenizer


@dataclass(kw_only=True)
class PreparedData:
    """Tokenizer and token splits of a corpus; ``masking`` is set for masked-LM (BERT) runs."""

    tokenizer: Tokenizer
    train: ShardedTokens | np.ndarray  # (N_train,) token ids (memmapped shards)
    val: ShardedTokens | np.ndarray  # (N_val,) token ids
    corpus_sha256: str
    corpus_path: str
    masking: MaskingSpec | None


def is_masked_lm(model_preset: str) -> bool:
    """True when the preset is a BERT (trained with masked-LM batches)."""
    from qkv.models import PRESETS

    if model_preset not in PRESETS:
        raise ValueError(
            f"unknown model preset {model_preset!r}; choose one of: {', '.join(PRESETS)}"
        )
    return PRESETS[model_preset].architecture == "bert"


def corpus_path(config: TrainConfig, *, quiet: bool = False) -> Path:
    """``config.data``, or the default corpus folder (fetched on first use)."""
    if config.data is not None:
        return Path(config.data).expanduser()
    from qkv.data.default_corpus import ensure_default_corpus

    return ensure_default_corpus(quiet=quiet)


def corpus_spec(config: TrainConfig, *, quiet: bool = False) -> SourceSpec:
    """The :class:`SourceSpec` of ``config``'s data (``hf:`` ids are passed through)."""
    data = config.data
    if data is None or not data.startswith("hf:"):
        data = str(corpus_path(config, quiet=quiet))
    return SourceSpec(
        data=data,
        text_field=config.text_field,
        split=config.data_split,
        skip_bad_files=config.skip_bad_files,
    )


def prepare_options(config: TrainConfig) -> PrepareOptions:
    """How ``config`` tokenizes its corpus (masked-LM presets get [PAD]/[MASK], no EOT)."""
    return PrepareOptions(
        tokenizer=config.tokenizer,
        vocab_size=config.vocab_size,
        masked_lm=is_masked_lm(config.model),
        bpe_sample_mb=config.bpe_sample_mb,
    )


# A run reads and writes its tokenizer through these two only (cache, checkpoints, resume), so
# a change of tokenizer type is one edit here.
def write_tokenizer_json(tokenizer: Tokenizer, path: Path) -> None:
    """``tokenizer`` as Hugging Face tokenizers JSON at ``path``, written atomically."""
    write_text_atomic(path, tokenizer.to_str())


def read_tokenizer_json(path: Path) -> Tokenizer:
    """The tokenizer :func:`write_tokenizer_json` wrote to ``path``."""
    from qkv.data.tokenizer import Tokenizer

    return Tokenizer.from_file(path)


def masking_spec(tokenizer: Tokenizer) -> MaskingSpec:
    """The BERT masking spec of a tokenizer with [MASK]: random replacements exclude specials."""
    vocab = tokenizer.get_vocab()
    if MASK not in vocab:
        raise ValueError(f"the tokenizer has no {MASK} token; a masked-LM run needs one")
    specials = sorted(vocab[t.content] for t in tokenizer.get_added_tokens_decoder().values())
    size = tokenizer.get_vocab_size()
    if specials == list(range(len(specials))):  # BPE trainers put specials first
        low, high = len(specials), size
    elif specials == list(range(specials[0], size)):  # the char tokenizer appends them
        low, high = 0, specials[0]
    else:  # pretrained vocabularies (BERT's [PAD]=0, [UNK]..[MASK]=100..103): after the last
        low, high = specials[-1] + 1, size
    return MaskingSpec(mask_id=vocab[MASK], random_low=low, random_high=high)


def prepare_data(
    config: TrainConfig,
    *,
    tokenizer: Tokenizer | None = None,
    quiet: bool = False,
    masked_lm: bool | None = None,
) -> PreparedData:
    """Stream the corpus into cached token shards (:mod:`qkv.data.prepare_stream`: the
    tokenizer is trained or reused, a cache hit costs a stat per file) and split it into train
    (first ``1 - val_fraction``) and validation (the rest), both memmapped windows.

    ``masked_lm``: the model trains on masked-LM batches (default: the preset is a BERT).
    Raises ValueError when either split is shorter than one context window.
    """
    masked_lm = is_masked_lm(config.model) if masked_lm is None else masked_lm
    spec = corpus_spec(config, quiet=quiet)
    prepared = prepare_corpus(spec, prepare_options(config), tokenizer=tokenizer, quiet=quiet)
    tokens = prepared.tokens
    cut = split_point(len(tokens), config.val_fraction)
    train, val = tokens.view(0, cut), tokens.view(cut, len(tokens))
    need = config.block_size + 2
    for name, part in (("training", train), ("validation", val)):
        if len(part) < need:
            raise ValueError(
                f"corpus {spec.data} is too short: its {name} split has {len(part)} tokens, "
                f"fewer than one context window (block_size={config.block_size} needs {need}); "
                f"use a longer text or a smaller --block-size (total tokens: {len(tokens)})"
            )
    origin = spec.data if spec.data.startswith("hf:") else str(Path(spec.data).resolve())
    return PreparedData(
        tokenizer=prepared.tokenizer,
        train=train,
        val=val,
        corpus_sha256=prepared.content_sha256,
        corpus_path=origin,
        masking=masking_spec(prepared.tokenizer) if masked_lm else None,
    )


def build_model(config: TrainConfig, tokenizer: Tokenizer) -> nn.Module:
    """The preset model sized for ``tokenizer`` and ``config`` (context = block_size)."""
    from qkv.models import build, preset

    overrides: dict[str, object] = {
        "vocab_size": tokenizer.get_vocab_size(),
        "n_positions": config.block_size,
        "dropout": config.dropout,
    }
    for name in ("n_layer", "n_head", "n_embd"):
        if getattr(config, name) is not None:
            overrides[name] = getattr(config, name)
    masked_lm = is_masked_lm(config.model)
    if masked_lm:
        overrides["attention_dropout"] = config.dropout
        overrides["pad_token_id"] = tokenizer.token_to_id(PAD)
    model_config = preset(config.model, **overrides)
    torch.manual_seed(config.seed)
    return build(model_config, masked_lm=masked_lm)


def load_weights(model: nn.Module, checkpoint: Path) -> None:
    """Copy the weights saved in ``checkpoint`` into ``model`` (tied aliases may be absent)."""
    from safetensors.torch import load_file

    files = sorted(checkpoint.glob("*.safetensors"))
    if not files:
        raise ValueError(f"checkpoint {checkpoint} has no .safetensors weights")
    state: dict[str, torch.Tensor] = {}
    for file in files:
        try:
            state.update(load_file(str(file)))
        except Exception as error:
            raise ValueError(f"{file} could not be read ({error}); it is corrupt") from None
    load_state(model, state, source=f"checkpoint {checkpoint}")


def load_state(model: nn.Module, state: dict[str, torch.Tensor], *, source: str) -> None:
    """Copy ``state`` into ``model`` after checking every name and shape.

    A tied parameter may appear under one of its names only (safetensors and the FSDP gather
    both keep one). Raises ValueError naming ``source`` and the first mismatching names.
    """
    own = model.state_dict()
    pointers = {own[name].data_ptr() for name in state if name in own}
    missing = [n for n in own if n not in state and own[n].data_ptr() not in pointers]
    unexpected = [n for n in state if n not in own]
    if missing or unexpected:
        raise ValueError(
            f"{source} does not match the model: missing {missing[:3]}, unexpected {unexpected[:3]}"
        )
    for name, tensor in state.items():
        if own[name].shape != tensor.shape:
            raise ValueError(
                f"{source}: {name} has shape {tuple(tensor.shape)}, the model expects "
                f"{tuple(own[name].shape)}; the model's config does not match it"
            )
    model.load_state_dict(state, strict=False)
