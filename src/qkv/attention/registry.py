"""What a backend is, and the table of backends users add.

Every attention kernel is a function with one signature,
``forward(call: AttentionCall) -> (out, weights | None)``, packaged as a :class:`Backend`
together with a ``check`` that says why it cannot serve a given call (or None when it can)
and an ``available`` probe that says why it cannot run in this environment at all.

qkv's own backends are listed, statically, in ``qkv.attention.backends``; this module holds
only the ones added at run time with :func:`register_backend`, and imports nothing of qkv but
``call.py`` so that every backend module can import it.
"""

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
    """One attention kernel under a name, with why it cannot serve a call or run here."""

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


_REGISTERED: dict[str, Backend] = {}


def register_backend(backend: Backend) -> Backend:
    """Add a backend under ``backend.name`` (or replace one, built-in or not, of that name).

    Example::

        >>> register_backend(Backend(name="mine", forward=my_forward, check=lambda call: None))
        >>> out = qkv.attention(q, k, v, backend="mine")
    """
    if backend.name == "auto":
        raise ValueError("'auto' is reserved for automatic backend choice; pick another name")
    _REGISTERED[backend.name] = backend
    return backend


def registered_backends() -> dict[str, Backend]:
    """The backends added with :func:`register_backend`, in the order they were added."""
    return dict(_REGISTERED)
