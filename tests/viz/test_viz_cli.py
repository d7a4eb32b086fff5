"""qkv explain / show / heads end to end: the default pretrained MiniLM and a saved tiny GPT,
JSON schemas, output files, and one-line errors with exit code 2."""

import json

import pytest
from viz_models import tiny_gpt, word_tokenizer

import qkv
from qkv.cli.main import main

TEXT = "the cat sat on the mat"


@pytest.fixture(scope="module")
def gpt_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("tiny-gpt")
    qkv.save(tiny_gpt(), directory, tokenizer=word_tokenizer())
    return str(directory)


def run(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_explain_default_model_json(capsys):
    code, out, err = run(
        capsys,
        "explain",
        "The cat sat on the mat.",
        "--layer",
        "2",
        "--head",
        "5",
        "--token",
        "sat",
        "--json",
    )
    assert code == 0, err
    data = json.loads(out)
    assert data["model"] == "all-minilm-l6-v2"
    assert data["tokens"][0] == "[CLS]" and data["token"] == "sat" and data["token_index"] == 3
    assert (data["num_layers"], data["num_heads"], data["d_k"]) == (6, 12, 32)
    assert data["scale"] == pytest.approx(32**-0.5)
    t = len(data["tokens"])
    for key in ("dots", "scaled", "scores", "exp", "weights", "allowed"):
        assert len(data[key]) == t, key
    assert len(data["keys"]) == t and len(data["keys"][0]) == 32
    assert len(data["weighted_values"]) == t and len(data["z"]) == len(data["model_z"]) == 32
    check = data["check"]
    assert check["ok"] is True
    assert check["max_abs_diff"] <= 1e-5
    assert check["weights_sum"] == pytest.approx(1.0, abs=1e-9)


def test_explain_text_on_saved_gpt(capsys, gpt_dir):
    code, out, err = run(
        capsys,
        "explain",
        TEXT,
        "--model",
        gpt_dir,
        "--layer",
        "1",
        "--token",
        "4",
        "--color",
        "never",
    )
    assert code == 0, err
    assert "query token 4 'on'" in out
    assert "-∞" in out  # causal mask on later keys
    assert "max |z − model z|" in out and "✓" in out and "\x1b[" not in out


def test_show_png_and_html(capsys, gpt_dir, tmp_path):
    png = tmp_path / "grid.png"
    code, out, err = run(
        capsys, "show", TEXT, "--model", gpt_dir, "--out", str(png), "--layer", "2", "--head", "1"
    )
    assert code == 0, err
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "layer 2, head 1" in out
    html = tmp_path / "view.html"
    code, out, err = run(capsys, "show", TEXT, "--model", gpt_dir, "--out", str(html))
    assert code == 0, err
    assert "<html" in html.read_text("utf-8").lower()


def test_show_terminal_default_model(capsys):
    code, out, err = run(
        capsys,
        "show",
        "The cat sat.",
        "--terminal",
        "--layer",
        "1",
        "--head",
        "3",
        "--top-k",
        "2",
        "--color",
        "always",
    )
    assert code == 0, err
    assert "\x1b[48;" in out
    lines = out.splitlines()
    assert any(line.strip().startswith("2 cat") and "->" in line for line in lines)


def test_show_rollout_terminal(capsys, gpt_dir):
    code, out, err = run(
        capsys, "show", TEXT, "--model", gpt_dir, "--terminal", "--rollout", "--color", "never"
    )
    assert code == 0, err
    assert "attention rollout over 3 layers" in out


def test_heads_json_and_png(capsys, gpt_dir, tmp_path):
    png = tmp_path / "heads.png"
    code, out, err = run(
        capsys,
        "heads",
        "--model",
        gpt_dir,
        "--json",
        "--period",
        "6",
        "--sequences",
        "2",
        "--out",
        str(png),
    )
    assert code == 0, err
    data = json.loads(out)
    assert (data["num_layers"], data["num_heads"], data["period"]) == (3, 3, 6)
    assert data["seq_len"] == 1 + 2 * 6  # <bos> prefix
    for name in ("previous_token", "duplicate_token", "induction", "sink", "entropy"):
        grid = data["scores"][name]
        assert len(grid) == 3 and all(len(row) == 3 for row in grid)
    assert all(0 <= v <= 1 for row in data["scores"]["induction"] for v in row)
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_heads_table_default_model(capsys):
    code, out, err = run(capsys, "heads", "--sequences", "1", "--period", "8", "--color", "never")
    assert code == 0, err
    assert "all-minilm-l6-v2" in out and "induction score" in out
    assert out.count("L5 ") >= 5  # one row for layer 5 in each table


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["explain", ""], "text is empty"),
        (["explain", "the cat", "--layer", "6"], "layer 6 is out of range"),
        (["explain", "the cat", "--head", "12"], "head 12 is out of range"),
        (["explain", "the cat", "--token", "9"], "token index 9 is out of range"),
        (["explain", "the cat", "--token", "dog"], "token 'dog' is not in the input"),
        (["explain", "the cat", "--model", "/no/such/dir"], "does not exist"),
        (["show", "the cat"], "nothing to show"),
        (["show", "the cat", "--out", "x.jpg"], "must end in .png or .html"),
        (["show", "the cat", "--terminal", "--layer", "-7"], "layer -7 is out of range"),
        (["heads", "--out", "x.svg"], "must end in .png"),
        (["heads", "--period", "1"], "--period must be >= 2"),
    ],
)
def test_bad_input_is_one_line_exit_2(capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert err.startswith("qkv: error: ") and err.count("\n") == 1
    assert message in err


def test_model_dir_without_tokenizer(capsys, tmp_path):
    qkv.save(tiny_gpt(), tmp_path)
    code, _, err = run(capsys, "explain", "the cat", "--model", str(tmp_path))
    assert code == 2 and "has no tokenizer" in err
