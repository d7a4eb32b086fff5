"""Decode speed: qkv.generate (static KV cache) vs transformers' generate, same weights.

GPT-2 small shape (124M) with random weights, batch 1, a 32-token prompt, greedy decoding of
256 new tokens, fp32 and bf16, on CPU. Prints a table of medians (tokens/s) and the ratio.

    python benchmarks/generation.py            # full: 3 repeats, 256 new tokens
    python benchmarks/generation.py --quick    # 1 repeat, 64 new tokens
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

from qkv.hardware import probe


def gpt2_pair(dtype: torch.dtype, layers: int):
    import transformers

    from qkv.models import GPT, preset

    hf_config = transformers.GPT2Config(n_layer=layers, resid_pdrop=0, embd_pdrop=0, attn_pdrop=0)
    hf = transformers.GPT2LMHeadModel(hf_config).eval()
    ours = GPT(preset("gpt2", n_layer=layers)).eval()
    conv1d = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
    state = {
        name: (tensor.t() if name.endswith(conv1d) else tensor)
        for name, tensor in hf.state_dict().items()
        if not name.endswith((".attn.bias", ".attn.masked_bias"))
    }
    ours.load_state_dict(state)
    return hf.to(dtype), ours.to(dtype)


def measure(dtype_name: str, args, new_tokens: int, repeats: int) -> str:
    """One table row; qkv and transformers runs alternate so machine-load drift hits both."""
    import qkv

    torch.manual_seed(0)
    hf, ours = gpt2_pair(getattr(torch, dtype_name), args.layers)
    ids = torch.randint(0, 50257, (1, args.prompt))

    def run_qkv() -> torch.Tensor:
        return qkv.generate(ours, ids, max_new_tokens=new_tokens, temperature=0)

    def run_hf() -> torch.Tensor:
        return hf.generate(
            ids,
            max_new_tokens=new_tokens,
            min_new_tokens=new_tokens,
            do_sample=False,
            pad_token_id=0,
        )

    with torch.inference_mode():
        # Warm-up both (first-call allocations, oneDNN kernel selection).
        qkv.generate(ours, ids, max_new_tokens=4, temperature=0)
        hf.generate(ids, max_new_tokens=4, min_new_tokens=4, do_sample=False, pad_token_id=0)
        qkv_times, hf_times = [], []
        for _ in range(repeats):
            start = time.perf_counter()
            qkv_out = run_qkv()
            qkv_times.append(time.perf_counter() - start)
            start = time.perf_counter()
            hf_out = run_hf()
            hf_times.append(time.perf_counter() - start)
    qkv_time, hf_time = statistics.median(qkv_times), statistics.median(hf_times)
    same = torch.equal(qkv_out, hf_out)
    return (
        f"| {dtype_name} | {new_tokens / qkv_time:.1f} | {new_tokens / hf_time:.1f} | "
        f"{hf_time / qkv_time:.2f}x | {same} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 repeat, 64 new tokens")
    parser.add_argument("--new-tokens", type=int, default=None)
    parser.add_argument("--prompt", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--dtypes", default="float32,bfloat16")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    new_tokens = args.new_tokens or (64 if args.quick else 256)
    repeats = args.repeats or (1 if args.quick else 3)

    print(
        f"# {platform.processor() or platform.machine()} ({probe('cpu').describe()}), "
        f"torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, {time.strftime('%Y-%m-%d')}"
    )
    print(
        f"# gpt2 shape ({args.layers} layers), batch 1, prompt {args.prompt}, "
        f"{new_tokens} new tokens greedy, median of {repeats}"
    )
    print("| dtype | qkv.generate tok/s | transformers generate tok/s | ratio | same tokens |")
    print("| --- | --- | --- | --- | --- |")
    for dtype_name in args.dtypes.split(","):
        print(measure(dtype_name, args, new_tokens, repeats), flush=True)


if __name__ == "__main__":
    main()
