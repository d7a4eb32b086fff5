"""Data preparation at scale: ``qkv prepare`` against a nanoGPT-style preparation.

For each generated UTF-8 corpus (words of English, German, Japanese and emoji, in lines and
paragraphs, made in ``--workdir`` and deleted afterwards) and each tokenizer kind, measure the
wall time and the peak resident memory of the whole process tree (sampled every 50 ms):

* ``qkv prepare`` (char; BPE with a trained 8k vocabulary: tokenizer training included, then
  the encoding alone with the cached tokenizer), then the cache hit (a second ``qkv prepare``);
* the peer, as nanoGPT's ``data/openwebtext/prepare.py`` does it: Hugging Face ``datasets``
  ``load_dataset("text")`` + ``map`` with 2 processes and the same ``tokenizers`` encoder
  (the tokenizer qkv trained, so both emit the same ids), then one ``np.memmap`` written from
  the mapped dataset. The peer's times exclude tokenizer training.

Usage: ``nice -n 5 python benchmarks/data.py --char-mb 500,2000 --bpe-mb 500,2000``
(sizes in MB; the defaults are what one run on a shared 2-core machine can afford).
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

WORDS = [
    "the",
    "of",
    "and",
    "to",
    "a",
    "in",
    "that",
    "is",
    "was",
    "he",
    "for",
    "it",
    "with",
    "as",
    "his",
    "on",
    "be",
    "at",
    "by",
    "I",
    "this",
    "had",
    "not",
    "are",
    "but",
    "from",
    "or",
    "have",
    "an",
    "they",
    "which",
    "one",
    "you",
    "were",
    "her",
    "all",
    "she",
    "there",
    "would",
    "their",
    "we",
    "him",
    "been",
    "has",
    "when",
    "who",
    "will",
    "more",
    "no",
    "if",
    "out",
    "so",
    "said",
    "what",
    "up",
    "its",
    "about",
    "into",
    "than",
    "them",
    "can",
    "only",
    "other",
    "Bär",
    "Straße",
    "müde",
    "Grüße",
    "naïve",
    "Crème",
    "café",
    "東京",
    "日本語",
    "テキスト",
    "🙂",
    "🚀",
    "—",
    "«",
    "»",
    "king",
    "queen",
    "thou",
    "thee",
    "hath",
    "doth",
    "lord",
    "good",
    "sweet",
    "death",
    "love",
    "heaven",
    "night",
]

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


def make_corpus(path: Path, megabytes: int, seed: int = 0) -> None:
    """A UTF-8 text of about ``megabytes`` MB: random words in lines, blank-line paragraphs."""
    rng = np.random.default_rng(seed)
    words = np.array(WORDS, dtype=object)
    target = megabytes * 1_000_000
    written = 0
    with open(path, "w", encoding="utf-8") as handle:
        while written < target:
            picks = words[rng.integers(0, len(words), 400_000)]
            lengths = rng.integers(4, 16, 40_000)
            lines, start = [], 0
            for n in lengths:
                lines.append(" ".join(picks[start : start + n]))
                start += n
                if start + 16 > len(picks):
                    break
            paragraphs = ["\n".join(lines[i : i + 8]) for i in range(0, len(lines), 8)]
            text = "\n\n".join(paragraphs) + "\n\n"
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--char-mb", default="500,1000", help="corpus sizes for char (MB)")
    parser.add_argument("--bpe-mb", default="20,60", help="corpus sizes for BPE (MB)")
    parser.add_argument("--workdir", default="/tmp/qkv-data-bench")
    parser.add_argument("--out", default="benchmarks/results/data-cpu.md")
    args = parser.parse_args()
    work = Path(args.workdir)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    src = str(Path(__file__).resolve().parents[1] / "src")
    base = {**os.environ, "PYTHONPATH": src, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    plan = [("char", int(s)) for s in args.char_mb.split(",") if s]
    plan += [("bpe", int(s)) for s in args.bpe_mb.split(",") if s]
    rows: list[tuple] = []
    started = datetime.now(UTC)

    def add(row: tuple) -> None:  # printed at once: a run cut short still shows its rows
        rows.append(row)
        print(row, flush=True)

    try:
        for kind, megabytes in plan:
            corpus = work / f"corpus-{megabytes}mb.txt"
            if not corpus.exists():
                make_corpus(corpus, megabytes)
            size = corpus.stat().st_size / 1e6
            cache = work / f"cache-{kind}-{megabytes}"
            env = {**base, "QKV_CACHE": str(cache)}
            qkv = [sys.executable, "-m", "qkv", "prepare", "--data", str(corpus),
                   "--tokenizer", kind, "--vocab-size", "8192", "--quiet"]  # fmt: skip
            wall, peak, out = measure(qkv, env)
            tokens = int(out.split(" tokens")[0].split()[-1].replace(",", ""))
            add((f"qkv prepare {kind}" + (" (train 8k BPE + encode)" if kind == "bpe"
                         else ""), size, tokens, wall, peak, inside(out)))  # fmt: skip
            if kind == "bpe":  # the encoding alone, with the tokenizer cached
                shutil.rmtree(cache / "prepared")
                wall, peak, out = measure(qkv, env)
                add(("qkv prepare bpe (encode only)", size, tokens, wall, peak,
                             inside(out)))  # fmt: skip
            qkv_wall = wall
            hit_wall, _, out = measure(qkv, env)
            add((f"qkv prepare {kind}: cache hit", size, tokens, hit_wall, 0.0,
                         inside(out)))  # fmt: skip
            tokenizer = next((cache / "tokenizers").glob("stream-*.json"))
            peer = [sys.executable, "-c", PEER, str(corpus), str(tokenizer),
                    str(work / "peer.bin"), str(work / f"hf-{kind}-{megabytes}")]  # fmt: skip
            wall, peak, out = measure(peer, base)
            add((f"peer {kind}: datasets map (2 procs) + memmap", size, int(out), wall,
                         peak, None))  # fmt: skip
            add((f"  qkv / peer wall ({kind})", size, 0, qkv_wall / wall, 0.0, None))
            shutil.rmtree(work / f"hf-{kind}-{megabytes}", ignore_errors=True)
            (work / "peer.bin").unlink(missing_ok=True)
            shutil.rmtree(cache, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        write_report(Path(args.out), rows, started)


def write_report(path: Path, rows: list[tuple], started: datetime) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from qkv.bench.hardware import machine_line

    lines = [
        "| run | corpus MB | tokens | wall s (process) | in-process s | peak RSS MB (tree) |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, size, tokens, wall, peak, own in rows:
        own_text = f"{own:.2f}" if own is not None else ""
        peak_text = f"{peak:.0f}" if peak else ""
        if name.startswith("  "):
            lines.append(f"| {name.strip()} | {size:.0f} | | **{wall:.2f}×** | | |")
        else:
            lines.append(f"| {name} | {size:.0f} | {tokens:,} | {wall:.2f} | {own_text} | "
                         f"{peak_text} |")  # fmt: skip
    table = "\n".join(lines)
    print(table)
    command = " ".join(sys.argv[1:])
    header = (
        f"# Data preparation benchmark (CPU)\n\n`nice -n 5 python benchmarks/data.py {command}`"
        f", {started:%Y-%m-%d %H:%M} UTC, one run.\n\nMachine: {machine_line()}.\n\n"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + table + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
