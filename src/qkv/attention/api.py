"""The public functional API: ``qkv.attention`` and friends."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from qkv.attention.call import Window
from qkv.attention.dispatch import BackendChoice, choose
from qkv.attention.registry import all_backends
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
) -> Tensor | tuple[Tensor, Tensor]:
    """Scaled dot-product attention, exactly, with every common variant.

    Shapes: q (B, Hq, Nq, Dk), k (B, Hkv, Nk, Dk), v (B, Hkv, Nk, Dv) with Hq % Hkv == 0
    (grouped-query / multi-query attention). Returns out (B, Hq, Nq, Dv) in q's dtype, and
    with ``need_weights=True`` also the probabilities (B, Hq, Nq, Nk) the output used.

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
        >>> out = qkv.attention(q, k, v, causal=True, window=(32, 0))
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
        need_weights=need_weights,
    )
    choice = choose(call, backend)
    out, weights = all_backends()[choice.backend].forward(call)
    if need_weights:
        assert weights is not None, f"backend {choice.backend} returned no weights"
        return out, weights
    return out


def explain_backend(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    *,
    backend: str = "auto",
    **options: object,
) -> BackendChoice:
    """Which backend ``qkv.attention(q, k, v, **options)`` would use and why, without running it.

    Example::

        >>> print(qkv.explain_backend(q, k, v, softcap=30.0))
        tiled: blockwise online softmax: every variant with O(N) memory
          not sdpa: softcap changes every score: SDPA would need the explicit N×N score matrix
    """
    call = validate(q, k, v, **options)  # type: ignore[arg-type]
    return choose(call, backend)


@dataclass(frozen=True)
class BackendInfo:
    name: str
    available: bool
    reason: str
    description: str


def attention_backends() -> list[BackendInfo]:
    """Every registered backend with its availability in this environment."""
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
