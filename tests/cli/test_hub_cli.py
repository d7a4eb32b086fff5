"""The CLI takes hub ids: ``generate``, ``eval``, ``explain``, ``show`` and ``heads`` accept
``--model ID`` (generate and eval also a positional ID) and ``--revision``, resolved from a real
huggingface_hub cache in a temporary HF_HOME, offline. generate stops at the generation
config's EOS ids and ``--chat`` sends the prompt through the chat template, both equal to
``qkv.generate`` (the oracle); a miss, a model without a template and a doubled model are one
line with exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import qkv
from hub_fixtures import add_snapshot, write_model
from qkv.cli.main import main

REPO = "qkv-test/tiny-chat"


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """Snapshot A (main) and B (tag v2, other weights) of REPO in an offline temporary cache."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cache = tmp_path / "hf-home" / "hub"
    sources = {"main": write_model(tmp_path / "a", context=128),
               "v2": write_model(tmp_path / "b", seed=1, context=128)}  # fmt: skip
    add_snapshot(cache, REPO, sources["main"], commit="a" * 40, refs=("main",))
    add_snapshot(cache, REPO, sources["v2"], commit="b" * 40, refs=("v2",))
    return sources


def _greedy(directory: Path, ids: list[int], new: int) -> str:
    """The oracle: qkv.generate, greedy, stopped at the generation config's EOS ids."""
    model, tok = qkv.load(directory), qkv.load_tokenizer(directory)
    eos = json.loads((directory / "generation_config.json").read_text())["eos_token_id"]
    out = qkv.generate(model, torch.tensor([ids]), max_new_tokens=new, temperature=0,
                       eos_token_id=eos)  # fmt: skip
    return tok.decode(out[0, len(ids) :].tolist(), skip_special_tokens=True)


def test_generate_takes_an_id_and_a_revision(hub, capsys) -> None:
    prompt = "The cat sat"
    tok = qkv.load_tokenizer(hub["main"])
    for argv, source in (
        (["generate", REPO], "main"),
        (["generate", "--model", REPO], "main"),
        (["generate", REPO, "--revision", "v2"], "v2"),
    ):
        assert main([*argv, "--prompt", prompt, "--max-new-tokens", "20"]) == 0
        expected = _greedy(hub[source], tok.encode(prompt), 20)  # greedy: no do_sample
        assert capsys.readouterr().out == prompt + expected + "\n"


def test_generate_stops_at_the_generation_configs_eos(hub, capsys, tmp_path: Path) -> None:
    folder = hub["main"]
    ids = qkv.load_tokenizer(folder).encode("Hello!")
    free = qkv.generate(qkv.load(folder), torch.tensor([ids]), max_new_tokens=30,
                        temperature=0)[0, len(ids) :].tolist()  # fmt: skip
    stops = [free[7], free[12]]  # two of the greedy tokens become end ids
    config = {"eos_token_id": stops, "do_sample": False}
    (folder / "generation_config.json").write_text(json.dumps(config))
    assert main(["generate", str(folder), "--prompt", "Hello!", "--max-new-tokens", "30"]) == 0
    out = capsys.readouterr().out
    assert out == "Hello!" + _greedy(folder, ids, 30) + "\n"
    cut = min(free.index(stops[0]), free.index(stops[1]))
    tok = qkv.load_tokenizer(folder)
    assert out == "Hello!" + tok.decode(free[: cut + 1], skip_special_tokens=True) + "\n"


def test_generate_chat_uses_the_template(hub, capsys, tmp_path: Path) -> None:
    tok = qkv.load_tokenizer(hub["main"])
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi!"}]
    ids = tok.apply_chat_template(messages, add_generation_prompt=True)
    argv = ["generate", REPO, "--chat", "--system", "Be brief.", "--prompt", "Hi!",
            "--max-new-tokens", "16"]  # fmt: skip
    assert main(argv) == 0
    assert capsys.readouterr().out == _greedy(hub["main"], ids, 16) + "\n"
    bare = write_model(tmp_path / "bare", template=None)
    assert main(["generate", str(bare), "--chat", "--prompt", "Hi!"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("qkv: error: ") and "--chat-template FILE" in err and err.count("\n") == 1
    template = tmp_path / "t.jinja"
    template.write_text("{% for m in messages %}{{ m.content }}\n{% endfor %}")
    argv = ["generate", str(bare), "--chat", "--chat-template", str(template), "--prompt", "Hi!",
            "--max-new-tokens", "8"]  # fmt: skip
    assert main(argv) == 0
    expected = _greedy(bare, qkv.load_tokenizer(bare).encode("Hi!\n", add_special_tokens=False), 8)
    assert capsys.readouterr().out == expected + "\n"


def test_eval_takes_an_id(hub, capsys, tmp_path: Path) -> None:
    text = tmp_path / "text.txt"
    text.write_text("The cat sat on the mat. What is the capital of France? " * 6)
    assert main(["eval", "--model", REPO, "--data", str(text)]) == 0
    by_id = [line for line in capsys.readouterr().out.splitlines() if line.startswith("loss")]
    assert main(["eval", str(hub["main"]), "--data", str(text)]) == 0
    by_folder = [line for line in capsys.readouterr().out.splitlines() if line.startswith("loss")]
    assert by_id == by_folder and by_id


@pytest.mark.parametrize(
    "argv",
    [
        ["explain", "The cat sat", "--model", REPO, "--revision", "v2", "--token", "1"],
        ["show", "The cat sat", "--model", REPO, "--terminal", "--color", "never"],
        ["heads", "--model", REPO, "--sequences", "1", "--period", "4", "--color", "never"],
    ],
)
def test_viz_commands_take_an_id(hub, capsys, argv) -> None:
    assert main(argv) == 0
    assert REPO in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["generate", "qkv-test/absent"], "hf download qkv-test/absent"),
        (["eval", "--model", "qkv-test/absent", "--data", "x.txt"], "not in the Hugging Face"),
        (["explain", "x", "--model", "qkv-test/absent"], "HF_HUB_OFFLINE"),
        (["generate", REPO, "--revision", "v9"], "revision 'v9'"),
        (["generate", REPO, "--model", REPO], "give the model once"),
        (["generate"], "no model"),
        (["show", "x", "--terminal", "--revision", "v2"], "add --model ID"),
    ],
)
def test_hub_errors_are_one_line(hub, capsys, argv, message) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("qkv: error: ") and err.count("\n") == 1 and message in err


def test_unimplemented_generation_fields_are_named(hub, capsys) -> None:
    folder = hub["main"]
    config = json.loads((folder / "generation_config.json").read_text())
    (folder / "generation_config.json").write_text(json.dumps({**config, "min_p": 0.1}))
    assert main(["generate", str(folder), "--prompt", "Hi", "--max-new-tokens", "2"]) == 0
    assert "sets min_p=0.1, which qkv does not implement" in capsys.readouterr().err
