"""The built-in attention backends, listed in one place, and the lookup of a backend by name.

Each backend module defines one :class:`~qkv.attention.registry.Backend` object named
``BACKEND``; this table imports them explicitly, so the list a reader sees here is the list
``qkv backends`` prints (in this order). Backends added with ``register_backend`` come after
them, or replace the built-in one of the same name. No backend module imports Triton or
anything heavy at import time, so listing them keeps ``import qkv`` light.
"""

from __future__ import annotations

from qkv.attention import flash_tiles, math_backend, reference, sdpa, tiled, triton_backend
from qkv.attention.registry import Backend, registered_backends

BUILTIN_BACKENDS: dict[str, Backend] = {
    backend.name: backend
    for backend in (
        reference.BACKEND,
        sdpa.BACKEND,
        math_backend.BACKEND,
        flash_tiles.BACKEND,
        tiled.BACKEND,
        triton_backend.BACKEND,
    )
}


def all_backends() -> dict[str, Backend]:
    """Every backend by name: the built-in ones, then (or in place of them) registered ones."""
    return {**BUILTIN_BACKENDS, **registered_backends()}


def get_backend(name: str) -> Backend:
    """The backend called ``name``; ValueError listing the known names if there is none."""
    backends = all_backends()
    try:
        return backends[name]
    except KeyError:
        known = ", ".join(["auto", *backends])
        raise ValueError(f"unknown attention backend {name!r}; choose one of: {known}") from None
