"""Activation patching and hook overhead, qkv beside TransformerLens, in one run.

1. A full layer × head ``hook_z`` patching sweep (every position at once) on a
   GPT-2-124M-shaped model with random weights and 20-token prompts: qkv's
   ``interp.patch_heads`` (stacked forward passes) against TransformerLens's
   ``patching.get_act_patch_attn_head_out_all_pos`` (one forward per head) on a
   TransformerBridge around transformers' GPT2LMHeadModel holding the same weights. Both
   compute the same thing (TransformerLens runs the corrupted prompt with clean activations
   patched in, so qkv is called with the prompts in that order), and the two grids are
   checked equal before timing.
2. Hooks available but none asked for: the plain forward's median time, and the cost of the
   hook points in it (each unhooked point is one Python call that returns its input; their
   count per forward × the measured cost of one call), as a ratio to the forward without them.

Run ``python benchmarks/interp.py`` (``--reps N``, ``--out FILE`` writes the markdown).
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import time
from pathlib import Path

import torch
import transformers

import qkv
from qkv import interp
from qkv.bench.hardware import machine_line
from qkv.nn.hooks import HookPoint


def _seconds(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def _pair(
    n_layer: int = 12,
) -> tuple[qkv.models.GPT, transformers.GPT2LMHeadModel, transformers.GPT2Config]:
    """qkv GPT-2 124M (or its first ``n_layer`` layers) with random weights and a
    transformers copy of the same weights."""
    torch.manual_seed(0)
    ours = qkv.models.GPT(qkv.models.preset("gpt2", n_layer=n_layer)).eval()
    hf_config = transformers.GPT2Config(
        n_layer=n_layer, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0
    )
    hf = transformers.GPT2LMHeadModel(hf_config).eval()
    conv1d = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
    hf_state = {
        name: tensor.t() if name.endswith(conv1d) else tensor
        for name, tensor in ours.state_dict().items()
    }
    missing, _ = hf.load_state_dict(hf_state, strict=False)
    assert all(name.endswith((".attn.bias", ".attn.masked_bias")) for name in missing), missing
    return ours, hf, hf_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--n-layer", type=int, default=12,
        help="layers of the GPT-2-shaped model (default 12 = GPT-2 124M; fewer on a busy CPU)",
    )  # fmt: skip
    args = parser.parse_args()

    from transformer_lens import patching
    from transformer_lens.model_bridge.sources import build_bridge_from_module

    ours, hf, hf_config = _pair(args.n_layer)
    bridge = build_bridge_from_module(hf, "GPT2LMHeadModel", hf_config=hf_config)
    generator = torch.Generator().manual_seed(1)
    clean = torch.randint(0, hf_config.vocab_size, (1, 20), generator=generator)
    corrupt = torch.randint(0, hf_config.vocab_size, (1, 20), generator=generator)
    answer, wrong = 262, 290

    def metric(logits: torch.Tensor) -> torch.Tensor:
        return (logits[:, -1, answer] - logits[:, -1, wrong]).mean()

    with torch.no_grad():
        _, clean_cache = bridge.run_with_cache(clean)

    def transformer_lens_sweep() -> torch.Tensor:
        with torch.no_grad():
            return patching.get_act_patch_attn_head_out_all_pos(
                bridge, corrupt, clean_cache, metric
            )

    def qkv_sweep() -> torch.Tensor:
        return interp.patch_heads(ours, corrupt, clean, metric)

    theirs, mine = transformer_lens_sweep(), qkv_sweep()  # warm-up and the equality check
    difference = float((theirs.double() - mine).abs().max())
    assert difference < 1e-3, difference

    points = [p for p in ours.hook_points().values()]
    hook = HookPoint("(B, T, C)")
    sample = torch.zeros(1)
    calls = 200_000

    def unhooked_calls() -> None:
        for _ in range(calls):
            hook(sample)

    def forward() -> None:
        with torch.no_grad():
            ours(clean)

    times: dict[str, list[float]] = {"transformer_lens": [], "qkv": [], "forward": [], "hook": []}
    for _ in range(args.reps):  # interleaved: load drift hits every variant alike
        times["transformer_lens"].append(_seconds(transformer_lens_sweep))
        times["qkv"].append(_seconds(qkv_sweep))
        for _ in range(5):
            times["forward"].append(_seconds(forward))
        times["hook"].append(_seconds(unhooked_calls) / calls)
    median = {name: statistics.median(values) for name, values in times.items()}
    hooks_cost = len(points) * median["hook"]
    overhead = median["forward"] / (median["forward"] - hooks_cost)
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"`python benchmarks/interp.py --reps {args.reps} --n-layer {args.n_layer}`, {when}",
        "",
        f"machine: {machine_line()}",
        f"model: GPT-2 124M shape ({args.n_layer} of its 12 layers × 12 heads, d_model 768, "
        "vocab 50257), random weights, fp32; "
        "prompts of 20 tokens, batch 1; metric: logit difference at the last position",
        "",
        f"| {args.n_layer * 12}-head hook_z patching sweep | median s | vs TransformerLens |",
        "| --- | ---: | ---: |",
        f"| TransformerLens 4 `get_act_patch_attn_head_out_all_pos` | "
        f"{median['transformer_lens']:.3f} | 1.00x |",
        f"| qkv `interp.patch_heads` | {median['qkv']:.3f} | "
        f"{median['transformer_lens'] / median['qkv']:.2f}x faster |",
        "",
        f"max |difference| between the two grids: {difference:.2e}",
        "",
        "| forward, hooks available, none asked | value |",
        "| --- | ---: |",
        f"| plain forward, median | {median['forward'] * 1e3:.2f} ms |",
        f"| hook points per forward | {len(points)} |",
        f"| one unhooked hook point call | {median['hook'] * 1e9:.0f} ns |",
        f"| their cost per forward | {hooks_cost * 1e6:.1f} µs |",
        f"| forward / forward without them | {overhead:.4f}x |",
        "",
        "All runs (s): "
        + "; ".join(
            f"{name} " + ", ".join(f"{t:.3g}" for t in values) for name, values in times.items()
        ),
    ]
    text = "\n".join(lines)
    print(text)
    if args.out is not None:
        args.out.write_text(f"# benchmarks/interp.py — CPU results\n\n{text}\n")


if __name__ == "__main__":
    main()
