"""Under torchrun, rank 0 prepares a fresh corpus while the other rank waits at a barrier, both
read the same memmapped shards, and the run matches one process (same batches, same losses)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from train_helpers import synthetic_text

from qkv.training.metrics import read_metrics

FLAGS = [
    "--model", "gpt-nano", "--n-layer", "1", "--n-head", "2", "--n-embd", "32",
    "--block-size", "16", "--batch-size", "8", "--warmup-iters", "5", "--lr", "3e-3",
    "--eval-iters", "4", "--no-plot", "--quiet", "--max-iters", "8", "--eval-interval", "4",
    "--device", "cpu", "--tokenizer", "bpe", "--vocab-size", "300", "--text-field", "body",
]  # fmt: skip


def _run(command: list[str], cache: Path) -> None:
    env = {**os.environ, "QKV_CACHE": str(cache), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, env=env, timeout=300, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]


def _curve(run: Path) -> list[tuple]:
    records = read_metrics(run / "metrics.jsonl")
    return [(r["step"], r.get("loss"), r.get("val_loss")) for r in records]


def test_two_ranks_prepare_once_and_match_one_process(tmp_path: Path) -> None:
    pytest.importorskip("torch.distributed.run")
    data = tmp_path / "stories.jsonl"
    lines = synthetic_text(n_lines=900).splitlines()
    records = ["\n".join(lines[i : i + 3]) for i in range(0, len(lines), 3)]
    data.write_text("".join(json.dumps({"body": r}) + "\n" for r in records), encoding="utf-8")
    common = [*FLAGS, "--data", str(data)]
    one, two = tmp_path / "one", tmp_path / "two"
    _run([sys.executable, "-m", "qkv", "train", *common, "--out-dir", str(one)], tmp_path / "c1")
    _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
          "-m", "qkv", "train", *common, "--out-dir", str(two)], tmp_path / "c2")  # fmt: skip
    curve_one, curve_two = _curve(one), _curve(two)
    assert [c[0] for c in curve_one] == [c[0] for c in curve_two]
    for (_, loss_1, val_1), (_, loss_2, val_2) in zip(curve_one, curve_two, strict=True):
        assert (loss_1 is None) == (loss_2 is None) and (val_1 is None) == (val_2 is None)
        if loss_1 is not None:
            assert loss_2 == pytest.approx(loss_1, rel=1e-4)
        if val_1 is not None:
            assert val_2 == pytest.approx(val_1, rel=1e-4)
    # One preparation, whole: a single shard folder, no temporaries, the same ids as 1 process.
    folders = [p.name for p in (tmp_path / "c2" / "prepared").iterdir()]
    assert folders == [p.name for p in (tmp_path / "c1" / "prepared").iterdir()]
    assert len(folders) == 1 and not folders[0].startswith(".")
    shard_1 = (tmp_path / "c1" / "prepared" / folders[0] / "shard-00000.bin").read_bytes()
    shard_2 = (tmp_path / "c2" / "prepared" / folders[0] / "shard-00000.bin").read_bytes()
    assert shard_1 == shard_2
