"""Chat templates against transformers' ``apply_chat_template`` (the oracle) on the same
tokenizer folders: ChatML/Qwen-, Llama-3- and Gemma-style templates (fixtures in
``chat_templates/``), with and without a system message and ``add_generation_prompt``, as
text and as token ids; tools through ``tojson``; a template's ``raise_exception``; named
templates; the sandbox; a tokenizer saved and reopened keeps its template."""

from __future__ import annotations

from pathlib import Path

import pytest

import qkv
from hub_fixtures import chat_template, write_tokenizer
from qkv.data.chat import ChatTemplateError, render_chat

transformers = pytest.importorskip("transformers")
transformers.logging.set_verbosity_error()

SYSTEM = {"role": "system", "content": "You are terse & exact <always>."}
TURNS = [
    {"role": "user", "content": "Hello! What is the capital of France?"},
    {"role": "assistant", "content": "Paris.", "tool_calls": None},
    {"role": "user", "content": "  Tell me a story about a robot, café-style 🙂  "},
]
TOOL = {
    "type": "function",
    "function": {"name": "get_weather", "description": "Weather <now> & later, in °C",
                 "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}},
}  # fmt: skip


def _pair(directory: Path, style: str, template: str = "config"):
    folder = write_tokenizer(directory, style, template=template, max_length=4096)
    return transformers.AutoTokenizer.from_pretrained(folder), qkv.load_tokenizer(folder)


@pytest.mark.parametrize("style", ["chatml", "llama3", "gemma"])
@pytest.mark.parametrize("system", [False, True])
@pytest.mark.parametrize("add_generation_prompt", [False, True])
def test_rendered_prompt_equals_transformers(
    tmp_path: Path, style: str, system: bool, add_generation_prompt: bool
) -> None:
    hf, tok = _pair(tmp_path, style, template="file" if style == "gemma" else "config")
    messages = [SYSTEM, *TURNS] if system else TURNS
    options = {"add_generation_prompt": add_generation_prompt}
    text = tok.apply_chat_template(messages, tokenize=False, **options)
    assert text == hf.apply_chat_template(messages, tokenize=False, **options)
    ids = tok.apply_chat_template(messages, **options)
    assert ids == hf.apply_chat_template(messages, tokenize=True, return_dict=False, **options)
    bos = tok.bos_token_id
    assert bos is None or ids.count(bos) == 1  # the template writes BOS; encoding adds none
    headers = ("assistant\n", "assistant<|end_header_id|>\n\n", "model\n")
    assert text.endswith(headers) == add_generation_prompt


def test_tools_render_through_tojson_like_transformers(tmp_path: Path) -> None:
    hf, tok = _pair(tmp_path, "chatml")
    for messages in (TURNS, [SYSTEM, *TURNS]):
        expected = hf.apply_chat_template(messages, tools=[TOOL], tokenize=False)
        assert tok.apply_chat_template(messages, tools=[TOOL], tokenize=False) == expected
        assert "Weather <now> & later, in °C" in expected  # no HTML escapes, no \\u escapes


def test_raise_exception_refuses_like_transformers(tmp_path: Path) -> None:
    hf, tok = _pair(tmp_path, "gemma")
    messages = [TURNS[0], TURNS[0]]  # two user turns: Gemma's template refuses
    with pytest.raises(Exception, match="roles must alternate"):
        hf.apply_chat_template(messages, tokenize=False)
    with pytest.raises(ChatTemplateError, match="refused the conversation: .*roles must alternate"):
        tok.apply_chat_template(messages)


def test_named_templates_pick_tool_use_for_tools(tmp_path: Path) -> None:
    folder = write_tokenizer(tmp_path, "chatml", template="file")
    (folder / "additional_chat_templates").mkdir()
    tool_template = (
        "{% for t in tools %}[{{ t | tojson(indent=2) }}]{% endfor %}{{ messages[0].content }}"
    )
    (folder / "additional_chat_templates" / "tool_use.jinja").write_text(tool_template)
    hf, tok = transformers.AutoTokenizer.from_pretrained(folder), qkv.load_tokenizer(folder)
    assert set(tok.chat_template) == {"default", "tool_use"}
    for tools in (None, [TOOL]):
        expected = hf.apply_chat_template(TURNS, tools=tools, tokenize=False)
        assert tok.apply_chat_template(TURNS, tools=tools, tokenize=False) == expected
    by_name = tok.apply_chat_template(TURNS, chat_template="tool_use", tools=[TOOL], tokenize=False)
    assert by_name == render_chat(tool_template, TURNS, tools=[TOOL])
    with pytest.raises(ChatTemplateError, match="failed.*TypeError"):  # no tools to loop over
        tok.apply_chat_template(TURNS, chat_template="tool_use")


def test_a_saved_tokenizer_keeps_its_template(tmp_path: Path) -> None:
    _, tok = _pair(tmp_path / "a", "llama3")
    tok.save(tmp_path / "b")
    assert (tmp_path / "b" / "chat_template.jinja").read_text() == chat_template("llama3")
    again = qkv.load_tokenizer(tmp_path / "b")
    options = {"add_generation_prompt": True, "date_string": "26 Jul 2024"}
    assert again.apply_chat_template(TURNS, **options) == tok.apply_chat_template(TURNS, **options)
    hf = transformers.AutoTokenizer.from_pretrained(tmp_path / "b")
    assert hf.apply_chat_template(TURNS, tokenize=False, **options) == (
        again.apply_chat_template(TURNS, tokenize=False, **options)
    )


def test_no_template_names_the_fix(tmp_path: Path) -> None:
    tok = qkv.load_tokenizer(write_tokenizer(tmp_path, "chatml", template=None))
    assert tok.chat_template is None
    with pytest.raises(ChatTemplateError, match="no chat template.*--chat-template FILE"):
        tok.apply_chat_template(TURNS)
    assert tok.apply_chat_template(TURNS, chat_template="{{ messages|length }}") == tok.encode(
        "3", add_special_tokens=False
    )


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{ ''.__class__.__mro__ }}", "refused"),  # the sandbox
        ("{% set ns = namespace() %}{% set ns._x = 1 %}", "underscore"),
        ("{% for m in messages %}", "does not parse"),
    ],
)
def test_unsafe_or_broken_templates_are_errors(template: str, message: str) -> None:
    with pytest.raises(ChatTemplateError, match=message):
        render_chat(template, TURNS)


@pytest.mark.parametrize("bad", [[], "hi", [{"content": "no role"}], [("user", "hi")]])
def test_bad_messages_are_named(bad) -> None:
    with pytest.raises(ChatTemplateError, match="message"):
        render_chat("{{ messages }}", bad)
