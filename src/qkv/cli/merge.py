"""``qkv merge``: fold a LoRA checkpoint's adapter into its base and write a plain model."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "merge",
        help="merge a LoRA checkpoint into its base model",
        description="Load a LoRA checkpoint (`qkv train --init-from MODEL --lora-r R`; a run "
        "folder stands for its best checkpoint), add each adapter's update (alpha/r * B @ A) "
        "to its base weight, and write the merged model to --out with the tokenizer: qkv "
        "format (qkv.load opens it), or --format hf (transformers' from_pretrained opens it).",
    )
    parser.add_argument("checkpoint", help="LoRA checkpoint or run folder")
    parser.add_argument("--out", required=True, metavar="DIR", help="folder to write")
    parser.add_argument("--format", choices=("qkv", "hf"), default="qkv", help="(default: qkv)")
    return parser


def run(args: argparse.Namespace) -> int:
    import sys
    from pathlib import Path

    from qkv.cli.checks import input_path
    from qkv.cli.main import CliError
    from qkv.io import load, load_tokenizer, save
    from qkv.io.lora import merge_lora

    source = input_path(args.checkpoint, "CHECKPOINT")
    model = load(source)
    if not hasattr(model, "qkv_lora"):
        raise CliError(
            f"{args.checkpoint} is not a LoRA checkpoint (no adapter_config.json); a full "
            "model needs no merging: open it with qkv.load or `qkv generate`"
        )
    out = Path(args.out).expanduser()
    if out.exists() and any(out.iterdir()):
        raise CliError(f"--out {out} exists and is not empty; choose a new folder")
    merged = merge_lora(model)
    save(merged, out, format=args.format, tokenizer=load_tokenizer(source))
    print(f"qkv: merged {args.checkpoint} into {out} ({args.format} format)", file=sys.stderr)
    return 0
