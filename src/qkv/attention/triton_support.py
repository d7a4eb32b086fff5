"""Where the Triton kernels can run and what they accept: the availability probe and the
refusals shared by the ``triton`` backend and :func:`qkv.attention.varlen_attention`.

Nothing here imports Triton (``triton_available`` only looks for the package), so both
callers can say why they refuse a call without paying for the import.
"""

from __future__ import annotations

import importlib.util
import os

import torch

from qkv.attention.call import Window

# Accept float32 inputs and compute their matmuls in TF32 (about 3 decimal digits) instead of
# refusing them. Set QKV_TRITON_TF32=1 in the environment, or assign this flag at run time.
ALLOW_FP32_TF32: bool = os.environ.get("QKV_TRITON_TF32", "0") == "1"

MIN_HEAD_DIM, MAX_HEAD_DIM = 16, 256


def interpreting() -> bool:
    """True when ``TRITON_INTERPRET=1``: the kernels then run in Python on CPU tensors."""
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def triton_available() -> str | None:
    """Why the Triton kernels cannot run here at all, or None."""
    if importlib.util.find_spec("triton") is None:
        return "Triton is not installed; pip install 'qkv[triton]' (needs Linux and an NVIDIA GPU)"
    if interpreting():
        return None
    if not torch.cuda.is_available():
        return (
            "no CUDA GPU; the Triton kernels need an NVIDIA GPU of compute capability 8.0+ "
            "(or TRITON_INTERPRET=1 to run them slowly on CPU tensors)"
        )
    major, minor = torch.cuda.get_device_capability()
    if major < 8:
        return f"GPU compute capability {major}.{minor} < 8.0; the kernels need Ampere or newer"
    return None


def dtype_refusal(dtype: torch.dtype) -> str | None:
    """Why the kernels refuse inputs of ``dtype``, or None (fp16, bf16; fp32 with TF32 on)."""
    if dtype in (torch.float16, torch.bfloat16):
        return None
    if dtype == torch.float32:
        if ALLOW_FP32_TF32:
            return None
        return (
            "float32 inputs are refused (the kernels compute in fp16/bf16 tensor cores); cast "
            "to bfloat16/float16, or set QKV_TRITON_TF32=1 (or, at run time, "
            "`from qkv.attention import triton_support; triton_support.ALLOW_FP32_TF32 = True`) "
            "to compute them in TF32"
        )
    return f"dtype {dtype} is not supported; use bfloat16 or float16"


def device_refusal(device: torch.device) -> str | None:
    """Why the kernels cannot run on ``device``, or None (CUDA sm80+; CPU when interpreting)."""
    if device.type == "cuda":
        if interpreting():
            return "TRITON_INTERPRET=1 is set: the interpreter runs CPU tensors only"
        major, minor = torch.cuda.get_device_capability(device)
        if major < 8:
            return f"GPU compute capability {major}.{minor} < 8.0; needs Ampere or newer"
        return None
    if device.type == "cpu":
        if interpreting():
            return None
        return "CPU tensors run only under the Triton interpreter (TRITON_INTERPRET=1)"
    return f"device {device.type} is not supported; use a CUDA GPU"


def head_dim_refusal(dk: int, dv: int) -> str | None:
    """Why the kernels refuse query/key head dim ``dk`` or value head dim ``dv``, or None."""
    for name, dim in (("q/k", dk), ("v", dv)):
        if not MIN_HEAD_DIM <= dim <= MAX_HEAD_DIM:
            return f"{name} head dim {dim} outside {MIN_HEAD_DIM}..{MAX_HEAD_DIM}"
    return None


def key_bounds(causal: bool, window: Window | None) -> tuple[int | None, int | None]:
    """(left, right) key bounds of the kernels, with causal folded in as right = 0.

    Example::

        >>> key_bounds(True, (64, None))
        (64, 0)
    """
    left, right = window if window is not None else (None, None)
    if causal:
        right = 0 if right is None else min(right, 0)
    return left, right
