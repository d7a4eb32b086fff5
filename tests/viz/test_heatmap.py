"""PNG rendering writes real, decodable images of the expected layout."""

import pytest
import torch

from qkv.viz.heads import HeadScores
from qkv.viz.heatmap import plot_grid, plot_head_scores, save_png

pytest.importorskip("matplotlib")


def test_grid_png_with_big_head(tmp_path):
    import matplotlib.image as mpimg

    w = torch.softmax(torch.randn(2, 3, 5, 5), dim=-1)
    fig = plot_grid(w, list("abcde"), layer=1, head=2, title="t")
    # 2 × 3 small maps, the large map and its colour bar.
    assert len(fig.axes) == 2 * 3 + 2
    path = save_png(fig, tmp_path / "sub" / "grid.png")
    image = mpimg.imread(path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100


def test_head_scores_png(tmp_path):
    scores = HeadScores(
        previous_token=torch.rand(2, 2),
        duplicate_token=torch.rand(2, 2),
        induction=torch.rand(2, 2),
        sink=torch.rand(2, 2),
        entropy=torch.rand(2, 2) * 2,
        period=4,
        num_sequences=1,
        seq_len=8,
        model_name="toy",
    )
    path = save_png(plot_head_scores(scores), tmp_path / "heads.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_save_png_refuses_other_suffix(tmp_path):
    import matplotlib.pyplot as plt

    fig = plt.figure()
    with pytest.raises(ValueError, match=r"\.png"):
        save_png(fig, tmp_path / "x.jpg")
    plt.close(fig)
