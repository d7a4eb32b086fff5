"""Attention rollout against hand computation."""

import pytest
import torch

from qkv.viz.rollout import rollout


def test_rollout_of_identity_attention_is_identity():
    t = 5
    w = torch.eye(t).expand(3, 4, t, t)  # (L, H, T, T)
    assert torch.allclose(rollout(w), torch.eye(t, dtype=torch.float64))


def test_rollout_matches_explicit_product():
    torch.manual_seed(0)
    w = torch.softmax(torch.randn(3, 2, 4, 4), dim=-1)
    per_layer = [(w[i].double().mean(0) + torch.eye(4, dtype=torch.float64)) / 2 for i in range(3)]
    expected = per_layer[2] @ per_layer[1] @ per_layer[0]
    assert torch.allclose(rollout(w), expected)
    partial = rollout(w, all_layers=True)
    assert partial.shape == (3, 4, 4)
    assert torch.allclose(partial[0], per_layer[0])
    assert torch.allclose(rollout(w).sum(-1), torch.ones(4, dtype=torch.float64))


def test_rollout_without_residual_is_plain_product():
    w = torch.softmax(torch.randn(2, 1, 3, 3), dim=-1)
    expected = w[1, 0].double() @ w[0, 0].double()
    assert torch.allclose(rollout(w, residual=False), expected)


def test_rollout_rejects_bad_shapes():
    with pytest.raises(ValueError, match="head_fusion"):
        rollout(torch.rand(1, 1, 2, 2), head_fusion="median")
    with pytest.raises(ValueError, match="L, H, T, T"):
        rollout(torch.rand(2, 2))
