"""Registers qkv's built-in backends. Optional ones (triton) register themselves as
unavailable, with the reason, when their dependencies or hardware are missing."""

from __future__ import annotations

import importlib

from qkv.attention.reference import reference_attention, reference_check
from qkv.attention.registry import Backend, register_backend

register_backend(
    Backend(
        name="reference",
        forward=reference_attention,
        check=reference_check,
        description="the formula written plainly; O(N²) memory; the oracle and weights source",
    )
)

# Each module registers its backend on import; a missing module is skipped so a partial
# checkout still imports.
_MODULES = (
    "qkv.attention.sdpa",
    "qkv.attention.math_backend",
    "qkv.attention.tiled",
    "qkv.attention.triton_backend",
)
for _module in _MODULES:
    try:
        importlib.import_module(_module)
    except ModuleNotFoundError as error:
        if error.name != _module:
            raise
