"""Model-level benchmarks: qkv against Hugging Face on the same weights and dtype, in one run.

(a) Generation, batch 1, greedy, 256 new tokens after a 32-token prompt, GPT-2 (124M) shape
    with random weights: ``qkv.generate`` against ``transformers``' ``generate`` (the same
    weights, converted with ``qkv.save(format="hf")``), fp32 and bf16. Decoding one token
    reads every weight once, so the ceiling is (measured memory bandwidth) / (bytes of
    weights + KV cache read per token); the table gives each library's fraction of it.
(b) Encoding with all-MiniLM-L6-v2: ``qkv.io.SentenceEncoder.encode`` against
    sentence-transformers' ``encode``, sentences/s on batches of 32 sentences of varied length
    and on batches of 32 sentences of exactly 128 tokens.

Targets: generation >= 2x transformers at the same dtype; encoding >= 1.2x
sentence-transformers on varied lengths, >= 1.0x on fixed 128-token batches.

Run: ``python benchmarks/models.py`` (full, a few minutes) or ``--quick``; ``--threads N``
sets torch's intra-op threads for both libraries; ``--out FILE`` writes the markdown table.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

import qkv

_TEXT = (
    "the of and to in is was for on that with as by at from his an were are which this be "
    "has had one not but have first new after who also their time two its year made used when "
    "into other would most some such more three over only world city film school between "
    "during where under known while about part many them these later then both state several "
    "since life each well through called season may people music even being team game family "
    "attention transformer query key value softmax layer head token model language training"
)
WORDS = _TEXT.split()


@dataclass
class Row:
    workload: str
    dtype: str
    unit: str
    qkv: float
    peer: float
    peer_name: str
    target: float
    note: str = ""

    @property
    def ratio(self) -> float:
        return self.qkv / self.peer


def median_time(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


# --- memory bandwidth ------------------------------------------------------------------------
def bandwidth(quick: bool) -> tuple[float, float]:
    """(read GB/s from a 512 MiB sum, copy GB/s counting read + write), medians."""
    x = torch.ones(128 * 2**20, dtype=torch.float32)  # 512 MiB
    y = torch.empty_like(x)
    x.sum(), y.copy_(x)  # fault the pages in
    repeats = 3 if quick else 7
    read = x.numel() * 4 / median_time(lambda: x.sum(), repeats) / 1e9
    copy = 2 * x.numel() * 4 / median_time(lambda: y.copy_(x), repeats) / 1e9
    return read, copy


# --- generation ------------------------------------------------------------------------------
class _Stamps:
    """A transformers streamer recording when each new token arrives (the first put() is the
    prompt)."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.prompt_seen = False

    def put(self, value: torch.Tensor) -> None:
        if not self.prompt_seen:
            self.prompt_seen = True
            return
        self.times.append(time.perf_counter())

    def end(self) -> None:
        pass


def _decode_stats(start: float, stamps: list[float]) -> tuple[float, float]:
    """(tokens/s from the median decode step, end-to-end tokens/s)."""
    steps = [b - a for a, b in zip(stamps, stamps[1:])]
    return 1.0 / statistics.median(steps), len(stamps) / (stamps[-1] - start)


def generation(new_tokens: int, read_bw: float, repeats: int = 3) -> list[Row]:
    """Rows for (a); each figure is the median over ``repeats`` interleaved runs."""
    import transformers

    from qkv.models import GPT, preset

    transformers.logging.set_verbosity_error()
    torch.manual_seed(0)
    model = GPT(preset("gpt2")).eval()
    with tempfile.TemporaryDirectory() as directory:
        qkv.save(model, directory, format="hf")
        hf = transformers.AutoModelForCausalLM.from_pretrained(directory).eval()
    prompt = torch.randint(0, model.config.vocab_size, (1, 32))
    rows = []
    for dtype in (torch.float32, torch.bfloat16):
        model, hf = model.to(dtype), hf.to(dtype)

        q_runs, h_runs = [], []
        with torch.inference_mode():
            _run_qkv(model, prompt, 4), _run_hf(hf, prompt, 4)  # warm up
            for _ in range(repeats):  # interleaved, so both see the same machine state
                q_start, q_stamps, q_tokens = _run_qkv(model, prompt, new_tokens)
                q_runs.append(_decode_stats(q_start, q_stamps))
                h_start, h_stamps, h_tokens = _run_hf(hf, prompt, new_tokens)
                h_runs.append(_decode_stats(h_start, h_stamps))
        same = next((i for i, (a, b) in enumerate(zip(q_tokens, h_tokens)) if a != b), None)
        q_step, q_total = (statistics.median(r[i] for r in q_runs) for i in (0, 1))
        h_step, h_total = (statistics.median(r[i] for r in h_runs) for i in (0, 1))
        ceiling = read_bw * 1e9 / bytes_per_token(model, prompt.shape[1] + new_tokens // 2)
        name = str(dtype).removeprefix("torch.")
        agree = "identical tokens" if same is None else f"tokens agree up to {same}"
        rows.append(
            Row(
                workload=f"generate gpt2 1x32+{new_tokens}, median decode step",
                dtype=name,
                unit="tok/s",
                qkv=q_step,
                peer=h_step,
                peer_name="transformers",
                target=2.0,
                note=f"ceiling {ceiling:.1f} tok/s: qkv {q_step / ceiling:.0%}, "
                f"HF {h_step / ceiling:.0%}; {agree}",
            )
        )
        rows.append(
            Row(
                workload=f"generate gpt2 1x32+{new_tokens}, end to end",
                dtype=name,
                unit="tok/s",
                qkv=q_total,
                peer=h_total,
                peer_name="transformers",
                target=2.0,
            )
        )
    return rows


def _run_qkv(model: torch.nn.Module, prompt: torch.Tensor, n: int) -> tuple:
    """(start time, arrival time of each token, tokens) of qkv greedy generation."""
    start, stamps, tokens = time.perf_counter(), [], []
    for token in qkv.generate_stream(model, prompt, max_new_tokens=n, temperature=0):
        tokens.append(int(token[0]))
        stamps.append(time.perf_counter())
    return start, stamps, tokens


def _run_hf(hf: torch.nn.Module, prompt: torch.Tensor, n: int) -> tuple:
    """(start time, arrival time of each token, tokens) of transformers greedy generation."""
    streamer = _Stamps()
    start = time.perf_counter()
    out = hf.generate(
        prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=n, min_new_tokens=n,
        do_sample=False, pad_token_id=0, streamer=streamer,
    )  # fmt: skip
    return start, streamer.times, out[0, prompt.shape[1] :].tolist()


def profile_generation(dtype: torch.dtype, new_tokens: int = 8) -> str:
    """Top operators of qkv's and transformers' greedy decoding (why one is faster)."""
    import transformers
    from torch.profiler import profile

    from qkv.models import GPT, preset

    torch.manual_seed(0)
    model = GPT(preset("gpt2")).eval()
    with tempfile.TemporaryDirectory() as directory:
        qkv.save(model, directory, format="hf")
        hf = transformers.AutoModelForCausalLM.from_pretrained(directory).eval()
    model, hf = model.to(dtype), hf.to(dtype)
    prompt = torch.randint(0, model.config.vocab_size, (1, 32))
    tables = []
    with torch.inference_mode():
        for name, run in (("qkv", _run_qkv), ("transformers", _run_hf)):
            run(model if name == "qkv" else hf, prompt, 2)
            with profile() as prof:
                run(model if name == "qkv" else hf, prompt, new_tokens)
            averages = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=6)
            tables.append(f"{name} {dtype}, {new_tokens} tokens:\n{averages}")
    return "\n".join(tables)


def bytes_per_token(model: torch.nn.Module, context: int) -> float:
    """Bytes a decode step reads: every weight once (one row of wpe) plus the KV cache."""
    c = model.config
    seen = {id(p): p for p in model.parameters()}
    size = sum(p.numel() * p.element_size() for p in seen.values())
    wpe = model.transformer["wpe"].weight
    size -= wpe.numel() * wpe.element_size() - wpe.shape[1] * wpe.element_size()
    kv = 2 * c.n_layer * context * c.n_kv_head * c.head_dim * wpe.element_size()
    return float(size + kv)


# --- encoding --------------------------------------------------------------------------------
def encoding(quick: bool) -> list[Row]:
    from sentence_transformers import SentenceTransformer

    from qkv.io import SentenceEncoder, pretrained_path

    directory = pretrained_path("all-minilm-l6-v2")
    ours = SentenceEncoder.from_pretrained(directory)
    theirs = SentenceTransformer(str(directory), device="cpu")
    tokenizer = ours.tokenizer
    rng = random.Random(0)
    single = [w for w in WORDS if len(tokenizer.encode(w, add_special_tokens=False)) == 1]

    def varied() -> list[str]:
        return [" ".join(rng.choices(WORDS, k=rng.randint(3, 110))) for _ in range(32)]

    def fixed() -> list[str]:  # 126 one-piece words + [CLS] + [SEP] = 128 tokens
        return [" ".join(rng.choices(single, k=126)) for _ in range(32)]

    n_batches = 2 if quick else 6
    rows = []
    for label, make in (("varied 3-110 words", varied), ("fixed 128 tokens", fixed)):
        batches = [make() for _ in range(n_batches + 1)]
        lengths = [len(ids) for b in batches for ids in tokenizer.encode_batch(b)]
        with torch.inference_mode():
            a = ours.encode(batches[0])
            b = theirs.encode(batches[0], batch_size=32, convert_to_tensor=True)
            diff = float((a - b).abs().max())
            times_q, times_s = [], []
            for batch in batches[1:]:  # interleaved, so load changes hit both alike
                times_q.append(_timed(ours.encode, batch))
                times_s.append(_timed(theirs.encode, batch))
        rows.append(
            Row(
                workload=f"encode MiniLM-L6, batches of 32, {label}",
                dtype="float32",
                unit="sent/s",
                qkv=32 / statistics.median(times_q),
                peer=32 / statistics.median(times_s),
                peer_name="sentence-transformers",
                target=1.2 if label.startswith("varied") else 1.0,
                note=f"tokens/sentence {min(lengths)}-{max(lengths)} "
                f"(mean {statistics.mean(lengths):.0f}); max |diff| {diff:.1e}",
            )
        )
    return rows


def _timed(encode: Callable[..., object], batch: list[str]) -> float:
    start = time.perf_counter()
    encode(batch, batch_size=32)
    return time.perf_counter() - start


# --- report ----------------------------------------------------------------------------------
def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info if "model name" in line)
    except (OSError, StopIteration):
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    from qkv.hardware import probe

    return (
        f"{cpu}, {os.cpu_count()} logical CPUs ({probe('cpu').describe()}), torch "
        f"{torch.__version__} ({torch.get_num_threads()} threads), load average {load:.1f} at start"
    )


def table(rows: list[Row]) -> str:
    lines = [
        "| workload | dtype | qkv | peer | qkv / peer | target | notes |",
        "| --- | --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in rows:
        status = "met" if r.ratio >= r.target else "NOT met"
        lines.append(
            f"| {r.workload} | {r.dtype} | {r.qkv:.2f} {r.unit} | {r.peer:.2f} {r.unit} "
            f"({r.peer_name}) | {r.ratio:.2f}x | >= {r.target:.1f}x ({status}) | {r.note} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short run (32 new tokens)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--new-tokens", type=int, default=None, help="override 256 / 32")
    parser.add_argument("--skip", choices=("generation", "encoding"), action="append", default=[])
    parser.add_argument("--out", default=None, help="also write the report (markdown) here")
    parser.add_argument(
        "--profile", action="store_true", help="only print the top operators of decoding"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.profile:
        for dtype in (torch.float32, torch.bfloat16):
            print(profile_generation(dtype))
        return
    started = time.perf_counter()
    header = f"machine: {machine()}\ndate: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
    print(header, flush=True)
    read_bw, copy_bw = bandwidth(args.quick)
    print(f"memory bandwidth: read {read_bw:.1f} GB/s (sum), copy {copy_bw:.1f} GB/s", flush=True)
    rows: list[Row] = []
    if "generation" not in args.skip:
        new_tokens = args.new_tokens or (32 if args.quick else 256)
        rows += generation(new_tokens, read_bw, repeats=1 if args.quick else 3)
    if "encoding" not in args.skip:
        rows += encoding(args.quick)
    report = (
        f"{header}\nmemory bandwidth: read {read_bw:.1f} GB/s (sum of 512 MiB fp32), "
        f"copy {copy_bw:.1f} GB/s (read + write)\n\n{table(rows)}\n\n"
        f"wall time {time.perf_counter() - started:.0f} s"
    )
    print("\n" + report)
    if args.out:
        with open(args.out, "w") as file:
            file.write(report + "\n")


if __name__ == "__main__":
    main()
