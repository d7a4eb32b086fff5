"""Terminal heatmap and top-k listing."""

import pytest
import torch

from qkv.viz.terminal import fit, format_top_attended, terminal_heatmap, top_attended

TOKENS = ["[CLS]", "the", "cat", "[SEP]"]


def weights() -> torch.Tensor:
    w = torch.tensor(
        [[1.0, 0, 0, 0], [0.2, 0.8, 0, 0], [0.1, 0.6, 0.3, 0], [0.25, 0.25, 0.25, 0.25]]
    )
    return w


def test_top_attended_orders_keys_by_weight():
    top = top_attended(weights(), TOKENS, k=2)
    assert top[0] == [(0, 1.0)]  # zero weights are not listed
    assert top[2][0][0] == 1 and top[2][1][0] == 2
    text = format_top_attended(weights(), TOKENS, k=2)
    assert "cat" in text.splitlines()[2] and "the 0.60" in text.splitlines()[2]


@pytest.mark.parametrize("mode", ["none", "256", "truecolor"])
def test_heatmap_has_one_row_per_query(mode):
    text = terminal_heatmap(weights(), TOKENS, color=mode)
    lines = text.splitlines()
    assert len(lines) == 1 + len(TOKENS) + 1
    if mode == "none":
        assert "\x1b[" not in text
        assert lines[1].endswith("█" * 2 + "  " * 3)  # row 0 is all on key 0
    elif mode == "256":
        assert "\x1b[48;5;" in text
    else:
        assert "\x1b[48;2;" in text


def test_bad_mode_and_shapes():
    with pytest.raises(ValueError, match="colour mode"):
        terminal_heatmap(weights(), TOKENS, color="rainbow")
    with pytest.raises(ValueError, match="tokens"):
        terminal_heatmap(weights(), TOKENS[:2])


def test_fit_pads_and_cuts():
    assert fit("ab", 4) == "ab  "
    assert fit("abcdefgh", 4) == "abc…"
    assert fit("a\nb", 5) == "a\\nb "
