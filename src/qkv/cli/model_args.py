"""How ``qkv generate``, ``eval`` and ``chat`` name their model, and how they open it.

``MODEL`` (positional) or ``--model MODEL``: a ``qkv train`` run folder, a checkpoint folder,
a Hugging Face folder, or a hub id (``Qwen/Qwen2.5-0.5B-Instruct``) resolved by
:func:`qkv.io.hub.resolve_model` (cache, ``HF_HUB_OFFLINE``, a local folder winning over an id);
``--revision`` picks a hub branch, tag or commit. The sampling flags default to None so a flag
the user gave wins over the model's generation_config.json, which wins over qkv's defaults.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MODEL_HELP = (
    "a qkv train run or checkpoint folder, a Hugging Face model folder, or a Hugging Face hub "
    "id such as Qwen/Qwen2.5-0.5B-Instruct (downloaded into the huggingface_hub cache; with "
    "HF_HUB_OFFLINE=1 read from it)"
)
# qkv's own sampling defaults, for models without a generation_config.json.
TEMPERATURE = 0.8
MAX_NEW_TOKENS = 200


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """``MODEL`` (optional positional), ``--model MODEL`` and ``--revision REV``."""
    parser.add_argument("checkpoint", metavar="MODEL", nargs="?", default=None, help=MODEL_HELP)
    parser.add_argument(
        "--model", dest="model_flag", metavar="MODEL", default=None, help="same as MODEL"
    )
    add_revision_argument(parser)


def add_revision_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--revision",
        default=None,
        metavar="REV",
        help="hub branch, tag or commit of a hub id (default: main)",
    )


def add_sampling_arguments(parser: argparse.ArgumentParser, *, max_new_tokens: int) -> None:
    """Sampling flags; unset ones come from the model's generation_config.json."""
    source = "default: the model's generation_config.json, else"
    parser.add_argument(
        "--max-new-tokens", type=int, default=None,
        help=f"tokens to add ({source} {max_new_tokens})",
    )  # fmt: skip
    parser.add_argument(
        "--temperature", type=float, default=None,
        help=f"0 = greedy ({source} {TEMPERATURE}; greedy when it does not sample)",
    )  # fmt: skip
    parser.add_argument("--top-k", type=int, default=None, help="sample from the k likeliest")
    parser.add_argument("--top-p", type=float, default=None, help="nucleus sampling mass")
    parser.add_argument(
        "--repetition-penalty", type=float, default=None,
        help="divide the logits of tokens already seen by this (transformers' rule; 1 = off)",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=None, help="seed for reproducible samples")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N] (default: cpu)")
    parser.add_argument(
        "--precision", choices=("auto", "fp32", "bf16"), default=None,
        help="weights and compute in fp32, bf16, or auto: bf16 only where the CPU/GPU computes "
        "it natively (AVX512-BF16 / AMX, CUDA sm80+), else fp32 (default: as loaded)",
    )  # fmt: skip


def model_name(args: argparse.Namespace) -> str:
    """The one model the user named (positional or --model), or a CliError."""
    from qkv.cli.main import CliError

    positional, flag = args.checkpoint, args.model_flag
    if positional is not None and flag is not None:
        raise CliError(f"give the model once: MODEL {positional!r} or --model {flag!r}, not both")
    if positional is None and flag is None:
        raise CliError("no model: pass MODEL (a folder or a hub id such as gpt2) or --model MODEL")
    return positional if positional is not None else flag


@dataclass(kw_only=True)
class LanguageModel:
    """A causal LM opened for the CLI: model (eval mode), tokenizer, folder, defaults."""

    model: Any
    tokenizer: Any
    directory: Path
    defaults: Any  # qkv.generation.GenerationDefaults, or None without generation_config.json
    name: str


def open_language_model(
    name: str, revision: str | None, *, device: str, command: str, precision: str | None = None
) -> Any:
    """Resolve ``name`` (folder or hub id), load model and tokenizer, check it is a GPT; cast
    it to ``precision`` (``auto``/``fp32``/``bf16``, see :mod:`qkv.hardware`) when given."""
    from qkv.cli.main import CliError
    from qkv.generation import GenerationDefaults
    from qkv.io.hub import resolve_model
    from qkv.models import GPT
    from qkv.training.checkpoint import load_for_inference

    model, tokenizer, directory = load_for_inference(resolve_model(name, revision), device=device)
    if not isinstance(model, GPT):
        raise CliError(
            f"{name} holds a {type(model).__name__}; qkv {command} needs a GPT (causal "
            "language model) checkpoint"
        )
    if precision is not None:
        model = cast_to_precision(model, precision, device)
    defaults = None
    if (directory / "generation_config.json").is_file() or (directory / "config.json").is_file():
        defaults = GenerationDefaults.from_dir(directory)
        if not (directory / "generation_config.json").is_file() and not defaults.eos_token_id:
            defaults = None  # a qkv checkpoint: nothing the model itself asks for
    return LanguageModel(
        model=model, tokenizer=tokenizer, directory=directory, defaults=defaults, name=name
    )


def cast_to_precision(model: Any, precision: str, device: str) -> Any:
    """``model`` in the dtype ``precision`` resolves to on ``device``; an explicit bf16 where
    it is emulated says so in one line on stderr (and proceeds)."""
    import sys

    from qkv.hardware import resolve_precision

    chosen = resolve_precision(precision, device)
    if chosen.warning:
        print(f"qkv: {chosen.warning}", file=sys.stderr)
    return model.to(chosen.torch_dtype)


@dataclass(kw_only=True)
class Sampling:
    """What the CLI samples with, after flags > generation_config.json > qkv defaults."""

    temperature: float
    top_k: int | None
    top_p: float | None
    repetition_penalty: float
    eos_token_id: list[int]
    seed: int | None

    def options(self) -> dict[str, Any]:
        return {
            "temperature": self.temperature, "top_k": self.top_k, "top_p": self.top_p,
            "repetition_penalty": self.repetition_penalty, "eos_token_id": self.eos_token_id,
            "seed": self.seed,
        }  # fmt: skip


def sampling(args: argparse.Namespace, lm: Any, *, stop_at_tokenizer_eos: bool) -> Sampling:
    """The settings to sample with; a note on stderr for generation_config.json fields that
    qkv does not implement. ``stop_at_tokenizer_eos`` adds the tokenizer's end token (chat)."""
    import sys

    from qkv.cli.main import CliError
    from qkv.generation.sampling import check_repetition_penalty, check_sampling

    defaults = lm.defaults
    top_k, top_p = args.top_k, args.top_p
    if args.temperature is not None:
        temperature = args.temperature
    elif defaults is None:
        temperature = TEMPERATURE
    else:  # as transformers: greedy unless the generation config samples
        chosen = defaults.sampling()
        temperature = chosen["temperature"]
        top_k = top_k if top_k is not None else chosen["top_k"]
        top_p = top_p if top_p is not None else chosen["top_p"]
    penalty = args.repetition_penalty
    if penalty is None:
        penalty = defaults.repetition_penalty if defaults is not None else 1.0
    check_sampling(temperature, top_k, top_p)
    try:
        check_repetition_penalty(penalty)
    except ValueError as error:
        raise CliError(f"--repetition-penalty: {error}") from None
    eos = list(defaults.eos_token_id) if defaults is not None else []
    if stop_at_tokenizer_eos and lm.tokenizer.eos_token_id is not None:
        eos = [*eos, lm.tokenizer.eos_token_id] if lm.tokenizer.eos_token_id not in eos else eos
    vocab = lm.model.config.vocab_size
    eos = [i for i in eos if 0 <= i < vocab]
    if defaults is not None and defaults.unsupported:
        print(
            f"qkv: note: {lm.directory / 'generation_config.json'} sets "
            f"{', '.join(defaults.unsupported)}, which qkv does not implement; ignored",
            file=sys.stderr,
        )
    return Sampling(
        temperature=temperature, top_k=top_k, top_p=top_p, repetition_penalty=float(penalty),
        eos_token_id=eos, seed=args.seed,
    )  # fmt: skip


def max_new_tokens(args: argparse.Namespace, lm: Any, prompt_length: int, default: int) -> int:
    """--max-new-tokens, else the model's generation config, else ``default``; >= 1."""
    from qkv.cli.main import CliError

    value = args.max_new_tokens
    if value is None and lm.defaults is not None:
        value = lm.defaults.new_tokens(prompt_length)
    value = default if value is None else value
    if value < 1:
        raise CliError(f"--max-new-tokens must be >= 1, got {value}")
    return value


def read_chat_template(path: str | None) -> str | None:
    """The text of a ``--chat-template FILE`` (a Jinja template), or None."""
    from qkv.cli.main import CliError

    if path is None:
        return None
    file = Path(path).expanduser()
    if not file.is_file():
        raise CliError(f"--chat-template {path}: no such file; pass a Jinja chat template file")
    return file.read_text(encoding="utf-8")
