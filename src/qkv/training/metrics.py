"""Metrics of a run: one JSON object per line in ``metrics.jsonl``, and a loss-curve PNG.

Training records: ``{"step", "loss", "lr", "tokens", "elapsed_s", "tokens_per_s"}``;
evaluation records: ``{"step", "val_loss", "val_ppl"}``. Floats are written with Python's
shortest round-trip repr, so logged losses compare exactly between runs.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Any

from qkv.atomic import write_bytes_atomic, write_text_atomic


class MetricsLog:
    """Append-only JSONL metrics file (flushed per record, so a killed run keeps its log)."""

    def __init__(self, path: Path, *, enabled: bool = True) -> None:
        self.path = path
        self.enabled = enabled
        self._handle = open(path, "a", encoding="utf-8") if enabled else None  # noqa: SIM115

    def write(self, record: dict[str, Any]) -> None:
        if self._handle is not None:
            self._handle.write(json.dumps(record) + "\n")
            self._handle.flush()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """Every complete record of a metrics file (a torn last line is skipped)."""
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def truncate_metrics(path: Path, last_step: int) -> None:
    """Drop records after ``last_step`` (a resumed run logs those steps again)."""
    kept = [r for r in read_metrics(path) if r.get("step", 0) <= last_step]
    text = "".join(json.dumps(r) + "\n" for r in kept)
    write_text_atomic(path, text)


def perplexity(loss: float) -> float:
    """exp(loss), inf when it overflows."""
    try:
        return math.exp(loss)
    except OverflowError:
        return math.inf


def plot_losses(metrics_path: Path, png_path: Path) -> None:
    """Training and validation loss against step, as a PNG (matplotlib, imported here)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = read_metrics(metrics_path)
    train = [(r["step"], r["loss"]) for r in records if "loss" in r]
    val = [(r["step"], r["val_loss"]) for r in records if "val_loss" in r]
    figure, axes = plt.subplots(figsize=(7, 4))
    if train:
        axes.plot(*zip(*train), label="train", linewidth=0.8)
    if val:
        axes.plot(*zip(*val), label="validation", marker="o")
    axes.set_xlabel("step")
    axes.set_ylabel("cross-entropy (nats/token)")
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    write_bytes_atomic(png_path, buffer.getvalue())
    plt.close(figure)
