"""``qkv demo``: the README's main job, on a tiny corpus (no network)."""

from pathlib import Path

import pytest

from qkv.cli.main import main


@pytest.fixture()
def corpus(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.txt"
    lines = [f"ROMEO: line {i} of a tiny play, with words to learn.\n" for i in range(120)]
    path.write_text("".join(lines), encoding="utf-8")
    return path


def test_demo_trains_generates_and_writes_the_viewer(
    tmp_path: Path, corpus: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_dir = tmp_path / "demo"
    args = ["demo", "--data", str(corpus), "--max-iters", "3", "--out-dir", str(out_dir)]
    assert main(args) == 0
    html = (out_dir / "attention.html").read_text(encoding="utf-8")
    assert "<script" in html and "http://" not in html and "https://" not in html
    assert (out_dir / "attention.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "ROMEO:" in capsys.readouterr().out  # the streamed sample starts with the prompt
    # a second run into its own folder is allowed (it replaces the previous demo)
    assert main(args) == 0


def test_demo_refuses_a_folder_it_did_not_write(
    tmp_path: Path, corpus: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "precious.txt").write_text("keep me")
    code = main(["demo", "--data", str(corpus), "--out-dir", str(tmp_path)])
    assert code == 2
    assert "was not written by `qkv demo`" in capsys.readouterr().err
    assert (tmp_path / "precious.txt").read_text() == "keep me"
