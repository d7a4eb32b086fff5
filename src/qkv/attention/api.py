"""The public functional API: ``qkv.attention``, ``qkv.attention_with_weights`` and the
questions about backends (``explain_backend``, ``attention_backends``)."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from qkv.attention.backends import all_backends
from qkv.attention.call import AttentionCall, Window
from qkv.attention.dispatch import BackendChoice, choose
from qkv.attention.empty import empty_attention, is_empty
from qkv.attention.validate import validate


def attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    *,
    causal: bool = False,
    mask: Tensor | None = None,
    scale: float | None = None,
    dropout_p: float = 0.0,
    window: Window | None = None,
    alibi_slopes: Tensor | None = None,
    softcap: float | None = None,
    need_weights: bool = False,
    backend: str = "auto",
) -> Tensor:
    """Scaled dot-product attention, exactly, with every common variant.

    Shapes: q (B, Hq, Nq, Dk), k (B, Hkv, Nk, Dk), v (B, Hkv, Nk, Dv) with Hq % Hkv == 0
    (grouped-query / multi-query attention). Returns out (B, Hq, Nq, Dv) in q's dtype. For
    the probabilities the output used, call :func:`attention_with_weights` (``need_weights``
    is only accepted as False and raises a ValueError saying so otherwise).

    In order: scores = scale·q·kᵀ (scale defaults to 1/√Dk); ``softcap``:
    scores = softcap·tanh(scores/softcap); add the ALiBi bias −slope_h·|i + Nk − Nq − j|
    and a float ``mask``; remove keys where a bool ``mask`` is False, where ``causal``
    forbids (j > i + Nk − Nq, bottom-right aligned) and outside ``window=(left, right)``;
    softmax over keys in at least float32 (a row with no key left gives 0); dropout with
    ``dropout_p`` (applied whenever it is > 0: pass 0.0 at inference); weights·v.

    ``backend`` is ``"auto"`` (fastest that serves the call; see :func:`explain_backend`)
    or a name from :func:`attention_backends`; a named backend that cannot serve the call
    raises ValueError saying why.

    Example::

        >>> q = k = v = torch.randn(2, 8, 128, 64)
        >>> out = qkv.attention(q, k, v, causal=True, window=(32, 0))  # (2, 8, 128, 64)
    """
    if need_weights:
        raise ValueError(
            "qkv.attention returns only the output; for the attention weights call "
            "qkv.attention_with_weights(q, k, v, ...) with the same arguments minus "
            "need_weights (it returns (out, weights))"
        )
    call = validate(
        q,
        k,
        v,
        causal=causal,
        mask=mask,
        scale=scale,
        dropout_p=dropout_p,
        window=window,
        alibi_slopes=alibi_slopes,
        softcap=softcap,
    )
    out, _ = _run(call, backend)
    return out


def attention_with_weights(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    *,
    causal: bool = False,
    mask: Tensor | None = None,
    scale: float | None = None,
    dropout_p: float = 0.0,
    window: Window | None = None,
    alibi_slopes: Tensor | None = None,
    softcap: float | None = None,
    backend: str = "auto",
) -> tuple[Tensor, Tensor]:
    """:func:`attention` that also returns the probabilities the output used.

    Same arguments and semantics as :func:`attention`. Returns (out (B, Hq, Nq, Dv) in q's
    dtype, weights (B, Hq, Nq, Nk) in float32, or float64 for float64 inputs), the weights
    after masking and dropout, so out = weights·v; both are differentiable. ``auto`` picks
    ``reference``; ``tiled`` also serves weights (rebuilt from its log-sum-exp); fused
    backends refuse, saying why. The weights are N×N: meant for inspection, not for training
    at long context.

    Example::

        >>> out, weights = qkv.attention_with_weights(q, k, v, causal=True)
        >>> weights.shape  # (B, Hq, Nq, Nk); each row sums to 1
        torch.Size([2, 8, 128, 128])
    """
    call = validate(
        q,
        k,
        v,
        causal=causal,
        mask=mask,
        scale=scale,
        dropout_p=dropout_p,
        window=window,
        alibi_slopes=alibi_slopes,
        softcap=softcap,
        need_weights=True,
    )
    out, weights = _run(call, backend)
    assert weights is not None, f"backend {backend!r} returned no weights for need_weights"
    return out, weights


def _run(call: AttentionCall, backend: str) -> tuple[Tensor, Tensor | None]:
    """(out, weights or None) from the backend chosen for ``call``."""
    choice = choose(call, backend)
    if is_empty(call):  # one defined result, whichever backend was named (see empty.py)
        return empty_attention(call)
    return all_backends()[choice.backend].forward(call)


def explain_backend(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    *,
    backend: str = "auto",
    **options: object,
) -> BackendChoice:
    """Which backend ``qkv.attention(q, k, v, **options)`` would use and why, without running it.

    ``options`` are those of :func:`attention`; ``need_weights=True`` asks about
    :func:`attention_with_weights` instead.

    Example::

        >>> print(qkv.explain_backend(q, k, v, softcap=30.0))
        tiled: blockwise online softmax: every variant with O(N) memory
          not sdpa: softcap changes every score: SDPA would need the explicit N×N score matrix
          not flash-tiles: it tiles causal calls only (causal=True or a window whose right side
          is 0); 'tiled' serves the rest
    """
    call = validate(q, k, v, **options)  # type: ignore[arg-type]
    return choose(call, backend)


@dataclass(frozen=True)
class BackendInfo:
    """One backend as ``attention_backends()`` lists it: can it run here, and what it is for."""

    name: str
    available: bool
    reason: str
    description: str


def attention_backends() -> list[BackendInfo]:
    """Every backend (built-in, then registered) with its availability in this environment.

    Example::

        >>> [b.name for b in qkv.attention_backends() if b.available]
        ['reference', 'sdpa', 'math', 'flash-tiles', 'tiled']
    """
    infos = []
    for name, backend in all_backends().items():
        why = backend.available()
        infos.append(
            BackendInfo(
                name=name,
                available=why is None,
                reason=why or "available",
                description=backend.description,
            )
        )
    return infos
