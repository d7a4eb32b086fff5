"""Learning-rate schedule: linear warmup, then cosine decay to a floor.

The schedule is a pure function of the step, so a checkpoint's step is its whole state.
"""

from __future__ import annotations

import math


def learning_rate(
    step: int,
    *,
    lr: float,
    min_lr: float,
    warmup_iters: int,
    decay_iters: int,
    shape: str = "cosine",
    cooldown_fraction: float = 0.4,
) -> float:
    """Learning rate for optimizer step ``step`` (0-based).

    Warmup: ``lr·(step+1)/(warmup_iters+1)`` for step < warmup_iters; cosine from ``lr`` at
    ``warmup_iters`` to ``min_lr`` at ``decay_iters``; ``min_lr`` afterwards. ``shape=
    "trapezoid"`` holds ``lr`` instead, then falls linearly to ``min_lr`` over the last
    ``cooldown_fraction`` of ``decay_iters``.

    Example::

        >>> learning_rate(0, lr=1e-3, min_lr=1e-4, warmup_iters=100, decay_iters=2000)
        9.900990099009901e-06
    """
    if step < warmup_iters:
        return lr * (step + 1) / (warmup_iters + 1)
    if step >= decay_iters:
        return min_lr
    if shape == "trapezoid":  # modded-nanogpt: flat, then a linear cooldown to the floor
        cooldown = max(1, round(cooldown_fraction * decay_iters))
        left = (decay_iters - step) / cooldown
        return min_lr + min(1.0, left) * (lr - min_lr)
    progress = (step - warmup_iters) / max(1, decay_iters - warmup_iters)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (lr - min_lr)
