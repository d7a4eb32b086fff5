"""qkv.io.Tokenizer and qkv.load_tokenizer are the data layer's one tokenizer type
(qkv.load_tokenizer adds hub ids to qkv.data.load_tokenizer, and reads a folder the same)."""

import qkv
import qkv.data
import qkv.io


def test_io_names_are_the_data_tokenizer(tmp_path) -> None:
    assert qkv.io.Tokenizer is qkv.data.Tokenizer
    # qkv.load_tokenizer is the io layer's reader (run folders, manifest hashes) over the data
    # layer's: both give the one Tokenizer type, the same tokenizer.
    assert qkv.io.load_tokenizer is qkv.load_tokenizer
    from qkv.data.tokenizers import build_tokenizer

    tokenizer = build_tokenizer("char", "abc")
    assert isinstance(tokenizer, qkv.io.Tokenizer)
    tokenizer.save(tmp_path)
    for reader in (qkv.load_tokenizer, qkv.data.load_tokenizer):
        loaded = reader(tmp_path)
        assert type(loaded) is qkv.data.Tokenizer and loaded.to_str() == tokenizer.to_str()


def test_load_tokenizer_reads_a_folder_as_the_data_layer_does(tmp_path) -> None:
    from qkv.data.tokenizers import build_tokenizer

    build_tokenizer("bpe", "to be or not to be " * 50, vocab_size=280).save(tmp_path)
    for path in (tmp_path, tmp_path / "tokenizer.json"):
        tok = qkv.load_tokenizer(path)
        assert isinstance(tok, qkv.data.Tokenizer)
        assert tok.sha256 == qkv.data.load_tokenizer(path).sha256


def test_save_accepts_a_raw_tokenizers_object(tmp_path) -> None:
    from qkv.data.tokenizers import build_tokenizer

    raw = build_tokenizer("char", "abc").backend
    qkv.save(qkv.models.GPT(qkv.models.preset("gpt-nano", vocab_size=8)), tmp_path, tokenizer=raw)
    assert qkv.load_tokenizer(tmp_path).encode("cab") == [2, 0, 1]
