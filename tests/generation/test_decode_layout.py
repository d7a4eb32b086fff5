"""decode_layout: same outputs from packed or (in, out) weight copies, restored on exit."""

import importlib

import pytest
import torch

from qkv.generation import decode_layout
from qkv.generation.decode_layout import (
    _PackedLinear,
    _packing_works,
    copy_bytes,
    describe_layout,
    layout_for,
    packing_pays,
    worth_it,
)
from qkv.models import GPT, preset

# The module (the package attribute of the same name is the function).
layout_module = importlib.import_module("qkv.generation.decode_layout")


def test_outputs_equal_and_modules_restored():
    model = GPT(preset("gpt-nano", vocab_size=70)).eval()
    ids = torch.randint(0, 70, (2, 9))
    before = {name: p.clone() for name, p in model.state_dict().items()}
    expected = model(ids)
    with torch.inference_mode(), decode_layout(model):
        assert "forward" in model.lm_head.__dict__
        got = model(ids)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    assert all("forward" not in m.__dict__ for m in model.modules())
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, before[name]), name
    assert model.lm_head.weight is model.transformer["wte"].weight  # tying kept


def test_restored_after_an_error_and_disabled_is_a_no_op():
    model = GPT(preset("llama-nano", vocab_size=70)).eval()
    try:
        with decode_layout(model):
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert all("forward" not in m.__dict__ for m in model.modules())
    with decode_layout(model, enabled=False):
        assert all("forward" not in m.__dict__ for m in model.modules())


def test_worth_it_for_float32_and_packable_bfloat16_cpu_models_that_fit():
    model = GPT(preset("gpt-nano", vocab_size=70))
    assert worth_it(model)
    assert not worth_it(model, max_bytes=1000)
    assert not worth_it(model.to(torch.float64))
    assert not worth_it(model.to(torch.float16))
    packs = _packing_works(torch.bfloat16) and packing_pays()
    assert worth_it(model.to(torch.bfloat16)) == packs


def test_auto_layout_follows_the_cpu_and_the_weight_shape(monkeypatch):
    wide_out, wide_in = torch.zeros(96, 32), torch.zeros(32, 96)
    monkeypatch.setattr(layout_module, "packing_pays", lambda: False)  # an AVX2 CPU
    assert layout_for(wide_out) == "in_out"  # more outputs than inputs: (in, out) streams faster
    assert layout_for(wide_in) is None  # nn.Linear is faster there
    assert layout_for(wide_in.bfloat16()) is None  # no bf16 (in, out) copies, ever
    assert layout_for(wide_in, "in_out") == "in_out"
    assert layout_for(wide_out.double()) is None
    expected = "packed" if _packing_works(torch.float32) else None
    assert layout_for(wide_in, "packed") == expected
    monkeypatch.setattr(layout_module, "packing_pays", lambda: True)  # AVX-512
    assert layout_for(wide_in) == (expected or None)


def test_copy_bytes_and_description_count_the_chosen_layouts(monkeypatch):
    monkeypatch.setattr(layout_module, "packing_pays", lambda: False)
    model = GPT(preset("llama-nano", vocab_size=70))
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    wide = [m for m in linears if m.weight.shape[0] > m.weight.shape[1]]
    assert 0 < len(wide) < len(linears)
    assert copy_bytes(model) == sum(m.weight.numel() * 4 for m in wide)
    assert f"in_out for {len(wide)}" in describe_layout(model)
    assert f"of {len(linears)} linears" in describe_layout(model)
    with pytest.raises(ValueError, match="layout must be one of"):
        copy_bytes(model, "fastest")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="layout must be one of"), decode_layout(model, layout="x"):  # type: ignore[arg-type]
        pass


@pytest.mark.parametrize("layout", ["auto", "in_out", "packed"])
def test_every_layout_gives_the_usual_outputs(layout, monkeypatch):
    monkeypatch.setattr(layout_module, "packing_pays", lambda: False)
    model = GPT(preset("llama-nano", vocab_size=70)).eval()
    ids = torch.randint(0, 70, (2, 7))
    with torch.inference_mode():
        expected = model(ids)
        with decode_layout(model, layout=layout, keep=True):
            got = model(ids)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("rows", [1, 5, 64])
def test_packed_linear_equals_f_linear(rows):
    if not _packing_works(torch.float32):
        pytest.skip("this PyTorch build has no oneDNN linear")
    torch.manual_seed(0)
    weight, bias = torch.randn(37, 96), torch.randn(37)
    x = torch.randn(2, rows, 96)
    expected = torch.nn.functional.linear(x, weight, bias)
    torch.testing.assert_close(_PackedLinear(weight, bias)(x), expected, atol=1e-4, rtol=1e-5)
    no_bias = _PackedLinear(weight, None)(x[:, :1].transpose(0, 1))  # a non-contiguous input
    torch.testing.assert_close(
        no_bias, torch.nn.functional.linear(x[:, :1].transpose(0, 1), weight), atol=1e-4, rtol=1e-5
    )


def test_bfloat16_model_outputs_match_within_bf16_rounding():
    model = GPT(preset("gpt-nano", vocab_size=70)).eval().to(torch.bfloat16)
    ids = torch.randint(0, 70, (2, 9))
    with torch.inference_mode():
        expected = model(ids).float()
        with decode_layout(model, enabled=worth_it(model)):
            got = model(ids).float()
    assert (got - expected).abs().max() <= 0.05 * expected.abs().max()


def test_in_out_fallback_without_onednn(monkeypatch):
    monkeypatch.setattr(layout_module, "_packing_works", lambda dtype: False)
    monkeypatch.setattr(layout_module, "packing_pays", lambda: True)
    model = GPT(preset("gpt-nano", vocab_size=70)).eval()
    ids = torch.randint(0, 70, (1, 5))
    expected = model(ids)
    assert worth_it(model)
    assert not worth_it(GPT(preset("gpt-nano", vocab_size=70)).to(torch.bfloat16))
    with torch.inference_mode(), decode_layout(model):
        assert isinstance(model.lm_head.__dict__["forward"], layout_module._InOutLinear)
        got = model(ids)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_kept_copies_are_reused_until_a_weight_changes_and_released():
    from qkv.generation import release_decode_layout

    model = GPT(preset("gpt-nano", vocab_size=70)).eval()
    ids = torch.randint(0, 70, (1, 6))
    with torch.inference_mode(), decode_layout(model, keep=True):
        first = model.lm_head.__dict__["forward"]
    with torch.inference_mode(), decode_layout(model, keep=True):
        assert model.lm_head.__dict__["forward"] is first  # reused, not remade
    with torch.no_grad():
        model.lm_head.weight.mul_(2.0)  # an in-place update (as an optimizer step)
    expected = model(ids)
    with torch.inference_mode(), decode_layout(model, keep=True):
        assert model.lm_head.__dict__["forward"] is not first
        torch.testing.assert_close(model(ids), expected, atol=1e-4, rtol=1e-5)
    assert layout_module._KEPT.get(model.lm_head) is not None
    release_decode_layout(model)
    assert layout_module._KEPT.get(model.lm_head) is None
