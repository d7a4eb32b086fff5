"""The edges of ``qkv.attention`` (issue #15 item 6), each against an oracle.

- gradients of a float mask and of ALiBi slopes: every backend that serves such a call gives
  the float64 reference's gradients (or refuses with the reason); ``tiled`` and ``auto`` serve;
- ``auto`` keeps the precision rule for the bf16 grouped-query backward;
- zero-size dims: B, Nq, Nk = 0 give the same defined result on every backend; H, D = 0 are
  refused alike;
- soft-cap finite and positive, strict types, tensors on another device: a ValueError
  naming the argument.
"""

from __future__ import annotations

import pytest
import torch
from attention_cases import max_error, precision_eps, torch_same_precision

import qkv
from qkv.attention.alibi import alibi_slopes
from qkv.attention.tiled import tiled_attention
from qkv.attention.validate import check_softcap, validate

CPU_BACKENDS = ["reference", "sdpa", "math", "flash-tiles", "tiled", "triton", "auto"]
MUST_SERVE = {"reference", "tiled", "auto"}  # the fallbacks: refusing here would be a bug


def _leaf(*shape, gen, dtype=torch.float64):
    return torch.randn(*shape, generator=gen, dtype=dtype).requires_grad_()


def _grads(backend: str, kind: str, n: int, causal: bool):
    """(out, dq, dk, dv, d_bias) for a float64 call with a learnable float mask or slopes."""
    gen = torch.Generator().manual_seed(3)
    q, k, v = _leaf(2, 4, n, 8, gen=gen), _leaf(2, 2, n, 8, gen=gen), _leaf(2, 2, n, 8, gen=gen)
    if kind == "mask":
        bias = _leaf(1, 4, n, n, gen=gen)
        options = {"mask": bias}
    else:
        bias = (alibi_slopes(4).double() * 3).requires_grad_()
        options = {"alibi_slopes": bias}
    out = qkv.attention(q, k, v, causal=causal, backend=backend, **options)
    grad = torch.randn(out.shape, generator=gen, dtype=out.dtype)
    (out * grad).sum().backward()
    return out.detach(), q.grad, k.grad, v.grad, bias.grad


# 160² scores: above the 128² where auto leaves `reference` for the blockwise backends.
@pytest.mark.parametrize("kind", ["mask", "alibi"])
@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
def test_bias_gradients_match_reference_or_refused(backend, kind, causal) -> None:
    expected = _grads("reference", kind, 160, causal)
    try:
        got = _grads(backend, kind, 160, causal)
    except ValueError as error:
        assert backend not in MUST_SERVE, f"{backend} refused a learnable {kind}: {error}"
        assert "cannot serve" in str(error)
        return
    assert got[-1] is not None, f"{backend} dropped the gradient of the {kind}"
    for name, a, b in zip(("out", "dq", "dk", "dv", f"d{kind}"), got, expected):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9, msg=f"{backend} {name}")


BIAS_SHAPES = {"mask_per_head": (1, 4, 7, 9), "mask_rows": (2, 1, 7, 1), "alibi": (2, 4)}


@pytest.mark.parametrize("kind", sorted(BIAS_SHAPES))
def test_tiled_bias_gradients_pass_gradcheck_across_block_edges(kind) -> None:
    gen = torch.Generator().manual_seed(5)
    q, k, v = _leaf(2, 4, 7, 3, gen=gen), _leaf(2, 2, 9, 3, gen=gen), _leaf(2, 2, 9, 3, gen=gen)
    bias = _leaf(*BIAS_SHAPES[kind], gen=gen)

    def fn(q, k, v, bias):
        options = {"alibi_slopes": bias} if kind == "alibi" else {"mask": bias}
        call = validate(q, k, v, causal=True, softcap=2.0, **options)
        return tiled_attention(call, block_q=3, block_k=4)[0]

    assert torch.autograd.gradcheck(fn, (q, k, v, bias))


@pytest.mark.parametrize("k_len", [640, 128])
@pytest.mark.parametrize("backend", ["auto", "sdpa"])
def test_bf16_grouped_query_backward_keeps_the_precision_rule(backend, k_len) -> None:
    """6 query heads on 1 key/value head, d 128: |fast − ref| ≤ 2·|torch bf16 − ref| + eps."""
    gen = torch.Generator().manual_seed(1)
    q = torch.randn(1, 6, 640, 128, generator=gen)
    k = torch.randn(1, 1, k_len, 128, generator=gen)
    v = torch.randn(1, 1, k_len, 128, generator=gen)
    grad = torch.randn(1, 6, 640, 128, generator=gen)

    def run(fn, dtype):
        leaves = [t.detach().clone().to(dtype).requires_grad_() for t in (q, k, v)]
        out = fn(*leaves)
        (out.float() * grad).sum().backward()
        return [out.detach(), *(t.grad for t in leaves)]

    oracle = run(lambda a, b, c: qkv.attention(a, b, c, backend="reference"), torch.float32)
    peer = run(torch_same_precision, torch.bfloat16)
    fast = run(lambda a, b, c: qkv.attention(a, b, c, backend=backend), torch.bfloat16)
    eps = precision_eps(torch.bfloat16)
    for name, f, p, o in zip(("out", "dq", "dk", "dv"), fast, peer, oracle):
        assert max_error(f, o) <= 2 * max_error(p, o) + eps, (
            f"{backend} {name}: error {max_error(f, o):.4g} vs torch bf16 {max_error(p, o):.4g}"
        )


EMPTY = {  # (B, Hq, Hkv, Nq, Nk, D)
    "B0": (0, 4, 2, 5, 6, 8),
    "Nq0": (2, 4, 2, 0, 6, 8),
    "Nk0": (2, 4, 2, 5, 0, 8),
}


def _empty_problem(shape):
    b, hq, hkv, nq, nk, d = shape
    return (
        torch.randn(b, hq, nq, d, requires_grad=True),
        torch.randn(b, hkv, nk, d, requires_grad=True),
        torch.randn(b, hkv, nk, d, requires_grad=True),
    )


def _available(backend: str) -> bool:
    return backend == "auto" or any(
        b.name == backend and b.available for b in qkv.attention_backends()
    )


@pytest.mark.parametrize("variant", ["none", "causal", "alibi"])
@pytest.mark.parametrize("case", sorted(EMPTY))
@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_zero_size_batch_and_lengths_are_defined_alike_on_every_backend(
    backend, case, variant
) -> None:
    if not _available(backend):
        pytest.skip(f"{backend} is not available here")
    q, k, v = _empty_problem(EMPTY[case])
    options = {"causal": variant == "causal"}
    if variant == "alibi":
        options["alibi_slopes"] = alibi_slopes(4)
    out = qkv.attention(q, k, v, backend=backend, **options)
    # The rule of qkv.attention: a query row with no key gives 0; no query gives no row.
    assert out.shape == (*q.shape[:3], v.shape[-1]) and out.dtype == q.dtype
    assert out.numel() == 0 or bool((out == 0).all())
    out.sum().backward()
    for name, t in (("q", q), ("k", k), ("v", v)):
        assert t.grad is not None and t.grad.shape == t.shape, name
        assert bool((t.grad == 0).all()), name
    if backend in ("reference", "tiled", "auto"):
        out_w, weights = qkv.attention_with_weights(q, k, v, backend=backend, **options)
        assert weights.shape == (*q.shape[:3], k.shape[2]) and out_w.shape == out.shape


@pytest.mark.parametrize(
    ("shape", "words"),
    [((1, 0, 0, 5, 5, 8), "heads"), ((1, 2, 2, 5, 5, 0), "head_dim")],
    ids=["H0", "D0"],
)
@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_zero_heads_and_head_dim_refused_alike(backend, shape, words) -> None:
    q, k, v = _empty_problem(shape)
    with pytest.raises(ValueError, match=words) as info:
        qkv.attention(q, k, v, backend=backend)
    assert "0" in str(info.value)


def test_zero_value_dim_refused() -> None:
    q, k = torch.randn(1, 2, 5, 8), torch.randn(1, 2, 5, 8)
    with pytest.raises(ValueError, match="v head_dim"):
        qkv.attention(q, k, torch.randn(1, 2, 5, 0))


BAD_SOFTCAPS = [float("inf"), float("nan"), 0.0, -1.0, True, "30", -float("inf")]


@pytest.mark.parametrize("softcap", BAD_SOFTCAPS)
def test_softcap_must_be_finite_and_positive(softcap) -> None:
    q = torch.randn(1, 2, 5, 8)
    with pytest.raises(ValueError, match="softcap"):
        qkv.attention(q, q, q, softcap=softcap)
    with pytest.raises(ValueError, match="softcap"):  # the check varlen_attention uses too
        check_softcap(softcap)


STRICT = [
    ("causal", {"causal": 1}),
    ("causal", {"causal": "yes"}),
    ("causal", {"causal": None}),
    ("causal", {"causal": torch.tensor(True)}),
    ("scale", {"scale": True}),
    ("scale", {"scale": torch.tensor(0.5)}),
    ("scale", {"scale": "0.5"}),
    ("dropout_p", {"dropout_p": False}),
    ("dropout_p", {"dropout_p": "0.1"}),
    ("softcap", {"softcap": False}),
    ("window", {"window": (True, 0)}),
    ("window", {"window": (2.0, 0)}),
    ("window", {"window": "2,0"}),
    ("alibi_slopes", {"alibi_slopes": [0.5, 0.25]}),
    ("alibi_slopes", {"alibi_slopes": (0.5, 0.25)}),
    ("mask", {"mask": [[True] * 5] * 5}),
    ("backend", {"backend": 3}),
    ("backend", {"backend": None}),
]


@pytest.mark.parametrize(("argument", "options"), STRICT, ids=[repr(o) for _, o in STRICT])
def test_strict_types_refused_naming_the_argument(argument, options) -> None:
    q = torch.randn(1, 2, 5, 8)
    with pytest.raises(ValueError, match=argument):
        qkv.attention(q, q, q, **options)


def test_need_weights_must_be_bool() -> None:
    q = torch.randn(1, 2, 5, 8)
    with pytest.raises(ValueError, match="need_weights"):
        qkv.explain_backend(q, q, q, need_weights="yes")


@pytest.mark.parametrize("argument", ["alibi_slopes", "mask", "k", "v"])
def test_tensor_on_another_device_is_a_value_error(argument) -> None:
    q = torch.randn(1, 2, 5, 8)
    options: dict = {"k": q, "v": q}
    meta = {
        "alibi_slopes": alibi_slopes(2).to("meta"),
        "mask": torch.ones(5, 5, dtype=torch.bool, device="meta"),
        "k": q.to("meta"),
        "v": q.to("meta"),
    }
    options[argument] = meta[argument]
    with pytest.raises(ValueError, match="meta") as info:
        qkv.attention(q, **options)
    assert argument.split("_")[0] in str(info.value)
