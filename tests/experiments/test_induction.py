"""The induction experiment: a short smoke run writes every output (default suite); the full
run must grow an induction head in the last layer (slow)."""

import json
import math

import pytest
import torch

import qkv
from qkv.experiments.induction import half_losses, run_experiment
from qkv.experiments.induction_task import InductionConfig, make_batch


def test_batches_are_bos_then_a_block_twice():
    config = InductionConfig(vocab_size=20, period=6, min_period=3)
    ids = make_batch(config, 4, torch.Generator().manual_seed(0), period=5)
    assert ids.shape == (4, 11)
    assert (ids[:, 0] == 0).all() and (ids[:, 1:] > 0).all()
    assert torch.equal(ids[:, 1:6], ids[:, 6:11])


def test_half_losses_split_the_blocks():
    period, vocab = 3, 5
    ids = torch.tensor([[0, 1, 2, 3, 1, 2, 3]])
    logits = torch.zeros(1, 7, vocab)
    # Perfect predictions on the second block only: positions period..2·period-1 predict ids.
    for t in range(period, 2 * period):
        logits[0, t, ids[0, t + 1]] = 100.0
    first, second, accuracy = half_losses(logits, ids, period)
    assert float(first) == pytest.approx(math.log(vocab))
    assert float(second) == pytest.approx(0.0, abs=1e-6)
    assert float(accuracy) == 1.0


def test_short_run_writes_model_plot_viewer_and_history(tmp_path):
    config = InductionConfig(
        vocab_size=16,
        period=6,
        min_period=4,
        n_embd=32,
        batch_size=8,
        eval_every=5,
        eval_sequences=4,
    )
    result = run_experiment(tmp_path, steps=10, seed=1, config=config)
    assert [h["step"] for h in result.history] == [0, 5, 10]
    entry = result.history[-1]
    assert len(entry["induction"]) == 2 and len(entry["induction"][0]) == 4
    assert result.final_induction == pytest.approx(max(max(r) for r in entry["induction"]))
    for name in ("model", "plot", "grid", "history"):
        assert name in result.files
    assert (tmp_path / "induction.png").read_bytes()[:4] == b"\x89PNG"
    saved = json.loads((tmp_path / "history.json").read_text())
    assert saved["best_layer"] == result.best_layer and saved["steps"] == 10
    # The saved model is the trained one: reloading gives the same logits.
    model = qkv.load(tmp_path / "model")
    tokenizer = qkv.load_tokenizer(tmp_path / "model")
    ids = torch.tensor([tokenizer.encode("t3 t5 t7 t3 t5 t7")])
    assert ids[0, 0].item() == 0 and ids.shape == (1, 7)
    assert torch.isfinite(model(ids)).all()
    if "html" in result.files:
        assert "<html" in (tmp_path / "induction.html").read_text("utf-8").lower()


def test_bad_arguments():
    with pytest.raises(ValueError, match="steps"):
        run_experiment("unused", steps=0)
    with pytest.raises(ValueError, match="min_period"):
        InductionConfig(period=4, min_period=6)


@pytest.mark.slow
def test_full_run_grows_an_induction_head(tmp_path):
    result = run_experiment(tmp_path, seed=0, html=False)
    final = result.history[-1]
    assert result.initial_induction < 0.1
    assert result.final_induction > 0.5
    assert result.best_layer == 1  # needs the previous-token head of layer 0 below it
    assert final["loss_second_half"] < final["loss_first_half"] - 1.0
