"""Batches: LM shift, rank shards of one global batch, masked-LM statistics, resumable order."""

import numpy as np
import torch

from qkv.data.batches import (
    IGNORE_INDEX,
    BatchSampler,
    MaskingSpec,
    mask_tokens,
    sequential_windows,
)

TOKENS = np.arange(1000, dtype=np.uint16) % 97


def test_lm_targets_are_inputs_shifted_by_one() -> None:
    sampler = BatchSampler(TOKENS, block_size=8, batch_size=4, seed=0)
    inputs, targets = sampler.next()
    assert inputs.shape == targets.shape == (4, 8)
    assert inputs.dtype == torch.int64
    assert torch.equal(inputs[:, 1:], targets[:, :-1])
    for row, target in zip(inputs, targets):
        assert ((target - row) % 97 == 1).all()  # TOKENS counts up by one (mod 97)


def test_rank_shards_concatenate_to_the_single_process_batch() -> None:
    whole = BatchSampler(TOKENS, block_size=8, batch_size=6, seed=3)
    ranks = [BatchSampler(TOKENS, block_size=8, batch_size=6, seed=3, rank=r, world_size=3)
             for r in range(3)]  # fmt: skip
    for _ in range(4):
        inputs, targets = whole.next()
        parts = [sampler.next() for sampler in ranks]
        assert torch.equal(inputs, torch.cat([p[0] for p in parts]))
        assert torch.equal(targets, torch.cat([p[1] for p in parts]))


def test_state_dict_replays_the_same_batches() -> None:
    sampler = BatchSampler(TOKENS, block_size=8, batch_size=4, seed=1)
    sampler.next()
    state = sampler.state_dict()
    expected = [sampler.next() for _ in range(3)]
    fresh = BatchSampler(TOKENS, block_size=8, batch_size=4, seed=99)
    fresh.load_state_dict(state)
    for want, got in zip(expected, (fresh.next() for _ in range(3))):
        assert torch.equal(want[0], got[0]) and torch.equal(want[1], got[1])


def test_masking_statistics_follow_80_10_10() -> None:
    spec = MaskingSpec(mask_id=100, random_low=0, random_high=97)
    inputs = torch.randint(0, 97, (400, 128), generator=torch.Generator().manual_seed(0))
    corrupted, labels = mask_tokens(inputs, spec, torch.Generator().manual_seed(1))
    picked = labels != IGNORE_INDEX
    assert torch.equal(labels[picked], inputs[picked])
    assert torch.equal(corrupted[~picked], inputs[~picked])
    assert abs(picked.float().mean().item() - 0.15) < 0.005
    masked = (corrupted == 100) & picked
    kept = (corrupted == inputs) & picked
    n = picked.sum().item()
    assert abs(masked.sum().item() / n - 0.8) < 0.015
    # a random replacement equals the original 1/97 of the time, counted as "kept"
    assert abs(kept.sum().item() / n - (0.1 + 0.1 / 97)) < 0.015
    assert corrupted.max() <= 100


def test_mlm_sampler_yields_labels_for_the_window_itself() -> None:
    spec = MaskingSpec(mask_id=97, random_low=0, random_high=97)
    sampler = BatchSampler(TOKENS, block_size=16, batch_size=8, seed=0, masking=spec)
    inputs, labels = sampler.next()
    assert inputs.shape == labels.shape == (8, 16)
    assert (labels != IGNORE_INDEX).any()


def test_sequential_windows_predict_every_token_once() -> None:
    tokens = np.arange(50, dtype=np.uint16)
    targets = [t for _, ts in sequential_windows(tokens, block_size=8, batch_size=3)
               for t in ts.reshape(-1).tolist()]  # fmt: skip
    assert targets == list(range(1, 50))


def test_sequential_windows_equal_the_window_by_window_oracle() -> None:
    for n in (0, 1, 2, 8, 9, 10, 17, 18, 19, 97):
        tokens = np.arange(n, dtype=np.uint16)
        got = [(i.tolist(), t.tolist())
               for i, t in sequential_windows(tokens, block_size=8, batch_size=2)]  # fmt: skip
        oracle = []  # one window per start, full ones batched in pairs, a short last one alone
        starts = list(range(0, max(n - 1, 0), 8))
        full = [s for s in starts if s + 9 <= n]
        for k in range(0, len(full), 2):
            rows = [list(range(s, s + 9)) for s in full[k : k + 2]]
            oracle.append(([r[:-1] for r in rows], [r[1:] for r in rows]))
        oracle += [([list(range(s, n - 1))], [list(range(s + 1, n))]) for s in starts
                   if s + 9 > n]  # fmt: skip
        assert got == oracle, n


def test_short_stream_is_refused() -> None:
    import pytest

    with pytest.raises(ValueError, match="fewer than one context window"):
        BatchSampler(TOKENS[:8], block_size=8, batch_size=2, seed=0)
