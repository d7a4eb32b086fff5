"""Attention in the terminal: a colour heatmap of one head and the top-k keys of each query.

Colour modes: ``"truecolor"`` (24-bit ANSI), ``"256"`` (xterm 256-colour greyscale-to-yellow
ramp) and ``"none"`` (shading characters ``·░▒▓█``, for pipes and logs).
"""

from __future__ import annotations

import os
import sys
import unicodedata

import torch
from torch import Tensor

COLOR_MODES = ("truecolor", "256", "none")
_SHADES = " ·░▒▓█"
RESET = "\x1b[0m"


def detect_color(stream=None) -> str:
    """The best colour mode for ``stream`` (stdout by default): none unless it is a tty."""
    stream = stream or sys.stdout
    if os.environ.get("NO_COLOR") or not getattr(stream, "isatty", lambda: False)():
        return "none"
    if os.environ.get("COLORTERM", "").lower() in ("truecolor", "24bit"):
        return "truecolor"
    return "256"


def _ramp(value: float) -> tuple[int, int, int]:
    """Dark blue (0) -> teal -> yellow (1), a viridis-like ramp."""
    stops = [(68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37)]
    value = min(max(value, 0.0), 1.0) * (len(stops) - 1)
    low = min(int(value), len(stops) - 2)
    frac = value - low
    a, b = stops[low], stops[low + 1]
    return tuple(round(a[i] + (b[i] - a[i]) * frac) for i in range(3))  # type: ignore[return-value]


def _rgb_to_256(rgb: tuple[int, int, int]) -> int:
    r, g, b = (round(c / 255 * 5) for c in rgb)
    return 16 + 36 * r + 6 * g + b


def cell(value: float, mode: str, width: int = 2) -> str:
    """One heatmap cell for a value in [0, 1]."""
    if mode == "none":
        index = 0 if value <= 0 else 1 + min(int(value * (len(_SHADES) - 1)), len(_SHADES) - 2)
        return _SHADES[index] * width
    rgb = _ramp(value)
    if mode == "truecolor":
        return f"\x1b[48;2;{rgb[0]};{rgb[1]};{rgb[2]}m" + " " * width + RESET
    if mode == "256":
        return f"\x1b[48;5;{_rgb_to_256(rgb)}m" + " " * width + RESET
    raise ValueError(f"colour mode {mode!r} is not one of {COLOR_MODES}")


def display_width(text: str) -> int:
    """Terminal columns taken by ``text`` (wide East Asian characters count 2)."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def fit(text: str, width: int) -> str:
    """``text`` cut or padded to exactly ``width`` columns, control characters made visible."""
    text = text.replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")
    out, used = "", 0
    for ch in text:
        w = display_width(ch)
        if used + w > width - (1 if used + w < display_width(text) else 0):
            out += "…"
            used += 1
            break
        out += ch
        used += w
    return out + " " * max(width - used, 0)


def _check(weights: Tensor, tokens: list[str]) -> None:
    if weights.dim() != 2 or weights.shape[0] != weights.shape[1]:
        raise ValueError(f"one head's weights must be (T, T), got {tuple(weights.shape)}")
    if len(tokens) != weights.shape[0]:
        raise ValueError(f"{len(tokens)} tokens for a {weights.shape[0]}×{weights.shape[0]} map")


def terminal_heatmap(
    weights: Tensor,
    tokens: list[str],
    *,
    color: str = "none",
    label_width: int = 12,
    title: str | None = None,
) -> str:
    """A heatmap of one head's weights (T, T) as text: rows are queries, columns keys.

    Each cell is two columns wide; colour scales linearly from 0 to the map's maximum.
    Column headers are the key indices (the legend below maps indices to tokens).
    """
    _check(weights, tokens)
    if color not in COLOR_MODES:
        raise ValueError(f"colour mode {color!r} is not one of {COLOR_MODES}")
    w = weights.detach().float().cpu()
    top = float(w.max()) or 1.0
    t = len(tokens)
    lines = [title] if title else []
    header = " " * (label_width + 5) + "".join(f"{j % 100:<2d}" for j in range(t))
    lines.append(header.rstrip())
    for i in range(t):
        row = "".join(cell(float(w[i, j]) / top, color) for j in range(t))
        lines.append(f"{i:>3d} {fit(tokens[i], label_width)} {row}")
    scale = "".join(cell(k / 8, color, 1) for k in range(9))
    lines.append(f"{' ' * (label_width + 5)}0 {scale} {top:.3f} (max)")
    return "\n".join(lines)


def top_attended(weights: Tensor, tokens: list[str], k: int = 3) -> list[list[tuple[int, float]]]:
    """For each query row of weights (T, T), the ``k`` keys it attends to most: (index, weight)."""
    _check(weights, tokens)
    k = max(1, min(k, weights.shape[1]))
    values, indices = torch.topk(weights.detach().float().cpu(), k, dim=-1)
    return [
        [(int(j), float(v)) for j, v in zip(idx, val, strict=True) if v > 0]
        for idx, val in zip(indices, values, strict=True)
    ]


def format_top_attended(weights: Tensor, tokens: list[str], k: int = 3, width: int = 12) -> str:
    """One line per query: ``  3 cat          -> sat 0.61 · the 0.22 · [CLS] 0.10``."""
    lines = []
    for i, top in enumerate(top_attended(weights, tokens, k)):
        parts = " · ".join(f"{tokens[j].strip() or repr(tokens[j])} {w:.2f}" for j, w in top)
        lines.append(f"{i:>3d} {fit(tokens[i], width)} -> {parts}")
    return "\n".join(lines)
