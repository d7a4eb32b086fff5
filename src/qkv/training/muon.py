"""Muon for the hidden weight matrices, AdamW for the rest (modded-nanogpt's optimizer split).

Muon (Keller Jordan, 2024) replaces each 2-D update by the nearest semi-orthogonal matrix of
its Nesterov momentum: ``U·Vᵀ`` of the momentum's SVD ``U·S·Vᵀ``, approximated by five steps
of a quintic Newton–Schulz iteration. Embeddings, the output head and the 1-D gains stay on
AdamW: they are lookups and a classifier, not maps between hidden spaces.

Why not ``torch.optim.Muon``: it orthogonalises in bf16, which CPUs without AVX512-BF16 / AMX
emulate in fp32 at several times the cost; here the iteration runs in the weights' dtype
(fp32) unless bf16 is native, and same-shape matrices go through it as one batch (the
4-layer baby GPT's 16 matrices are 4 batched calls instead of 16).

Example::

    >>> from qkv.training.optim import make_muon_adamw
    >>> optimizer = make_muon_adamw(model, lr=3e-3, muon_lr=0.03, weight_decay=0.1,
    ...                             betas=(0.9, 0.99))
    >>> loss.backward(); optimizer.step(); optimizer.zero_grad(set_to_none=True)
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

import torch
from torch import Tensor, nn

# Keller Jordan's quintic coefficients: the steepest slope at zero that still keeps every
# singular value in about [0.7, 1.2] after 5 steps (exact U·Vᵀ is not needed to train well).
QUINTIC = (3.4445, -4.7750, 2.0315)
# The classical cubic iteration X ← 1.5·X − 0.5·X·Xᵀ·X converges to U·Vᵀ exactly (slowly).
CUBIC = (1.5, -0.5, 0.0)


def newton_schulz(
    matrices: Tensor, *, steps: int = 5, coefficients: tuple[float, float, float] = QUINTIC
) -> Tensor:
    """Approximately orthogonalise ``matrices`` (…, m, n): ``U·S'·Vᵀ`` with S' ≈ 1 where the
    input is ``U·S·Vᵀ``. Each step is ``X ← a·X + (b·A + c·A²)·X`` with ``A = X·Xᵀ``, on the
    shorter side (a wide matrix is transposed first). Runs in the input's dtype.

    Example::

        >>> q = newton_schulz(torch.randn(128, 512), steps=30, coefficients=CUBIC)
        >>> torch.allclose(q @ q.T, torch.eye(128), atol=1e-3)
        True
    """
    if matrices.dim() < 2:
        raise ValueError(f"newton_schulz needs (..., m, n) matrices, got shape {matrices.shape}")
    a, b, c = coefficients
    tall = matrices.shape[-2] > matrices.shape[-1]
    x = matrices.mT if tall else matrices  # (..., short, long)
    # Frobenius norm ≥ spectral norm: every singular value starts in [0, 1].
    x = x / (x.norm(dim=(-2, -1), keepdim=True) + 1e-7)
    for _ in range(steps):
        gram = x @ x.mT  # (..., short, short)
        x = a * x + (b * gram + c * (gram @ gram)) @ x
    return x.mT if tall else x


def hidden_matrices(model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """(Muon's parameters, AdamW's): the 2-D weights of the blocks' linear layers go to Muon;
    embeddings, the output head, gains and biases to AdamW (tied weights appear once)."""
    muon, adamw, seen = [], [], set()
    embeddings = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    head = getattr(model, "lm_head", None)
    if isinstance(head, nn.Linear):
        embeddings.add(id(head.weight))
    for parameter in model.parameters():
        if not parameter.requires_grad or id(parameter) in seen:
            continue
        seen.add(id(parameter))
        hidden = parameter.dim() == 2 and id(parameter) not in embeddings
        (muon if hidden else adamw).append(parameter)
    return muon, adamw


class Muon(torch.optim.Optimizer):
    """Muon over 2-D parameters: Nesterov momentum, then :func:`newton_schulz`, scaled by
    ``√max(1, rows/cols)`` and by ``lr_scale`` (so one scheduled ``lr`` can drive Muon and
    AdamW groups together), with decoupled weight decay."""

    def __init__(
        self,
        params: list[nn.Parameter],
        *,
        lr: float,
        lr_scale: float = 1.0,
        momentum: float = 0.95,
        weight_decay: float = 0.0,
        ns_steps: int = 5,
        ns_dtype: torch.dtype | None = None,
    ) -> None:
        for parameter in params:
            if parameter.dim() != 2:
                raise ValueError(
                    f"Muon takes 2-D weight matrices, got shape {tuple(parameter.shape)}; "
                    "give vectors and embeddings to AdamW (see hidden_matrices)"
                )
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"Muon momentum must be in [0, 1), got {momentum}")
        defaults = dict(
            lr=lr, lr_scale=lr_scale, momentum=momentum, weight_decay=weight_decay,
            ns_steps=ns_steps,
        )  # fmt: skip
        super().__init__(params, defaults)
        self.ns_dtype = ns_dtype

    @torch.no_grad()
    def step(self, closure: Any = None) -> None:  # type: ignore[override]
        for group in self.param_groups:
            by_shape: dict[tuple[int, ...], list[Tensor]] = defaultdict(list)
            for parameter in group["params"]:
                if parameter.grad is not None:
                    by_shape[tuple(parameter.shape)].append(parameter)
            lr = group["lr"] * group["lr_scale"]
            for shape, params in by_shape.items():
                updates = self._orthogonal_updates(params, group)  # (P, rows, cols)
                scale = lr * math.sqrt(max(1.0, shape[0] / shape[1]))
                torch._foreach_mul_(params, 1.0 - lr * group["weight_decay"])
                torch._foreach_add_(params, list(updates.unbind(0)), alpha=-scale)

    def _orthogonal_updates(self, params: list[Tensor], group: dict[str, Any]) -> Tensor:
        grads = [p.grad for p in params]
        buffers = []
        for parameter in params:
            state = self.state[parameter]
            if "momentum_buffer" not in state:
                state["momentum_buffer"] = torch.zeros_like(parameter)
            buffers.append(state["momentum_buffer"])
        momentum = group["momentum"]
        torch._foreach_lerp_(buffers, grads, 1.0 - momentum)  # buf ← μ·buf + (1−μ)·g
        nesterov = torch._foreach_lerp(grads, buffers, momentum)  # (1−μ)·g + μ·buf
        stacked = torch.stack(nesterov)  # (P, rows, cols)
        dtype = self.ns_dtype or stacked.dtype
        orthogonal = newton_schulz(stacked.to(dtype), steps=group["ns_steps"])
        return orthogonal.to(stacked.dtype)


class MuonWithAdamW:
    """One optimizer object over two: :class:`Muon` for the hidden matrices and AdamW for the
    rest. ``param_groups`` lists both (Muon's first), so setting ``group["lr"]`` schedules
    both; ``state_dict`` / ``load_state_dict`` carry both, for checkpoints and resume."""

    def __init__(self, muon: Muon, adamw: torch.optim.Optimizer) -> None:
        self.muon, self.adamw = muon, adamw

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return [*self.muon.param_groups, *self.adamw.param_groups]

    def step(self) -> None:
        self.muon.step()
        self.adamw.step()

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.muon.zero_grad(set_to_none=set_to_none)
        self.adamw.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict[str, Any]:
        return {"muon": self.muon.state_dict(), "adamw": self.adamw.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if set(state) != {"muon", "adamw"}:
            raise ValueError(
                "this checkpoint's optimizer state is not Muon + AdamW (keys "
                f"{sorted(state)}); resume it with the optimizer it was trained with"
            )
        self.muon.load_state_dict(state["muon"])
        self.adamw.load_state_dict(state["adamw"])
