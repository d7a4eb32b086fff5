"""PNG heatmaps with matplotlib (imported inside each function, Agg backend).

- :func:`plot_grid`: a layers × heads grid of small attention maps, plus (optionally) one large
  labelled map of a chosen head on the right of the same figure.
- :func:`plot_head`: one labelled map of a head, tokens on both axes.
- :func:`plot_head_scores`: the head-role scores (layers × heads) as a row of heatmaps.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import Tensor


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _labels(tokens: list[str]) -> list[str]:
    return [t if len(t) <= 14 else t[:13] + "…" for t in tokens]


def plot_head(
    weights: Tensor, tokens: list[str], *, ax: Any = None, title: str | None = None
) -> Any:
    """One head's weights (T, T) as a labelled heatmap (rows: queries, columns: keys).

    Draws on ``ax`` if given, else on a new figure; returns the figure.
    """
    if weights.dim() != 2 or len(tokens) != weights.shape[0]:
        raise ValueError(
            f"plot_head needs weights (T, T) and T tokens, got {tuple(weights.shape)} "
            f"and {len(tokens)} tokens"
        )
    plt = _pyplot()
    t = len(tokens)
    if ax is None:
        size = min(4 + 0.3 * t, 14)
        fig, ax = plt.subplots(figsize=(size, size))
    else:
        fig = ax.figure
    image = ax.imshow(weights.detach().float().cpu().numpy(), cmap="viridis", vmin=0)
    labels = _labels(tokens)
    ax.set_xticks(range(t), labels, rotation=90, fontsize=8)
    ax.set_yticks(range(t), labels, fontsize=8)
    ax.set_xlabel("key (attended to)")
    ax.set_ylabel("query (attending)")
    if title:
        ax.set_title(title)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    return fig


def plot_grid(
    weights: Tensor,
    tokens: list[str] | None = None,
    *,
    layer: int | None = None,
    head: int | None = None,
    detail: Tensor | None = None,
    detail_title: str | None = None,
    title: str | None = None,
) -> Any:
    """Weights (L, H, T, T) as an L × H grid of maps; with ``layer`` and ``head`` also one
    large labelled map of that head beside the grid (outlined red in the grid), or of
    ``detail`` (T, T) (e.g. the rollout) when given. ``tokens`` are required for the large map.

    Returns the matplotlib figure.

    Example::

        >>> fig = plot_grid(cap.weights, cap.tokens, layer=2, head=5)
        >>> save_png(fig, "grid.png")
    """
    if weights.dim() != 4:
        raise ValueError(f"plot_grid needs weights (L, H, T, T), got {tuple(weights.shape)}")
    plt = _pyplot()
    layers, heads = weights.shape[:2]
    selected = layer is not None and head is not None
    big = selected or detail is not None
    cell = 1.1
    grid_w, grid_h = heads * cell + 0.8, layers * cell + 0.8
    big_w = 7.0 if big else 0.0
    fig = plt.figure(figsize=(grid_w + big_w, max(grid_h, big_w * 0.9 if big else 0)))
    outer = fig.add_gridspec(1, 2 if big else 1, width_ratios=[grid_w, big_w] if big else None)
    inner = outer[0].subgridspec(layers, heads, wspace=0.08, hspace=0.08)
    data = weights.detach().float().cpu().numpy()
    for l_index in range(layers):
        for h_index in range(heads):
            ax = fig.add_subplot(inner[l_index, h_index])
            ax.imshow(data[l_index, h_index], cmap="viridis", vmin=0)
            ax.set_xticks([])
            ax.set_yticks([])
            if selected and (l_index, h_index) == (layer, head):
                for spine in ax.spines.values():
                    spine.set_edgecolor("red")
                    spine.set_linewidth(2)
            if h_index == 0:
                ax.set_ylabel(f"L{l_index}", fontsize=8)
            if l_index == 0:
                ax.set_title(f"H{h_index}", fontsize=8)
    if big:
        if tokens is None:
            raise ValueError("plot_grid with layer and head needs the tokens for the labels")
        ax = fig.add_subplot(outer[1])
        if detail is None:
            detail, detail_title = weights[layer, head], f"layer {layer}, head {head}"
        plot_head(detail, tokens, ax=ax, title=detail_title)
    if title:
        fig.suptitle(title)
    return fig


def plot_head_scores(scores: Any, *, names: tuple[str, ...] | None = None) -> Any:
    """:class:`qkv.viz.heads.HeadScores` as one annotated layers × heads heatmap per score."""
    from qkv.viz.heads import SCORE_NAMES

    plt = _pyplot()
    names = names or SCORE_NAMES
    layers, heads = scores.shape
    fig, axes = plt.subplots(
        1, len(names), figsize=(len(names) * (1.0 + 0.45 * heads), 1.2 + 0.45 * layers)
    )
    axes = [axes] if len(names) == 1 else list(axes)
    for ax, name in zip(axes, names, strict=True):
        data = getattr(scores, name).float().numpy()
        vmax = None if name == "entropy" else 1.0
        ax.imshow(data, cmap="magma" if name == "entropy" else "viridis", vmin=0, vmax=vmax)
        for l_index in range(layers):
            for h_index in range(heads):
                value = data[l_index, h_index]
                ax.text(
                    h_index,
                    l_index,
                    f"{value:.2f}",
                    ha="center",
                    va="center",
                    fontsize=6,
                    color="white" if value < 0.5 * (vmax or data.max()) else "black",
                )
        ax.set_title(name.replace("_", "-") + (" (nats)" if name == "entropy" else ""), fontsize=9)
        ax.set_xticks(range(heads))
        ax.set_yticks(range(layers))
        ax.set_xlabel("head")
        ax.set_ylabel("layer")
    fig.suptitle(f"{scores.model_name}: head roles (period {scores.period})", fontsize=10)
    fig.tight_layout()
    return fig


def save_png(fig: Any, path: str | Path, *, dpi: int = 110) -> Path:
    """Write ``fig`` as PNG to ``path`` (parent folders created) and close it.

    The file is rendered in memory and written atomically: a full or read-only disk raises
    the OSError and leaves no partial PNG (and any previous file) in place.
    """
    import io

    from qkv.atomic import write_bytes_atomic

    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"{path} does not end in .png; give a .png file name")
    plt = _pyplot()
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    finally:
        plt.close(fig)
    write_bytes_atomic(path, buffer.getvalue())
    return path
