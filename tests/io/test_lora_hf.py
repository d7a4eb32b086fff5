"""LoRA adapters of every decoder family are written under the Hugging Face export's module
names: ``peft.PeftModel.from_pretrained`` on the transformers model of the export gives qkv's
logits, and ``qkv.load`` of the adapter reads them back onto qkv's fused modules."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import qkv
from qkv.io.api import model_file_names
from qkv.io.lora import LoraSettings, apply_lora, base_sha256, save_adapter
from qkv.models import GPT, preset

transformers = pytest.importorskip("transformers")
peft = pytest.importorskip("peft")

CASES = [
    ("llama3-tiny", "q,v", {"self_attn.q_proj", "self_attn.v_proj"}),
    ("qwen2-tiny", "all-linear", None),
    ("pythia-tiny", "q,k,v,o", {"attention.query_key_value", "attention.dense"}),
    ("gemma2-tiny", "k,mlp", {"self_attn.k_proj", "mlp.gate_proj", "mlp.up_proj",
                              "mlp.down_proj"}),
]  # fmt: skip


def _trained_adapter(name: str, targets: str, root: Path) -> tuple[torch.nn.Module, Path]:
    """A base exported as a Hugging Face folder, and an adapter on it trained for a few SGD
    steps (so lora_B is non-zero where it trains and zero where the row mask keeps it)."""
    torch.manual_seed(0)
    export = root / "base"
    qkv.save(GPT(preset(name, vocab_size=64)).eval(), export, format="hf")
    model = apply_lora(qkv.load(export), LoraSettings(r=4, alpha=8.0, targets=targets))
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=0.5)
    ids = torch.randint(0, 64, (2, 12), generator=torch.Generator().manual_seed(1))
    model.train()
    for _ in range(3):
        logits = model(ids[:, :-1])
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), ids[:, 1:].flatten())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    adapter = root / "adapter"
    adapter.mkdir()
    digest = base_sha256(export, model_file_names(export))
    save_adapter(model, adapter, base=str(export), base_hash=digest)
    return model, adapter


@pytest.mark.parametrize(("name", "targets", "expected"), CASES, ids=[c[0] for c in CASES])
def test_peft_reads_the_adapter_of_every_family(name, targets, expected, tmp_path) -> None:
    model, adapter = _trained_adapter(name, targets, tmp_path)
    info = json.loads((adapter / "base_model.json").read_text())
    assert info["module_names"] == "hf" and "qkv_names_because" not in info
    hf = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "base").eval()
    ids = torch.randint(0, 64, (2, 10), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        plain = hf(ids).logits  # before peft adapts ``hf`` in place
    tuned = peft.PeftModel.from_pretrained(hf, adapter).eval()
    adapted = {n.split("base_model.model.", 1)[1].rsplit(".lora_A", 1)[0]
               for n, _ in tuned.named_parameters() if ".lora_A" in n}  # fmt: skip
    assert adapted == set(info["hf_modules"])
    if expected is not None:  # exactly the asked-for projections, in every layer
        assert {".".join(m.split(".")[-2:]) for m in adapted} == expected
    with torch.no_grad():
        ours = model(ids)
        theirs = tuned(ids).logits
        reloaded = qkv.load(adapter)(ids)
    assert (ours - plain).abs().max() > 1e-3  # the adapter changes the logits
    torch.testing.assert_close(theirs, ours, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(reloaded, ours, atol=1e-6, rtol=1e-6)


def test_a_join_of_separately_adapted_modules_keeps_qkv_names(tmp_path) -> None:
    """Phi-3's export joins gate_proj and up_proj into one gate_up_proj, which cannot hold two
    LoRA pairs: the adapter keeps qkv's names, says why, and still loads into qkv."""
    from qkv.io.lora_hf import to_hf

    torch.manual_seed(0)
    config = preset("phi3-tiny", vocab_size=64)
    base = GPT(config).eval()
    base.hf_model_type = "phi3"
    model = apply_lora(base, LoraSettings(r=2, alpha=4.0, targets="mlp"))
    from qkv.io.lora import adapter_state

    reason = to_hf(model, adapter_state(model), "mlp")
    assert isinstance(reason, str) and "gate_up_proj" in reason and "one pair" in reason


@pytest.mark.parametrize("masked_lm", [False, True], ids=["BertModel", "BertForMaskedLM"])
def test_peft_reads_a_bert_adapter(masked_lm: bool, tmp_path) -> None:
    """BERT's export splits c_attn into attention.self.{query,key,value}: a q,v adapter lands
    on query and value only, for the bare encoder and the masked-LM model alike."""
    from qkv.models import BertForMaskedLM, build

    torch.manual_seed(0)
    config = preset("bert-tiny", vocab_size=64)
    base = BertForMaskedLM(config) if masked_lm else build(config)
    export = tmp_path / "base"
    qkv.save(base.eval(), export, format="hf")
    model = apply_lora(qkv.load(export), LoraSettings(r=2, alpha=4.0, targets="q,v"))
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    ids = torch.randint(0, 64, (2, 10), generator=torch.Generator().manual_seed(1))
    direction = torch.randn(model(ids).shape, generator=torch.Generator().manual_seed(3))
    model.train()
    for _ in range(3):
        loss = (model(ids) * direction).mean()  # not pow(2): LayerNorm fixes the mean square
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    (tmp_path / "adapter").mkdir()
    save_adapter(model, tmp_path / "adapter", base=str(export),
                 base_hash=base_sha256(export, model_file_names(export)))  # fmt: skip
    auto = transformers.AutoModelForMaskedLM if masked_lm else transformers.AutoModel
    hf = auto.from_pretrained(export).eval()
    with torch.no_grad():
        plain = hf(input_ids=ids)[0]
    tuned = peft.PeftModel.from_pretrained(hf, tmp_path / "adapter").eval()
    adapted = {n.rsplit(".lora_A", 1)[0].rsplit(".", 1)[-1]
               for n, _ in tuned.named_parameters() if ".lora_A" in n}  # fmt: skip
    assert adapted == {"query", "value"}
    with torch.no_grad():
        ours, theirs = model(ids), tuned(input_ids=ids)[0]
        reloaded = qkv.load(tmp_path / "adapter")(ids)
    assert (ours - plain).abs().max() > 1e-4
    torch.testing.assert_close(theirs, ours, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(reloaded, ours, atol=1e-6, rtol=1e-6)
