"""The viewer's "what happens without it" panel: the numbers it embeds are each head's
zero-ablation effect on the shown text's loss, equal to zeroing that head's slice of the
output projection by hand."""

from __future__ import annotations

import copy
import subprocess
import sys

import pytest
import torch

from qkv.models import GPT, BertForMaskedLM, preset
from qkv.viz.ablation import head_ablation
from qkv.viz.capture import capture_ids
from qkv.viz.html import AttentionView, payload, payload_from_html


def model() -> GPT:
    torch.manual_seed(0)
    return GPT(preset("gpt-nano", vocab_size=50)).double().eval()


IDS = [3, 7, 1, 9, 3, 7, 1, 9, 4]


def test_effects_equal_zeroing_the_heads_output_projection_by_hand() -> None:
    gpt = model()
    result = head_ablation(gpt, IDS)
    assert result is not None
    ids = torch.tensor([IDS])
    loss = (
        lambda m: float(  # noqa: E731
            torch.nn.functional.cross_entropy(m(ids)[0, :-1].float(), ids[0, 1:])
        )
    )
    assert result["baseline"] == pytest.approx(loss(gpt), abs=1e-9)
    d = gpt.config.head_dim
    for layer, head in [(0, 0), (1, gpt.config.n_head - 1)]:
        edited = copy.deepcopy(gpt)
        with torch.no_grad():
            edited.transformer["h"][layer].attn.c_proj.weight[:, head * d : (head + 1) * d] = 0
        expected = loss(edited) - result["baseline"]
        assert result["effects"][layer][head] == pytest.approx(expected, abs=2e-6)  # fp32 loss
    assert any(abs(x) > 1e-6 for row in result["effects"] for x in row)


def test_the_viewer_embeds_the_panel_and_its_numbers() -> None:
    gpt = model()
    cap = capture_ids(gpt, IDS)
    result = head_ablation(gpt, IDS)
    document = AttentionView(cap, ablation=result).to_html()
    assert 'id="ablation-panel"' in document and "drawAblation" in document
    assert payload_from_html(document)["ablation"] == payload(cap, ablation=result)["ablation"]
    with pytest.raises(ValueError, match="effects of shape"):
        AttentionView(cap, ablation={"effects": [[0.0]]})


def test_encoders_and_one_token_texts_have_no_panel() -> None:
    torch.manual_seed(0)
    assert head_ablation(BertForMaskedLM(preset("bert-tiny", vocab_size=50)), IDS) is None
    assert head_ablation(model(), [5]) is None


def test_qkv_show_html_writes_the_panel(tmp_path) -> None:
    run = tmp_path / "run"
    gpt = GPT(preset("gpt-nano", vocab_size=50))
    import qkv
    from qkv.data import Tokenizer

    text = "abcdefghij klmnopqrstuvwxyz ABCDEFGHIJKLMNOP"
    qkv.save(gpt, run, tokenizer=Tokenizer.train_char(text))
    out = tmp_path / "view.html"
    cmd = [sys.executable, "-m", "qkv", "show", "abc abd", "--model", str(run), "--out", str(out)]
    subprocess.run(cmd, check=True, capture_output=True)
    data = payload_from_html(out.read_text())
    assert data["ablation"] is not None
    assert len(data["ablation"]["effects"]) == gpt.config.n_layer
    subprocess.run([*cmd, "--no-ablation"], check=True, capture_output=True)
    assert payload_from_html(out.read_text())["ablation"] is None
