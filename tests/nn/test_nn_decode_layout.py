"""decode_layout: same outputs from (in, out) weight copies, everything restored on exit."""

import torch

from qkv.models import GPT, preset
from qkv.nn import decode_layout
from qkv.nn.decode_layout import worth_it


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


def test_worth_it_only_for_float32_cpu_models_that_fit():
    model = GPT(preset("gpt-nano", vocab_size=70))
    assert worth_it(model)
    assert not worth_it(model, max_bytes=1000)
    assert not worth_it(model.to(torch.bfloat16))
