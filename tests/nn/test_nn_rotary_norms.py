"""Rotary embedding properties and RMSNorm against their formulas."""

import pytest
import torch

from qkv.nn import RMSNorm, RotaryEmbedding, apply_rotary


def rotate(x, positions, rope):
    cos, sin = rope(positions)
    return apply_rotary(x, cos, sin)


def test_rotary_scores_depend_only_on_relative_position():
    rope = RotaryEmbedding(head_dim=16, max_positions=128)
    q = torch.randn(1, 1, 1, 16, dtype=torch.float64)
    k = torch.randn(1, 1, 1, 16, dtype=torch.float64)

    def score(m, n):
        qm = rotate(q, torch.tensor([[m]]), rope)
        kn = rotate(k, torch.tensor([[n]]), rope)
        return (qm * kn).sum()

    for offset in (0, 3, 17):
        torch.testing.assert_close(score(5 + offset, 2 + offset), score(5, 2))
    assert not torch.allclose(score(5, 2), score(5, 3))


def test_rotary_preserves_norms_and_position_zero_is_identity():
    rope = RotaryEmbedding(head_dim=8, max_positions=64)
    x = torch.randn(2, 3, 10, 8, dtype=torch.float64)
    rotated = rotate(x, torch.arange(10).expand(2, 10), rope)
    torch.testing.assert_close(rotated.norm(dim=-1), x.norm(dim=-1))
    torch.testing.assert_close(rotated[:, :, 0], x[:, :, 0])


def test_rotary_equals_complex_rotation_of_half_pairs():
    """Llama layout: dims (i, i + D/2) form the complex number rotated by pos·θ^(-2i/D)."""
    head_dim, theta = 8, 500.0
    rope = RotaryEmbedding(head_dim=head_dim, max_positions=32, theta=theta)
    x = torch.randn(1, 1, 6, head_dim, dtype=torch.float64)
    positions = torch.arange(6)
    rotated = rotate(x, positions[None], rope)
    half = head_dim // 2
    freqs = theta ** (-torch.arange(half, dtype=torch.float64) * 2 / head_dim)
    angle = positions[:, None].double() * freqs[None]  # (T, D/2)
    z = torch.complex(x[..., :half], x[..., half:]) * torch.polar(torch.ones_like(angle), angle)
    expected = torch.cat((z.real, z.imag), dim=-1)
    torch.testing.assert_close(rotated, expected, atol=1e-6, rtol=1e-6)


def test_rotary_tables_are_float32_and_odd_dims_refused():
    rope = RotaryEmbedding(head_dim=4, max_positions=8)
    cos, sin = rope(torch.arange(3)[None])
    assert cos.dtype == sin.dtype == torch.float32 and cos.shape == (1, 1, 3, 4)
    with pytest.raises(ValueError, match="even"):
        RotaryEmbedding(head_dim=5, max_positions=8)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_rmsnorm_formula_in_float32(dtype):
    norm = RMSNorm(12, eps=1e-6)
    with torch.no_grad():
        norm.weight.copy_(torch.randn(12))
    norm = norm.to(dtype)
    x = torch.randn(3, 5, 12).to(dtype)
    x32 = x.float()
    normalised = (x32 / torch.sqrt(x32.pow(2).mean(-1, keepdim=True) + 1e-6)).to(dtype)
    torch.testing.assert_close(norm(x), norm.weight * normalised)
    assert norm(x).dtype == dtype
