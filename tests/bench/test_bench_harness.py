"""The benchmark harness (``qkv.bench``): the FLOPs convention, the machine line, cases that
refuse with their backend's reason, and the GPU benchmark's clean exit without a GPU."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from qkv.bench.attention_cases import Case
from qkv.bench.hardware import attention_flops, machine_line, matmul_gflops

ROOT = Path(__file__).resolve().parents[2]


def test_attention_flops_follow_flashattention_convention() -> None:
    b, h, n, d = 2, 8, 1024, 64
    forward = attention_flops(b, h, n, n, d, causal=False, backward=False)
    assert forward == 4 * b * h * n * n * d  # two matmuls of 2·N²·d per head
    assert attention_flops(b, h, n, n, d, causal=True, backward=False) == forward / 2
    assert attention_flops(b, h, n, n, d, causal=False, backward=True) == 3.5 * forward
    assert attention_flops(b, h, n, n, d, causal=True, backward=True) == 1.75 * forward
    assert attention_flops(1, 1, 3, 5, 4, causal=False, backward=False) == 4 * 3 * 5 * 4
    case = Case(impl="auto", n=n, heads=h, dim=d, batch=b, causal=True, backward=True)
    assert case.flops == 1.75 * forward


def test_machine_line_names_cpu_capability_and_torch() -> None:
    line = machine_line()
    assert torch.backends.cpu.get_cpu_capability() in line
    assert f"torch {torch.__version__}" in line and "threads" in line


def test_cpu_matmul_ceiling_is_a_rate() -> None:
    """A 128³ matmul: 2·128³ flops over a positive time gives a finite, positive GFLOP/s."""
    gflops = matmul_gflops(torch.float32, size=128)
    assert 0 < gflops < 1e6


def test_a_backend_case_refuses_with_the_backends_reason() -> None:
    plain = Case(impl="flash-tiles", n=64, causal=False)
    assert "flash-tiles refuses" in plain.refusal() and "causal calls only" in plain.refusal()
    assert Case(impl="flash-tiles", n=64, causal=True).refusal() is None
    assert "softcap" in Case(impl="flash-tiles", n=64, causal=True, variant="softcap").refusal()
    assert Case(impl="tiled", n=64, variant="softcap").refusal() is None


def test_attention_gpu_benchmark_exits_cleanly_without_a_gpu() -> None:
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "attention_gpu.py"), "--quick"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "skipped" in done.stdout and "no CUDA GPU" in done.stdout


@pytest.mark.parametrize("path", sorted((ROOT / "src" / "qkv" / "bench").glob("*.py")), ids=str)
def test_bench_runs_attention_through_qkv_attention_not_import_qkv(path: Path) -> None:
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            assert "qkv" not in [alias.name for alias in node.names], f"{path.name}: import qkv"
        if isinstance(node, ast.ImportFrom) and node.module == "qkv":
            raise AssertionError(f"{path.name}: from qkv import ...; use qkv.attention")
