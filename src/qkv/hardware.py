"""What the machine computes natively, and the precision ``auto`` picks from it.

Layer-neutral (torch only, no qkv imports), so training, generation and the benchmarks ask
the same probe. bf16 pays only where the hardware has bf16 arithmetic: on a CPU the
AVX512-BF16 or AMX-BF16 instructions (and PyTorch dispatching to AVX-512 kernels), on CUDA
compute capability 8.0 (Ampere) or newer. Elsewhere every bf16 op is emulated in fp32 with
conversions around it: on a 2-core AVX2 EPYC (2026-12-01) the bf16 training preset ran 18×
slower than fp32 (``benchmarks/results/train-cpu.md``).

An AVX2 machine can be emulated on a newer CPU with ``ATEN_CPU_CAPABILITY=avx2
ONEDNN_MAX_CPU_ISA=AVX2``; the probe then reports ``AVX2`` (the ISA PyTorch dispatches to
caps what its kernels use, whatever ``/proc/cpuinfo`` lists). Tests monkeypatch
:func:`cpu_capability` / :func:`cpu_flags`.

Example::

    >>> probe("cpu")
    Capability(device='cpu', name='AVX512-BF16', native_bf16=True)
    >>> choose_precision("auto", probe("cpu"))
    Precision(dtype='bf16', capability=..., warning=None)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

import torch

PRECISIONS = ("auto", "fp32", "bf16")
PrecisionName = Literal["auto", "fp32", "bf16"]
# ISAs below AVX-512 (PyTorch's names): their kernels have no bf16 arithmetic.
_SLOW_ISAS = ("DEFAULT", "NO AVX", "AVX", "AVX2", "VSX", "ZVECTOR", "SVE", "NEON")


@dataclass(frozen=True, kw_only=True)
class Capability:
    """The machine a computation runs on: ``name`` is ``AVX2``, ``AVX512``, ``AVX512-BF16``,
    ``AMX`` (CPU) or ``sm80`` (CUDA compute capability); ``native_bf16`` says whether bf16
    arithmetic runs in hardware there."""

    device: str
    name: str
    native_bf16: bool

    def describe(self) -> str:
        """``'AVX2, no native bf16'`` / ``'sm90, native bf16'``: for result headers."""
        return f"{self.name}, {'native' if self.native_bf16 else 'no native'} bf16"


@dataclass(frozen=True, kw_only=True)
class Precision:
    """What a ``--precision`` request resolved to: ``dtype`` is ``fp32`` or ``bf16``;
    ``warning`` is one line to show when bf16 was asked for without hardware support."""

    requested: str
    dtype: Literal["fp32", "bf16"]
    capability: Capability
    warning: str | None = None

    @property
    def torch_dtype(self) -> torch.dtype:
        return torch.bfloat16 if self.dtype == "bf16" else torch.float32

    def record(self) -> dict[str, object]:
        """The JSON a run records (``run.json``): capability and chosen precision."""
        return {
            "device": self.capability.device,
            "capability": self.capability.name,
            "native_bf16": self.capability.native_bf16,
            "precision_requested": self.requested,
            "precision": self.dtype,
        }


def cpu_capability() -> str:
    """The vector ISA PyTorch's CPU kernels dispatch to (``AVX2``, ``AVX512``, ...)."""
    return torch.backends.cpu.get_cpu_capability()


def cpu_flags() -> frozenset[str]:
    """The CPU feature flags of ``/proc/cpuinfo`` (empty where there is none, e.g. macOS)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def _onednn_capped() -> bool:
    """True when ``ONEDNN_MAX_CPU_ISA`` keeps oneDNN below AVX-512 (an emulated older CPU)."""
    isa = os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper()
    return bool(isa) and not isa.startswith(("AVX512", "AVX10", "ALL"))


def probe(device: str | torch.device = "cpu") -> Capability:
    """The capability of ``device`` (``cpu``, ``cuda``, ``cuda:N``); see the module docstring.

    Example::

        >>> probe("cpu").name  # an AVX2 laptop
        'AVX2'
    """
    device = torch.device(device)
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        return Capability(device="cuda", name=f"sm{major}{minor}", native_bf16=major >= 8)
    if device.type != "cpu":
        return Capability(device=device.type, name=device.type, native_bf16=False)
    isa = cpu_capability()
    if isa.upper() in _SLOW_ISAS or _onednn_capped():
        return Capability(device="cpu", name=isa, native_bf16=False)
    flags = cpu_flags()
    if "amx_bf16" in flags:
        return Capability(device="cpu", name="AMX", native_bf16=True)
    if "avx512_bf16" in flags:
        return Capability(device="cpu", name="AVX512-BF16", native_bf16=True)
    return Capability(device="cpu", name=isa, native_bf16=False)


def bf16_warning(capability: Capability) -> str:
    """The one line said when bf16 is requested where it is emulated."""
    if capability.device == "cpu":
        need, cost = "AVX512-BF16 or AMX", " (training measured 18× slower than fp32 on AVX2)"
    else:
        need, cost = "compute capability 8.0 (Ampere) or newer", ""
    return (
        f"warning: bf16 requested on {capability.device} {capability.name}, which has no "
        f"native bf16 (needs {need}): it is emulated, so compute-bound work runs slower than "
        f"fp32{cost}; pass --precision auto or fp32"
    )


def choose_precision(requested: str, capability: Capability) -> Precision:
    """Resolve ``auto`` / ``fp32`` / ``bf16`` on ``capability``: ``auto`` is bf16 only where
    it is native; an explicit ``bf16`` is honoured, with a warning where it is emulated.

    Raises ValueError for another name.
    """
    if requested not in PRECISIONS:
        raise ValueError(
            f"precision must be one of {', '.join(PRECISIONS)}, got {requested!r}; "
            "auto picks bf16 where the hardware computes it natively, else fp32"
        )
    if requested == "fp32":
        return Precision(requested=requested, dtype="fp32", capability=capability)
    if requested == "auto":
        dtype: Literal["fp32", "bf16"] = "bf16" if capability.native_bf16 else "fp32"
        return Precision(requested=requested, dtype=dtype, capability=capability)
    warning = None if capability.native_bf16 else bf16_warning(capability)
    return Precision(requested=requested, dtype="bf16", capability=capability, warning=warning)


def resolve_precision(requested: str, device: str | torch.device = "cpu") -> Precision:
    """:func:`choose_precision` on :func:`probe` of ``device``."""
    return choose_precision(requested, probe(device))
