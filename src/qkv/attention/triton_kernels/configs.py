"""Launch configurations: autotuned on a GPU, one small fixed configuration in the interpreter.

The interpreter (``TRITON_INTERPRET=1``) runs every program in Python, one at a time, so
autotuning there would only multiply the (slow) work; it uses 16×16 tiles, which also lets
tiny test shapes (N = 33, 97) cross several tile boundaries.
"""

from __future__ import annotations

import os
from typing import Any

import triton

INTERPRET = os.environ.get("TRITON_INTERPRET", "0") == "1"

# Tile size of the host-side "any key allowed" table for masks; a masked launch uses tiles of
# exactly this size so that one table entry answers for one (query tile, key tile) pair.
MASK_TILE = 16 if INTERPRET else 64

# Tile sizes used under the interpreter.
INTERPRET_BLOCK_M = 16
INTERPRET_BLOCK_N = 16


def _configs(settings: list[tuple[int, int, int, int]]) -> list[triton.Config]:
    return [
        triton.Config({"BLOCK_M": m, "BLOCK_N": n}, num_warps=warps, num_stages=stages)
        for m, n, warps, stages in settings
    ]


# Ampere/Hopper: 64/128 tiles, 4/8 warps, 2-4 pipeline stages, kept to eight per kernel because
# the autotuner compiles every config on first use (a few seconds each). (64, 32) keeps head
# dim 256 within shared memory; configs that do not fit are pruned below or skipped by the
# autotuner. (BLOCK_M, BLOCK_N, warps, stages):
FORWARD_CONFIGS = _configs(
    [
        (128, 128, 8, 3),
        (128, 64, 4, 3),
        (128, 64, 8, 3),
        (128, 64, 4, 4),
        (64, 128, 4, 3),
        (64, 64, 4, 3),
        (64, 64, 4, 4),
        (64, 32, 4, 2),
    ]
)
# dK/dV programs own BLOCK_N keys and stream BLOCK_M queries; dQ programs the reverse.
BACKWARD_CONFIGS = _configs(
    [
        (64, 128, 8, 3),
        (32, 128, 4, 3),
        (128, 64, 8, 3),
        (128, 32, 4, 3),
        (64, 64, 4, 3),
        (64, 64, 4, 2),
        (64, 64, 8, 4),
        (32, 64, 4, 2),
    ]
)


def _arg(named_args: dict[str, Any], kwargs: dict[str, Any], name: str) -> Any:
    if name in named_args:
        return named_args[name]
    return kwargs.get(name)


def prune(configs: list[triton.Config], named_args: dict[str, Any], **kwargs: Any) -> list:
    """Drop configs that cannot serve this launch: masked launches need MASK_TILE tiles,
    and big tiles with head dims above 128 overflow shared memory (measured offline with
    ``offline.compile_offline``, 2026-11-24: at d = 256 only 2-stage 64×64 / 64×32 fit sm80)."""
    has_table = bool(_arg(named_args, kwargs, "HAS_TABLE"))
    block_d = max(
        int(_arg(named_args, kwargs, "BLOCK_DK") or 64),
        int(_arg(named_args, kwargs, "BLOCK_DV") or 64),
    )
    kept = []
    for config in configs:
        block_m, block_n = config.kwargs["BLOCK_M"], config.kwargs["BLOCK_N"]
        if has_table and (block_m, block_n) != (MASK_TILE, MASK_TILE):
            continue
        if block_d > 128 and (block_m * block_n > 64 * 64 or config.num_stages > 2):
            continue  # head dim 256: only 2-stage tiles up to 64×64 fit sm80 shared memory
        if block_d > 64 and block_m * block_n > 128 * 64 and config.num_stages > 3:
            continue
        kept.append(config)
    if not kept:  # a masked launch: the fixed tile with every warp/stage choice
        kept = [
            triton.Config({"BLOCK_M": MASK_TILE, "BLOCK_N": MASK_TILE}, num_warps=w, num_stages=s)
            for w in (4, 8)
            for s in (2, 3)
        ]
    return kept


TUNE_KEY = [
    "N_Q_KEY",
    "N_K_KEY",
    "D_K",
    "D_V",
    "HAS_LEFT",
    "HAS_RIGHT",
    "MASK_KIND",
    "HAS_TABLE",
    "HAS_ALIBI",
    "HAS_SOFTCAP",
    "HAS_DROPOUT",
    "VARLEN",
    "HAS_KLEN",
    "GROUPS",
]


def length_key(n: int) -> int:
    """Bucket a sequence length for the autotune cache (next power of two)."""
    return 1 << max(0, (int(n) - 1).bit_length())


# QKV_TRITON_AUTOTUNE=0: one configuration that fits every launch (masked tiles, head dim 256)
# instead of eight per kernel. For correctness runs on a fresh GPU (benchmarks/gpu_check.sh
# runs the gpu tests so), where compiling every config of every specialisation would take
# most of the time budget; benchmarks keep the autotuner.
UNTUNED_CONFIG = triton.Config({"BLOCK_M": 64, "BLOCK_N": 64}, num_warps=4, num_stages=2)


def autotune(configs: list[triton.Config]):  # noqa: ANN201  (a Triton decorator)
    """``triton.autotune`` with qkv's key and pruning; identity under the interpreter."""
    if INTERPRET:
        return lambda fn: fn
    if os.environ.get("QKV_TRITON_AUTOTUNE", "1") == "0":
        configs = [UNTUNED_CONFIG]
    return triton.autotune(
        configs=configs, key=TUNE_KEY, prune_configs_by={"early_config_prune": prune}
    )
