"""``qkv generate DIR --prompt TEXT``: stream text from a trained GPT as it is produced.

Within the model's context the KV-cached ``qkv.generate_stream`` produces the tokens; past it
the window slides (each new token sees the last ``n_positions`` tokens), as in nanoGPT.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from typing import Any

from qkv.cli.vocab import add_strict_vocab_argument


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "generate",
        help="generate text from a trained model",
        description="Sample text from a model trained with `qkv train` (a run directory, whose "
        "latest checkpoint is used, or a checkpoint folder), printing it as it is produced.",
    )
    parser.add_argument("checkpoint", metavar="DIR", help="run directory or checkpoint folder")
    parser.add_argument("--prompt", default="\n", help="text to continue (default: a newline)")
    parser.add_argument("--max-new-tokens", type=int, default=200, help="tokens to add")
    parser.add_argument("--temperature", type=float, default=0.8, help="0 = greedy")
    parser.add_argument("--top-k", type=int, default=None, help="sample from the k likeliest")
    parser.add_argument("--top-p", type=float, default=None, help="nucleus sampling mass")
    parser.add_argument("--seed", type=int, default=None, help="seed for reproducible samples")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N] (default: cpu)")
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
) -> Iterator[int]:
    """Token ids continuing ``ids``: KV-cached while the context lasts, then a sliding window."""
    import torch

    import qkv
    from qkv.generation import sample_next

    context = model.config.n_positions
    device = next(model.parameters()).device
    ids = ids[-(context - 1) :] if len(ids) >= context else list(ids)
    cached = min(max_new_tokens, context - len(ids))
    prompt = torch.tensor([ids], device=device)  # (1, T)
    for token in qkv.generate_stream(
        model, prompt, max_new_tokens=cached, temperature=temperature, top_k=top_k,
        top_p=top_p, seed=seed,
    ):  # fmt: skip
        ids.append(int(token[0]))
        yield ids[-1]
    generator = torch.Generator(device=device)
    generator.manual_seed(seed + 1 if seed is not None else int(torch.seed() % 2**31))
    with torch.inference_mode():
        for _ in range(max_new_tokens - cached):
            window = torch.tensor([ids[-context:]], device=device)  # (1, ≤ context)
            logits = model(window, last_only=True)[:, -1]  # (1, V)
            token = sample_next(
                logits, temperature=temperature, top_k=top_k, top_p=top_p, generator=generator
            )
            ids.append(int(token[0]))
            yield ids[-1]


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


def run(args: argparse.Namespace) -> int:
    import sys

    from qkv.cli.checks import device, generation_fits_memory
    from qkv.cli.main import CliError
    from qkv.cli.vocab import check_vocabulary
    from qkv.generation.sampling import check_sampling
    from qkv.models import GPT
    from qkv.training.checkpoint import load_for_inference

    if args.max_new_tokens < 1:
        raise CliError(f"--max-new-tokens must be >= 1, got {args.max_new_tokens}")
    generation_fits_memory(args.max_new_tokens)
    check_sampling(args.temperature, args.top_k, args.top_p)
    model, tokenizer, _ = load_for_inference(args.checkpoint, device=device(args.device))
    if not isinstance(model, GPT):
        raise CliError(
            f"{args.checkpoint} holds a {type(model).__name__}; qkv generate needs a GPT "
            "(causal language model) checkpoint"
        )
    if not args.prompt:
        raise CliError("--prompt is empty; pass some text to continue (default: a newline)")
    check_vocabulary(tokenizer, args.prompt, strict=args.strict_vocab, what="--prompt")
    ids = tokenizer.encode(args.prompt, add_special_tokens=False)
    if not ids:
        raise CliError(f"--prompt {args.prompt!r} encodes to no tokens; pass other text")
    sys.stdout.write(args.prompt)
    sys.stdout.flush()
    tokens = stream_tokens(
        model, ids, max_new_tokens=args.max_new_tokens, temperature=args.temperature,
        top_k=args.top_k, top_p=args.top_p, seed=args.seed,
    )  # fmt: skip
    for piece in stream_text(tokenizer, tokens):
        sys.stdout.write(piece)
        sys.stdout.flush()
    sys.stdout.write("\n")
    return 0
