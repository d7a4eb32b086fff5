"""Warmup + cosine schedule and AdamW parameter groups."""

import math

import pytest
import torch

from qkv.models import GPT, language_model_loss, preset
from qkv.training.optim import make_adamw, parameter_groups
from qkv.training.schedule import learning_rate

SETTINGS = dict(lr=1e-3, min_lr=1e-4, warmup_iters=100, decay_iters=2000)


def test_warmup_is_linear_and_reaches_lr() -> None:
    assert learning_rate(0, **SETTINGS) == pytest.approx(1e-3 / 101)
    assert learning_rate(49, **SETTINGS) == pytest.approx(1e-3 * 50 / 101)
    assert learning_rate(100, **SETTINGS) == pytest.approx(1e-3)


def test_cosine_midpoint_end_and_floor() -> None:
    middle = 100 + (2000 - 100) // 2
    assert learning_rate(middle, **SETTINGS) == pytest.approx(1e-4 + 0.5 * 9e-4)
    assert learning_rate(1999, **SETTINGS) == pytest.approx(1e-4, rel=1e-4)
    assert learning_rate(5000, **SETTINGS) == 1e-4
    steps = [learning_rate(s, **SETTINGS) for s in range(100, 2000)]
    assert all(a >= b for a, b in zip(steps, steps[1:]))  # monotone decay
    quarter = 100 + 1900 * 0.25
    expected = 1e-4 + 0.5 * (1 + math.cos(math.pi * 0.25)) * 9e-4
    assert learning_rate(int(quarter), **SETTINGS) == pytest.approx(expected, rel=1e-3)


def test_only_matrices_are_decayed() -> None:
    model = GPT(preset("gpt-nano", vocab_size=50, n_layer=1))
    decay, no_decay = parameter_groups(model, 0.1)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    names = {id(p): n for n, p in model.named_parameters()}
    assert all(p.dim() == 2 for p in decay["params"])
    assert all(p.dim() == 1 for p in no_decay["params"])
    decayed = {names[id(p)] for p in decay["params"]}
    assert "transformer.wte.weight" in decayed  # tied with lm_head: listed once
    assert not any(n.endswith(".bias") or ".ln_" in n for n in decayed)
    total = sum(p.numel() for g in (decay, no_decay) for p in g["params"])
    assert total == model.num_parameters()


def test_fused_adamw_matches_eager_closely() -> None:
    torch.manual_seed(0)
    model_a = GPT(preset("gpt-nano", vocab_size=50, n_layer=1))
    model_b = GPT(preset("gpt-nano", vocab_size=50, n_layer=1))
    model_b.load_state_dict(model_a.state_dict())
    ids = torch.randint(0, 50, (2, 16))
    for model, fused in ((model_a, False), (model_b, True)):
        optimizer = make_adamw(model, lr=1e-2, weight_decay=0.1, betas=(0.9, 0.99), fused=fused)
        for _ in range(3):
            language_model_loss(model(ids), ids).backward()
            optimizer.step()
            optimizer.zero_grad()
    for a, b in zip(model_a.parameters(), model_b.parameters()):
        # fused kernels round differently where grad ≈ 0; a step moves weights by ~lr = 1e-2
        torch.testing.assert_close(a, b, rtol=0, atol=1e-3)
