"""Model-family benchmarks, qkv beside transformers in one run (random weights, real shapes).

(a) Decode, batch 1, greedy, 32 new tokens after a 16-token prompt, at the shapes of
    SmolLM2-135M (Llama: 30 layers, 576 wide, 9 / 3 kv heads, tied 49152-row head) and
    Qwen2.5-0.5B (24 layers, 896 wide, 14 / 2 kv heads, q/k/v bias, tied 151936-row head),
    fp32 and bf16, same weights for both libraries (one ``save_pretrained`` checkpoint):
    tok/s from the median decode step and end to end (prefill and the one-time weight-layout
    copies included), interleaved medians of ``--repeats``, and each one's fraction of the
    memory-bandwidth ceiling (read bandwidth / bytes a step reads). Targets: >= 1.5x fp32,
    >= 2x bf16.
(b) Load of the Qwen2.5-0.5B-shaped bf16 checkpoint (safetensors): ``qkv.load`` against
    ``from_pretrained``, each in a fresh process: wall time of the load and peak RSS above the
    process's RSS before it (every weight read once, so lazy pages are counted). Targets: time
    <= 0.5x, peak <= 1.2x the weights.
(c) Gemma-2 attention shape (two layers, sliding + global, soft-cap), prefill of 2k and 8k
    tokens, fp32: peak RSS of the forward (a sampling thread, minus the RSS before it) for qkv
    against transformers' eager and SDPA paths, each in a fresh process; last-token logits
    compared with eager's. qkv must stay O(N).

Run: ``HF_HUB_OFFLINE=1 python benchmarks/model_families.py [--repeats 3] [--out FILE]``
(about 8 minutes on 2 cores), ``--quick`` for a smoke run (4-layer decode shapes, 1k prefill),
``--profile`` for the per-op table of decode steps of each library (SmolLM2 shape).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from models import bandwidth  # noqa: E402
from qkv.bench.hardware import machine_line  # noqa: E402


def child(*args: object, timeout: float = 900) -> object:
    """Run one model_families_children job in a fresh process; its last stdout line (JSON)."""
    command = [sys.executable, str(HERE / "model_families_children.py"), *map(str, args)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command[1:])} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def status(ratio: float, target: float, higher: bool = True) -> str:
    met = ratio >= target if higher else ratio <= target
    return f"{'met' if met else 'NOT met'}"


def decode_rows(folder: Path, shape: str, new: int, repeats: int, read_bw: float) -> list[str]:
    lines = []
    for row in child("decode", folder / shape, new, repeats):  # type: ignore[union-attr]
        ceiling = read_bw * 1e9 / row["bytes"]
        step, total = row["step"], row["total"]
        target = 1.5 if row["dtype"] == "float32" else 2.0
        ratio = step["qkv"] / step["hf"]
        lines.append(
            f"| {shape} shape, 1x16+{new} greedy, median decode step | {row['dtype']} "
            f"| {step['qkv']:.1f} tok/s | {step['hf']:.1f} tok/s | {ratio:.2f}x "
            f"| >= {target:.1f}x ({status(ratio, target)}) | ceiling {ceiling:.0f} tok/s "
            f"({row['bytes'] / 2**20:.0f} MiB/step): qkv {step['qkv'] / ceiling:.0%}, "
            f"HF {step['hf'] / ceiling:.0%}; {row['agree']}; qkv layout: {row['layout']} |"
        )
        lines.append(
            f"| {shape} shape, 1x16+{new} greedy, end to end | {row['dtype']} "
            f"| {total['qkv']:.1f} tok/s | {total['hf']:.1f} tok/s "
            f"| {total['qkv'] / total['hf']:.2f}x | "
            "| prefill and first-call layout copies included |"
        )
        print(lines[-2], lines[-1], sep="\n", flush=True)
    return lines


def load_rows(folder: Path, repeats: int) -> list[str]:
    runs: dict[str, list[dict]] = {"qkv": [], "hf": []}
    for _ in range(repeats):  # alternating fresh processes; the file stays in the page cache
        for library in runs:
            runs[library].append(child("load", library, folder))  # type: ignore[arg-type]
    med = {
        lib: {key: statistics.median(r[key] for r in rs) for key in ("seconds", "peak")}
        for lib, rs in runs.items()
    }
    weights = runs["qkv"][0]["weights"]
    same = runs["qkv"][0]["checksum"] == runs["hf"][0]["checksum"]
    time_ratio = med["qkv"]["seconds"] / med["hf"]["seconds"]
    peak = {lib: m["peak"] / weights for lib, m in med.items()}
    dtype = runs["qkv"][0]["dtype"]
    lines = [
        f"| Qwen2.5-0.5B shape, load from safetensors, wall time | {dtype} "
        f"| {med['qkv']['seconds']:.2f} s | {med['hf']['seconds']:.2f} s | {time_ratio:.2f}x "
        f"| <= 0.5x ({status(time_ratio, 0.5, higher=False)}) | fresh process each, median of "
        f"{repeats}; file in the page cache; same weights: {same} |",
        f"| Qwen2.5-0.5B shape, load, peak RSS above the process before | {dtype} "
        f"| {med['qkv']['peak'] / 2**20:.0f} MiB ({peak['qkv']:.2f}x weights) "
        f"| {med['hf']['peak'] / 2**20:.0f} MiB ({peak['hf']:.2f}x weights) "
        f"| {med['qkv']['peak'] / med['hf']['peak']:.2f}x "
        f"| <= 1.2x weights ({status(peak['qkv'], 1.2, higher=False)}) "
        f"| weights {weights / 2**20:.0f} MiB; every weight read once after the load |",
    ]
    print(*lines, sep="\n", flush=True)
    return lines


def prefill_rows(folder: Path, sizes: list[int]) -> list[str]:
    lines = []
    for n in sizes:
        got = {lib: child("prefill", lib, folder, n) for lib in ("qkv", "eager", "sdpa")}
        mib = {k: v["peak"] / 2**20 for k, v in got.items() if "peak" in v}  # type: ignore
        peers = ", ".join(
            f"{lib} {mib[lib]:.0f} MiB" if lib in mib else f"{lib} refused by transformers"
            for lib in ("eager", "sdpa")
        )
        diff = max(abs(a - b) for a, b in zip(got["qkv"]["logits"], got["eager"]["logits"]))  # type: ignore
        scores = 8 * n * n * 4 / 2**20
        lines.append(
            f"| Gemma-2 attention shape (2 layers), prefill N={n}, peak RSS of the forward "
            f"| float32 | {mib['qkv']:.0f} MiB | {peers} | {mib['eager'] / mib['qkv']:.1f}x less "
            f"than eager | one layer's N×N×8 fp32 scores = {scores:.0f} MiB; time qkv "
            f"{got['qkv']['seconds']:.1f} s, eager {got['eager']['seconds']:.1f} s; "  # type: ignore
            f"last-token logits vs eager max |diff| {diff:.1e} |"
        )
        print(lines[-1], flush=True)
    return lines


def profile(folder: Path) -> None:
    """Per-op tables of 8 decode steps of each library (SmolLM2 shape, fp32)."""
    import transformers
    from torch.profiler import profile as torch_profile

    import qkv
    from models import _run_hf, _run_qkv

    model = qkv.load(folder / "SmolLM2-135M", dtype=torch.float32)
    hf = transformers.AutoModelForCausalLM.from_pretrained(
        folder / "SmolLM2-135M", dtype=torch.float32
    ).eval()
    prompt = torch.randint(0, 49152, (1, 16))
    with torch.inference_mode():
        for name, run, net in (("qkv", _run_qkv, model), ("transformers", _run_hf, hf)):
            run(net, prompt, 2)
            with torch_profile() as prof:
                run(net, prompt, 9)
            table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=10)
            print(f"{name}, prefill + 8 decode steps:\n{table}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run, 4-layer shapes")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="only the per-op decode tables")
    parser.add_argument("--out", default=None, help="append the markdown section to this file")
    args = parser.parse_args()
    started = time.perf_counter()
    header = (
        f"machine: {machine_line()}; capability {torch.backends.cpu.get_cpu_capability()}; "
        f"load average at start {os.getloadavg()[0]:.1f} (the machine is shared); "
        f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC"
    )
    print(header, flush=True)
    repeats = 1 if args.quick else args.repeats
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        child("make", folder, *(["--quick"] if args.quick else []))
        if args.profile:
            profile(folder)
            return
        read_bw, _ = bandwidth(args.quick)
        lines = [
            header,
            f"memory bandwidth: read {read_bw:.1f} GB/s (sum of 512 MiB fp32, 2 threads)",
            "",
            "| workload | dtype | qkv | transformers | ratio | target | notes |",
            "| --- | --- | ---: | ---: | ---: | ---: | --- |",
        ]
        print(*lines[1:], sep="\n", flush=True)
        new = 8 if args.quick else 32
        for shape in ("SmolLM2-135M", "Qwen2.5-0.5B"):
            lines += decode_rows(folder, shape, new, repeats, read_bw)
        lines += load_rows(folder / "Qwen2.5-0.5B", 1 if args.quick else 3)
        lines += prefill_rows(folder / "Gemma-2-attention", [1024] if args.quick else [2048, 8192])
    lines += ["", f"wall time {time.perf_counter() - started:.0f} s"]
    print(lines[-1])
    if args.out:
        with open(args.out, "a", encoding="utf-8") as handle:
            handle.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
