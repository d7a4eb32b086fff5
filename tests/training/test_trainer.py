"""The training loop in-process: loss falls, checkpoints load and reproduce the logged
validation loss, pruning keeps last-k + best, faults stop the run with checkpoints intact."""

import json
import math
from pathlib import Path

import pytest
import torch
from train_helpers import TINY

import qkv
from qkv.data.batches import fixed_eval_batches
from qkv.training import checkpoint as ckpt
from qkv.training import checkpointer, step, trainer
from qkv.training.config import TrainConfig
from qkv.training.metrics import read_metrics
from qkv.training.prepare import prepare_data


def _config(corpus: Path, **changes: object) -> TrainConfig:
    return TrainConfig(**{**TINY, "data": str(corpus), **changes})


def test_loss_falls_and_checkpoint_reproduces_val_loss(corpus_file: Path, tmp_path: Path) -> None:
    config = _config(corpus_file, max_iters=40, eval_interval=20)
    result = trainer.train(config, tmp_path / "run", quiet=True)
    records = read_metrics(tmp_path / "run" / "metrics.jsonl")
    losses = [r["loss"] for r in records if "loss" in r]
    vals = [r["val_loss"] for r in records if "val_loss" in r]
    assert len(losses) == 40 and len(vals) == 2
    vocab = len(set(corpus_file.read_text()))
    assert losses[0] == pytest.approx(math.log(vocab), abs=0.3)  # starts near uniform
    assert sum(losses[-5:]) / 5 < losses[0] - 1.0
    assert vals[1] < vals[0]
    # The checkpoint is the trained model: reloaded, it gives the logged validation loss.
    model = qkv.load(tmp_path / "run" / "latest")
    assert result.checkpoint == (tmp_path / "run" / "latest").resolve()
    data = prepare_data(config, quiet=True)
    batches = fixed_eval_batches(
        data.val, block_size=16, batch_size=8, n_batches=4, seed=config.seed + 1
    )
    with torch.no_grad():
        losses = [float(qkv.models.language_model_loss(model(x), y)) for x, y in batches]
        reloaded = sum(losses) / len(batches)
    assert reloaded == pytest.approx(vals[-1], rel=1e-6)
    tokenizer = qkv.load_tokenizer(tmp_path / "run" / "latest")
    assert tokenizer.decode(tokenizer.encode("anna sees ben.")) == "anna sees ben."


def test_keeps_last_k_and_best(corpus_file: Path, tmp_path: Path, monkeypatch) -> None:
    losses = iter([3.0, 1.0, 2.0, 4.0, 5.0, 6.0])  # best at step 10
    monkeypatch.setattr(trainer, "evaluate", lambda *a, **k: next(losses))
    trainer.train(
        _config(corpus_file, max_iters=30, eval_interval=5, keep_last=2), tmp_path / "run",
        quiet=True,
    )  # fmt: skip
    steps = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    assert steps == ["step-00000010", "step-00000025", "step-00000030"]
    assert (tmp_path / "run" / "best").resolve().name == "step-00000010"
    assert (tmp_path / "run" / "latest").resolve().name == "step-00000030"


def test_interrupted_checkpoint_write_keeps_the_previous_one(
    corpus_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_save = checkpointer.save_train_state
    calls = []

    def crash_on_second(state: dict, path: Path) -> None:
        calls.append(path)
        if len(calls) == 2:
            Path(path).write_bytes(b"half a file")  # the crash hits mid-write
            raise OSError("disk full")
        real_save(state, path)

    monkeypatch.setattr(checkpointer, "save_train_state", crash_on_second)
    run = tmp_path / "run"
    with pytest.raises(OSError, match="disk full"):
        trainer.train(_config(corpus_file, max_iters=20, eval_interval=10), run, quiet=True)
    assert (run / "latest").resolve().name == "step-00000010"
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["step-00000010"]  # no .tmp
    ckpt.verify_checkpoint((run / "latest").resolve())
    model = qkv.load(run / "latest")
    assert isinstance(model, qkv.models.GPT)


def test_non_finite_loss_stops_and_names_the_step(
    corpus_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_loss = step.loss_of
    calls = []

    def loss_goes_nan(*args: object, **kwargs: object) -> torch.Tensor:
        loss = real_loss(*args, **kwargs)
        if not torch.is_grad_enabled():  # evaluation
            return loss
        calls.append(1)
        return loss * float("nan") if len(calls) == 13 else loss

    monkeypatch.setattr(step, "loss_of", loss_goes_nan)
    run = tmp_path / "run"
    with pytest.raises(trainer.TrainingError, match="loss became nan at step 13"):
        trainer.train(_config(corpus_file, max_iters=30, eval_interval=10), run, quiet=True)
    assert (run / "latest").resolve().name == "step-00000010"
    manifest = ckpt.verify_checkpoint((run / "latest").resolve())
    assert manifest["step"] == 10


def test_grad_accumulation_matches_a_bigger_batch(corpus_file: Path, tmp_path: Path) -> None:
    # Two micro-batches of 4 draw the same windows as one batch of 8 (the sampler's
    # generator is consumed in order), so the averaged gradients and losses agree.
    for name, changes in (("big", {"batch_size": 8}), ("acc", {"batch_size": 4, "grad_accum": 2})):
        trainer.train(_config(corpus_file, max_iters=4, eval_interval=4, **changes),
                      tmp_path / name, quiet=True)  # fmt: skip
    big, acc = (
        [r["loss"] for r in read_metrics(tmp_path / n / "metrics.jsonl") if "loss" in r]
        for n in ("big", "acc")
    )
    assert big == pytest.approx(acc, rel=1e-5)
    assert big[0] != big[-1]


def test_masked_lm_bert_trains(corpus_file: Path, tmp_path: Path) -> None:
    config = _config(corpus_file, model="bert-tiny", max_iters=40, eval_interval=40, lr=2e-3)
    trainer.train(config, tmp_path / "bert", quiet=True)
    records = read_metrics(tmp_path / "bert" / "metrics.jsonl")
    losses = [r["loss"] for r in records if "loss" in r]
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5 - 0.2
    model = qkv.load(tmp_path / "bert" / "latest")
    assert isinstance(model, qkv.models.BertForMaskedLM)
    saved = json.loads((tmp_path / "bert" / "latest" / "train_config.json").read_text())
    assert saved["model"] == "bert-tiny"
