"""Head-role scores on constructed attention patterns with known answers."""

import math

import pytest
import torch

from qkv.viz.heads import (
    HeadScores,
    duplicate_token_score,
    entropy,
    induction_score,
    previous_token_score,
    repeated_random_tokens,
    score_weights,
    sink_share,
)


def shifted(t: int, lag: int) -> torch.Tensor:
    """Every query i >= lag attends only to key i - lag; earlier queries to key 0."""
    weights = torch.zeros(t, t)
    for i in range(t):
        weights[i, max(i - lag, 0)] = 1.0
    return weights


def causal_uniform(t: int) -> torch.Tensor:
    return torch.tril(torch.ones(t, t)) / torch.arange(1, t + 1).unsqueeze(1)


def test_pure_previous_token_pattern_scores_one():
    w = shifted(12, 1)
    assert previous_token_score(w).item() == pytest.approx(1.0)
    assert duplicate_token_score(w, period=6).item() == pytest.approx(0.0)
    assert induction_score(w, period=6).item() == pytest.approx(0.0)


def test_duplicate_and_induction_patterns():
    period, t = 5, 10
    dup = shifted(t, period)
    ind = shifted(t, period - 1)
    assert duplicate_token_score(dup, period=period).item() == pytest.approx(1.0)
    assert induction_score(dup, period=period).item() == pytest.approx(0.0)
    assert induction_score(ind, period=period).item() == pytest.approx(1.0)
    assert duplicate_token_score(ind, period=period).item() == pytest.approx(0.0)


def test_induction_with_a_prefix_token():
    period, start = 4, 1
    t = start + 2 * period
    w = torch.zeros(t, t)
    w[:, 0] = 1.0
    for i in range(start + period, t):
        w[i] = 0
        w[i, i - period + 1] = 1.0
    assert induction_score(w, period=period, start=start).item() == pytest.approx(1.0)
    # Queries 0..4 put everything on the first token, queries 5..8 nothing.
    assert sink_share(w).item() == pytest.approx(5 / 9)


def test_uniform_attention_has_entropy_log_t():
    t = 7
    uniform = torch.full((t, t), 1.0 / t)
    assert entropy(uniform).item() == pytest.approx(math.log(t), rel=1e-6)
    # Causal uniform: row i spreads over i + 1 keys.
    expected = sum(math.log(i + 1) for i in range(t)) / t
    assert entropy(causal_uniform(t)).item() == pytest.approx(expected, rel=1e-6)
    assert entropy(torch.eye(t)).item() == pytest.approx(0.0, abs=1e-7)


def test_entropy_ignores_fully_masked_rows():
    w = torch.full((4, 4), 0.25)
    w[2] = 0
    assert entropy(w).item() == pytest.approx(math.log(4), rel=1e-6)


def test_sink_share_first_token_and_special_mask():
    t = 6
    w = torch.zeros(t, t)
    w[:, 0] = 0.5
    w[:, -1] = 0.3
    w[:, 2] = 0.2
    assert sink_share(w).item() == pytest.approx(0.5)
    special = [True, False, False, False, False, True]
    assert sink_share(w, special).item() == pytest.approx(0.8)
    with pytest.raises(ValueError, match="6 entries"):
        sink_share(w, [True, False])


def test_scores_batch_over_layers_and_heads():
    period, t = 4, 8
    w = torch.stack([shifted(t, 1), shifted(t, period - 1), shifted(t, period)])  # (3, T, T)
    w = w.unsqueeze(0).expand(2, 3, t, t)  # (L=2, H=3, T, T)
    scores = score_weights(w, period=period)
    assert scores["previous_token"].shape == (2, 3)
    assert scores["induction"][:, 1].tolist() == [1.0, 1.0]
    assert scores["duplicate_token"][:, 2].tolist() == [1.0, 1.0]
    hs = HeadScores(**scores, period=period, num_sequences=1, seq_len=t, model_name="toy")
    assert hs.top("induction", 1)[0][1] == 1
    data = hs.to_json_dict()
    assert set(data["scores"]) == {
        "previous_token",
        "duplicate_token",
        "induction",
        "sink",
        "entropy",
    }


def test_bad_inputs_name_the_problem():
    with pytest.raises(ValueError, match=r"\(\.\.\., T, T\)"):
        previous_token_score(torch.zeros(3, 4))
    with pytest.raises(ValueError, match="period"):
        induction_score(torch.zeros(5, 5), period=3)
    with pytest.raises(ValueError, match="unknown score"):
        HeadScores(
            **{
                n: torch.zeros(1, 1)
                for n in ("previous_token", "duplicate_token", "induction", "sink", "entropy")
            },
            period=2,
            num_sequences=1,
            seq_len=4,
        ).top("nope")


def test_repeated_random_tokens_repeat_with_distinct_block():
    g = torch.Generator().manual_seed(1)
    ids = repeated_random_tokens(vocab=50, period=10, batch=3, prefix=[99], generator=g)
    assert ids.shape == (3, 21)
    assert (ids[:, 0] == 99).all()
    assert torch.equal(ids[:, 1:11], ids[:, 11:21])
    for row in ids[:, 1:11]:
        assert len(set(row.tolist())) == 10


def test_every_public_viz_name_resolves():
    import qkv.viz

    for name in qkv.viz.__all__:
        assert getattr(qkv.viz, name) is not None, name


def test_vocab_pool_skips_special_placeholder_and_padded_ids():
    import qkv
    from qkv.viz.heads import default_prefix, vocab_pool

    tok = qkv.load_tokenizer(qkv.io.pretrained_path("all-minilm-l6-v2"))
    pool = vocab_pool(tok, tok.vocab_size + 64)  # embedding table padded past the vocabulary
    assert max(pool) < tok.vocab_size
    strings = tok.tokens(pool[:2000])
    assert not any(s.startswith("[unused") or s in ("[CLS]", "[SEP]", "[PAD]") for s in strings)
    assert default_prefix(tok) == [tok.token_id("cls")]
    assert vocab_pool(None, 5) == [0, 1, 2, 3, 4] and default_prefix(None) == []
