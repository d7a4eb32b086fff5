"""Pictures and tables of qkv.interp results: a layer × head grid (patching, ablation) as a
PNG heatmap or terminal table, and the logit lens's top tokens per layer and position."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import Tensor


def plot_layer_head(grid: Tensor, *, title: str, label: str) -> Any:
    """A diverging heatmap of ``grid`` (n_layer, n_head), zero in the middle of the colours."""
    from qkv.viz.heatmap import _pyplot

    plt = _pyplot()
    values = grid.detach().double().cpu().numpy()
    limit = float(abs(values).max()) or 1.0
    layers, heads = values.shape
    fig, ax = plt.subplots(figsize=(1.0 + 0.5 * heads, 1.0 + 0.45 * layers))
    image = ax.imshow(values, cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto")
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    ax.set_xticks(range(heads))
    ax.set_yticks(range(layers))
    ax.set_title(title, fontsize=9)
    fig.colorbar(image, ax=ax, label=label)
    fig.tight_layout()
    return fig


def save_layer_head_png(grid: Tensor, path: str | Path, *, title: str, label: str) -> Path:
    from qkv.viz.heatmap import save_png

    return save_png(plot_layer_head(grid, title=title, label=label), path)


def format_layer_head(grid: Tensor, *, digits: int = 3) -> str:
    """``grid`` (n_layer, n_head) as a text table, largest |value| marked with ``*``."""
    layers, heads = grid.shape
    best = int(grid.abs().argmax())
    width = digits + 5
    lines = ["layer " + "".join(f"{'h' + str(h):>{width}}" for h in range(heads))]
    for layer in range(layers):
        cells = []
        for head in range(heads):
            mark = "*" if layer * heads + head == best else " "
            cells.append(f"{float(grid[layer, head]):>{width - 1}.{digits}f}{mark}")
        lines.append(f"{layer:>5} " + "".join(cells))
    return "\n".join(lines)


def format_lens(top: list[list[list[str]]], tokens: list[str], *, width: int = 10) -> str:
    """Top token per (layer row, position): ``top[row][position]`` lists tokens, best first."""

    def fit(text: str) -> str:
        text = text.replace("\n", "\\n")
        return text if len(text) <= width else text[: width - 1] + "…"

    header = "layer    " + " ".join(f"{fit(t):>{width}}" for t in tokens)
    lines = [header]
    for row, per_position in enumerate(top):
        name = "embed" if row == 0 else f"{row:>5}"
        lines.append(f"{name:<8} " + " ".join(f"{fit(c[0]):>{width}}" for c in per_position))
    return "\n".join(lines)
