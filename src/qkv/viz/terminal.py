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


def color_mode(choice: str = "auto", stream=None) -> str:
    """The colour mode for a ``--color`` choice: auto (detect), always (256 or truecolor), never."""
    if choice == "never":
        return "none"
    detected = detect_color(stream)
    if choice == "always" and detected == "none":
        truecolor = os.environ.get("COLORTERM", "").lower() in ("truecolor", "24bit")
        return "truecolor" if truecolor else "256"
    return detected


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


# --- the `qkv explain` walkthrough ----------------------------------------------------------


def format_vector(
    values: Tensor, *, head: int = 2, tail: int = 1, digits: int = 2, dims: bool = True
) -> str:
    """``[0.12, -0.53, …, 0.07] (32 dims)``: short vectors in full, long ones shortened."""
    items = [f"{float(x):.{digits}f}" for x in values.detach().double().cpu().flatten()]
    n = len(items)
    if n <= head + tail + 1:
        return "[" + ", ".join(items) + "]"
    suffix = f" ({n} dims)" if dims else ""
    return "[" + ", ".join(items[:head] + ["…"] + items[n - tail :]) + "]" + suffix


def _style(text: str, code: str, color: bool) -> str:
    return f"\x1b[{code}m{text}{RESET}" if color else text


def _number(value: float, width: int = 9, digits: int = 4) -> str:
    if value == float("-inf"):
        return f"{'-∞':>{width}}"
    return f"{value:>{width}.{digits}f}" if abs(value) < 1e5 else f"{value:>{width}.3e}"


def _bar(weight: float, color: bool, width: int = 10) -> str:
    full = round(max(weight, 0.0) * width)
    bar = "█" * full
    if color and full:
        r, g, b = _ramp(0.35 + 0.65 * weight)
        bar = f"\x1b[38;2;{r};{g};{b}m{bar}{RESET}"
    return bar


def render_walkthrough(walk, *, color: bool = False, width: int = 100) -> str:
    """A :class:`qkv.viz.explain.Walkthrough` as terminal text: tables of every step."""
    w = walk
    bold = lambda s: _style(s, "1", color)
    dim = lambda s: _style(s, "2", color)
    label = max(6, min(12, max(display_width(t) for t in w.tokens)))
    vec = 24  # "[-0.12, -0.53, …, -0.07]"
    short = lambda v: format_vector(v, dims=False)
    out = [
        bold(
            f"{w.model_name}: layer {w.layer} of {w.num_layers}, head {w.head} of "
            f"{w.num_heads}, query token {w.token_index} {w.token!r}"
        ),
        *(
            [
                f"grouped-query attention: query head {w.head} shares key/value head "
                f"{w.kv_head} of {w.num_kv_heads} with query heads "
                f"{_group(w.head, w.num_heads, w.num_kv_heads)}"
            ]
            if 0 < w.num_kv_heads < w.num_heads
            else []
        ),
        f"attention(q, K, V) = softmax(q·Kᵀ/√d_k)·V with d_k = {w.d_k}, "
        f"1/√d_k = {w.scale:.6f}, {'causal' if w.causal else 'bidirectional'}",
        "",
        bold("tokens"),
    ]
    line, used = " ", 1
    for i, tok in enumerate(w.tokens):
        item = f"{i}:{tok}"
        if used + 2 + display_width(item) > width and used > 1:
            out.append(line)
            line, used = " ", 1
        line += " " + (_style(item, "1;33", color) if i == w.token_index else item)
        used += 1 + display_width(item)
    out.append(line)
    out += ["", bold(f"1. the query q of {w.token!r} = {format_vector(w.query)}"), ""]

    out.append(bold("2-6. each key k_j: score s_j = q·k_j · 1/√d_k (+ mask), softmax over j"))
    head = (
        f"{'j':>3} {fit('token', label)} {fit(f'k_j ({w.d_k} dims)', vec)} "
        f"{'q·k_j':>9} {'×1/√d_k':>9} "
        f"{'mask':>6} {'exp(s_j)':>11} {'a_j':>8}"
    )
    out.append(dim(head))
    for j, tok in enumerate(w.tokens):
        allowed = bool(w.allowed[j])
        bias = float(w.bias[j])
        mask = "-∞" if not allowed else ("0" if bias == 0 else f"{bias:+.2f}")
        weight = float(w.weights[j])
        line = (
            f"{j:>3} {fit(tok, label)} {fit(short(w.keys[j]), vec)} "
            f"{_number(float(w.dots[j]))} {_number(float(w.scaled[j]))} {mask:>6} "
            f"{_number(float(w.exp[j]), 11, 4)} {weight:>8.4f} {_bar(weight, color)}"
        )
        out.append(dim(line) if not allowed else line)
    shift = f" (exp of s_j - {w.shift:.3f}, the max: same softmax)" if w.shift else ""
    out.append(
        f"    Σ_j exp(s_j) = {w.exp_sum:.6g}{shift};  a_j = exp(s_j) / Σ;  "
        f"Σ_j a_j = {w.weights_sum:.6f}"
    )
    out += ["", bold("7. each weight times its value: a_j·v_j")]
    dv = w.values.shape[-1]
    out.append(
        dim(f"{'j':>3} {fit('token', label)} {'a_j':>8}  {fit(f'v_j ({dv} dims)', vec)} a_j·v_j")
    )
    for j, tok in enumerate(w.tokens):
        if not bool(w.allowed[j]):
            continue
        out.append(
            f"{j:>3} {fit(tok, label)} {float(w.weights[j]):>8.4f}  "
            f"{fit(short(w.values[j]), vec)} {short(w.weighted_values[j])}"
        )
    out += [
        "",
        bold(f"8. z = Σ_j a_j·v_j = {format_vector(w.z, head=4, tail=2, digits=4)}"),
        "",
        bold("check against the model"),
        f"  model's head output = {format_vector(w.model_z, head=4, tail=2, digits=4)}",
    ]
    z_ok = w.max_abs_diff <= w.tolerance
    sum_ok = abs(w.weights_sum - 1) <= w.tolerance
    mark = lambda ok: _style("✓", "1;32", color) if ok else _style("✗ MISMATCH", "1;31", color)
    out.append(
        f"  max |z − model z| = {w.max_abs_diff:.2e} (tolerance {w.tolerance:g}) {mark(z_ok)}"
    )
    out.append(f"  Σ_j a_j = {w.weights_sum:.8f} {mark(sum_ok)}")
    out.append(f"  max |a − model's weights| = {w.weights_max_abs_diff:.2e}")
    return "\n".join(out)


def _group(head: int, num_heads: int, num_kv_heads: int) -> str:
    """The query heads that read the same key/value head as ``head``: "4-7"."""
    size = num_heads // num_kv_heads
    first = head // size * size
    return f"{first}-{first + size - 1}"
