"""Compile the kernels for a GPU architecture without a GPU (Triton's front end, LLVM and the
bundled ptxas), to check that they build for Ampere/Hopper and how much shared memory each
tile configuration needs. Run with TRITON_INTERPRET unset.

Example::

    >>> info = compile_offline("forward", dtype="bf16", arch=90, BLOCK_DK=128, BLOCK_DV=128)
    >>> info["shared"]  # bytes of shared memory per program
"""

from __future__ import annotations

from typing import Any

import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

from qkv.attention.triton_kernels import backward, forward
from qkv.attention.triton_kernels.configs import INTERPRET

KERNELS = {
    "forward": forward.attention_forward_kernel,
    "dkdv": backward.attention_dkdv_kernel,
    "dq": backward.attention_dq_kernel,
}
_IO_POINTERS = {"Q", "K", "V", "O", "DO", "DQ", "DK", "DV"}
_IO_STRIDED = {"q", "k", "v", "o", "do", "dq", "dk", "dv"}
_POINTER_TYPES = {
    "LSE": "*fp32",
    "DELTA": "*fp32",
    "TABLE": "*i8",
    "SLOPES": "*fp32",
    "CU_Q": "*i32",
    "CU_K": "*i32",
    "KLEN": "*i32",
}
# Every option on: the largest kernel.
ALL_OPTIONS = {
    "HAS_LEFT": True,
    "HAS_RIGHT": True,
    "MASK_KIND": 1,
    "HAS_TABLE": True,
    "HAS_ALIBI": True,
    "HAS_SOFTCAP": True,
    "HAS_DROPOUT": True,
    "VARLEN": False,
    "HAS_KLEN": True,
    "EMULATE_BF16": False,
    "D_K": 64,
    "D_V": 64,
    "BLOCK_DK": 64,
    "BLOCK_DV": 64,
    "BLOCK_M": 64,
    "BLOCK_N": 64,
}


def compile_offline(
    kernel: str, *, dtype: str = "bf16", arch: int = 90, num_warps: int = 4, num_stages: int = 3,
    **flags: Any,
) -> dict[str, Any]:  # fmt: skip
    """Compile ``kernel`` ("forward", "dkdv" or "dq") for sm_``arch`` with the constexpr
    ``flags`` (defaults: :data:`ALL_OPTIONS`).

    Returns {"shared": bytes, "name": str, "pipelined": bool}.
    """
    if INTERPRET:
        raise RuntimeError("compile_offline needs TRITON_INTERPRET unset (it builds GPU code)")
    jit_fn = KERNELS[kernel]
    while not isinstance(jit_fn, triton.runtime.JITFunction):
        jit_fn = jit_fn.fn  # unwrap the autotuner
    options = {**ALL_OPTIONS, **flags}
    signature, constants, attrs = {}, {}, {}
    for index, name in enumerate(jit_fn.arg_names):
        # What the launcher's specialisation sees for typical shapes: 16-byte-aligned
        # pointers and q/k/v/out strides divisible by 16.
        strided_io = name.startswith("stride_") and name[7:-1] in _IO_STRIDED
        if jit_fn.params[index].is_constexpr:
            signature[name], constants[name] = "constexpr", options[name]
        elif name in _IO_POINTERS:
            signature[name] = "*" + dtype
        elif name == "MASK":
            signature[name] = "*u8" if options["MASK_KIND"] == 1 else "*" + dtype
        elif name in _POINTER_TYPES:
            signature[name] = _POINTER_TYPES[name]
        elif name in ("scale", "softcap", "keep_scale"):
            signature[name] = "fp32"
        elif name in ("seed", "threshold"):
            signature[name] = "i64"
        else:
            signature[name] = "i32"
        if signature[name].startswith("*") or strided_io:
            attrs[(index,)] = [["tt.divisibility", 16]]
    compiled = triton.compile(
        ASTSource(jit_fn, signature, constants, attrs),
        target=GPUTarget("cuda", arch, 32),
        options={"num_warps": num_warps, "num_stages": num_stages},
    )
    return {
        "shared": compiled.metadata.shared,
        "name": compiled.metadata.name,
        # cp.async = global→shared copies issued ahead of use: the loop is software-pipelined.
        "pipelined": "cp.async" in compiled.asm["ptx"],
    }
