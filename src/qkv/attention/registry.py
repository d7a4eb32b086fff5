"""The backend registry: every attention kernel is a function with one signature,
``forward(call: AttentionCall) -> (out, weights | None)``, registered under a name together
with a ``check`` that says why it cannot serve a given call (or None when it can) and an
``available`` probe that says why it cannot run in this environment at all."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor

from qkv.attention.call import AttentionCall

ForwardFn = Callable[[AttentionCall], tuple[Tensor, Tensor | None]]
CheckFn = Callable[[AttentionCall], str | None]
AvailableFn = Callable[[], str | None]


@dataclass(frozen=True, kw_only=True)
class Backend:
    name: str
    forward: ForwardFn
    check: CheckFn
    available: AvailableFn = lambda: None
    description: str = ""

    def refusal(self, call: AttentionCall) -> str | None:
        """Why this backend cannot serve ``call``, or None when it can."""
        reason = self.available()
        if reason is not None:
            return f"unavailable: {reason}"
        return self.check(call)


_BACKENDS: dict[str, Backend] = {}


def register_backend(backend: Backend) -> Backend:
    """Add (or replace) a backend under ``backend.name``."""
    if backend.name == "auto":
        raise ValueError("'auto' is reserved for automatic backend choice; pick another name")
    _BACKENDS[backend.name] = backend
    return backend


def get_backend(name: str) -> Backend:
    _ensure_builtin()
    try:
        return _BACKENDS[name]
    except KeyError:
        known = ", ".join(["auto", *_BACKENDS])
        raise ValueError(f"unknown attention backend {name!r}; choose one of: {known}") from None


def all_backends() -> dict[str, Backend]:
    _ensure_builtin()
    return dict(_BACKENDS)


_LOADED = False


def _ensure_builtin() -> None:
    """Register the built-in backends on first use (keeps ``import qkv`` light)."""
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    from qkv.attention import builtin  # noqa: F401  (registers on import)
