"""The offline interactive attention viewer: one self-contained HTML file per capture.

The file holds everything it needs: the viewer's CSS and JavaScript inline and the capture as
JSON in a ``<script type="application/json">`` block. It loads nothing from the network (a
Content-Security-Policy of ``default-src 'none'`` forbids it), works from ``file://`` and
renders inline in Jupyter through :meth:`AttentionView._repr_html_`.

Views: layer and head selectors; a heatmap with the value under the pointer; token-to-token
lines (hover a token to see what it attends to and what attends to it); every layer × head as
small multiples (click to select); a special-token switch (show / grey out / hide and
renormalise each row over the remaining keys); and, for a clicked query token, the
``qkv explain`` walkthrough (q, each k_j, q·k_j, ×1/√d_k, mask, exp, sum, softmax weight,
a_j·v_j, z) recomputed in JavaScript and checked against the model's own head output.

Arrays are embedded as base64 little-endian float32 (exact, and at ~5.3 bytes a number smaller
than 4-significant-digit text), so the check in the formula panel measures the model against
the formula, not rounding. Example::

    >>> from qkv.viz.capture import capture
    >>> from qkv.viz.html import AttentionView, write_html
    >>> cap = capture(model, tokenizer, "The cat sat on the mat.")
    >>> write_html(cap, "attention.html")           # open it in any browser, offline
    >>> AttentionView(cap)                           # as the last line of a Jupyter cell
"""

from __future__ import annotations

import base64
import html
import json
import math
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from qkv.atomic import write_text_atomic

if TYPE_CHECKING:
    from qkv.viz.capture import Capture

FORMAT = "qkv-attention-view"
FORMAT_VERSION = 1
MAX_TOKENS = 128
CHECK_TOLERANCE = 1e-4  # the formula panel's pass mark for max |z_js - z_model|
ARRAYS = ("weights", "queries", "keys", "values", "head_outputs")
_ASSETS = Path(__file__).parent / "assets"
_PLACEHOLDER = re.compile(r"\{\{(TITLE|CSS|JS|DATA)\}\}")
# Characters that could end the <script> block or start markup; JSON allows \uXXXX for all.
_JSON_ESCAPES = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}


def encode_array(tensor: Tensor) -> dict[str, Any]:
    """A tensor as ``{"shape", "dtype": "float32", "data": base64 little-endian, C order}``."""
    array = np.ascontiguousarray(tensor.detach().to("cpu", torch.float32).numpy(), dtype="<f4")
    return {
        "shape": list(array.shape),
        "dtype": "float32",
        "data": base64.b64encode(array.tobytes()).decode("ascii"),
    }


def decode_array(entry: dict[str, Any]) -> np.ndarray:
    """Inverse of :func:`encode_array`: a float32 numpy array of ``entry["shape"]``."""
    if entry.get("dtype") != "float32":
        raise ValueError(f"embedded array has dtype {entry.get('dtype')!r}, expected 'float32'")
    raw = base64.b64decode(entry["data"])
    return np.frombuffer(raw, dtype="<f4").reshape(entry["shape"]).copy()


def _estimated_bytes(layers: int, heads: int, tokens: int, dk: int, dv: int) -> int:
    numbers = layers * heads * tokens * (tokens + 2 * dk + 2 * dv)
    return math.ceil(numbers * 4 * 4 / 3)  # float32, base64


def _validate(capture: Capture, max_tokens: int) -> None:
    if not isinstance(max_tokens, int) or max_tokens < 1:
        raise ValueError(f"max_tokens must be a positive int, got {max_tokens!r}")
    for name in ARRAYS:
        value = getattr(capture, name, None)
        if not isinstance(value, Tensor):
            raise ValueError(
                f"capture.{name} must be a torch.Tensor, got {type(value).__name__}; "
                "build the capture with qkv.viz.capture.capture(model, tokenizer, text)"
            )
    weights = capture.weights
    if weights.dim() != 4 or weights.shape[2] != weights.shape[3]:
        raise ValueError(f"capture.weights must be (L, H, T, T), got shape {tuple(weights.shape)}")
    layers, heads, tokens, _ = weights.shape
    if tokens == 0:
        raise ValueError("capture has 0 tokens; capture a non-empty text")
    if len(capture.tokens) != tokens or len(capture.special) != tokens:
        raise ValueError(
            f"capture has T={tokens} positions but {len(capture.tokens)} tokens and "
            f"{len(capture.special)} special flags; they must all be equal"
        )
    dims = {}
    for name in ARRAYS[1:]:
        shape = tuple(getattr(capture, name).shape)
        if len(shape) != 4 or shape[:3] != (layers, heads, tokens):
            raise ValueError(
                f"capture.{name} must be ({layers}, {heads}, {tokens}, D), got {shape}"
            )
        dims[name] = shape[3]
    if dims["queries"] != dims["keys"] or dims["values"] != dims["head_outputs"]:
        raise ValueError(f"queries/keys must share d_k and values/head_outputs d_v, got {dims}")
    for name in ARRAYS:
        if not torch.isfinite(getattr(capture, name)).all():
            raise ValueError(f"capture.{name} has NaN or infinite entries; cannot display it")
    if not (
        isinstance(capture.scale, int | float)
        and math.isfinite(capture.scale)
        and capture.scale > 0
    ):
        raise ValueError(f"capture.scale must be a positive finite number, got {capture.scale!r}")
    if tokens > max_tokens:
        size = _estimated_bytes(layers, heads, tokens, dims["keys"], dims["values"])
        raise ValueError(
            f"capture has T={tokens} tokens, more than max_tokens={max_tokens}; the viewer "
            f"embeds L·H·T² weights plus q, k, v, z (~{size / 2**20:.1f} MiB here). Capture a "
            f"shorter text, or pass max_tokens={tokens} to write_html / AttentionView to accept "
            "the larger file"
        )


def payload(
    capture: Capture, *, title: str | None = None, ablation: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The JSON-ready dict the viewer embeds (arrays via :func:`encode_array`); ``ablation``
    is :func:`qkv.viz.ablation.head_ablation`'s result, shown in the "without it" panel."""
    return {
        "ablation": ablation,
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "title": title,
        "model_name": str(capture.model_name),
        "tokens": [str(token) for token in capture.tokens],
        "special": [bool(flag) for flag in capture.special],
        "num_layers": int(capture.weights.shape[0]),
        "num_heads": int(capture.weights.shape[1]),
        "num_kv_heads": int(capture.kv_heads),
        "num_tokens": int(capture.weights.shape[2]),
        "head_dim": int(capture.queries.shape[-1]),
        "value_dim": int(capture.values.shape[-1]),
        "scale": float(capture.scale),
        "causal": bool(capture.causal),
        "check_tolerance": CHECK_TOLERANCE,
        **{name: encode_array(getattr(capture, name)) for name in ARRAYS},
    }


def script_json(data: dict[str, Any]) -> str:
    """``data`` as JSON that is safe inside ``<script>``: no ``<``, ``>``, ``&``, U+2028/9."""
    text = json.dumps(data, ensure_ascii=True, separators=(",", ":"), allow_nan=False)
    return re.sub("[<>&\u2028\u2029]", lambda match: _JSON_ESCAPES[match.group()], text)


def payload_from_html(document: str) -> dict[str, Any]:
    """Read the embedded payload back out of a viewer HTML document (arrays still encoded)."""
    match = re.search(
        r'<script type="application/json" id="qkv-data">(.*?)</script>', document, re.DOTALL
    )
    if match is None:
        raise ValueError("no qkv-data block found: is this a file written by qkv.viz.html?")
    return json.loads(match.group(1))


def _asset(name: str) -> str:
    text = (_ASSETS / name).read_text(encoding="utf-8")
    if name != "viewer.html" and "</script" in text.lower():
        raise RuntimeError(f"asset {name} contains '</script', which would end the inline block")
    return text


class AttentionView:
    """An interactive attention viewer for one :class:`~qkv.viz.capture.Capture`.

    Shapes read from the capture: weights (L, H, T, T); queries and keys (L, H, T, D_k);
    values and head_outputs (L, H, T, D_v). ``max_tokens`` caps T (the file grows as
    L·H·T²; the error says how large it would be). Example::

        >>> view = AttentionView(cap, title="The cat sat")
        >>> view.save("cat.html")     # a self-contained offline file
        >>> view                      # renders inline in Jupyter (an isolated iframe)
    """

    def __init__(
        self,
        capture: Capture,
        *,
        title: str | None = None,
        max_tokens: int = MAX_TOKENS,
        ablation: dict[str, Any] | None = None,
    ) -> None:
        _validate(capture, max_tokens)
        if ablation is not None:
            effects = ablation.get("effects") if isinstance(ablation, dict) else None
            shape = (capture.num_layers, capture.num_heads)
            got = (len(effects), len(effects[0])) if isinstance(effects, list) and effects else None
            if got != shape:
                raise ValueError(
                    f"ablation must be qkv.viz.ablation.head_ablation's dict with effects of "
                    f"shape {shape} (layers, heads) for this capture"
                )
        self.ablation = ablation
        if title is not None and not isinstance(title, str):
            raise ValueError(f"title must be a str or None, got {type(title).__name__}")
        self.capture = capture
        self.title = title or f"qkv attention · {capture.model_name}"

    def to_html(self) -> str:
        """The complete HTML document (inline CSS, JS and data)."""
        parts = {
            "TITLE": html.escape(self.title, quote=True),
            "CSS": _asset("viewer.css"),
            "JS": _asset("viewer.js"),
            "DATA": script_json(payload(self.capture, title=self.title, ablation=self.ablation)),
        }
        # One pass, so text inserted for one placeholder is never scanned for another.
        return _PLACEHOLDER.sub(lambda match: parts[match.group(1)], _asset("viewer.html"))

    def _repr_html_(self) -> str:
        # An iframe keeps each view's ids, styles and script apart from the notebook and from
        # other views in the same notebook.
        document = html.escape(self.to_html(), quote=True)
        return (
            f'<iframe srcdoc="{document}" title="{html.escape(self.title, quote=True)}" '
            'style="width: 100%; height: 900px; border: 1px solid #d5dbe1; border-radius: 6px" '
            'sandbox="allow-scripts"></iframe>'
        )

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the HTML document to ``path`` (atomically) and return the path."""
        target = Path(path)
        if target.is_dir():
            raise ValueError(
                f"{target} is a directory; give a file name such as {target}/view.html"
            )
        if not target.parent.exists():
            raise FileNotFoundError(
                f"directory {target.parent} does not exist; create it first or choose another path"
            )
        return write_text_atomic(target, self.to_html())

    def __repr__(self) -> str:
        layers, heads, tokens, _ = self.capture.weights.shape
        return (
            f"AttentionView({self.capture.model_name!r}, layers={layers}, heads={heads}, "
            f"tokens={tokens})"
        )


def write_html(
    capture: Capture,
    path: str | os.PathLike[str],
    *,
    title: str | None = None,
    max_tokens: int = MAX_TOKENS,
    ablation: dict[str, Any] | None = None,
) -> Path:
    """Write the offline interactive viewer of ``capture`` to ``path``; return the path.

    ``capture`` holds weights (L, H, T, T) and per-head q, k, v, z (L, H, T, D); T above
    ``max_tokens`` is refused (see :class:`AttentionView`). ``ablation``: each head's
    zero-ablation effect on the text's loss (:func:`qkv.viz.ablation.head_ablation`), shown
    in the viewer's "what happens without it" panel. Example::

        >>> write_html(capture(model, tokenizer, "The cat sat on the mat."), "cat.html")
    """
    view = AttentionView(capture, title=title, max_tokens=max_tokens, ablation=ablation)
    return view.save(path)
