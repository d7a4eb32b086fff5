"""The trapezoid schedule against its definition: linear warmup, flat at lr, then linear to
min_lr over the last cooldown_fraction of the steps."""

import pytest

from qkv.training.schedule import learning_rate


@pytest.mark.parametrize("step", [0, 9, 10, 50, 59, 60, 61, 80, 99, 100, 150])
def test_trapezoid_matches_its_definition(step: int) -> None:
    lr, min_lr, warmup, total, cooldown = 3e-3, 1e-4, 10, 100, 40  # cooldown: 0.4 × 100
    if step < warmup:
        expected = lr * (step + 1) / (warmup + 1)
    elif step >= total:
        expected = min_lr
    elif step < total - cooldown:
        expected = lr
    else:
        expected = min_lr + (total - step) / cooldown * (lr - min_lr)
    got = learning_rate(step, lr=lr, min_lr=min_lr, warmup_iters=warmup, decay_iters=total,
                        shape="trapezoid", cooldown_fraction=0.4)  # fmt: skip
    assert got == pytest.approx(expected, rel=1e-12)
