"""``--log tensorboard`` writes the scalars ``metrics.jsonl`` holds, read back with
TensorBoard's own event reader; ``--log wandb`` logs offline when wandb is installed."""

from pathlib import Path

import pytest
from train_helpers import TINY

from qkv.training.config import TrainConfig
from qkv.training.metrics import read_metrics
from qkv.training.trainer import train


def _scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder))
    events.Reload()
    return {
        tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]
    }


def test_tensorboard_holds_the_metrics(corpus_file: Path, tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    config = TrainConfig(**{**TINY, "data": str(corpus_file), "max_iters": 6,
                            "eval_interval": 3, "log": "tensorboard"})  # fmt: skip
    train(config, tmp_path / "run", quiet=True)
    records = read_metrics(tmp_path / "run" / "metrics.jsonl")
    scalars = _scalars(tmp_path / "run" / "tensorboard")
    train_records = [r for r in records if "loss" in r]
    assert [s for s, _ in scalars["train/loss"]] == [r["step"] for r in train_records]
    for (_, value), record in zip(scalars["train/loss"], train_records, strict=True):
        assert value == pytest.approx(record["loss"], rel=1e-6)  # stored as float32
    for (_, value), record in zip(scalars["train/lr"], train_records, strict=True):
        assert value == pytest.approx(record["lr"], rel=1e-6)
    val = [(r["step"], r["val_loss"]) for r in records if "val_loss" in r]
    assert [s for s, _ in scalars["val/loss"]] == [s for s, _ in val] == [3, 6]
    assert [v for _, v in scalars["val/loss"]] == pytest.approx([v for _, v in val], rel=1e-6)
    norms = [v for _, v in scalars["train/grad_norm"]]
    assert len(norms) == 6 and all(v > 0 for v in norms)
    assert len(scalars["train/tokens_per_s"]) == 6


def test_wandb_offline(corpus_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("wandb", reason="wandb is not installed (optional: pip install wandb)")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    config = TrainConfig(**{**TINY, "data": str(corpus_file), "max_iters": 2,
                            "eval_interval": 2, "log": "wandb"})  # fmt: skip
    train(config, tmp_path / "run", quiet=True)
    assert list((tmp_path / "run" / "wandb").glob("offline-run-*"))


def test_missing_logger_package_is_a_clear_error(
    corpus_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "wandb", None)  # as if not installed
    config = TrainConfig(**{**TINY, "data": str(corpus_file), "max_iters": 1, "log": "wandb"})
    with pytest.raises(ValueError, match="pip install wandb"):
        train(config, tmp_path / "run", quiet=True)
    with pytest.raises(ValueError, match="TrainConfig.log must be none, tensorboard or wandb"):
        TrainConfig(log="mlflow")
