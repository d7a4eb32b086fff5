"""Unknown input is said, not hidden: characters a tokenizer maps to [UNK] are counted and
shown (first examples) by ``eval``, ``generate``, ``explain`` and ``show``, which refuse
instead with ``--strict-vocab``. The counts are checked against the token ids and offsets the
tokenizer itself produces."""

from __future__ import annotations

from pathlib import Path

import pytest

import qkv
from fault_helpers import cli_error, trained_run
from qkv.cli.main import main
from qkv.data import Tokenizer

FOREIGN = "ça va? Ωmega → done"  # a char vocabulary of "line N says ab." lacks most of this


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QKV_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def run(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> Path:
    return trained_run(tmp_path_factory, tmp_path / "run")


def _oracle(tokenizer: Tokenizer, text: str) -> list[str]:
    """The texts behind each [UNK] id, from the backend's own ids and offsets."""
    encoding = tokenizer.backend.encode(text, add_special_tokens=False)
    unk = tokenizer.token_id("unk")
    return [text[a:b] for i, (a, b) in zip(encoding.ids, encoding.offsets) if i == unk]


@pytest.mark.parametrize(
    ("tokenizer", "text"),
    [
        (Tokenizer.train_char("abc "), "a café, a cab"),
        (qkv.load_tokenizer(qkv.io.pretrained_path("all-minilm-l6-v2")), "The cat 🐱 sat ⚡ 🐱."),
        (Tokenizer.train_bpe("some text " * 50, vocab_size=300), "any ☃ text"),
    ],
    ids=["char", "wordpiece", "bpe"],
)
def test_unknown_report_matches_the_tokenizers_own_unknown_tokens(
    tokenizer: Tokenizer, text: str
) -> None:
    report = tokenizer.unknown_report(text)
    expected = _oracle(tokenizer, text)
    assert report.count == len(expected)
    assert report.total == len(tokenizer.encode(text, add_special_tokens=False))
    assert sum(n for _, n in report.examples) <= report.count
    assert {t for t, _ in report.examples} <= set(expected)
    if expected:
        assert report.examples[0][1] == max(expected.count(t) for t in expected)
        assert f"{len(expected)} of {report.total} tokens" in report.describe()


def test_a_long_text_is_counted_in_pieces_exactly_for_char_vocabularies() -> None:
    tokenizer = Tokenizer.train_char("ab \n")
    text = "ab ba é\n" * 20_000  # 160k characters: three pieces
    report = tokenizer.unknown_report(text)
    assert (report.count, report.total) == (20_000, len(text))
    assert report.examples == [("é", 20_000)]


def test_eval_says_how_much_of_the_text_is_unknown(run: Path, tmp_path: Path, capsys) -> None:
    data = tmp_path / "foreign.txt"
    data.write_text(FOREIGN * 3, encoding="utf-8")
    tokenizer = qkv.load_tokenizer(run)
    unknown = len(_oracle(tokenizer, FOREIGN * 3))
    assert main(["eval", str(run), "--data", str(data)]) == 0
    out, err = capsys.readouterr()
    assert f"qkv: warning: --data {data}: {unknown} of " in err and "'ç'" in err
    assert f"unknown tokens  {unknown} (" in out
    cli_error(capsys, ["eval", str(run), "--data", str(data), "--strict-vocab"], "--strict-vocab",
              "[UNK]")  # fmt: skip
    assert main(["eval", str(run), "--data", str(run.parent / "corpus.txt")]) == 0
    out, err = capsys.readouterr()
    assert "unknown" not in out and err == ""  # nothing to say for text in the vocabulary


def test_generate_says_the_prompt_is_not_what_the_model_sees(run: Path, capsys) -> None:
    args = ["generate", str(run), "--prompt", "line Ω", "--max-new-tokens", "3", "--seed", "0"]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "qkv: warning: --prompt: 1 of 6 tokens (16.7%) are [UNK]" in err and "'Ω'" in err
    cli_error(capsys, [*args, "--strict-vocab"], "--prompt", "'Ω'", "--strict-vocab")


@pytest.mark.parametrize("command", ["explain", "show"])
def test_explain_and_show_say_which_characters_are_unknown(command: str, capsys) -> None:
    args = [command, "The cat 🐱 sat.", "--token", "sat"] if command == "explain" else [
        command, "The cat 🐱 sat.", "--terminal"]  # fmt: skip
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "qkv: warning: the text: 1 of 5 tokens (20.0%) are [UNK]" in err and "'🐱'" in err
    cli_error(capsys, [*args, "--strict-vocab"], "'🐱'", "--strict-vocab")
