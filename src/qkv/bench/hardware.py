"""What a benchmark measures against: attention's FLOPs, the machine's matmul ceiling, and a
header line naming the machine. Shared by the CPU harness (``qkv bench``,
``benchmarks/attention.py``) and ``benchmarks/attention_gpu.py``.

FLOPs follow FlashAttention's convention (Dao et al., benchmarks of flash-attention): the
forward pass is two matmuls of 2·N²·d each per head, 4·B·H·N²·d; the backward is 2.5× the
forward (five matmuls), so forward+backward is 3.5× the forward; causal halves both (the
masked upper triangle counts as work not done). Softmax and masking are not counted.
"""

from __future__ import annotations

import math
import os
import platform
import statistics
import time
from collections.abc import Callable

import torch

from qkv.hardware import probe

CPU_MATMUL_SIZE = 2048  # a 2048³ fp32 matmul takes ~0.1-0.5 s on a few CPU cores
CUDA_MATMUL_SIZE = 8192  # large enough to reach tensor-core peak on Ampere/Hopper


def attention_flops(
    batch: int, heads: int, n_q: int, n_k: int, head_dim: int, *, causal: bool, backward: bool
) -> float:
    """FLOPs of attention over (batch, heads, n_q queries × n_k keys, head_dim).

    4·B·H·Nq·Nk·d forward; ×3.5 with the backward; halved if causal.

    Example::

        >>> attention_flops(1, 8, 4096, 4096, 64, causal=True, backward=True) / 1e9
        60.13...
    """
    flops = 4.0 * batch * heads * n_q * n_k * head_dim
    if backward:
        flops *= 3.5
    return flops / 2 if causal else flops


def cuda_time_ms(fn: Callable[[], object], *, warmup: int = 3, reps: int = 10) -> float:
    """Median milliseconds of ``fn`` over ``reps`` calls, each timed with CUDA events.

    Events are recorded on the current stream around each call, so the time is the GPU's,
    not the host's launch time.
    """
    return statistics.median(_cuda_times_ms(fn, warmup=warmup, reps=reps))


def _cuda_times_ms(fn: Callable[[], object], *, warmup: int, reps: int) -> list[float]:
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return times


def matmul_gflops(
    dtype: torch.dtype, device: str | torch.device = "cpu", *, size: int | None = None
) -> float:
    """This machine's measured dense matmul GFLOP/s in ``dtype``: the ceiling attention sits
    under (its FLOPs are matmuls).

    The best of several runs of a size³ matmul (a ceiling, not a typical time): timed with
    ``time.perf_counter`` on CPU (2048³ by default) and with CUDA events on a GPU (8192³).

    Example::

        >>> matmul_gflops(torch.float32)  # e.g. ~200 on 2 AVX-512 cores
        >>> matmul_gflops(torch.bfloat16, "cuda") / 1e3  # TFLOP/s
    """
    device = torch.device(device)
    cuda = device.type == "cuda"
    size = size or (CUDA_MATMUL_SIZE if cuda else CPU_MATMUL_SIZE)
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    if cuda:
        seconds = min(_cuda_times_ms(lambda: a @ b, warmup=5, reps=20)) / 1e3
    else:
        a @ b  # warm-up
        times = []
        for _ in range(5):
            start = time.perf_counter()
            a @ b
            times.append(time.perf_counter() - start)
        seconds = min(times)
    return 2 * size**3 / seconds / 1e9


def _cpu_name() -> str:
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            name = next(line.split(":", 1)[1].strip() for line in info if "model name" in line)
    except (OSError, StopIteration):
        pass
    return name


def machine_line(device: str | torch.device = "cpu") -> str:
    """One line naming the machine a benchmark ran on: CPU model, cores, the vector ISA
    PyTorch's CPU kernels dispatch to and whether bf16 is native there
    (:func:`qkv.hardware.probe`), torch version, threads and load; with a CUDA
    ``device`` also the GPU, its compute capability and the CUDA version.

    Example::

        >>> machine_line()
        'AMD EPYC, 2 cores (AVX2, no native bf16), torch 2.13.0+cpu, 2 threads, load average ...'
    """
    load = os.getloadavg() if hasattr(os, "getloadavg") else (math.nan,) * 3
    isa, native = torch.backends.cpu.get_cpu_capability(), probe("cpu")
    # e.g. "AVX2, no native bf16" or "AVX512, AMX, native bf16"
    capability = native.describe() if native.name == isa else f"{isa}, {native.describe()}"
    line = (
        f"{_cpu_name()}, {os.cpu_count()} cores ({capability}), torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, load average {load[0]:.1f} / {load[1]:.1f}"
    )
    device = torch.device(device)
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        line += (
            f"; GPU {torch.cuda.get_device_name(device)} (sm{major}{minor}, "
            f"{'native' if major >= 8 else 'no native'} bf16), "
            f"CUDA {torch.version.cuda}"
        )
    return line
