"""LoRA fine-tuning: the checkpoint holds only the adapter (PEFT format), its logits are the
base plus the low-rank update computed by hand from the saved tensors, merging changes
nothing, transformers + peft read the adapter, and a changed base is refused."""

import json
from pathlib import Path

import pytest
import torch
from finetune_helpers import FINETUNE, new_corpus, train_base
from safetensors.torch import load_file, save_file

import qkv
from qkv.cli.main import main
from qkv.io.lora import LoraSettings, apply_lora
from qkv.training import train
from qkv.training.finetune import finetune_config

R, ALPHA = 4, 8.0


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("lora")
    train_base(root)
    config = finetune_config(str(root / "base"), data=str(new_corpus(root)), **FINETUNE,
                             max_iters=12, eval_interval=6, lora_r=R, lora_alpha=ALPHA,
                             lora_targets="q,v,mlp")  # fmt: skip
    train(config, root / "lora", quiet=True)
    return root


def _ids() -> torch.Tensor:
    return torch.randint(0, 15, (2, 16), generator=torch.Generator().manual_seed(0))


def _logits(model: torch.nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return model(_ids())


def test_the_checkpoint_holds_only_the_adapter_in_peft_format(root: Path) -> None:
    checkpoint = (root / "lora" / "latest").resolve()
    names = {p.name for p in checkpoint.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "base_model.json"} <= names
    assert "model.safetensors" not in names and "config.json" not in names
    config = json.loads((checkpoint / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA" and config["r"] == R and config["lora_alpha"] == ALPHA
    base = json.loads((checkpoint / "base_model.json").read_text())
    assert Path(base["base"]) == (root / "base" / "best").resolve() and len(base["sha256"]) == 64
    keys = load_file(str(checkpoint / "adapter_model.safetensors"))
    assert all(k.startswith("base_model.model.transformer.h.") for k in keys)
    assert all("lora_A.weight" in k or "lora_B.weight" in k for k in keys)


def test_logits_equal_the_base_plus_the_hand_computed_low_rank_update(root: Path) -> None:
    checkpoint = (root / "lora" / "latest").resolve()
    adapter = load_file(str(checkpoint / "adapter_model.safetensors"))
    base = qkv.load(root / "base")
    by_hand = qkv.load(root / "base")
    n_q = base.config.n_head * (base.config.n_embd // base.config.n_head)
    updated = 0
    for name, module in by_hand.named_modules():
        key = f"base_model.model.{name}.lora_A.weight"
        if key not in adapter:
            continue
        a, b = adapter[key], adapter[key.replace("lora_A", "lora_B")]  # (r, in), (out, r)
        assert b.abs().sum() > 0, f"{name}: lora_B never trained"
        if name.endswith("attn.c_attn"):  # targets q and v: the k rows stay exactly zero
            assert torch.equal(b[n_q : 2 * n_q], torch.zeros_like(b[n_q : 2 * n_q]))
        with torch.no_grad():
            module.weight += (ALPHA / R) * (b @ a)
        updated += 1
    assert updated == 3 * base.config.n_layer  # c_attn, c_fc, mlp.c_proj per block
    lora = qkv.load(root / "lora")
    torch.testing.assert_close(_logits(lora), _logits(by_hand), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(_logits(lora), _logits(base), atol=1e-3)


def test_merged_equals_unmerged_in_qkv_and_hf_formats(root: Path, capsys) -> None:
    transformers = pytest.importorskip("transformers")
    unmerged = _logits(qkv.load(root / "lora"))
    assert main(["merge", str(root / "lora"), "--out", str(root / "merged")]) == 0
    merged = qkv.load(root / "merged")
    assert not any("lora" in n for n, _ in merged.named_parameters())
    torch.testing.assert_close(_logits(merged), unmerged, atol=1e-5, rtol=0)
    assert main(["merge", str(root / "lora"), "--out", str(root / "hf"), "--format", "hf"]) == 0
    hf = transformers.AutoModelForCausalLM.from_pretrained(root / "hf").eval()
    with torch.no_grad():
        torch.testing.assert_close(hf(_ids()).logits, unmerged, atol=1e-5, rtol=0)
    assert main(["merge", str(root / "base"), "--out", str(root / "x")]) == 2
    assert "not a LoRA checkpoint" in capsys.readouterr().err


def test_peft_reads_the_adapter_onto_the_transformers_export(root: Path) -> None:
    transformers = pytest.importorskip("transformers")
    peft = pytest.importorskip("peft")
    export = root / "export"
    qkv.save(qkv.load(root / "base"), export, format="hf")
    hf = transformers.GPT2LMHeadModel.from_pretrained(export)
    tuned = peft.PeftModel.from_pretrained(hf, (root / "lora" / "latest").resolve()).eval()
    adapted = {n.rsplit(".lora_A", 1)[0] for n, _ in tuned.named_parameters() if ".lora_A" in n}
    saved = json.loads(((root / "lora" / "latest") / "base_model.json").read_text())["modules"]
    assert adapted == {f"base_model.model.{m}" for m in saved}  # exactly the trained modules
    with torch.no_grad():
        theirs = tuned(_ids()).logits
    torch.testing.assert_close(theirs, _logits(qkv.load(root / "lora")), atol=1e-5, rtol=1e-5)


def test_an_unknown_target_names_the_modules_that_exist(root: Path) -> None:
    model = qkv.load(root / "base")
    with pytest.raises(ValueError, match=r"LoRA target 'query' matches no linear module.*c_attn"):
        apply_lora(model, LoraSettings(r=2, alpha=4, targets="q,query"))
    everything = apply_lora(qkv.load(root / "base"), LoraSettings(r=2, alpha=4,
                                                                   targets="all-linear"))
    trained = {n.rsplit(".lora_", 1)[0] for n, p in everything.named_parameters()
               if p.requires_grad}  # fmt: skip
    assert len(trained) == 4 * model.config.n_layer  # c_attn, c_proj, c_fc, mlp.c_proj
    assert not any("lm_head" in n for n in trained)


def test_a_changed_base_is_refused_on_load_and_resume(root: Path, tmp_path: Path, capsys) -> None:
    """An HF folder carries no manifest, so only the adapter's base hash can tell."""
    base = tmp_path / "hf-base"
    tokenizer = qkv.load_tokenizer(root / "base")
    qkv.save(qkv.load(root / "base"), base, format="hf", tokenizer=tokenizer)
    config = finetune_config(str(base), data=str(new_corpus(root)), **FINETUNE, max_iters=4,
                             eval_interval=2, lora_r=2)  # fmt: skip
    train(config, tmp_path / "run", quiet=True)
    qkv.load(tmp_path / "run")  # loads while the base is unchanged
    weights = load_file(str(base / "model.safetensors"))
    first = next(iter(weights))
    weights[first] = weights[first] + 1.0
    save_file(weights, str(base / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(ValueError, match=r"base model .*hf-base changed since the LoRA adapter"):
        qkv.load(tmp_path / "run")
    code = main(["train", "--resume", str(tmp_path / "run"), "--max-iters", "6", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "changed since the LoRA adapter" in err and "hf-base" in err
