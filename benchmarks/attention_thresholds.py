"""Where ``auto``'s CPU crossovers lie, per CPU capability (issue #17 item 3).

``auto`` makes three size decisions on CPU (``qkv.attention.dispatch``): ``math`` instead of
SDPA's fused kernel for small problems (up to ``math_max_qk`` scores per head in fp32,
``math_max_qk_lowp`` in bf16, and up to ``math_max_scores`` in all), and the one-shot
``reference`` instead of the blockwise backends for calls SDPA cannot serve (up to
``reference_max_qk`` scores per head). This script times both sides of each decision,
interleaved, in CPU time of one thread (best of several runs of fwd+bwd; forward only for
the total size), and reports the largest size at which the small-problem path still wins, for each
capability it can run: the native one, and the ones PyTorch can be told to use instead
(``ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2`` on an AVX-512 machine; ``default``,
no SIMD, anywhere), each in a fresh subprocess since the variables are read at import.

    python benchmarks/attention_thresholds.py                 # every capability it can run
    python benchmarks/attention_thresholds.py --out benchmarks/results/attention-thresholds-cpu.md

The numbers go, by hand, into ``src/qkv/attention/thresholds.py`` (MEASURED).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import time

N_MATH = [16, 32, 64, 128, 256]  # fwd+bwd, causal, (8, 4, N, 32): math vs sdpa
GROUPS_TOTAL = [16, 64, 256]  # forward, (B·H, N = 128, 32): math vs sdpa, all scores
N_REFERENCE = [64, 128, 256, 512]  # fwd+bwd, softcap, (2, 4, N, 32): reference vs blockwise
NAMES = {
    "math_qk": "math vs sdpa, fp32 fwd+bwd causal (8, 4, N, 32): N²",
    "math_qk_lowp": "math vs sdpa, bf16 fwd+bwd causal (8, 4, N, 32): N²",
    "math_scores": "math vs sdpa, fp32 forward (B·H, N=128, 32): B·H·N²",
    "reference_qk": "reference vs tiled, fp32 fwd+bwd softcap (2, 4, N, 32): N²",
}
EMULATE = {  # capability name -> environment that makes PyTorch dispatch to it
    "AVX2": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"},
    "DEFAULT": {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41"},
}


def _best_pair(first, second, reps: int) -> tuple[float, float]:
    """Best-of-``reps`` CPU ms (``time.process_time``) of two callables timed alternately.

    On a shared, oversubscribed host (load 8-10 on 2 cores, 2026-12-02) wall-clock medians
    of a 0.1 ms call read 10-200 ms: every op waited to be scheduled. The process's own CPU
    time of one thread (``--threads 1``) does not count the waits, and the minimum keeps the
    least disturbed run: the crossover is a ratio of work, which this measures.
    """
    a, b = [], []
    first(), second()  # warm-up
    for _ in range(reps):
        for fn, out in ((first, a), (second, b)):
            start = time.process_time()
            fn()
            out.append((time.process_time() - start) * 1e3)
    return min(a), min(b)


def _step(backend: str, q, k, v, backward: bool, **options):
    import torch

    import qkv

    def run() -> None:
        out = qkv.attention(q, k, v, backend=backend, **options)
        if backward:
            torch.autograd.grad(out, (q, k, v), torch.ones_like(out))

    return run


def measure(reps: int, threads: int) -> dict:
    """Every crossover of this process's capability, as a JSON-able dict."""
    import torch

    from qkv.bench.hardware import machine_line

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    make = lambda *shape: torch.randn(*shape, requires_grad=True)  # noqa: E731
    rows: dict[str, list] = {KEY: [] for KEY in NAMES}
    for key, dtype in (("math_qk", torch.float32), ("math_qk_lowp", torch.bfloat16)):
        for n in N_MATH:
            q, k, v = (make(8, 4, n, 32).to(dtype).detach().requires_grad_() for _ in range(3))
            small, fused = _best_pair(
                _step("math", q, k, v, True, causal=True),
                _step("sdpa", q, k, v, True, causal=True),
                reps,
            )
            rows[key].append([n * n, small, fused])
    for groups in GROUPS_TOTAL:
        q, k, v = make(groups, 1, 128, 32), make(groups, 1, 128, 32), make(groups, 1, 128, 32)
        with torch.no_grad():
            small, fused = _best_pair(
                _step("math", q, k, v, False), _step("sdpa", q, k, v, False), reps
            )
        rows["math_scores"].append([groups * 128 * 128, small, fused])
    for n in N_REFERENCE:
        q, k, v = make(2, 4, n, 32), make(2, 4, n, 32), make(2, 4, n, 32)
        small, blockwise = _best_pair(
            _step("reference", q, k, v, True, softcap=30.0),
            _step("tiled", q, k, v, True, softcap=30.0),
            reps,
        )
        rows["reference_qk"].append([n * n, small, blockwise])
    return {
        "capability": torch.backends.cpu.get_cpu_capability(),
        "machine": machine_line(),
        "rows": rows,
    }


def crossover(rows: list[list[float]]) -> int | None:
    """The largest size up to which the small-problem path wins at every measured size."""
    best = None
    for size, small, other in rows:
        if small > other:
            break
        best = int(size)
    return best


def _run_capability(env: dict[str, str] | None, reps: int, threads: int) -> dict:
    full = {**os.environ, **(env or {})}
    result = subprocess.run(
        [sys.executable, __file__, "--measure", "--reps", str(reps), "--threads", str(threads)],
        env=full, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(result.stdout.strip().splitlines()[-1])


def report(results: list[tuple[str, dict]]) -> list[str]:
    lines = [
        "| capability | how | math_max_qk | math_max_qk_lowp | math_max_scores "
        "| reference_max_qk |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    detail = []
    for how, result in results:
        rows = result["rows"]
        cells = [crossover(rows[key]) for key in NAMES]
        lines.append(
            f"| {result['capability']} | {how} | "
            + " | ".join("never" if c is None else str(c) for c in cells)
            + " |"
        )
        title = f"{result['capability']} ({how}): CPU ms, best of runs"
        detail += ["", title, ""]
        detail += [
            "| decision | size | small ms | other ms | other/small |",
            "| --- | ---: | ---: | ---: | ---: |",
        ]
        for key, name in NAMES.items():
            for size, small, other in rows[key]:
                detail.append(
                    f"| {name} | {int(size)} | {small:.3f} | {other:.3f} | {other / small:.2f} |"
                )
    return lines + detail


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="also write the markdown here")
    parser.add_argument("--reps", type=int, default=15, help="timed runs per cell (best of)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (CPU time of each)")
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:  # the subprocess: one capability, JSON on the last line
        print(json.dumps(measure(args.reps, args.threads)))
        return 0
    native = _run_capability(None, args.reps, args.threads)
    results = [("native", native)]
    for name, env in EMULATE.items():
        if name != native["capability"]:
            results.append(("emulated: " + " ".join(f"{k}={v}" for k, v in env.items()),
                            _run_capability(env, args.reps, args.threads)))  # fmt: skip
    header = [
        "# auto's CPU thresholds, measured per capability",
        "",
        f"Machine: {native['machine']}.",
        f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC; fp32; CPU time of "
        f"{args.threads} torch thread(s); "
        f"best of {args.reps} interleaved runs; load average at start "
        f"{os.getloadavg()[0]:.1f}. "
        "Command: python benchmarks/attention_thresholds.py",
        "",
        "CPU time of the process (time.process_time): the host was shared and oversubscribed, "
        "so wall-clock times measured the scheduler, not the kernels. "
        "Each threshold is the largest measured size up to which the small-problem path "
        "(math, or reference) was at least as fast at every smaller measured size; "
        "'never': it lost at the smallest.",
        "",
    ]  # fmt: skip
    text = "\n".join([*header, *report(results), ""])
    print(text)
    if args.out:
        with open(args.out, "w") as handle:
            handle.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
