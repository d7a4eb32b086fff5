"""What the integrity check costs ``qkv.load``: a 500 MB checkpoint loaded with and without
its manifest, side by side in one run.

The checkpoint is GPT-2 (124M parameters, fp32: ``model.safetensors`` of 498 MB) saved with
``qkv.save`` plus the ``checkpoint.json`` manifest ``qkv train`` writes. Three ways to load it,
interleaved, the file in the page cache for all of them (the disk is not what is measured):

* **unchecked**: the manifest moved aside, so nothing is hashed (what a Hugging Face folder
  without a manifest gets);
* **checked, first load in the process**: every byte of config.json and model.safetensors is
  hashed (SHA-256) and compared before the weights are read;
* **checked, again**: the same file, unchanged since this process hashed it (its device,
  inode, size, mtime_ns and ctime_ns are the same), so the remembered hash is reused.

Also printed: SHA-256 throughput of the file alone. Run ``python benchmarks/integrity.py``
(``--reps N``, ``--out FILE`` writes the markdown table).
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

import qkv
from qkv.bench.hardware import machine_line
from qkv.io import integrity


def _seconds(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "checkpoint"
        torch.manual_seed(0)
        model = qkv.models.build(qkv.models.preset("gpt2"))
        qkv.save(model, folder)
        del model
        manifest = {"step": 0, "val_loss": None, "files": integrity.hash_files(folder)}
        (folder / "checkpoint.json").write_text(json.dumps(manifest))
        weights = folder / "model.safetensors"
        size = weights.stat().st_size
        aside = Path(tmp) / "checkpoint.json.aside"

        def unchecked() -> None:
            (folder / "checkpoint.json").rename(aside)
            try:
                qkv.load(folder)
            finally:
                aside.rename(folder / "checkpoint.json")

        def checked_first() -> None:
            integrity.forget_hashes()
            qkv.load(folder)

        def checked_again() -> None:
            qkv.load(folder)  # the previous call left the hashes remembered

        def hash_only() -> None:
            integrity.forget_hashes()
            integrity.sha256_file(weights)

        unchecked()  # warm the page cache and the imports
        times: dict[str, list[float]] = {"unchecked": [], "first": [], "again": [], "hash": []}
        for _ in range(args.reps):  # interleaved: load drift hits every variant alike
            times["unchecked"].append(_seconds(unchecked))
            times["first"].append(_seconds(checked_first))
            times["again"].append(_seconds(checked_again))
            times["hash"].append(_seconds(hash_only))

    median = {name: statistics.median(values) for name, values in times.items()}
    base = median["unchecked"]
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"`python benchmarks/integrity.py --reps {args.reps}`, {when}",
        "",
        f"machine: {machine_line()}",
        f"file: model.safetensors of GPT-2 124M fp32, {size / 1e6:.0f} MB, in the page cache",
        "",
        "| qkv.load of the checkpoint | median s | vs unchecked | extra s |",
        "| --- | ---: | ---: | ---: |",
        f"| unchecked (no manifest) | {base:.3f} | 1.00x | |",
        f"| checked, first load in the process | {median['first']:.3f} | "
        f"{median['first'] / base:.2f}x | {median['first'] - base:+.3f} |",
        f"| checked, again (hash remembered) | {median['again']:.3f} | "
        f"{median['again'] / base:.2f}x | {median['again'] - base:+.3f} |",
        "",
        f"SHA-256 of the file alone: {median['hash']:.3f} s = "
        f"{size / median['hash'] / 1e9:.2f} GB/s",
        "",
        "All runs (s): "
        + "; ".join(f"{name} " + ", ".join(f"{t:.3f}" for t in ts) for name, ts in times.items()),
    ]
    text = "\n".join(lines)
    print(text)
    if args.out is not None:
        args.out.write_text(f"# benchmarks/integrity.py — CPU results\n\n{text}\n")


if __name__ == "__main__":
    main()
