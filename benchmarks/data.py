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

ROOT = Path(__file__).resolve().parents[1]
# tiny Shakespeare beside the checkout (../shared/data) or in the first worktree's.
SHAKESPEARE = next(
    (p for p in (ROOT.parent / "shared", ROOT.parents[1] / "shared") if p.is_dir()),
    ROOT.parent / "shared",
) / "data" / "tinyshakespeare.txt"
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
