"""Train the "baby GPT" on tiny Shakespeare: ``qkv train`` against a minimal nanoGPT-style
PyTorch loop (the peer), measured in the same run.

Recipe (nanoGPT's CPU example): character level, first 90% train / last 10% validation,
4 layers, 4 heads, 128 wide, context 64, batch 12, AdamW lr 1e-3, β2 0.99, weight decay 0.1
(2-D weights), 100 warmup steps, cosine to 1e-4 over 2000 iterations, grad clip 1.0, no
dropout. The peer is written here in plain PyTorch (embeddings, pre-LN blocks with fused QKV
and ``F.scaled_dot_product_attention``, tied head, bias-free like nanoGPT's config) with the
same data sampling and AdamW groups (the for-loop AdamW nanoGPT uses on CPU), so the table
compares the library against the textbook loop on the same machine at the same moment. The
``fast`` row runs ``qkv train --preset fast`` (qkv.training.presets.FAST: Muon + AdamW,
batch 24, trapezoid schedule, 320 steps, precision auto, so fp32 without native bf16), which
aims at the same validation loss in under half the time; the LEVERS rows are the experiments
it was tuned from (``--rows muon-b24-300,...``).

Validation loss is the mean cross-entropy over the *whole* validation split (non-overlapping
64-token windows, every character after the first of each window predicted), for every row.
Training time is the optimisation loop only (no data preparation, no evaluation).

    python benchmarks/train.py                 # full: 2000 iterations per row (~5 min quiet)
    python benchmarks/train.py --quick         # 10% of the steps, to check it runs
    python benchmarks/train.py --repeat 3     # interleaved rounds, median times
    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 python benchmarks/train.py  # as AVX2
    python benchmarks/train.py --write /tmp/train-cpu.md
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "tinyshakespeare.txt"
RECIPE = dict(
    n_layer=4, n_head=4, n_embd=128, block_size=64, batch_size=12, lr=1e-3, min_lr=1e-4,
    beta1=0.9, beta2=0.99, weight_decay=0.1, warmup_iters=100, max_iters=2000, grad_clip=1.0,
    dropout=0.0,
)  # fmt: skip
# The ``fast`` preset (qkv.training.presets.FAST) on top of the recipe, and the levers it was
# tuned from: each row is the recipe plus these TrainConfig values (see train-cpu.md).
_TRAPEZOID = dict(schedule="trapezoid", min_lr=0.0, warmup_iters=20)
LEVERS = {
    # the previous `fast` preset without bf16
    "adamw-b48": dict(batch_size=48, lr=3e-3, min_lr=3e-4, warmup_iters=50, max_iters=600),
    "adamw-b24-trap": dict(_TRAPEZOID, batch_size=24, lr=2e-3, max_iters=500),
    "muon-b48": dict(_TRAPEZOID, batch_size=48, lr=3e-3, optimizer="muon", max_iters=250),
    "muon-b24": dict(_TRAPEZOID, batch_size=24, lr=3e-3, optimizer="muon", max_iters=450),
    "muon-b48-150": dict(_TRAPEZOID, batch_size=48, lr=3e-3, optimizer="muon", max_iters=150),
    "muon-b24-300": dict(_TRAPEZOID, batch_size=24, lr=3e-3, optimizer="muon", max_iters=300),
}


# --- the peer: a minimal nanoGPT-style model and loop ------------------------------------
class _Block(nn.Module):
    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.ln_1 = nn.LayerNorm(width, bias=False)
        self.c_attn = nn.Linear(width, 3 * width, bias=False)
        self.c_proj = nn.Linear(width, width, bias=False)
        self.ln_2 = nn.LayerNorm(width, bias=False)
        self.fc = nn.Linear(width, 4 * width, bias=False)
        self.proj = nn.Linear(4 * width, width, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, width = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(width, dim=2)  # (B, T, C) each
        q, k, v = (t.view(batch, length, self.heads, -1).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, H, T, D)
        x = x + self.c_proj(y.transpose(1, 2).reshape(batch, length, width))
        return x + self.proj(F.gelu(self.fc(self.ln_2(x))))


class PeerGPT(nn.Module):
    def __init__(self, vocab: int, *, n_layer: int, n_head: int, n_embd: int, block_size: int):
        super().__init__()
        self.wte = nn.Embedding(vocab, n_embd)
        self.wpe = nn.Embedding(block_size, n_embd)
        self.blocks = nn.ModuleList(_Block(n_embd, n_head) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(n_embd, bias=False)
        self.head = nn.Linear(n_embd, vocab, bias=False)
        self.head.weight = self.wte.weight
        for name, p in self.named_parameters():
            if p.dim() == 2:
                std = 0.02 / math.sqrt(2 * n_layer) if name.endswith("proj.weight") else 0.02
                nn.init.normal_(p, 0.0, std)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.wte(ids) + self.wpe(torch.arange(ids.shape[1]))  # (B, T, C)
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_f(x))  # (B, T, vocab)


def _lr(step: int, r: dict) -> float:
    if step < r["warmup_iters"]:
        return r["lr"] * (step + 1) / (r["warmup_iters"] + 1)
    ratio = (step - r["warmup_iters"]) / (r["max_iters"] - r["warmup_iters"])
    return r["min_lr"] + 0.5 * (1 + math.cos(math.pi * min(ratio, 1.0))) * (r["lr"] - r["min_lr"])


def train_peer(text: str, r: dict, seed: int) -> tuple[float, float]:
    """(training seconds, full validation loss) of the nanoGPT-style loop."""
    chars = sorted(set(text))
    table = {c: i for i, c in enumerate(chars)}
    data = np.array([table[c] for c in text], dtype=np.int64)
    cut = int(0.9 * len(data))
    train, val = torch.from_numpy(data[:cut]), torch.from_numpy(data[cut:])
    torch.manual_seed(seed)
    model = PeerGPT(
        len(chars), n_layer=r["n_layer"], n_head=r["n_head"], n_embd=r["n_embd"],
        block_size=r["block_size"],
    )  # fmt: skip
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": r["weight_decay"]},
         {"params": no_decay, "weight_decay": 0.0}],
        lr=r["lr"], betas=(r["beta1"], r["beta2"]),
    )  # fmt: skip
    block, batch = r["block_size"], r["batch_size"]
    started = time.perf_counter()
    for step in range(r["max_iters"]):
        for group in optimizer.param_groups:
            group["lr"] = _lr(step, r)
        starts = torch.randint(len(train) - block, (batch,))
        x = torch.stack([train[s : s + block] for s in starts])  # (B, T)
        y = torch.stack([train[s + 1 : s + 1 + block] for s in starts])  # (B, T)
        logits = model(x)
        loss = F.cross_entropy(logits.view(-1, logits.shape[-1]), y.view(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), r["grad_clip"])
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    elapsed = time.perf_counter() - started
    return elapsed, full_val_loss(lambda ids: model(ids), val, block)


# --- shared evaluation --------------------------------------------------------------------
@torch.no_grad()
def full_val_loss(forward, val: torch.Tensor, block: int, batch: int = 64) -> float:
    """Mean next-token cross-entropy over consecutive ``block``-token windows of ``val``."""
    starts = list(range(0, len(val) - block - 1, block))
    total, count = 0.0, 0
    for i in range(0, len(starts), batch):
        rows = torch.stack([val[s : s + block + 1] for s in starts[i : i + batch]])  # (B, T+1)
        logits = forward(rows[:, :-1])
        total += float(
            F.cross_entropy(logits.reshape(-1, logits.shape[-1]), rows[:, 1:].reshape(-1),
                            reduction="sum")
        )  # fmt: skip
        count += rows[:, 1:].numel()
    return total / count


def train_qkv(data: Path, r: dict, seed: int) -> tuple[float, float]:
    """(training seconds, full validation loss) of ``qkv.training.train`` with recipe ``r``
    (any TrainConfig fields)."""
    import qkv
    from qkv.training import TrainConfig, train

    config = TrainConfig(
        **{"data": str(data), "tokenizer": "char", "model": "baby-gpt", "seed": seed,
           "eval_interval": r["max_iters"], "eval_iters": 1, "progress": False, "plot": False,
           "lr_decay_iters": r["max_iters"], **r}
    )  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="qkv-bench-") as out:
        result = train(config, Path(out) / "run", quiet=True)
        model = qkv.load(Path(out) / "run" / "latest")
        tokenizer = qkv.load_tokenizer(Path(out) / "run" / "latest")
    text = data.read_text(encoding="utf-8")
    ids = torch.tensor(tokenizer.encode(text[int(0.9 * len(text)) :], add_special_tokens=False))
    return result.elapsed_s, full_val_loss(lambda x: model(x), ids, r["block_size"])


def _row_recipe(name: str) -> dict:
    from qkv.training.presets import FAST

    if name in ("peer", "qkv"):
        return dict(RECIPE)
    if name == "fast":
        return dict(RECIPE, **FAST)
    if name not in LEVERS:
        raise SystemExit(f"unknown row {name!r}; rows: peer, qkv, fast, {', '.join(LEVERS)}")
    return dict(RECIPE, **LEVERS[name])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="tinyshakespeare.txt")
    parser.add_argument("--quick", action="store_true", help="10%% of the steps of each row")
    parser.add_argument("--scale", type=float, default=None, help="fraction of the steps")
    parser.add_argument("--rows", default="peer,qkv,fast", help="comma list of rows to run")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--seed", type=int, default=1337)
    parser.add_argument("--repeat", type=int, default=1, help="rounds of all rows (medians)")
    parser.add_argument("--write", type=Path, help="also write the table as markdown here")
    args = parser.parse_args(argv)
    if not args.data.is_file():
        print(f"benchmark data {args.data} not found; pass --data PATH", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    os.environ.setdefault("QKV_CACHE", tempfile.mkdtemp(prefix="qkv-bench-cache-"))
    scale = args.scale or (0.1 if args.quick else 1.0)
    text = args.data.read_text(encoding="utf-8")
    names = args.rows.split(",")
    recipes = {name: _row_recipe(name) for name in names}
    times: dict[str, list[float]] = {name: [] for name in names}
    losses: dict[str, float] = {}
    for round_ in range(args.repeat):  # interleaved rounds: every row sees the same load
        for name in names:
            base = recipes[name]
            r = dict(base, max_iters=max(int(base["max_iters"] * scale), base["warmup_iters"] + 10))
            print(f"round {round_ + 1}: {name} ({r['max_iters']} iterations) ...",
                  file=sys.stderr, flush=True)  # fmt: skip
            if name == "peer":
                seconds, val = train_peer(text, r, args.seed)
            else:
                seconds, val = train_qkv(args.data, r, args.seed)
            times[name].append(seconds)
            losses[name] = val  # deterministic: every round gives the same loss
            print(f"  {seconds:.1f} s, val loss {val:.4f}", file=sys.stderr, flush=True)
    median = {name: statistics.median(values) for name, values in times.items()}
    peer_seconds = median.get("peer")
    labels = {
        "peer": "nanoGPT-style loop (peer, plain PyTorch)",
        "qkv": "qkv train, baby-gpt recipe",
        "fast": "qkv train --preset fast",
    }
    lines = [
        "| run | iters | batch | train s (median) | ms/iter | val loss | time vs peer |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name in names:
        r, seconds = recipes[name], median[name]
        iters = max(int(r["max_iters"] * scale), r["warmup_iters"] + 10)
        ratio = f"{seconds / peer_seconds:.2f}×" if peer_seconds else "n/a"
        runs = "/".join(f"{t:.0f}" for t in times[name])
        lines.append(
            f"| {labels.get(name, name)} | {iters} | {r['batch_size']} | {seconds:.1f} ({runs}) | "
            f"{1000 * seconds / iters:.1f} | {losses[name]:.4f} | {ratio} |"
        )
    table = "\n".join(lines)
    print(table)
    if args.write:
        from qkv.bench.hardware import machine_line

        emulated = os.environ.get("ATEN_CPU_CAPABILITY")
        header = (
            f"# Training benchmark (CPU)\n\n`python benchmarks/train.py"
            f"{' --quick' if args.quick else ''} --rows {args.rows} --repeat {args.repeat}` on "
            f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC; {machine_line()}"
            f"{f'; emulated with ATEN_CPU_CAPABILITY={emulated}' if emulated else ''}.\n\n"
        )
        args.write.write_text(header + table + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
