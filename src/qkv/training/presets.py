"""Named training recipes: ordinary TrainConfig values on top of the defaults (the "baby GPT"
recipe), chosen with ``qkv train --preset NAME``; flags given beside it win.

``fast`` reaches the recipe's validation loss (≤ 1.90 on tiny Shakespeare's whole validation
split) in under half the time of a nanoGPT-style loop, in fp32, so that it holds on CPUs
without native bf16 (AVX2); ``precision="auto"`` adds bf16 only where it is native.
Measurements of each lever: ``benchmarks/results/train-cpu.md``.
"""

from __future__ import annotations

from typing import Any

FAST: dict[str, Any] = dict(
    # On AVX2 a step's cost grows linearly with the batch (batch 48 costs 3.6× batch 12), so
    # a larger batch only pays by amortising Muon's fixed cost per step; 24 is the balance.
    batch_size=24,
    optimizer="muon",  # Muon on the blocks' matrices, AdamW (lr below) on the rest
    muon_lr=0.02,
    lr=3e-3,
    min_lr=0.0,
    schedule="trapezoid",
    warmup_iters=20,
    max_iters=320,  # 300 reached 1.8917 (2026-12-02); 20 more for a margin on other CPUs
    precision="auto",
)

TRAIN_PRESETS: dict[str, dict[str, Any]] = {"fast": FAST}


def preset_values(name: str) -> dict[str, Any]:
    """The TrainConfig values of preset ``name``; ValueError naming the presets otherwise."""
    if name not in TRAIN_PRESETS:
        raise ValueError(
            f"unknown training preset {name!r}; choose one of: {', '.join(TRAIN_PRESETS)}"
        )
    return dict(TRAIN_PRESETS[name])
