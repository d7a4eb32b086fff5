"""``qkv patch``, ``qkv lens`` and ``qkv ablate`` against the qkv.interp API on the same
checkpoint; bad inputs are one line and exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import qkv
from qkv import interp
from qkv.cli.main import main
from qkv.experiments.induction_task import InductionConfig, build_model, word_tokenizer


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("interp") / "model"
    qkv.save(build_model(InductionConfig(n_layer=2)), folder, tokenizer=word_tokenizer(64))
    return folder


def ids(text: str) -> torch.Tensor:
    return torch.tensor([[int(word[1:]) for word in text.split()]])


def test_patch_json_and_png_match_the_api(checkpoint: Path, tmp_path: Path, capsys) -> None:
    png = tmp_path / "patch.png"
    argv = ["patch", str(checkpoint), "--clean", "t1 t2 t3 t1 t2", "--corrupt", "t4 t5 t6 t4 t5"]
    argv += ["--answer", "t3", "--wrong", "t6", "--json", "--out", str(png)]
    assert main(argv) == 0
    data = json.loads(capsys.readouterr().out)
    model = qkv.load(checkpoint).eval()

    def logit_diff(logits: torch.Tensor) -> torch.Tensor:
        return (logits[:, -1, 3] - logits[:, -1, 6]).mean()

    expected = interp.patch_heads(model, ids("t1 t2 t3 t1 t2"), ids("t4 t5 t6 t4 t5"), logit_diff)
    torch.testing.assert_close(torch.tensor(data["grid"], dtype=torch.float64), expected)
    assert png.stat().st_size > 1000


def test_ablate_and_lens(checkpoint: Path, tmp_path: Path, capsys) -> None:
    assert main(["ablate", str(checkpoint), "t1 t2 t3 t1 t2 t3", "--start", "3", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    model = qkv.load(checkpoint).eval()
    sequence = ids("t1 t2 t3 t1 t2 t3")
    expected = interp.ablation_effects(model, sequence, interp.next_token_loss(sequence, 3))
    torch.testing.assert_close(torch.tensor(data["grid"], dtype=torch.float64), expected)
    assert main(["lens", str(checkpoint), "t1 t2 t3", "--json", "--top", "2"]) == 0
    lens = json.loads(capsys.readouterr().out)
    last = model(ids("t1 t2 t3"))[0].topk(2, dim=-1).indices  # (T, 2)
    assert lens["top_tokens"][-1] == [[f"t{int(i)}" for i in row] for row in last]
    assert main(["lens", str(checkpoint), "t1 t2 t3", "--out", str(tmp_path / "l.png")]) == 0
    assert "logit lens" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["patch", "{m}", "--clean", "t1 t2 t3", "--corrupt", "t4 t5", "--answer", "t3",
          "--wrong", "t6"], "patching needs the same length"),
        (["patch", "{m}", "--clean", "t1 t2", "--corrupt", "t4 t5", "--answer", "t3 t4",
          "--wrong", "t6"], "is 2 tokens"),
        (["ablate", "{m}", "t1"], "at least two"),
        (["ablate", "{m}", "t1 t2 t3", "--start", "5"], "leaves nothing to predict"),
        (["lens", "{m}", "t1", "--out", "x.svg"], "must end in .png"),
    ],
)  # fmt: skip
def test_bad_inputs_are_one_line_exit_2(checkpoint: Path, argv, message, capsys) -> None:
    assert main([a.replace("{m}", str(checkpoint)) for a in argv]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
