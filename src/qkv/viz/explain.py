"""Walk one query token through softmax(q·kᵀ/√d_k)·V with the model's own numbers.

:func:`explain` runs a model once while recording attention, takes the chosen layer, head and
query token, and recomputes every step of the formula from the recorded q, k and v in
float64: q·k_j, the scaling, the mask, exp, the sum, the weights, a_j·v_j and z = Σ a_j·v_j.
It then checks its work against what the model itself computed (its per-head output and its
weights). :func:`qkv.viz.terminal.render_walkthrough` turns the :class:`Walkthrough` into text.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

# z is recomputed in float64 from the float32 tensors the model used; float32 rounding of the
# model's own sum stays far below this.
TOLERANCE = 1e-5


@dataclass(kw_only=True)
class Walkthrough:
    """Every number of one query's attention, recomputed, plus the check against the model.

    Shapes: T keys, D = d_k, Dv value dim. Masked keys have score -inf, exp 0 and weight 0.
    """

    model_name: str
    text: str
    tokens: list[str]
    special: list[bool]
    layer: int
    head: int
    token_index: int
    num_layers: int
    num_heads: int
    d_k: int
    scale: float  # the model's 1/√d_k
    causal: bool
    query: Tensor  # (D,)
    keys: Tensor  # (T, D)
    values: Tensor  # (T, Dv)
    dots: Tensor  # (T,) q·k_j
    scaled: Tensor  # (T,) q·k_j · scale
    bias: Tensor  # (T,) float mask added to the scores (0 when there is none)
    allowed: Tensor  # (T,) bool: False where the mask removes key j
    scores: Tensor  # (T,) scaled + bias, -inf where not allowed
    shift: float  # exp is taken of scores - shift (0 unless scores are large)
    exp: Tensor  # (T,)
    exp_sum: float
    weights: Tensor  # (T,) softmax
    weighted_values: Tensor  # (T, Dv) a_j·v_j
    z: Tensor  # (Dv,) Σ_j a_j·v_j
    model_z: Tensor  # (Dv,) the head output the model computed
    model_weights: Tensor  # (T,) the weights the model computed
    max_abs_diff: float  # max |z - model_z|
    weights_max_abs_diff: float  # max |weights - model_weights|
    weights_sum: float
    tolerance: float = TOLERANCE
    kv_head: int = 0  # the key/value head this query head reads (grouped-query attention)
    num_kv_heads: int = 0  # 0: as many as query heads

    @property
    def token(self) -> str:
        return self.tokens[self.token_index]

    @property
    def ok(self) -> bool:
        """z matches the model's head output and the weights sum to 1 within tolerance."""
        return self.max_abs_diff <= self.tolerance and abs(self.weights_sum - 1) <= self.tolerance

    def to_json_dict(self, digits: int = 6) -> dict[str, Any]:
        """One plain object: inputs, every step (lists of numbers) and the check."""

        def plain(tensor: Tensor) -> Any:
            values = tensor.detach().double().cpu()
            finite = torch.where(torch.isfinite(values), values, torch.zeros_like(values))
            rounded = torch.round(finite, decimals=digits).tolist()
            if values.dim() == 1 and not torch.isfinite(values).all():
                return [r if math.isfinite(v) else None for r, v in zip(rounded, values.tolist())]
            return rounded

        return {
            "model": self.model_name,
            "text": self.text,
            "tokens": self.tokens,
            "special": self.special,
            "layer": self.layer,
            "head": self.head,
            "token_index": self.token_index,
            "token": self.token,
            "kv_head": self.kv_head,
            "num_kv_heads": self.num_kv_heads or self.num_heads,
            "num_layers": self.num_layers,
            "num_heads": self.num_heads,
            "d_k": self.d_k,
            "scale": self.scale,
            "causal": self.causal,
            "query": plain(self.query),
            "keys": plain(self.keys),
            "values": plain(self.values),
            "dots": plain(self.dots),
            "scaled": plain(self.scaled),
            "bias": plain(self.bias),
            "allowed": [bool(a) for a in self.allowed.tolist()],
            "scores": plain(self.scores),  # null where masked (-inf)
            "shift": self.shift,
            "exp": plain(self.exp),
            "exp_sum": self.exp_sum,
            "weights": plain(self.weights),
            "weighted_values": plain(self.weighted_values),
            "z": plain(self.z),
            "model_z": plain(self.model_z),
            "check": {
                "max_abs_diff": self.max_abs_diff,
                "weights_max_abs_diff": self.weights_max_abs_diff,
                "weights_sum": self.weights_sum,
                "tolerance": self.tolerance,
                "ok": self.ok,
            },
        }

    def render(self, *, color: bool = False, width: int = 100) -> str:
        """The walkthrough as terminal text (tables; ANSI colour when ``color``)."""
        from qkv.viz.terminal import render_walkthrough

        return render_walkthrough(self, color=color, width=width)


def mask_row(mask: Tensor | None, head: int, query: int, num_keys: int) -> tuple[Tensor, Tensor]:
    """(bias (Tk,) float64, allowed (Tk,) bool) of a recorded mask for one head and query.

    The mask is broadcastable to (B, Hq, Tq, Tk): bool (True = may attend) or float (added).
    """
    bias = torch.zeros(num_keys, dtype=torch.float64)
    allowed = torch.ones(num_keys, dtype=torch.bool)
    if mask is None:
        return bias, allowed
    m = mask
    while m.dim() < 4:
        m = m.unsqueeze(0)
    row = m[0, min(head, m.shape[1] - 1), min(query, m.shape[2] - 1)]
    row = row.expand(num_keys).cpu()
    if row.dtype == torch.bool:
        return bias, row.clone()
    row = row.double()
    return torch.where(torch.isneginf(row), torch.zeros_like(row), row), ~torch.isneginf(row)


def walk(
    *,
    query: Tensor,
    keys: Tensor,
    values: Tensor,
    scale: float,
    causal: bool,
    token_index: int,
    bias: Tensor | None = None,
    allowed: Tensor | None = None,
    window: tuple[int | None, int | None] | None = None,
    softcap: float | None = None,
) -> dict[str, Any]:
    """Recompute one query's attention step by step in float64.

    query (D,), keys (T, D), values (T, Dv); ``causal`` removes keys after ``token_index``.
    Returns dots, scaled, bias, allowed, scores, shift, exp, exp_sum, weights,
    weighted_values, z, weights_sum.
    """
    q = query.double()
    k = keys.double()
    v = values.double()
    t = k.shape[0]
    bias = torch.zeros(t, dtype=torch.float64) if bias is None else bias.double()
    allowed = torch.ones(t, dtype=torch.bool) if allowed is None else allowed.clone()
    if causal:
        allowed &= torch.arange(t) <= token_index
    if window is not None:
        left, right = window
        offsets = torch.arange(t) - token_index
        if left is not None:
            allowed &= offsets >= -left
        if right is not None:
            allowed &= offsets <= right
    dots = k @ q  # (T,)
    scaled = dots * scale
    if softcap is not None:
        scaled = softcap * torch.tanh(scaled / softcap)
    scores = torch.where(allowed, scaled + bias, torch.full_like(scaled, -math.inf))
    top = float(scores.max()) if bool(allowed.any()) else 0.0
    # Plain exp of the scores when it cannot overflow (easier to follow by hand); otherwise
    # subtract the max, which leaves the softmax unchanged.
    shift = top if top > 80.0 else 0.0
    exp = torch.where(allowed, torch.exp(scores - shift), torch.zeros_like(scores))
    exp_sum = float(exp.sum())
    weights = exp / exp_sum if exp_sum > 0 else torch.zeros_like(exp)
    weighted_values = weights[:, None] * v  # (T, Dv)
    z = weighted_values.sum(dim=0)  # (Dv,)
    return {
        "dots": dots,
        "scaled": scaled,
        "bias": bias,
        "allowed": allowed,
        "scores": scores,
        "shift": shift,
        "exp": exp,
        "exp_sum": exp_sum,
        "weights": weights,
        "weighted_values": weighted_values,
        "z": z,
        "weights_sum": float(weights.sum()),
    }


def resolve_token(token: int | str | None, tokens: list[str], special: list[bool]) -> int:
    """Index of the query token: an int (negative counts from the end), a digit string, or a
    token string (exact, then ignoring case and ``##`` / ``Ġ`` / ``▁`` markers; first match).

    Default (None): the last non-special token.
    """
    t = len(tokens)
    if token is None:
        candidates = [i for i in range(t) if not special[i]]
        return candidates[-1] if candidates else t - 1
    if isinstance(token, str):
        text = token.strip()
        if text.lstrip("-").isdigit():
            token = int(text)
        else:
            for key in (lambda s: s, _plain):
                matches = [i for i, s in enumerate(tokens) if key(s) == key(token)]
                if matches:
                    return matches[0]
            shown = ", ".join(f"{i}:{s}" for i, s in enumerate(tokens))
            raise ValueError(
                f"token {token!r} is not in the input; pass an index 0..{t - 1} or one of: {shown}"
            )
    if isinstance(token, bool) or not isinstance(token, int) or not -t <= token < t:
        raise ValueError(
            f"token index {token!r} is out of range for {t} tokens; pass 0..{t - 1} "
            "(or negative from the end)"
        )
    return token % t


def _plain(token: str) -> str:
    return token.replace("##", "").replace("Ġ", "").replace("▁", "").strip().lower()


def check_index(name: str, value: int, count: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not -count <= value < count:
        raise ValueError(
            f"{name} {value!r} is out of range: the model has {count} {name}s (0..{count - 1})"
        )
    return value % count


def explain(
    text: str,
    *,
    model: Any = None,
    tokenizer: Any = None,
    model_dir: str | None = None,
    revision: str | None = None,
    model_name: str | None = None,
    layer: int = 0,
    head: int = 0,
    token: int | str | None = None,
) -> Walkthrough:
    """Walk query ``token`` of ``text`` through ``layer``'s ``head`` with the model's numbers.

    ``model``/``tokenizer`` are used when given; otherwise the model is opened from
    ``model_dir`` (a qkv or supported Hugging Face checkpoint directory, or a hub id at
    ``revision``) or, by default, the pretrained all-MiniLM-L6-v2 that installs with qkv;
    ``model_name`` labels the walk. ``token``: index or token string (default: the last
    non-special token). Raises ValueError for an out-of-range layer, head or token and for
    empty text.

    Example::

        >>> w = qkv.viz.explain("The cat sat on the mat.", layer=2, head=5, token="sat")
        >>> w.weights.sum(), w.max_abs_diff  # (1.0, ~1e-8)
        >>> print(w.render())
    """
    from qkv.viz.capture import _encode, _special_ids, record, token_strings

    if not isinstance(text, str) or not text.strip():
        raise ValueError("text is empty: give a sentence to walk through the model")
    name = model_name
    if model is None or tokenizer is None:
        from qkv.viz.model_source import open_model, require_tokenizer

        opened = open_model(model_dir, revision)
        model = model if model is not None else opened.model
        tokenizer = tokenizer if tokenizer is not None else require_tokenizer(opened)
        name = name or opened.name
    ids = _encode(tokenizer, text)
    if not ids:
        raise ValueError(f"the tokenizer produced no tokens for {text!r}")
    tokens = token_strings(tokenizer, ids)
    specials = _special_ids(tokenizer)
    special = [i in specials for i in ids]
    records = record(model, ids)
    layer = check_index("layer", layer, len(records))
    rec = records[layer]
    q_heads, kv_heads = rec.q.shape[1], rec.k.shape[1]
    head = check_index("head", head, q_heads)
    index = resolve_token(token, tokens, special)
    kv_head = head // (q_heads // kv_heads)
    keys = rec.k[0, kv_head].float().cpu()  # (T, D)
    values = rec.v[0, kv_head].float().cpu()  # (T, Dv)
    query = rec.q[0, head, index].float().cpu()  # (D,)
    bias, allowed = mask_row(rec.mask, head, index, keys.shape[0])
    steps = walk(
        query=query,
        keys=keys,
        values=values,
        scale=rec.scale,
        causal=rec.causal,
        token_index=index,
        bias=bias,
        allowed=allowed,
        window=rec.window,
        softcap=rec.softcap,
    )
    model_z = rec.out[0, head, index].double().cpu()  # (Dv,)
    model_weights = rec.weights[0, head, index].double().cpu()  # (T,)
    return Walkthrough(
        model_name=name or getattr(model, "name", None) or type(model).__name__,
        text=text,
        tokens=tokens,
        special=special,
        layer=layer,
        head=head,
        token_index=index,
        num_layers=len(records),
        num_heads=q_heads,
        d_k=int(query.shape[0]),
        scale=float(rec.scale),
        causal=bool(rec.causal),
        query=query,
        keys=keys,
        values=values,
        model_z=model_z,
        model_weights=model_weights,
        max_abs_diff=float((steps["z"] - model_z).abs().max()),
        weights_max_abs_diff=float((steps["weights"] - model_weights).abs().max()),
        kv_head=kv_head,
        num_kv_heads=kv_heads,
        **steps,
    )
