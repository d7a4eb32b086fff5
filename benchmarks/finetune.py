"""Fine-tuning step time and memory: qkv against transformers (+ peft), in one run.

A GPT-2-124M-shaped model (random weights; ``--layers`` to shrink it where memory is short)
is built once in transformers, exported, and opened by ``qkv.load``, so both sides hold the
same weights. Each step is forward + cross-entropy + backward + AdamW (the same fused AdamW
on both sides), on the same batch, fp32. Cases, interleaved step by step and reported as
medians:

- LoRA r=8 on q, v: qkv (``qkv.io.lora.apply_lora``, targets ``q,v``) against
  ``peft.get_peft_model`` on ``GPT2LMHeadModel`` with ``target_modules=["c_attn"]`` (GPT-2's
  fused q|k|v projection: the closest peft can target; qkv's mask keeps k's rows at zero).
- full fine-tuning: qkv's GPT against a plain transformers training loop.
- peak memory (max RSS of a fresh process doing 3 qkv steps) of LoRA against full.

Run: ``python benchmarks/finetune.py`` (defaults: batch 8 x 256, 12 layers, 3 warmup + 5
timed steps); ``--out benchmarks/results/finetune-cpu.md`` writes the table.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

R, ALPHA = 8, 16.0


def hf_model(layers: int) -> torch.nn.Module:
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(n_layer=layers, n_embd=768, n_head=12, n_positions=1024,
                        vocab_size=50257, attn_pdrop=0.0, resid_pdrop=0.0,
                        embd_pdrop=0.0)  # fmt: skip
    return GPT2LMHeadModel(config)


def qkv_model(hf: torch.nn.Module, folder: Path) -> torch.nn.Module:
    import qkv

    hf.save_pretrained(folder)
    return qkv.load(folder)


def lora_qkv(model: torch.nn.Module) -> torch.nn.Module:
    from qkv.io.lora import LoraSettings, apply_lora

    return apply_lora(model, LoraSettings(r=R, alpha=ALPHA, targets="q,v"))


def lora_hf(model: torch.nn.Module) -> torch.nn.Module:
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=R, lora_alpha=ALPHA, target_modules=["c_attn"], fan_in_fan_out=True,
                        lora_dropout=0.0, bias="none")  # fmt: skip
    return get_peft_model(model, config)


def stepper(model: torch.nn.Module, hf: bool):
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4, fused=True)

    def step(inputs: torch.Tensor, targets: torch.Tensor) -> float:
        start = time.perf_counter()
        logits = model(inputs).logits if hf else model(inputs)  # (B, T, V)
        loss = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten())
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return time.perf_counter() - start

    return step


def interleaved(cases: dict, batch: tuple, warmup: int, steps: int) -> dict[str, float]:
    times: dict[str, list[float]] = {name: [] for name in cases}
    for i in range(warmup + steps):
        for name, step in cases.items():
            took = step(*batch)
            if i >= warmup:
                times[name].append(took)
    return {name: statistics.median(t) for name, t in times.items()}


def peak_rss_mb(kind: str, args: argparse.Namespace) -> float:
    """Max RSS (MB) of a fresh process taking 3 qkv ``kind`` steps."""
    command = [sys.executable, __file__, "--child", kind, "--layers", str(args.layers),
               "--batch", str(args.batch), "--seq", str(args.seq)]  # fmt: skip
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])["peak_mb"]


def child(kind: str, args: argparse.Namespace, batch: tuple) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        model = qkv_model(hf_model(args.layers), Path(tmp))
    if kind == "lora":
        model = lora_qkv(model)
    step = stepper(model, hf=False)
    for _ in range(3):
        step(*batch)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"peak_mb": peak}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--child", choices=("lora", "full"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 50257, (args.batch, args.seq + 1), generator=generator)
    batch = (ids[:, :-1].contiguous(), ids[:, 1:].contiguous())  # (B, T) each
    if args.child:
        child(args.child, args, batch)
        return
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        # LoRA pair, then the full pair (one pair in memory at a time)
        hf = hf_model(args.layers)
        ours = qkv_model(hf, Path(tmp) / "lora")
        lora = interleaved(
            {"qkv": stepper(lora_qkv(ours), hf=False), "peft": stepper(lora_hf(hf), hf=True)},
            batch, args.warmup, args.steps,
        )  # fmt: skip
        del hf, ours
        hf = hf_model(args.layers)
        ours = qkv_model(hf, Path(tmp) / "full")
        full = interleaved(
            {"qkv": stepper(ours, hf=False), "transformers": stepper(hf, hf=True)},
            batch, args.warmup, args.steps,
        )  # fmt: skip
        del hf, ours
    rows.append(("LoRA r=8 q,v step", f"{lora['qkv'] * 1e3:.0f} ms",
                 f"{lora['peft'] * 1e3:.0f} ms (transformers+peft)",
                 f"{lora['peft'] / lora['qkv']:.2f}x", ">= 1.3x"))  # fmt: skip
    rows.append(("full fine-tune step", f"{full['qkv'] * 1e3:.0f} ms",
                 f"{full['transformers'] * 1e3:.0f} ms (transformers)",
                 f"{full['transformers'] / full['qkv']:.2f}x", ">= 1.2x"))  # fmt: skip
    lora_mb, full_mb = peak_rss_mb("lora", args), peak_rss_mb("full", args)
    rows.append(("peak memory (qkv)", f"LoRA {lora_mb:.0f} MB", f"full {full_mb:.0f} MB",
                 f"{lora_mb / full_mb:.2f}x", "<= 0.6x"))  # fmt: skip
    from qkv.bench.hardware import machine_line

    header = (
        f"# qkv fine-tuning benchmark (CPU)\n\n{machine_line('cpu')}\n\n"
        f"GPT-2-shaped, {args.layers} layers x 768, vocab 50257, fp32, batch {args.batch} x "
        f"{args.seq}, {args.warmup} warmup + {args.steps} timed steps, medians, interleaved; "
        f"torch {torch.__version__}, date {time.strftime('%Y-%m-%d', time.gmtime())}\n\n"
        "| case | qkv | peer | ratio (peer / qkv) | target |\n|---|---|---|---|---|\n"
    )
    table = header + "".join(f"| {' | '.join(r)} |\n" for r in rows)
    print(table)
    if args.out:
        args.out.write_text(table, encoding="utf-8")


if __name__ == "__main__":
    main()
