"""``auto`` against PyTorch SDPA timed *interleaved in one process* (A/B/B/A rounds).

The main table times every implementation in its own fresh process (for clean peak-memory
numbers), so two runs of the very same kernel can differ by 10% at N=16k, where each cell
is one or two runs on a shared machine. Where ``auto`` picks SDPA's fused kernel, the
question "what does qkv's dispatch cost?" needs both sides measured under the same
conditions: this section alternates them in one process and reports the ratio of medians.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterable

import torch

from qkv.bench.attention_cases import build
from qkv.bench.tables import Row


def _rounds(n: int) -> int:
    return 7 if n <= 4096 else 3


def _timed(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def interleaved_rows(rows: Iterable[Row], log: Callable[[str], None] = print) -> list[str]:
    """Markdown lines: per plain row, median time of auto and of torch-sdpa and the ratio."""
    lines = [
        "| problem | auto chose | auto | torch-sdpa | auto speed / SDPA speed |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    for row in rows:
        if row.variant != "plain" or "torch-sdpa" not in row.impls:
            continue
        auto, _, chosen, _ = build(row.case("auto"))
        peer, _, _, _ = build(row.case("torch-sdpa"))
        grad = torch.enable_grad() if row.backward else torch.no_grad()
        times: dict[str, list[float]] = {"auto": [], "sdpa": []}
        with grad:
            auto(), peer()  # warm up
            for index in range(_rounds(row.n)):
                order = (("auto", auto), ("sdpa", peer))
                for name, run in order if index % 2 == 0 else reversed(order):
                    times[name].append(_timed(run))
        a, s = statistics.median(times["auto"]), statistics.median(times["sdpa"])
        line = f"| {row.label} | {chosen} | {a * 1e3:,.1f} ms | {s * 1e3:,.1f} ms | {s / a:.2f}× |"
        log(line)
        lines.append(line)
        del auto, peer
    return lines
