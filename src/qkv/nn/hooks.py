"""Hook points: named identity modules to read or replace any activation, TransformerLens style.

A :class:`HookPoint` sits on an activation inside a model (``x = self.hook_resid_pre(x)``).
With no function registered it returns its input untouched, without entering
``nn.Module.__call__``; with functions registered it calls each as ``fn(activation, hook)``
and a function that returns a tensor replaces the activation. Hook points hold no parameters,
so state dicts and checkpoints do not change.

Models that carry hook points inherit :class:`HookedModel`, which names them as
TransformerLens does (``blocks.{i}.attn.hook_z``) and gives ``hook_names()``,
``run_with_cache`` and ``run_with_hooks``. Example::

    >>> logits, cache = model.run_with_cache(ids, names_filter=lambda n: n.endswith("hook_z"))
    >>> cache["blocks.0.attn.hook_z"].shape  # (B, T, H, d_head)
    >>> def zero_head_3(z, hook):
    ...     z[:, :, 3] = 0.0
    ...     return z
    >>> logits = model.run_with_hooks(ids, fwd_hooks=[("blocks.1.attn.hook_z", zero_head_3)])
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

from qkv.nn.norms import GemmaRMSNorm


class HookPoint(nn.Module):
    """An identity on one activation that registered functions may read or replace.

    ``shape`` documents the activation's shape (e.g. ``"(B, T, H, d_head)"``); ``name`` is
    set by :meth:`HookedModel.hook_points` (the TransformerLens name).
    """

    def __init__(self, shape: str) -> None:
        super().__init__()
        self.shape = shape
        self.name = ""
        self.fns: list[HookFn] = []

    @property
    def active(self) -> bool:
        """Whether any function is registered (the model computes extra work only then)."""
        return bool(self.fns)

    def __call__(self, x: Tensor) -> Tensor:  # type: ignore[override]
        # Skips nn.Module.__call__ on purpose: an unhooked point costs one list check.
        if not self.fns:
            return x
        return self.forward(x)

    def forward(self, x: Tensor) -> Tensor:
        for fn in list(self.fns):
            replaced = fn(x, self)
            if replaced is not None:
                if not isinstance(replaced, Tensor) or replaced.shape != x.shape:
                    got = tuple(replaced.shape) if isinstance(replaced, Tensor) else replaced
                    raise ValueError(
                        f"hook on {self.name} returned {got!r}; a hook must return None or a "
                        f"tensor of the activation's shape {tuple(x.shape)}"
                    )
                x = replaced
        return x

    def extra_repr(self) -> str:
        return f"{self.name or '?'}: {self.shape}"


HookFn = Callable[[Tensor, HookPoint], Tensor | None]
NamesFilter = None | str | Sequence[str] | Callable[[str], bool]


class ActivationCache(dict[str, Tensor]):
    """The activations of one run by hook name; a missing name says which names exist."""

    def __missing__(self, key: str) -> Tensor:
        names = ", ".join(sorted(self)[:8])
        more = "" if len(self) <= 8 else f", … ({len(self)} in all)"
        raise KeyError(
            f"no activation {key!r} in this cache (it holds {names}{more}); pass a "
            "names_filter that keeps it to run_with_cache"
        )


class HookedModel:
    """Mixin for models with :class:`HookPoint` submodules.

    ``_HOOK_RENAMES`` maps module-path prefixes to TransformerLens names, applied in order
    (e.g. ``("transformer.h.", "blocks.")``); a path's last rename wins nothing else.
    """

    _HOOK_RENAMES: tuple[tuple[str, str], ...] = ()

    def hook_points(self) -> dict[str, HookPoint]:
        """Every hook point by its TransformerLens name, in module (layer) order."""
        assert isinstance(self, nn.Module)
        points: dict[str, HookPoint] = {}
        for path, module in self.named_modules():
            if isinstance(module, HookPoint):
                name = path
                for prefix, replacement in self._HOOK_RENAMES:
                    if name.startswith(prefix):
                        name = replacement + name[len(prefix) :]
                module.name = name
                points[name] = module
        return points

    def hook_names(self) -> dict[str, str]:
        """Each hook point's name and the shape of what it sees, e.g.
        ``{"blocks.0.attn.hook_z": "(B, T, H, d_head)", ...}``. B batch, T positions, C
        d_model, H query heads, Hkv key/value heads, Tq/Tk query/key positions."""
        return {name: point.shape for name, point in self.hook_points().items()}

    def _select(
        self, names_filter: NamesFilter, points: dict[str, HookPoint] | None = None
    ) -> list[HookPoint]:
        points = self.hook_points() if points is None else points
        if names_filter is None:
            return list(points.values())
        if callable(names_filter):
            return [p for n, p in points.items() if names_filter(n)]
        wanted = [names_filter] if isinstance(names_filter, str) else list(names_filter)
        unknown = [n for n in wanted if n not in points]
        if unknown:
            raise ValueError(
                f"unknown hook name(s) {unknown}; model.hook_names() lists the "
                f"{len(points)} names, e.g. {next(iter(points), '')!r}"
            )
        return [points[n] for n in wanted]

    @contextmanager
    def hooks(
        self, fwd_hooks: Sequence[tuple[str | Callable[[str], bool], HookFn]]
    ) -> Iterator[None]:
        """Register ``(name or name filter, fn)`` pairs while the block runs; always removed."""
        added: list[tuple[HookPoint, HookFn]] = []
        points = self.hook_points()
        try:
            for selector, fn in fwd_hooks:
                if not callable(fn):
                    raise ValueError(f"hook for {selector!r} must be callable, got {fn!r}")
                if not isinstance(selector, str) and not callable(selector):
                    raise ValueError(
                        f"a hook's selector must be a hook name or a predicate on names, "
                        f"got {selector!r}"
                    )
                for point in self._select(selector, points):
                    point.fns.append(fn)
                    added.append((point, fn))
            yield
        finally:
            for point, fn in added:
                point.fns.remove(fn)

    def run_with_hooks(
        self,
        input_ids: Tensor,
        *args: Any,
        fwd_hooks: Sequence[tuple[str | Callable[[str], bool], HookFn]] = (),
        **kwargs: Any,
    ) -> Tensor:
        """The model's forward output with ``fwd_hooks`` registered for this call only.
        ``fn(activation, hook)`` may return a replacement tensor; ``hook.name`` is the name."""
        assert isinstance(self, nn.Module)
        with self.hooks(fwd_hooks):
            return self(input_ids, *args, **kwargs)

    def run_with_cache(
        self,
        input_ids: Tensor,
        *args: Any,
        names_filter: NamesFilter = None,
        detach: bool = True,
        **kwargs: Any,
    ) -> tuple[Tensor, ActivationCache]:
        """(forward output, cache of the activations ``names_filter`` keeps): None = all,
        a name, a list of names, or a predicate on names. Asking for ``hook_pattern`` or
        ``hook_attn_scores`` computes those layers through the reference attention path."""
        cache = ActivationCache()

        def save(activation: Tensor, hook: HookPoint) -> None:
            cache[hook.name] = activation.detach() if detach else activation

        keep = {p.name for p in self._select(names_filter)}
        with self.hooks([(keep.__contains__, save)]):
            assert isinstance(self, nn.Module)
            output = self(input_ids, *args, **kwargs)
        return output, cache


def norm_through_hook(norm: nn.Module, hook: HookPoint, x: Tensor) -> Tensor:
    """``norm(x)`` with ``hook`` seeing the normalised x before the affine weight and bias
    (TransformerLens's ``hook_normalized``). x (..., C) -> (..., C). LayerNorm or RMSNorm."""
    if not hook.active:
        return norm(x)
    weight, bias = getattr(norm, "weight", None), getattr(norm, "bias", None)
    if isinstance(norm, GemmaRMSNorm):  # all in float32, times (1 + w), then cast back
        hidden = x.to(torch.float32)
        variance = hidden.pow(2).mean(-1, keepdim=True)
        hooked = hook(hidden * torch.rsqrt(variance + norm.eps))
        return (hooked * (1.0 + norm.weight.float())).type_as(x)
    if isinstance(norm, nn.LayerNorm):
        normalized = nn.functional.layer_norm(x, norm.normalized_shape, eps=norm.eps)
    else:  # RMSNorm: float32 statistics, cast back before the weight, as RMSNorm.forward
        hidden = x.to(torch.float32)
        variance = hidden.pow(2).mean(-1, keepdim=True)
        normalized = (hidden * torch.rsqrt(variance + norm.eps)).to(x.dtype)
    normalized = hook(normalized)
    if weight is not None:
        normalized = weight * normalized
    return normalized if bias is None else normalized + bias
