"""Fine-tuning step time and memory: qkv against transformers (+ peft), in one run.

A GPT-2-124M-shaped model (random weights, seed 0; ``--layers`` to shrink it) is built ONCE
by qkv and saved twice into a temporary folder: as a qkv checkpoint and as its Hugging Face
export. Every measurement is a fresh child process that LOADS one of them (qkv: ``qkv.load``;
peer: ``GPT2LMHeadModel.from_pretrained``), so building and exporting are in no figure and
the two sides hold the same weights. One step is forward + loss + backward + AdamW (the same
``torch.optim.AdamW(fused=True)`` on both sides) on the same batch, fp32:

- qkv: its training loss (:func:`qkv.training.step.loss_of`, what ``qkv train`` runs);
- peer: ``F.cross_entropy(logits.flatten(0, 1).float(), targets)`` on transformers' logits.

Cases (children run one at a time, qkv and peer alternating, so the machine's load falls on
both alike):

- LoRA r=8, alpha 16 on q, v: qkv (``qkv.io.lora.apply_lora``, targets ``q,v``) against
  ``peft.get_peft_model`` on ``GPT2LMHeadModel`` with ``target_modules=["c_attn"]`` (GPT-2's
  fused q|k|v projection: the closest peft can target; qkv trains q's and v's rows only).
- full fine-tuning: qkv's GPT against a plain transformers training loop.
- memory: each child's peak RSS (``resource.getrusage`` max RSS: the loaded weights, the
  activations, the gradients, AdamW's state, the Python and torch runtime) and its growth
  during training (peak minus the RSS right after loading the model). The target compares
  qkv LoRA's peak with qkv full fine-tuning's.

Per step FLOPs: 2·N·tokens forward (N = the matmul parameters, lm_head included) plus the
attention matmuls (4·L·T·C per token, causal halves it); the backward of a full fine-tune is
2x the forward (input and weight gradients), of LoRA 1x (input gradients only, the adapters'
own work is negligible). The fraction is that count over the step time, against the
measured 2048³ fp32 matmul ceiling.

Run: ``python benchmarks/finetune.py`` (defaults: the issue's batch 8 x 256, 12 layers,
1 warmup + 3 timed steps, medians); ``--out benchmarks/results/finetune-cpu.md`` writes the
table.
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

R, ALPHA, VOCAB, WIDTH, HEADS = 8, 16.0, 50257, 768, 12


def build(folder: Path, layers: int) -> None:
    """The model, built once: a qkv checkpoint in folder/qkv and its HF export in folder/hf."""
    import qkv

    torch.manual_seed(0)
    config = qkv.models.preset("gpt2", n_layer=layers, n_embd=WIDTH, n_head=HEADS,
                               vocab_size=VOCAB, dropout=0.0)  # fmt: skip
    model = qkv.models.build(config)
    qkv.save(model, folder / "qkv")
    qkv.save(model, folder / "hf", format="hf")


def load(side: str, mode: str, folder: Path) -> torch.nn.Module:
    if side == "qkv":
        import qkv
        from qkv.io.lora import LoraSettings, apply_lora

        model = qkv.load(folder / "qkv")
        if mode == "lora":
            model = apply_lora(model, LoraSettings(r=R, alpha=ALPHA, targets="q,v"))
        return model
    from transformers import GPT2LMHeadModel

    model = GPT2LMHeadModel.from_pretrained(folder / "hf")
    if mode == "lora":
        from peft import LoraConfig, get_peft_model

        config = LoraConfig(r=R, lora_alpha=ALPHA, target_modules=["c_attn"],
                            fan_in_fan_out=True, lora_dropout=0.0, bias="none")  # fmt: skip
        model = get_peft_model(model, config)
    return model


def rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() / 2**20


def child(args: argparse.Namespace) -> None:
    """One side, one mode: load, warm up, time the steps; print one JSON line."""
    side, mode = args.child
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(0, VOCAB, (args.batch, args.seq + 1), generator=generator)
    inputs, targets = ids[:, :-1].contiguous(), ids[:, 1:].contiguous()  # (B, T) each
    model = load(side, mode, args.folder)
    model.train()
    loaded = rss_mb()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4, fused=True)
    if side == "qkv":
        from qkv.training.step import loss_of

        def loss_fn() -> torch.Tensor:
            return loss_of(model, inputs, targets, masked_lm=False)
    else:

        def loss_fn() -> torch.Tensor:
            logits = model(inputs).logits  # (B, T, V)
            return F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten())

    times, losses = [], []
    for i in range(args.warmup + args.steps):
        start = time.perf_counter()
        loss = loss_fn()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        took = time.perf_counter() - start
        losses.append(float(loss))
        if i >= args.warmup:
            times.append(took)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    trained = sum(p.numel() for p in params)
    print(json.dumps({"step_s": statistics.median(times), "times": times, "loss": losses,
                      "peak_mb": peak, "loaded_mb": loaded, "trained": trained}))  # fmt: skip


def run_child(side: str, mode: str, args: argparse.Namespace, folder: Path) -> dict:
    command = [sys.executable, __file__, "--child", side, mode, "--folder", str(folder),
               "--batch", str(args.batch), "--seq", str(args.seq),
               "--warmup", str(args.warmup), "--steps", str(args.steps)]  # fmt: skip
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{side} {mode} child failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"  {side:4} {mode:4}: {result['step_s'] * 1e3:7.0f} ms/step, peak "
          f"{result['peak_mb']:.0f} MB (loaded {result['loaded_mb']:.0f} MB), "
          f"{time.perf_counter() - started:.0f} s", flush=True)  # fmt: skip
    return result


def step_flops(layers: int, batch: int, seq: int, mode: str) -> float:
    matmul_params = layers * 12 * WIDTH**2 + VOCAB * WIDTH  # blocks + lm_head
    tokens = batch * seq
    forward = 2 * matmul_params * tokens + 4 * layers * seq * WIDTH * tokens / 2  # causal
    return forward * (2 if mode == "lora" else 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=1, help="qkv/peer child pairs per case")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    from qkv.bench.hardware import machine_line, matmul_gflops

    machine = machine_line("cpu")
    ceiling = matmul_gflops(torch.float32)
    peers = {"lora": "transformers+peft", "full": "transformers"}
    results: dict[tuple[str, str], list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        build(folder, args.layers)
        for mode in ("lora", "full"):
            for _ in range(args.rounds):
                for side in ("qkv", "peer"):
                    results.setdefault((side, mode), []).append(run_child(side, mode, args,
                                                                          folder))  # fmt: skip

    def median(side: str, mode: str, key: str) -> float:
        return statistics.median(r[key] for r in results[(side, mode)])

    rows = []
    for mode, label, target in (("lora", "LoRA r=8 q,v step", ">= 1.3x"),
                                ("full", "full fine-tune step", ">= 1.2x")):  # fmt: skip
        ours, theirs = median("qkv", mode, "step_s"), median("peer", mode, "step_s")
        flops = step_flops(args.layers, args.batch, args.seq, mode)
        rows.append((label, f"{ours * 1e3:.0f} ms ({flops / ours / 1e9 / ceiling:.0%})",
                     f"{theirs * 1e3:.0f} ms ({flops / theirs / 1e9 / ceiling:.0%}) "
                     f"({peers[mode]})", f"{theirs / ours:.2f}x", target))  # fmt: skip
    for side, name in (("qkv", "qkv"), ("peer", "peer")):
        lora, full = median(side, "lora", "peak_mb"), median(side, "full", "peak_mb")
        grow_l = lora - median(side, "lora", "loaded_mb")
        grow_f = full - median(side, "full", "loaded_mb")
        rows.append((f"peak RSS, {name}: LoRA / full", f"LoRA {lora:.0f} MB (+{grow_l:.0f})",
                     f"full {full:.0f} MB (+{grow_f:.0f})", f"{lora / full:.2f}x",
                     "<= 0.6x" if side == "qkv" else "-"))  # fmt: skip
    lora_q, lora_p = median("qkv", "lora", "peak_mb"), median("peer", "lora", "peak_mb")
    full_q, full_p = median("qkv", "full", "peak_mb"), median("peer", "full", "peak_mb")
    rows.append(("peak RSS, qkv vs peer", f"LoRA {lora_q:.0f} / full {full_q:.0f} MB",
                 f"LoRA {lora_p:.0f} / full {full_p:.0f} MB",
                 f"{lora_p / lora_q:.2f}x / {full_p / full_q:.2f}x", "-"))  # fmt: skip
    header = (
        f"# qkv fine-tuning benchmark (CPU)\n\n{machine}; fp32 matmul ceiling "
        f"{ceiling:.0f} GFLOP/s\n\nGPT-2-shaped, {args.layers} layers x {WIDTH}, vocab "
        f"{VOCAB}, fp32, batch {args.batch} x {args.seq}, {args.warmup} warmup + {args.steps} "
        f"timed steps per child, medians, {args.rounds} qkv/peer child pair(s) per case, "
        f"date {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. (x%) = share of the "
        "matmul ceiling reached by the step's FLOP count; peak RSS (+growth during "
        "training over the RSS after loading)\n\n"
        "| case | qkv | peer | ratio (peer / qkv) | target |\n|---|---|---|---|---|\n"
    )
    table = header + "".join(f"| {' | '.join(r)} |\n" for r in rows)
    print(table)
    if args.out:
        args.out.write_text(table, encoding="utf-8")


if __name__ == "__main__":
    main()
