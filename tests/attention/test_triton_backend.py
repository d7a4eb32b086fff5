"""The ``triton`` backend's contract: what it refuses (and why), availability without a GPU,
import lightness, and the host-side mask analysis behind its tile skipping."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

import qkv
from qkv.attention.triton_backend import triton_check
from qkv.attention.triton_support import triton_available
from qkv.attention.validate import validate


def _qkv(dtype=torch.float16, head_dim=32, n=8):
    return tuple(torch.randn(1, 2, n, head_dim, dtype=dtype) for _ in range(3))


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda: validate(*_qkv(), need_weights=True), "attention weights"),
        (lambda: validate(*_qkv(torch.float32)), "float32 inputs are refused"),
        (lambda: validate(*_qkv(torch.float64)), "dtype torch.float64 is not supported"),
        (lambda: validate(*_qkv(head_dim=8)), "head dim 8 outside 16..256"),
        (lambda: validate(*_qkv(head_dim=320)), "head dim 320 outside 16..256"),
        (
            lambda: validate(*_qkv(), mask=torch.zeros(8, 8, requires_grad=True)),
            "gradients with respect to a float mask",
        ),
    ],
    ids=["weights", "fp32", "fp64", "dim8", "dim320", "mask-grad"],
)
def test_refusals_name_the_reason(make, reason):
    assert reason in (triton_check(make()) or "")


def test_named_backend_raises_with_reason():
    with pytest.raises(ValueError, match="cannot serve this call.*attention weights"):
        qkv.attention_with_weights(*_qkv(), backend="triton")


def test_serves_supported_calls_under_the_interpreter():
    assert triton_available() is None  # tests/conftest.py sets TRITON_INTERPRET=1
    assert triton_check(validate(*_qkv(), causal=True, softcap=5.0, window=(3, 0))) is None


def test_auto_never_picks_triton_for_cpu_tensors():
    assert qkv.explain_backend(*_qkv()).backend != "triton"


def _run_clean(code: str) -> str:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["CUDA_VISIBLE_DEVICES"] = ""
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_without_gpu_or_interpreter_it_lists_itself_unavailable_without_importing_triton():
    out = _run_clean(
        "import sys, qkv\n"
        "info = {b.name: b for b in qkv.attention_backends()}['triton']\n"
        "print(info.available, '|', info.reason, '|', 'triton' in sys.modules)\n"
    )
    available, reason, imported = (part.strip() for part in out.split("|"))
    assert available == "False"
    assert "no CUDA GPU" in reason
    assert imported == "False"


def test_tile_table_matches_brute_force():
    from qkv.attention.triton_kernels.masks import tile_table

    mask = torch.rand(2, 3, 37, 50) > 0.9
    mask[1, 2, :, 16:32] = False
    table = tile_table(mask, 16)
    assert table.shape == (2, 3, 3, 4)
    for qt in range(3):
        for kt in range(4):
            block = mask[:, :, qt * 16 : qt * 16 + 16, kt * 16 : kt * 16 + 16]
            assert torch.equal(table[:, :, qt, kt].bool(), block.flatten(2).any(-1))
    assert not table[1, 2, :, 1].any()
    float_mask = torch.zeros(1, 1, 1, 40).masked_fill(torch.arange(40) >= 20, float("-inf"))
    assert tile_table(float_mask, 16).flatten().tolist() == [1, 1, 0]


def test_prefix_key_lengths():
    from qkv.attention.triton_kernels.masks import prefix_key_lengths

    lengths = torch.tensor([5, 0, 9])
    padding = torch.arange(9)[None, None, None, :] < lengths[:, None, None, None]
    assert prefix_key_lengths(padding).tolist() == [5, 0, 9]
    holes = padding.clone()
    holes[0, 0, 0, 2] = False
    assert prefix_key_lengths(holes) is None
    assert prefix_key_lengths(padding.expand(3, 1, 4, 9)) is None  # per-query rows: general mask


def test_tile_lists_walk_exactly_the_active_tiles_within_position_bounds():
    from qkv.attention.triton_kernels.masks import fold_positions, tile_lists

    table = (torch.rand(2, 1, 3, 4) > 0.3).to(torch.int8)
    lists = tile_lists(table)
    for b in range(2):
        for row in range(3):
            count = int(lists[b, 0, row, 0])
            assert (
                lists[b, 0, row, 1 : 1 + count].tolist()
                == table[b, 0, row].nonzero().flatten().tolist()
            )
    # causal, Nq = 20, Nk = 40, tiles of 16: query tile 0 (positions 20..35) sees key tiles 0..2
    ones = torch.ones(1, 1, 1, 1, dtype=torch.int8)
    causal = fold_positions(ones, 16, 20, 40, None, 0)
    assert causal[0, 0].tolist() == [[1, 1, 1], [1, 1, 1]]
    window = fold_positions(ones, 16, 40, 40, 3, 0)  # keys i-3..i
    assert window[0, 0].tolist() == [[1, 0, 0], [1, 1, 0], [0, 1, 1]]
