"""qkv.data.Tokenizer / qkv.load_tokenizer against Hugging Face transformers' tokenizers and
the raw tokenizers backend (the oracles)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import torch

from qkv.data import Tokenizer, load_tokenizer
from qkv.io import pretrained_path

TEXTS = [
    "Hello world, Ünïcode café!",
    "The quick brown fox jumps over the lazy dog. " * 40,  # longer than 256 tokens
    "a",
    "   spaces\tand\nnewlines  ",
]


def _minilm() -> Path:
    try:
        return pretrained_path("all-minilm-l6-v2")
    except FileNotFoundError as error:
        pytest.skip(f"MiniLM package missing: {error}")


def _assert_batch_equal(ours: dict, theirs: dict) -> None:
    for key in ("input_ids", "attention_mask", "token_type_ids"):
        assert torch.equal(ours[key], theirs[key]), key


@pytest.mark.parametrize("source", ["tokenizer.json", "vocab.txt"])
def test_wordpiece_matches_transformers(source: str, tmp_path: Path) -> None:
    transformers = pytest.importorskip("transformers")
    model_dir = _minilm()
    if source == "vocab.txt":  # only the WordPiece vocab and its config
        for name in ("vocab.txt", "tokenizer_config.json", "special_tokens_map.json"):
            shutil.copy(model_dir / name, tmp_path / name)
        model_dir = tmp_path
    ours = load_tokenizer(model_dir)
    theirs = transformers.AutoTokenizer.from_pretrained(str(_minilm()))
    for text in TEXTS:
        assert ours.encode(text) == theirs.encode(text)
        assert ours.encode(text, add_special_tokens=False) == theirs.encode(
            text, add_special_tokens=False
        )
        ids = theirs.encode(text)
        assert ours.decode(ids) == theirs.decode(ids)
        assert ours.decode(ids, skip_special_tokens=True) == theirs.decode(
            ids, skip_special_tokens=True
        )
        assert ours.tokens(ids) == theirs.convert_ids_to_tokens(ids)
    batch = theirs(TEXTS, padding=True, truncation=True, max_length=256, return_tensors="pt")
    _assert_batch_equal(ours(TEXTS, max_length=256), batch)
    assert ours.encode_batch(TEXTS, max_length=256) == [
        theirs.encode(t, truncation=True, max_length=256) for t in TEXTS
    ]
    assert ours.encode(TEXTS[1]) == theirs.encode(TEXTS[1])  # truncation does not leak
    assert ours.vocab_size == len(theirs)
    assert ours.pad_token_id == theirs.pad_token_id == 0
    assert ours.eos_token_id is None
    assert ours.special_ids == sorted(theirs.all_special_ids)
    # Default truncation is model_max_length (512) from tokenizer_config.json.
    assert ours(["word " * 600])["input_ids"].shape == (1, 512)
    assert ours(["word " * 600], truncation=False)["input_ids"].shape == (1, 602)


def _byte_bpe(tmp_path: Path) -> Path:
    from tokenizers import Tokenizer as Backend
    from tokenizers import decoders, models, pre_tokenizers, trainers

    backend = Backend(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["<|endoftext|>", "<|pad|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    backend.train_from_iterator(TEXTS * 5, trainer=trainer)
    backend.save(str(tmp_path / "tokenizer.json"))
    return tmp_path


def _char_level(tmp_path: Path) -> Path:
    from tokenizers import Tokenizer as Backend
    from tokenizers import decoders, models, pre_tokenizers

    chars = sorted(set("".join(TEXTS)))
    vocab = {c: i for i, c in enumerate(chars)}
    backend = Backend(models.WordLevel(vocab, unk_token=None))
    backend.pre_tokenizer = pre_tokenizers.Split("", behavior="isolated")
    backend.decoder = decoders.Fuse()
    tmp_path.mkdir(parents=True, exist_ok=True)
    backend.save(str(tmp_path / "tokenizer.json"))
    return tmp_path


def test_byte_level_bpe_matches_transformers_fast_tokenizer(tmp_path: Path) -> None:
    transformers = pytest.importorskip("transformers")
    directory = _byte_bpe(tmp_path)
    ours = load_tokenizer(directory)
    theirs = transformers.PreTrainedTokenizerFast(tokenizer_file=str(directory / "tokenizer.json"))
    for text in TEXTS:
        assert ours.encode(text) == theirs.encode(text)
        assert ours.decode(ours.encode(text)) == text  # byte-level BPE is lossless
    assert ours.eos_token_id == ours.backend.token_to_id("<|endoftext|>")
    assert ours.pad_token_id == ours.backend.token_to_id("<|pad|>")
    batch = ours(TEXTS[:3], truncation=False)
    lengths = batch["attention_mask"].sum(1).tolist()
    assert lengths == [len(ours.encode(t)) for t in TEXTS[:3]]
    assert (batch["input_ids"][2, lengths[2] :] == ours.pad_token_id).all()


def test_char_level_round_trip_and_save(tmp_path: Path) -> None:
    ours = load_tokenizer(_char_level(tmp_path / "a"))
    text = TEXTS[0]
    ids = ours.encode(text)
    assert len(ids) == len(text)
    assert ours.decode(ids) == text
    assert ours.tokens(ids) == list(text)
    assert ours.pad_token_id is None and ours.special_ids == []
    # No pad token: padded positions hold id 0 and are masked out.
    batch = ours(["ab", "a"])
    assert batch["attention_mask"].tolist() == [[1, 1], [1, 0]]
    saved = ours.save(tmp_path / "b")
    again = load_tokenizer(saved)
    assert again.encode(text) == ids and again.vocab_size == ours.vocab_size


def test_save_keeps_special_tokens_and_transformers_reads_it(tmp_path: Path) -> None:
    transformers = pytest.importorskip("transformers")
    ours = load_tokenizer(_minilm())
    ours.save(tmp_path)
    config = json.loads((tmp_path / "tokenizer_config.json").read_text())
    assert config["pad_token"] == "[PAD]" and config["model_max_length"] == 512
    again = load_tokenizer(tmp_path)
    _assert_batch_equal(again(TEXTS, max_length=64), ours(TEXTS, max_length=64))
    theirs = transformers.AutoTokenizer.from_pretrained(str(tmp_path))
    assert theirs.encode(TEXTS[0]) == ours.encode(TEXTS[0])
    assert theirs.pad_token_id == ours.pad_token_id


def test_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="tokenizer.json"):
        load_tokenizer(tmp_path)
    with pytest.raises(FileNotFoundError, match="neither a directory"):
        load_tokenizer(tmp_path / "missing")
    (tmp_path / "tokenizer.json").write_text("{not json")
    with pytest.raises(ValueError, match="tokenizer.json"):
        load_tokenizer(tmp_path)
    ours = load_tokenizer(_char_level(tmp_path / "c"))
    with pytest.raises(ValueError, match="out of range"):
        ours.tokens([10_000])
    with pytest.raises(ValueError, match="padding=False"):
        ours(["ab", "a"], padding=False)
    with pytest.raises(ValueError, match="empty"):
        ours([])
    assert isinstance(ours, Tokenizer)


def test_backend_accessors_mirror_the_raw_tokenizer(tmp_path: Path) -> None:
    """What training code calls on a raw tokenizers.Tokenizer answers the same on ours."""
    from tokenizers import Tokenizer as Backend

    directory = _byte_bpe(tmp_path)
    ours = Tokenizer.from_file(directory / "tokenizer.json")
    raw = Backend.from_file(str(directory / "tokenizer.json"))
    assert ours.get_vocab() == raw.get_vocab()
    assert ours.get_vocab(with_added_tokens=False) == raw.get_vocab(with_added_tokens=False)
    assert ours.get_vocab_size() == raw.get_vocab_size() == len(ours)
    decoder = ours.get_added_tokens_decoder()
    assert {i: t.content for i, t in decoder.items()} == {
        i: t.content for i, t in raw.get_added_tokens_decoder().items()
    }
    assert ours.token_to_id("<|pad|>") == raw.token_to_id("<|pad|>")
    assert ours.id_to_token(5) == raw.id_to_token(5)
    assert ours.to_str() == raw.to_str()
    assert ours.encode_batch(TEXTS[:2], add_special_tokens=False) == [
        e.ids for e in raw.encode_batch(TEXTS[:2], add_special_tokens=False)
    ]
    ours.encode_batch(TEXTS, max_length=3)  # truncation set for the batch ...
    assert ours.to_str() == raw.to_str()  # ... never leaks into the saved form or the hash
    assert ours.sha256 == hashlib.sha256(raw.to_str().encode("utf-8")).hexdigest()


def test_trained_tokenizers_save_and_reopen_with_their_special_tokens(tmp_path: Path) -> None:
    for tokenizer in (
        Tokenizer.train_char("".join(TEXTS), masked_lm=True),
        Tokenizer.train_bpe(TEXTS * 3, vocab_size=280, masked_lm=True),
    ):
        assert tokenizer.special_tokens == {"unk": "[UNK]", "pad": "[PAD]", "mask": "[MASK]"}
        assert tokenizer.mask_token_id == tokenizer.token_to_id("[MASK]") is not None
        again = Tokenizer.from_dir(tokenizer.save(tmp_path / str(tokenizer.vocab_size)))
        assert again.special_tokens == tokenizer.special_tokens
        assert again.sha256 == tokenizer.sha256
        for text in TEXTS:
            assert again.encode(text) == tokenizer.encode(text)
            assert tokenizer.decode(tokenizer.encode(text)) == text


def test_wrap_and_open_errors(tmp_path: Path) -> None:
    from tokenizers import Tokenizer as Backend

    raw = Backend.from_file(str(_byte_bpe(tmp_path) / "tokenizer.json"))
    wrapped = Tokenizer.wrap(raw)
    assert wrapped.backend is raw and Tokenizer.wrap(wrapped) is wrapped
    assert wrapped.eos_token_id == raw.token_to_id("<|endoftext|>")
    with pytest.raises(ValueError, match="expected a qkv Tokenizer or a tokenizers.Tokenizer"):
        Tokenizer.wrap("gpt2")
    with pytest.raises(FileNotFoundError, match="no tokenizer directory"):
        Tokenizer.from_dir(tmp_path / "tokenizer.json")
    with pytest.raises(FileNotFoundError, match="no tokenizer file"):
        Tokenizer.from_file(tmp_path)
