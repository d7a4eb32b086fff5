"""``--init-from``: fine-tuning starts from the base's weights and tokenizer, keeps its shape,
and learns a new text faster than training from scratch on it."""

from pathlib import Path

import pytest
import torch
from finetune_helpers import FINETUNE, new_corpus, train_base
from train_helpers import TINY

import qkv
from qkv.cli.main import main
from qkv.training import train
from qkv.training.config import TrainConfig
from qkv.training.finetune import finetune_config
from qkv.training.metrics import read_metrics


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("finetune")
    train_base(root)
    return root


def _val_losses(run: Path) -> list[float]:
    return [r["val_loss"] for r in read_metrics(run / "metrics.jsonl") if "val_loss" in r]


def test_finetuning_learns_a_new_text_faster_than_from_scratch(root: Path) -> None:
    data = str(new_corpus(root))
    steps = dict(max_iters=20, eval_interval=5)
    tuned = finetune_config(str(root / "base"), data=data, **FINETUNE, **steps, lr=1e-3)
    train(tuned, root / "tuned", quiet=True)
    scratch = TrainConfig(**TINY, data=data, **steps)
    train(scratch, root / "scratch", quiet=True)
    tuned_curve, scratch_curve = _val_losses(root / "tuned"), _val_losses(root / "scratch")
    vocab = qkv.load_tokenizer(root / "scratch").get_vocab()
    assert vocab == qkv.load_tokenizer(root / "base").get_vocab()  # comparable losses
    assert len(tuned_curve) == len(scratch_curve) == 4
    # every evaluation of the fine-tune is below the from-scratch run at the same step
    assert all(t < s for t, s in zip(tuned_curve, scratch_curve)), (tuned_curve, scratch_curve)
    # the fine-tune started from the base's weights: same tokenizer, same shape
    base, tuned_model = qkv.load(root / "base"), qkv.load(root / "tuned")
    assert tuned_model.config.n_embd == base.config.n_embd
    assert qkv.load_tokenizer(root / "tuned").to_str() == qkv.load_tokenizer(root / "base").to_str()


def test_the_finetune_starts_from_the_base_weights(root: Path) -> None:
    data = str(new_corpus(root))
    config = finetune_config(str(root / "base"), data=data, **FINETUNE, max_iters=1,
                             eval_interval=1, lr=1e-9, min_lr=0.0, warmup_iters=0)  # fmt: skip
    train(config, root / "one-step", quiet=True)
    base, tuned = qkv.load(root / "base"), qkv.load(root / "one-step")
    for (name, before), (_, after) in zip(base.state_dict().items(), tuned.state_dict().items()):
        torch.testing.assert_close(after, before, atol=1e-6, rtol=0, msg=name)


def test_finetune_defaults_and_refused_flags(root: Path, capsys) -> None:
    config = finetune_config(str(root / "base"))
    assert config.lr < TrainConfig().lr and config.warmup_iters < TrainConfig().warmup_iters
    for flags in (["--tokenizer", "char"], ["--vocab-size", "100"], ["--n-layer", "4"],
                  ["--model", "gpt-micro"]):  # fmt: skip
        code = main(["train", "--init-from", str(root / "base"), *flags, "--out-dir",
                     str(root / "refused")])  # fmt: skip
        err = capsys.readouterr().err.strip()
        assert code == 2 and len(err.splitlines()) == 1, err
        assert flags[0] in err and "--init-from" in err
    assert not (root / "refused").exists()
    with pytest.raises(ValueError, match="--n-embd cannot be combined with --init-from"):
        train(finetune_config(str(root / "base"), n_embd=64), root / "refused", quiet=True)
    with pytest.raises(ValueError, match="--block-size 4096 exceeds the context"):
        train(finetune_config(str(root / "base"), block_size=4096), root / "refused", quiet=True)
    with pytest.raises(ValueError, match="LoRA needs a rank >= 1 and --init-from"):
        TrainConfig(lora_r=8)


def test_a_base_without_tokenizer_is_refused(root: Path, tmp_path: Path) -> None:
    bare = tmp_path / "bare"
    qkv.save(qkv.load(root / "base"), bare)  # no tokenizer beside the weights
    with pytest.raises(ValueError, match="no usable tokenizer beside the model"):
        train(finetune_config(str(bare), data=str(new_corpus(root))), tmp_path / "o", quiet=True)


def test_a_bert_checkpoint_finetunes_with_masked_lm_batches(root: Path) -> None:
    corpus = root / "base.txt"
    bert = dict(model="bert-tiny", n_layer=1, n_head=2, n_embd=32, block_size=16,
                batch_size=8, eval_iters=4, progress=False, plot=False)  # fmt: skip
    train(TrainConfig(**bert, data=str(corpus), max_iters=5, eval_interval=5), root / "bert",
          quiet=True)  # fmt: skip
    keep = {k: v for k, v in bert.items() if k not in ("model", "n_layer", "n_head", "n_embd")}
    config = finetune_config(str(root / "bert"), data=str(new_corpus(root)), **keep,
                             max_iters=10, eval_interval=5, lr=3e-3)  # fmt: skip
    train(config, root / "bert-tuned", quiet=True)
    model = qkv.load(root / "bert-tuned")
    assert type(model).__name__ == "BertForMaskedLM"
    curve = _val_losses(root / "bert-tuned")
    assert curve[-1] < curve[0]


def _records(path: Path, n: int, seed: int) -> Path:
    import json
    import random

    rng = random.Random(seed)
    names = ["anna", "ben", "cleo", "dmitri"]
    with path.open("w", encoding="utf-8") as out:
        for _ in range(n):
            a = rng.choice(names)  # the base's context is 16 tokens: short records
            out.write(json.dumps({"prompt": f"{a} ", "completion": f"{a[::-1]}."}) + "\n")
    return path


def test_a_lora_finetune_on_records_learns_the_completions(root: Path, capsys) -> None:
    train_file = _records(root / "chat.jsonl", 200, seed=0)
    val_file = _records(root / "chat-val.jsonl", 16, seed=1)
    config = finetune_config(str(root / "base"), data=str(train_file), val_data=str(val_file),
                             lora_r=4, block_size=16, batch_size=8, eval_iters=2,
                             max_iters=30, eval_interval=10, progress=False,
                             plot=False)  # fmt: skip
    train(config, root / "chat-lora", quiet=True)
    curve = _val_losses(root / "chat-lora")
    assert curve[-1] < curve[0]

    def eval_loss(model: Path) -> float:
        assert main(["eval", str(model), "--data", str(val_file)]) == 0
        out = capsys.readouterr().out
        assert "completion / assistant tokens predicted" in out
        return float(out.split("loss")[1].split()[0])

    assert eval_loss(root / "chat-lora") < eval_loss(root / "base")
    # the default chat template was saved with the tokenizer: `qkv chat` renders as a
    # messages fine-tune would have been trained
    tokenizer = qkv.load_tokenizer(root / "chat-lora")
    text = tokenizer.apply_chat_template([{"role": "user", "content": "anna sees ben."}],
                                         add_generation_prompt=True, tokenize=False)  # fmt: skip
    assert text == "<|user|>\nanna sees ben.\n<|assistant|>\n"
