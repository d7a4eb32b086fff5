"""Shared pieces of the fine-tuning tests: a base model trained inside the tests."""

import os
import random
from pathlib import Path

from train_helpers import TINY, synthetic_text

from qkv.training import train
from qkv.training.config import TrainConfig

# Character level: a from-scratch run on the new text gets the same vocabulary, so the two
# runs' losses are per character alike and comparable.
BASE = dict(TINY)
FINETUNE = dict(block_size=16, batch_size=8, eval_iters=4, progress=False, plot=False)


def new_text(n_lines: int = 400, seed: int = 1) -> str:
    """A text the base never saw, from the same characters (other sentence patterns)."""
    rng = random.Random(seed)
    names = ["anna", "ben", "cleo", "dmitri"]
    verbs = ["see", "like", "call", "find"]
    lines = [
        f"{rng.choice(names)} and {rng.choice(names)} {rng.choice(verbs)} {rng.choice(names)}."
        for _ in range(n_lines)
    ]
    return "\n".join(lines) + "\n"


def train_base(root: Path, max_iters: int = 80) -> Path:
    """A base run in ``root / 'base'`` trained on the synthetic corpus; returns the run."""
    os.environ.setdefault("QKV_CACHE", str(root / "cache"))
    corpus = root / "base.txt"
    corpus.write_text(synthetic_text(), encoding="utf-8")
    config = TrainConfig(**{**BASE, "data": str(corpus), "max_iters": max_iters,
                            "eval_interval": max_iters})  # fmt: skip
    train(config, root / "base", quiet=True)
    return root / "base"


def new_corpus(root: Path) -> Path:
    path = root / "new.txt"
    if not path.exists():
        path.write_text(new_text(), encoding="utf-8")
    return path
