"""Data preparation at scale: ``qkv prepare`` against a nanoGPT-style preparation.

For each generated UTF-8 corpus (see :func:`make_corpus`; made in ``--workdir`` and deleted
afterwards) and each tokenizer kind, measure the wall time, tokens/s and the peak resident
memory of the whole process tree (sampled every 50 ms):

* ``qkv prepare`` (char; BPE with a trained 8k vocabulary, tokenizer training included), then
  the cache hit (a second ``qkv prepare``: whole process, and the in-process time it reports);
* the peer, as nanoGPT's ``data/openwebtext/prepare.py`` does it: Hugging Face ``datasets``
  ``load_dataset("text")`` + ``map`` with 2 processes and the same ``tokenizers`` encoder
  (the tokenizer qkv trained, so both emit the same ids), then one ``np.memmap`` written from
  the mapped dataset. The peer's times exclude tokenizer training. It runs once per kind, at
  the smallest size or ``--peer-char-max-mb`` / ``--peer-bpe-max-mb`` if less (the peer's char
  map is a Python per-character loop: > 1 h at 2 GB); its measured MB/s gives the ratio at
  larger sizes, labelled as a rate extrapolation.

Usage (the issue's table, ~30 min on 2 quiet cores):
``nice -n 5 python benchmarks/data.py --char-mb 500,2000 --bpe-mb 500,2000``
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parents[1]
# tiny Shakespeare beside the checkout (../shared/data) or in the first worktree's.
SHAKESPEARE = (
    next(
        (p for p in (ROOT.parent / "shared", ROOT.parents[1] / "shared") if p.is_dir()),
        ROOT.parent / "shared",
    )
    / "data"
    / "tinyshakespeare.txt"
)
# Multi-byte words mixed into a few lines, so readers and cuts meet 2-, 3- and 4-byte characters.
FOREIGN = ["Bär", "Straße", "müde", "Grüße", "naïve", "Crème", "café", "東京", "日本語",
           "テキスト", "🙂", "🚀", "—", "«", "»"]  # fmt: skip
SYLLABLES = [c + v for c in "bcdfghklmnprstvwz" for v in ("a", "e", "i", "o", "u", "ae", "ou")]

PEER = r"""
import sys, numpy as np
from datasets import load_dataset
from tokenizers import Tokenizer
path, tokenizer_file, out, cache = sys.argv[1:5]
tok = Tokenizer.from_file(tokenizer_file)
eot = tok.token_to_id("<|endoftext|>")
dataset = load_dataset("text", data_files=path, split="train", cache_dir=cache,
                       sample_by="paragraph")
def encode(batch):
    ids = [e.ids + [eot] for e in tok.encode_batch_fast(batch["text"], add_special_tokens=False)]
    return {"ids": ids, "len": [len(i) for i in ids]}
mapped = dataset.map(encode, batched=True, remove_columns=["text"], num_proc=2)
total = int(np.sum(mapped["len"], dtype=np.uint64))
array = np.memmap(out, dtype=np.uint16, mode="w+", shape=(total,))
index = 0
shards = max(min(64, len(mapped)), 1)
for shard in range(shards):
    batch = mapped.shard(num_shards=shards, index=shard, contiguous=True).with_format("numpy")
    ids = np.concatenate(batch["ids"]) if len(batch) else np.zeros(0, np.uint16)
    array[index : index + len(ids)] = ids
    index += len(ids)
array.flush()
print(total)
"""


def _invented(index: int) -> str:
    """Word ``index`` of an endless invented vocabulary (names, rare words): base-119 digits
    spelled as syllables."""
    parts = []
    index += 1
    while index:
        index, digit = divmod(index, len(SYLLABLES))
        parts.append(SYLLABLES[digit])
    return "".join(parts)


def make_corpus(path: Path, megabytes: int, seed: int = 0, source: Path = SHAKESPEARE) -> None:
    """A UTF-8 text of about ``megabytes`` MB that BPE does not find trivial: the speeches of
    tiny Shakespeare (``source``) in shuffled order, a quarter of the lines gaining an invented
    word drawn from a Zipf law (so distinct words keep growing with the size, as in real text:
    Heaps' law), and 2% gaining multi-byte words (German, Japanese, emoji)."""
    rng = np.random.default_rng(seed)
    speeches = source.read_text(encoding="utf-8").split("\n\n")
    target = megabytes * 1_000_000
    written = 0
    with open(path, "w", encoding="utf-8") as handle:
        while written < target:
            lines = [line for i in rng.permutation(len(speeches))
                     for line in speeches[i].split("\n") + [""]]  # fmt: skip
            roll = rng.random(len(lines))
            words = rng.zipf(1.3, len(lines)) % 10_000_000
            foreign = rng.integers(0, len(FOREIGN), len(lines))
            out = []
            for line, r, w, f in zip(lines, roll, words.tolist(), foreign.tolist(), strict=True):
                if line and r < 0.25:
                    line = f"{line} {_invented(w)}"
                elif line and r < 0.27:
                    line = f"{FOREIGN[f]} {line} {FOREIGN[(f + 3) % len(FOREIGN)]}"
                out.append(line)
            text = "\n".join(out) + "\n"
            handle.write(text)
            written += len(text.encode("utf-8"))


def measure(command: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """(wall s, peak RSS of the process tree in MB, stdout) of ``command``."""
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)  # fmt: skip
    root = psutil.Process(process.pid)
    peak = 0
    while process.poll() is None:
        try:
            tree = [root, *root.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
        except psutil.Error:
            pass
        time.sleep(0.05)
    wall = time.perf_counter() - started
    out, err = process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{err[-3000:]}")
    return wall, peak / 1e6, out


def inside(out: str) -> float:
    """The preparation time ``qkv prepare`` reports (its process minus interpreter start and
    imports): ``... in 1.23 s: <folder>``."""
    return float(out.rsplit(" in ", 1)[1].split(" s")[0])


def sizes(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--char-mb", default="500,2000", help="corpus sizes for char (MB)")
    parser.add_argument("--bpe-mb", default="500,2000", help="corpus sizes for BPE (MB)")
    parser.add_argument("--peer-char-max-mb", type=int, default=50,
                        help="largest corpus the peer prepares at char level (MB)")  # fmt: skip
    parser.add_argument("--peer-bpe-max-mb", type=int, default=250,
                        help="largest corpus the peer prepares with BPE (MB)")  # fmt: skip
    parser.add_argument("--vocab-size", type=int, default=8192)
    parser.add_argument("--workdir", default="/tmp/qkv-data-bench")
    parser.add_argument("--out", default="benchmarks/results/data-cpu.md")
    args = parser.parse_args()
    work = Path(args.workdir)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    base = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "HF_DATASETS_OFFLINE": "1",
            "HF_HUB_OFFLINE": "1"}  # fmt: skip
    rows: list[dict] = []
    started = datetime.now(UTC)

    def add(**row: object) -> None:  # printed at once: a run cut short still shows its rows
        rows.append(row)
        print(row, flush=True)

    def corpus_of(megabytes: int) -> tuple[Path, float]:
        corpus = work / f"corpus-{megabytes}mb.txt"
        if not corpus.exists():
            make_corpus(corpus, megabytes)
        return corpus, corpus.stat().st_size / 1e6

    try:
        for kind, plan, cap in (("char", sizes(args.char_mb), args.peer_char_max_mb),
                                ("bpe", sizes(args.bpe_mb), args.peer_bpe_max_mb)):  # fmt: skip
            qkv_rates: list[tuple[float, float]] = []  # (MB, wall s) of each qkv run
            tokenizer = work / f"tokenizer-{kind}.json"
            for megabytes in plan:
                corpus, size = corpus_of(megabytes)
                cache = work / f"cache-{kind}-{megabytes}"
                env = {**base, "QKV_CACHE": str(cache)}
                qkv = [sys.executable, "-m", "qkv", "prepare", "--data", str(corpus),
                       "--tokenizer", kind, "--vocab-size", str(args.vocab_size),
                       "--quiet"]  # fmt: skip
                wall, peak, out = measure(qkv, env)
                tokens = int(out.split(" tokens")[0].split()[-1].replace(",", ""))
                label = f"qkv prepare {kind}" + (" (train 8k BPE + encode)" if kind == "bpe"
                                                 else "")  # fmt: skip
                add(name=label, mb=size, tokens=tokens, wall=wall, own=inside(out), peak=peak)
                qkv_rates.append((size, wall))
                hit, _, out = measure(qkv, env)
                add(name=f"qkv prepare {kind}: cache hit", mb=size, tokens=tokens, wall=hit,
                    own=inside(out))  # fmt: skip
                if not tokenizer.exists():
                    shutil.copy(next((cache / "tokenizers").glob("stream-*.json")), tokenizer)
                shutil.rmtree(cache, ignore_errors=True)
            if not plan:
                continue
            # The peer, once, at the smallest size or the cap (a prefix of the bigger corpora:
            # the generator writes the same blocks first, so qkv's tokenizer covers it).
            corpus, size = corpus_of(min(min(plan), cap))
            peer = [sys.executable, "-c", PEER, str(corpus), str(tokenizer),
                    str(work / "peer.bin"), str(work / f"hf-{kind}")]  # fmt: skip
            wall, peak, out = measure(peer, base)
            add(name=f"peer {kind}: datasets map (2 procs) + memmap", mb=size, tokens=int(out),
                wall=wall, peak=peak)  # fmt: skip
            shutil.rmtree(work / f"hf-{kind}", ignore_errors=True)
            (work / "peer.bin").unlink(missing_ok=True)
            peer_rate = size / wall  # MB/s
            for qkv_mb, qkv_wall in qkv_rates:
                measured = abs(qkv_mb - size) < 1
                add(name=f"qkv / peer wall ({kind})" + ("" if measured else
                    f", peer rate-extrapolated from {size:.0f} MB at {peer_rate:.2f} MB/s"),
                    mb=qkv_mb, ratio=qkv_wall / (qkv_mb / peer_rate))  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)
        write_report(Path(args.out), rows, started)


def write_report(path: Path, rows: list[dict], started: datetime) -> None:
    sys.path.insert(0, str(ROOT / "src"))
    from qkv.bench.hardware import machine_line

    lines = [
        "| run | corpus MB | tokens | wall s (process) | in-process s | MB/s (process) | "
        "M tokens/s | peak RSS MB (tree) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        if "ratio" in row:
            lines.append(f"| {row['name']} | {row['mb']:.0f} | | **{row['ratio']:.2f}×** | | | | |")
            continue
        own, peak = row.get("own"), row.get("peak")
        hit = "cache hit" in row["name"]  # a throughput of a hit would mean nothing
        seconds = own if own is not None else row["wall"]
        rate = "" if hit else f"{row['mb'] / row['wall']:.2f}"
        tokens_rate = "" if hit else f"{row['tokens'] / max(seconds, 1e-9) / 1e6:.2f}"
        lines.append(
            f"| {row['name']} | {row['mb']:.0f} | {row['tokens']:,} | {row['wall']:.2f} | "
            f"{'' if own is None else f'{own:.3f}'} | {rate} | {tokens_rate} | "
            f"{'' if not peak else f'{peak:.0f}'} |"
        )
    table = "\n".join(lines)
    print(table)
    command = " ".join(sys.argv[1:])
    header = (
        f"# Data preparation benchmark (CPU)\n\n`nice -n 5 python benchmarks/data.py {command}`"
        f", {started:%Y-%m-%d %H:%M} UTC, one run.\n\nMachine: {machine_line()}.\n\n"
        "M tokens/s: tokens over the in-process time for qkv (after interpreter start and "
        'imports), over the wall time for the peer. A ratio row with "rate-extrapolated" '
        "divides qkv's measured wall time by the peer's wall time at that size predicted from "
        "the peer's measured MB/s at the size it names (the peer was not run at that size).\n\n"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + table + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
