"""Model-family benchmarks, qkv beside transformers in one run (random weights, real shapes).

(a) SmolLM2-135M shape (Llama: 30 layers, 576 wide, 9 heads / 3 kv heads), batch 1, greedy,
    32 new tokens after a 16-token prompt, fp32: decode tok/s of ``qkv.generate`` and
    transformers' ``generate`` on the same weights (``qkv.save(format="hf")``), interleaved,
    median of ``--repeats``; fraction of the memory-bandwidth ceiling (weights read per token).
(b) Gemma-2-2B attention shape (8 heads / 4 kv, head_dim 256, soft-cap 50, a sliding and a
    global layer), prefill of N tokens: the largest single tensor any op makes (a proxy for
    attention memory: an N×N score matrix shows up as Hq·N² elements) for qkv (auto backend)
    against transformers eager and sdpa.

Run: ``python benchmarks/model_families.py [--repeats 2] [--out FILE]``.
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import tempfile
import time

import torch
from torch.utils._python_dispatch import TorchDispatchMode

import qkv
from qkv.bench.hardware import machine_line
from qkv.models import GPT, GPTConfig


def smollm2_shape() -> GPT:
    config = GPTConfig(
        vocab_size=49152, n_positions=2048, n_layer=30, n_head=9, n_kv_head=3, n_embd=576,
        intermediate_size=1536, position="rotary", norm="rmsnorm", mlp="swiglu", bias=False,
        rope_theta=100000.0, tie_embeddings=True,
    )  # fmt: skip
    return GPT(config).eval()


def gemma2_attention_shape(n: int) -> GPT:
    config = GPTConfig(
        vocab_size=256, n_positions=n, n_layer=2, n_head=8, n_kv_head=4, n_embd=2304,
        head_dim=256, intermediate_size=512, position="rotary", norm="gemma_rmsnorm",
        mlp="geglu", bias=False, sandwich_norm=True, embed_scale=True, sliding_window=4096
        if n > 4096 else n // 2, layer_types=("sliding", "global"), attn_softcap=50.0,
        final_softcap=30.0, query_pre_attn_scalar=256.0, tie_embeddings=True,
    )  # fmt: skip
    return GPT(config).eval()


def decode_rows(repeats: int) -> list[str]:
    import transformers

    model = smollm2_shape()
    with tempfile.TemporaryDirectory() as folder:
        qkv.save(model, folder, format="hf")
        hf = transformers.AutoModelForCausalLM.from_pretrained(folder).eval()
    prompt = torch.randint(0, 49152, (1, 16), generator=torch.Generator().manual_seed(0))
    new = 32

    def ours() -> torch.Tensor:
        return qkv.generate(model, prompt, max_new_tokens=new, temperature=0)

    def theirs() -> torch.Tensor:
        with torch.no_grad():
            return hf.generate(
                prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=new,
                min_new_tokens=new, do_sample=False, pad_token_id=0, eos_token_id=None,
            )  # fmt: skip

    times: dict[str, list[float]] = {"qkv": [], "hf": []}
    tokens = {}
    ours(), theirs()  # warm-up
    for _ in range(repeats):
        for name, run in (("qkv", ours), ("hf", theirs)):
            start = time.perf_counter()
            tokens[name] = run()
            times[name].append(time.perf_counter() - start)
    rate = {name: new / statistics.median(t) for name, t in times.items()}
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    same = tokens["qkv"].tolist() == tokens["hf"].tolist()
    return [
        f"| SmolLM2-135M shape, 1x16+32 greedy, end to end | float32 | {rate['qkv']:.1f} tok/s "
        f"| {rate['hf']:.1f} tok/s | {rate['qkv'] / rate['hf']:.2f}x | weights "
        f"{weight_bytes / 2**20:.0f} MiB read per token; identical tokens: {same} |"
    ]


class LargestTensor(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        out = func(*args, **(kwargs or {}))
        for tensor in out if isinstance(out, tuple | list) else (out,):
            if isinstance(tensor, torch.Tensor):
                self.largest = max(self.largest, tensor.numel() * tensor.element_size())
        return out


def prefill_rows(n: int) -> list[str]:
    import transformers

    model = gemma2_attention_shape(n)
    ids = torch.randint(0, 256, (1, n), generator=torch.Generator().manual_seed(1))
    sizes = {}
    with torch.no_grad(), LargestTensor() as probe:
        model(ids, last_only=True)
    sizes["qkv"] = probe.largest
    with tempfile.TemporaryDirectory() as folder:
        qkv.save(model, folder, format="hf")
        for implementation in ("eager", "sdpa"):
            try:
                hf = transformers.AutoModelForCausalLM.from_pretrained(
                    folder, attn_implementation=implementation
                ).eval()
            except ValueError:  # transformers refuses sdpa for Gemma 2 (soft-cap)
                sizes[implementation] = float("nan")
                continue
            with torch.no_grad(), LargestTensor() as probe:
                hf(ids, logits_to_keep=1)
            sizes[implementation] = probe.largest
            del hf
    mib = {k: v / 2**20 for k, v in sizes.items()}
    return [
        f"| Gemma-2 attention shape, prefill N={n}, largest tensor | float32 "
        f"| {mib['qkv']:.1f} MiB "
        f"| eager {mib['eager']:.1f} MiB, sdpa {mib['sdpa']:.1f} MiB (nan: refused) | "
        f"{mib['eager'] / mib['qkv']:.1f}x less than eager | one N×N×Hq score tensor = "
        f"{8 * n * n * 4 / 2**20:.0f} MiB |"
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--prefill", type=int, nargs="*", default=[2048])
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    lines = [
        f"machine: {machine_line()}; capability {torch.backends.cpu.get_cpu_capability()}; "
        f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC",
        "",
        "| workload | dtype | qkv | transformers | ratio | notes |",
        "| --- | --- | ---: | ---: | ---: | --- |",
    ]
    for n in args.prefill:
        lines += prefill_rows(n)
        print(lines[-1], flush=True)
    lines += decode_rows(args.repeats)
    print("\n".join(lines))
    if args.out:
        with open(args.out, "a", encoding="utf-8") as handle:
            handle.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
