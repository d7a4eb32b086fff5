"""Fused attention on a GPU: qkv's Triton kernels beside PyTorch SDPA and FlexAttention.

bf16, B·N = 16k tokens, H·d = 2048 (B = 16384 / N, H = 2048 / d). For N = 1k..16k, d = 64 and
128, causal and not: forward and forward+backward TFLOP/s of

- ``qkv triton``  — ``qkv.attention(..., backend="triton")`` (autotuned; tuning excluded),
- ``sdpa best``   — ``F.scaled_dot_product_attention`` under each of its fused backends
                    (flash, cuDNN, efficient, via ``torch.nn.attention.sdpa_kernel``), the
                    fastest reported with its name,
- ``flex``        — ``torch.compile(flex_attention)`` with a block mask,

with the device's measured bf16 matmul TFLOP/s as the ceiling. Then sliding window, ALiBi and
soft-capping, which SDPA cannot fuse, against FlexAttention.

FLOPs (FlashAttention's convention): forward 4·B·H·N²·d, backward 2.5× forward, so
forward+backward 3.5× forward; halved when causal. Times are medians of CUDA-event timings.
The FLOPs formula, the timing, the matmul ceiling and the machine line come from
``qkv.bench.hardware``, shared with the CPU benchmark (``benchmarks/attention.py``).

    python benchmarks/attention_gpu.py            # full grid (several minutes: autotuning)
    python benchmarks/attention_gpu.py --quick    # N = 1k, 4k, 16k; d = 128
    python benchmarks/attention_gpu.py --out benchmarks/results/attention-gpu.md
    python benchmarks/attention_gpu.py --sizes 1024,4096,16384 --dims 64,128   # a budget
    TRITON_INTERPRET=1 python benchmarks/attention_gpu.py --dry-run   # every step, tiny, CPU

Without a CUDA GPU it prints why and exits 0. ``--dry-run`` runs the same steps on CPU
tensors under the Triton interpreter (N = 32, d = 16, B·H = 2; FlexAttention uncompiled;
host timings), so that the GPU run fails on nothing but the GPU.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from collections.abc import Callable

import torch

from qkv.bench.hardware import (
    CUDA_MATMUL_SIZE,
    attention_flops,
    cuda_time_ms,
    machine_line,
    matmul_gflops,
)

TOKENS, HIDDEN = 16384, 2048
# "cuda", or "cpu" for --dry-run (see the module docstring).
RUN = {"device": "cuda", "dry": False}


def _batch_heads(n: int, d: int) -> tuple[int, int]:
    """B = 16k tokens / N, H = 2048 / d; one sequence of two heads in the dry run."""
    if RUN["dry"]:
        return 1, 2
    return max(1, TOKENS // n), HIDDEN // d


def _time_ms(step: Callable[[], object]) -> float:
    if RUN["dry"]:  # host timing of the interpreter: proves the step runs, measures nothing
        start = time.perf_counter()
        step()
        return (time.perf_counter() - start) * 1e3
    return cuda_time_ms(step)


def _fwd_bwd(run: Callable[[], torch.Tensor], grad: torch.Tensor) -> Callable[[], None]:
    def step() -> None:
        run().backward(grad)

    return step


def _inputs(batch: int, heads: int, n: int, d: int, backward: bool):
    make = lambda: torch.randn(  # noqa: E731
        batch, heads, n, d, device=RUN["device"], dtype=torch.bfloat16, requires_grad=backward
    )
    return make(), make(), make()


def _qkv_runner(q, k, v, options: dict) -> Callable[[], torch.Tensor]:
    from qkv.attention import attention

    return lambda: attention(q, k, v, backend="triton", **options)


def _sdpa_runners(q, k, v, causal: bool) -> dict[str, Callable[[], torch.Tensor]]:
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    runners = {}
    for name in ("FLASH_ATTENTION", "CUDNN_ATTENTION", "EFFICIENT_ATTENTION"):
        backend = getattr(SDPBackend, name, None)
        if backend is None:
            continue

        def run(backend=backend) -> torch.Tensor:
            with sdpa_kernel([backend]):
                return F.scaled_dot_product_attention(q, k, v, is_causal=causal)

        runners[name.split("_")[0].lower()] = run
    return runners


_FLEX: dict[str, Callable] = {}


def _flex_runner(q, k, v, variant: str, n: int, heads: int, **params) -> Callable:
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention

    if "fn" not in _FLEX:  # eager in the dry run: CPU compilation would dominate it
        _FLEX["fn"] = flex_attention if RUN["dry"] else torch.compile(flex_attention, dynamic=False)
    flex = _FLEX["fn"]
    window, softcap = params.get("window"), params.get("softcap")
    slopes = params.get("slopes")

    def causal_mask(b, h, q_idx, kv_idx):
        return q_idx >= kv_idx

    def window_mask(b, h, q_idx, kv_idx):
        return (q_idx >= kv_idx) & (q_idx - kv_idx <= window)

    mask_mod = {"causal": causal_mask, "window": window_mask, "alibi": causal_mask}.get(variant)
    if variant == "softcap":
        mask_mod = causal_mask
    block_mask = None
    if mask_mod is not None:
        block_mask = create_block_mask(mask_mod, None, None, n, n, device=RUN["device"])
    score_mod = None
    if variant == "softcap":

        def score_mod(score, b, h, q_idx, kv_idx):
            return softcap * torch.tanh(score / softcap)

    elif variant == "alibi":

        def score_mod(score, b, h, q_idx, kv_idx):
            return score - slopes[h] * (q_idx - kv_idx).abs()

    return lambda: flex(q, k, v, score_mod=score_mod, block_mask=block_mask)


def _measure(
    make: Callable[..., Callable[[], torch.Tensor]], args: tuple, grad, backward: bool, **kw
) -> tuple[float | None, str]:
    """Time ``make(*args, **kw)()``: (milliseconds, "") or (None, why it could not run)."""
    try:
        run = make(*args, **kw)
        step = _fwd_bwd(run, grad) if backward else run
        return _time_ms(step), ""
    except Exception as error:  # a peer missing on this torch/GPU must not stop the table
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        return None, f"{type(error).__name__}: {str(error).splitlines()[0][:80]}"


def _cell(ms: float | None, flops: float, why: str) -> str:
    return f"{flops / ms / 1e9:.0f}" if ms is not None else f"n/a ({why})"


def core_table(sizes: list[int], dims: list[int], ceiling: float) -> list[str]:
    rows = [
        "| pass | causal | N | d | qkv triton | sdpa best (which) | flex | triton/sdpa |"
        " triton/flex | triton/ceiling |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for backward in (False, True):
        for causal in (False, True):
            for d in dims:
                for n in sizes:
                    batch, heads = _batch_heads(n, d)
                    q, k, v = _inputs(batch, heads, n, d, backward)
                    grad = torch.randn_like(q)
                    flops = attention_flops(batch, heads, n, n, d, causal=causal, backward=backward)
                    ours, why_ours = _measure(
                        _qkv_runner, (q, k, v, {"causal": causal}), grad, backward
                    )
                    sdpa = {}
                    for name, runner in _sdpa_runners(q, k, v, causal).items():
                        ms, _ = _measure(lambda run: run, (runner,), grad, backward)
                        if ms is not None:
                            sdpa[name] = ms
                    variant = "causal" if causal else "full"
                    flex, why_flex = _measure(
                        _flex_runner, (q, k, v, variant, n, heads), grad, backward
                    )
                    best = min(sdpa, key=sdpa.get) if sdpa else None
                    sdpa_cell = (
                        f"{flops / sdpa[best] / 1e9:.0f} ({best})" if best else "n/a (none ran)"
                    )
                    ratio = lambda a, b: f"{b / a:.2f}" if a and b else "–"  # noqa: E731
                    rows.append(
                        f"| {'fwd+bwd' if backward else 'fwd'} | {causal} | {n} | {d} | "
                        f"{_cell(ours, flops, why_ours)} | {sdpa_cell} | "
                        f"{_cell(flex, flops, why_flex)} | "
                        f"{ratio(ours, sdpa[best] if best else None)} | {ratio(ours, flex)} | "
                        f"{(flops / ours / 1e9 / ceiling) if ours else 0:.2f} |"
                    )
                    print(rows[-1], flush=True)
                    del q, k, v, grad
                    if torch.cuda.is_available():
                        torch.cuda.empty_cache()
    return rows


def variants_table(n: int, d: int) -> list[str]:
    """Sliding window, ALiBi, softcap (all causal) vs FlexAttention, forward and fwd+bwd."""
    from qkv.attention.alibi import alibi_slopes

    window, softcap = (8 if RUN["dry"] else 512), 30.0
    batch, heads = _batch_heads(n, d)
    slopes = alibi_slopes(heads, device=RUN["device"])
    variants = {
        f"window {window}": ({"causal": True, "window": (window, 0)}, "window"),
        "alibi": ({"causal": True, "alibi_slopes": slopes}, "alibi"),
        "softcap 30": ({"causal": True, "softcap": softcap}, "softcap"),
    }
    rows = [
        f"| variant (causal, N={n}, d={d}) | pass | qkv triton ms | flex ms | flex/triton |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    for label, (options, flex_variant) in variants.items():
        for backward in (False, True):
            q, k, v = _inputs(batch, heads, n, d, backward)
            grad = torch.randn_like(q)
            ours, why = _measure(_qkv_runner, (q, k, v, options), grad, backward)
            flex, why_flex = _measure(
                _flex_runner,
                (q, k, v, flex_variant, n, heads),
                grad,
                backward,
                window=window,
                softcap=softcap,
                slopes=slopes,
            )
            fmt = lambda ms, w: f"{ms:.3f}" if ms is not None else f"n/a ({w})"  # noqa: E731
            speedup = f"{flex / ours:.2f}" if ours and flex else "–"
            rows.append(
                f"| {label} | {'fwd+bwd' if backward else 'fwd'} | {fmt(ours, why)} | "
                f"{fmt(flex, why_flex)} | {speedup} |"
            )
            print(rows[-1], flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N = 1k, 4k, 16k; d = 128")
    parser.add_argument("--out", help="also write the tables as markdown to this file")
    parser.add_argument("--sizes", help="comma-separated N (default 1k..16k; --quick 1k,4k,16k)")
    parser.add_argument("--dims", help="comma-separated head dims (default 64,128)")
    parser.add_argument("--variants-n", type=int, help="N of the variants table (default 8192)")
    parser.add_argument(
        "--dry-run", action="store_true", help="every step tiny on CPU (needs TRITON_INTERPRET=1)"
    )
    args = parser.parse_args(argv)
    if args.dry_run:
        return _dry_run(args)
    if not torch.cuda.is_available():
        print("attention_gpu: skipped — no CUDA GPU here (this benchmark needs one).")
        return 0
    from qkv.attention.triton_support import triton_available

    reason = triton_available()
    if reason is not None:
        print(f"attention_gpu: skipped — the triton backend is unavailable: {reason}")
        return 0
    torch.manual_seed(0)
    sizes = [1024, 4096, 16384] if args.quick else [1024, 2048, 4096, 8192, 16384]
    dims = [128] if args.quick else [64, 128]
    sizes = _ints(args.sizes) or sizes
    dims = _ints(args.dims) or dims
    variants_n = args.variants_n or (4096 if args.quick else 8192)
    device = torch.cuda.get_device_name()
    ceiling = matmul_gflops(torch.bfloat16, "cuda") / 1e3  # TFLOP/s
    return _report(args, device, ceiling, sizes, dims, variants_n)


def _ints(text: str | None) -> list[int]:
    return [int(part) for part in text.split(",")] if text else []


def _dry_run(args: argparse.Namespace) -> int:
    import os

    if os.environ.get("TRITON_INTERPRET") != "1":
        print("attention_gpu --dry-run: set TRITON_INTERPRET=1 (the kernels then run on CPU)")
        return 2
    RUN.update(device="cpu", dry=True)
    torch.manual_seed(0)
    ceiling = matmul_gflops(torch.bfloat16, "cpu", size=256) / 1e3
    return _report(args, "cpu (dry run: Triton interpreter)", ceiling, [32], [16], 32)


def _report(
    args: argparse.Namespace,
    device: str,
    ceiling: float,
    sizes: list[int],
    dims: list[int],
    variants_n: int,
) -> int:
    header = [
        f"# Fused attention on {device}",
        "",
        f"Machine: {machine_line(RUN['device'])}.",
        "",
        f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC; "
        f"bf16; B·N = {TOKENS}, H·d = {HIDDEN}; TFLOP/s (medians). "
        f"Measured bf16 matmul ceiling ({CUDA_MATMUL_SIZE}³, best of 20): {ceiling:.0f} TFLOP/s.",
        f"Command: python benchmarks/attention_gpu.py {' '.join(sys.argv[1:])}".rstrip(),
        "",
    ]
    print("\n".join(header), flush=True)
    rows = core_table(sizes, dims, ceiling)
    print()
    extra = variants_table(variants_n, 16 if RUN["dry"] else 128)
    if args.out:
        text = "\n".join([*header, *rows, "", *extra, ""])
        with open(args.out, "w") as handle:
            handle.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
