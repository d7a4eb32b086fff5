"""fused_language_model_loss against F.cross_entropy on the full logits: values and
gradients (hidden and head weight), every chunking, ignored positions, a frozen head, and
the training loss of a GPT (tied embeddings) against the unfused path."""

import pytest
import torch
import torch.nn.functional as F

from qkv.models import GPT, fused_language_model_loss, preset
from qkv.training.step import loss_of


def _case(seed: int = 0, vocab: int = 97, width: int = 24, dtype=torch.float64):
    generator = torch.Generator().manual_seed(seed)
    hidden = torch.randn(2, 37, width, generator=generator, dtype=dtype)  # (B, T, C)
    weight = torch.randn(vocab, width, generator=generator, dtype=dtype)  # (V, C)
    targets = torch.randint(0, vocab, (2, 37), generator=generator)
    targets[0, :5] = -100
    targets[1, -3:] = -100
    return hidden.requires_grad_(), weight.requires_grad_(), targets


def _oracle(hidden, weight, targets):
    logits = hidden @ weight.t()  # (B, T, V)
    return F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-100)


@pytest.mark.parametrize("chunk_rows", [1, 5, 73, 74, 1000, None])
def test_value_and_gradients_equal_cross_entropy(chunk_rows) -> None:
    hidden, weight, targets = _case()
    expected = _oracle(hidden, weight, targets)
    want_h, want_w = torch.autograd.grad(3.0 * expected, (hidden, weight))
    loss = fused_language_model_loss(hidden, weight, targets, chunk_rows=chunk_rows)
    got_h, got_w = torch.autograd.grad(3.0 * loss, (hidden, weight))
    torch.testing.assert_close(loss, expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(got_h, want_h, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(got_w, want_w, rtol=1e-10, atol=1e-12)


def test_fp32_within_float_rounding_and_frozen_weight_gets_no_gradient() -> None:
    hidden, weight, targets = _case(seed=1, vocab=1031, dtype=torch.float32)
    weight.requires_grad_(False)
    expected = _oracle(hidden, weight, targets)
    (want_h,) = torch.autograd.grad(expected, hidden)
    loss = fused_language_model_loss(hidden, weight, targets, chunk_rows=16)
    loss.backward()
    torch.testing.assert_close(loss, expected, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(hidden.grad, want_h, rtol=1e-5, atol=1e-7)
    assert weight.grad is None


def test_no_grad_value_and_all_ignored_is_nan_like_cross_entropy() -> None:
    hidden, weight, targets = _case(seed=2)
    with torch.no_grad():
        torch.testing.assert_close(
            fused_language_model_loss(hidden, weight, targets, chunk_rows=7),
            _oracle(hidden, weight, targets),
        )
        ignored = torch.full_like(targets, -100)
        assert torch.isnan(_oracle(hidden, weight, ignored))
        assert torch.isnan(fused_language_model_loss(hidden, weight, ignored))


def test_bad_shapes_are_refused() -> None:
    hidden, weight, targets = _case()
    with pytest.raises(ValueError, match=r"targets must have shape \(2, 37\)"):
        fused_language_model_loss(hidden, weight, targets[:, :-1])
    with pytest.raises(ValueError, match="same C"):
        fused_language_model_loss(hidden, weight[:, :-1], targets)


@pytest.mark.parametrize("name", ["gpt-nano", "llama-nano"])
def test_gpt_training_loss_and_every_gradient_equal_the_unfused_path(name) -> None:
    torch.manual_seed(0)
    model = GPT(preset(name, vocab_size=61, dropout=0.0)).double()
    inputs = torch.randint(0, 61, (3, 11))
    targets = torch.randint(0, 61, (3, 11))
    targets[:, :2] = -100
    logits = model(inputs)  # (B, T, V), fp64
    expected = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-100)
    expected.backward()
    want = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad(set_to_none=True)
    loss = loss_of(model, inputs, targets, masked_lm=False)
    loss.backward()
    torch.testing.assert_close(loss, expected, rtol=1e-12, atol=1e-12)
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.grad, want[n], rtol=1e-9, atol=1e-12, msg=n)
