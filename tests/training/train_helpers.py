"""Shared helpers of the training tests (a uniquely named module, imported by tests)."""

import random


def synthetic_text(n_lines: int = 600, seed: int = 0) -> str:
    """Patterned lines a 1-layer model learns in a few dozen steps."""
    rng = random.Random(seed)
    names = ["anna", "ben", "cleo", "dmitri"]
    verbs = ["sees", "likes", "calls", "finds"]
    lines = [
        f"{rng.choice(names)} {rng.choice(verbs)} {rng.choice(names)}." for _ in range(n_lines)
    ]
    return "\n".join(lines) + "\n"


TINY = dict(
    model="gpt-nano", n_layer=1, n_head=2, n_embd=32, block_size=16, batch_size=8,
    warmup_iters=5, lr=3e-3, min_lr=3e-4, eval_iters=4, progress=False, plot=False,
)  # fmt: skip
