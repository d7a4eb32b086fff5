"""``qkv generate MODEL --prompt TEXT``: stream text from a causal LM as it is produced.

MODEL is a run or checkpoint folder, a Hugging Face folder or a hub id (see
:mod:`qkv.cli.model_args`). Unset sampling flags and the end-of-sequence ids come from the
model's generation_config.json, so a hub model samples and stops as transformers' ``generate``
does. ``--chat`` sends the prompt as one user message through the model's chat template.
Within the model's context the KV-cached ``qkv.generate_stream`` produces the tokens; past it
the window slides (each new token sees the last ``n_positions`` tokens), as in nanoGPT.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator, Sequence
from typing import Any

from qkv.cli.vocab import add_strict_vocab_argument


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from qkv.cli.model_args import MAX_NEW_TOKENS, add_model_arguments, add_sampling_arguments

    parser = subparsers.add_parser(
        "generate",
        help="generate text from a model (a folder or a Hugging Face hub id)",
        description="Continue a prompt with a causal language model: a `qkv train` run "
        "(its latest checkpoint) or checkpoint folder, a Hugging Face folder, or a hub id, "
        "printing the text as it is produced. Unset sampling flags and the end-of-sequence "
        "ids come from the model's generation_config.json. --chat sends the prompt as one "
        "user message through the model's chat template and prints the answer.",
    )
    add_model_arguments(parser)
    parser.add_argument("--prompt", default="\n", help="text to continue (default: a newline)")
    add_sampling_arguments(parser, max_new_tokens=MAX_NEW_TOKENS)
    parser.add_argument(
        "--chat", action="store_true",
        help="the prompt is one user message, rendered with the model's chat template",
    )  # fmt: skip
    parser.add_argument("--system", default=None, help="with --chat: a system message first")
    parser.add_argument(
        "--chat-template", metavar="FILE", default=None,
        help="with --chat: a Jinja chat template file, for a model without one",
    )  # fmt: skip
    add_strict_vocab_argument(parser)
    return parser


def stream_tokens(
    model: Any,
    ids: list[int],
    *,
    max_new_tokens: int,
    temperature: float,
    top_k: int | None,
    top_p: float | None,
    seed: int | None,
    eos_token_id: Sequence[int] | None = None,
    repetition_penalty: float = 1.0,
) -> Iterator[int]:
    """Token ids continuing ``ids``: KV-cached while the context lasts, then a sliding window.
    Ends after the first of ``eos_token_id`` (which is yielded)."""
    import torch

    import qkv
    from qkv.generation.sampling import penalise_repeats, sample_next, seen_tokens

    context = model.config.n_positions
    device = next(model.parameters()).device
    stops = set(eos_token_id or ())
    ids = ids[-(context - 1) :] if len(ids) >= context else list(ids)
    cached = min(max_new_tokens, context - len(ids))
    prompt = torch.tensor([ids], device=device)  # (1, T)
    for token in qkv.generate_stream(
        model, prompt, max_new_tokens=cached, temperature=temperature, top_k=top_k,
        top_p=top_p, seed=seed, eos_token_id=list(stops) or None,
        repetition_penalty=repetition_penalty,
    ):  # fmt: skip
        ids.append(int(token[0]))
        yield ids[-1]
        if ids[-1] in stops:
            return
    generator = torch.Generator(device=device)
    generator.manual_seed(seed + 1 if seed is not None else int(torch.seed() % 2**31))
    with torch.inference_mode():
        for _ in range(max_new_tokens - cached):
            window = torch.tensor([ids[-context:]], device=device)  # (1, ≤ context)
            logits = model(window, last_only=True)[:, -1]  # (1, V)
            if repetition_penalty != 1.0:
                seen = seen_tokens(torch.tensor([ids], device=device), None, logits.shape[-1])
                logits = penalise_repeats(logits, seen, repetition_penalty)
            token = sample_next(
                logits, temperature=temperature, top_k=top_k, top_p=top_p, generator=generator
            )
            ids.append(int(token[0]))
            yield ids[-1]
            if ids[-1] in stops:
                return


def stream_text(tokenizer: Any, tokens: Iterator[int]) -> Iterator[str]:
    """Decoded text pieces as tokens arrive; a piece ending inside a UTF-8 character (BPE
    bytes) waits for the rest of the character."""
    produced: list[int] = []
    printed = 0
    text = ""
    for token in tokens:
        produced.append(token)
        text = tokenizer.decode(produced, skip_special_tokens=True)
        if text.endswith("\ufffd"):
            continue
        if len(text) > printed:
            yield text[printed:]
            printed = len(text)
    if len(text) > printed:
        yield text[printed:]


def chat_prompt(lm: Any, messages: list[dict[str, str]], template: str | None) -> list[int]:
    """The token ids of ``messages`` under the model's (or the given) chat template, ending
    with the assistant header; a CliError naming --chat-template when there is none."""
    from qkv.cli.main import CliError

    if template is None and lm.tokenizer.chat_template is None:
        raise CliError(
            f"{lm.name} has no chat template (no chat_template.jinja, no chat_template in "
            "tokenizer_config.json), so --chat cannot format a conversation: pass "
            "--chat-template FILE, or drop --chat to continue the plain prompt"
        )
    return lm.tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, chat_template=template
    )


def run(args: argparse.Namespace) -> int:
    import sys

    from qkv.cli.checks import device, generation_fits_memory
    from qkv.cli.main import CliError
    from qkv.cli.model_args import (
        MAX_NEW_TOKENS,
        max_new_tokens,
        model_name,
        open_language_model,
        read_chat_template,
        sampling,
    )
    from qkv.cli.vocab import check_vocabulary

    if args.max_new_tokens is not None and args.max_new_tokens < 1:
        raise CliError(f"--max-new-tokens must be >= 1, got {args.max_new_tokens}")
    if not args.chat and (args.system is not None or args.chat_template is not None):
        raise CliError("--system and --chat-template apply to --chat; add --chat")
    template = read_chat_template(args.chat_template)
    name = model_name(args)
    lm = open_language_model(
        name,
        args.revision,
        device=device(args.device),
        command="generate",
        precision=args.precision,
    )
    settings = sampling(args, lm, stop_at_tokenizer_eos=args.chat)
    if not args.prompt:
        raise CliError("--prompt is empty; pass some text to continue (default: a newline)")
    check_vocabulary(lm.tokenizer, args.prompt, strict=args.strict_vocab, what="--prompt")
    if args.chat:
        messages = [{"role": "system", "content": args.system}] if args.system else []
        ids = chat_prompt(lm, [*messages, {"role": "user", "content": args.prompt}], template)
    else:
        # special tokens as the tokenizer adds them (a BOS for Llama 3, Gemma), as transformers
        ids = lm.tokenizer.encode(args.prompt)
    if not ids:
        raise CliError(f"--prompt {args.prompt!r} encodes to no tokens; pass other text")
    count = max_new_tokens(args, lm, len(ids), MAX_NEW_TOKENS)
    generation_fits_memory(count)
    if not args.chat:
        sys.stdout.write(args.prompt)
        sys.stdout.flush()
    tokens = stream_tokens(lm.model, ids, max_new_tokens=count, **settings.options())
    for piece in stream_text(lm.tokenizer, tokens):
        sys.stdout.write(piece)
        sys.stdout.flush()
    sys.stdout.write("\n")
    return 0
