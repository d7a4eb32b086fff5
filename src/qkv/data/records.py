"""Instruction and chat records in JSONL: read, check, and render into trained / untrained text.

One JSON object per line, in one of the formats the ecosystem uses:

- ``{"text": ...}``: plain text, every token trained;
- ``{"prompt": ..., "completion": ...}``: the loss covers the completion only;
- ``{"messages": [{"role": "system"|"user"|"assistant", "content": ...}, ...]}``: rendered
  with the tokenizer's chat template, or :data:`DEFAULT_CHAT_TEMPLATE` when it has none; the
  loss covers the assistant turns only;
- Alpaca's ``{"instruction": ..., "input": ..., "output": ...}`` (``input`` optional):
  rendered with :data:`ALPACA_PROMPT`; the loss covers the output only.

A record is a list of :class:`Segment` (text, trained). A malformed record raises ValueError
naming the file, the line number and the field.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# The chat rendering of tokenizers without a template (documented in the README): each
# message is "<|role|>\n" + content + "\n"; the assistant header is prompt, not trained.
DEFAULT_CHAT_TEMPLATE = "<|{role}|>\n{content}\n"
# The same as a Jinja chat template, saved with a fine-tune's tokenizer so `qkv chat` and
# transformers' apply_chat_template render conversations as the model was trained on them.
DEFAULT_CHAT_JINJA = (
    "{% for message in messages %}<|{{ message['role'] }}|>\n{{ message['content'] }}\n"
    "{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
ALPACA_PROMPT = (
    "Below is an instruction that describes a task{with_input}. Write a response that "
    "appropriately completes the request.\n\n### Instruction:\n{instruction}\n\n"
    "{input_block}### Response:\n"
)
ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class Segment:
    """A piece of a record's text; ``trained``: its tokens count in the loss."""

    text: str
    trained: bool


def is_records_file(path: str | Path) -> bool:
    """True for a ``.jsonl`` file (read as records rather than plain text)."""
    return str(path).endswith((".jsonl", ".jsonl.txt"))


def read_records(path: Path, *, chat_template: Any = None) -> list[list[Segment]]:
    """The records of JSONL file ``path``, each rendered into segments (see module doc).

    ``chat_template``: a callable ``(messages, add_generation_prompt) -> str`` rendering a
    conversation (the tokenizer's template), or None for :data:`DEFAULT_CHAT_TEMPLATE`.
    """
    records = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as error:
        raise ValueError(f"{path} is not UTF-8 text ({error.reason}); save it as UTF-8") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}, line {number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(
                f"{where}: not valid JSON ({error.msg}, column {error.colno})"
            ) from None
        if not isinstance(record, dict):
            raise ValueError(
                f"{where}: a record must be a JSON object, got {type(record).__name__}"
            )
        records.append(render(record, where, chat_template))
    if not records:
        raise ValueError(f"{path} holds no records; write one JSON object per line")
    return records


def _text(record: dict[str, Any], field: str, where: str, *, optional: bool = False) -> str:
    if field not in record:
        if optional:
            return ""
        raise ValueError(f"{where}: field {field!r} is missing")
    value = record[field]
    if not isinstance(value, str):
        raise ValueError(f"{where}: field {field!r} must be a string, got {type(value).__name__}")
    if not value and not optional:
        raise ValueError(f"{where}: field {field!r} is empty")
    return value


def render(record: dict[str, Any], where: str, chat_template: Any = None) -> list[Segment]:
    """The segments of one record (``where``: "file, line N" for errors)."""
    if "messages" in record:
        return _render_messages(record["messages"], where, chat_template)
    if "prompt" in record or "completion" in record:
        return [
            Segment(_text(record, "prompt", where), False),
            Segment(_text(record, "completion", where), True),
        ]
    if "instruction" in record or "output" in record:
        instruction = _text(record, "instruction", where)
        extra = _text(record, "input", where, optional=True)
        prompt = ALPACA_PROMPT.format(
            with_input=", paired with an input that provides further context" if extra else "",
            instruction=instruction,
            input_block=f"### Input:\n{extra}\n\n" if extra else "",
        )
        return [Segment(prompt, False), Segment(_text(record, "output", where), True)]
    if "text" in record:
        return [Segment(_text(record, "text", where), True)]
    raise ValueError(
        f"{where}: unknown record with fields {sorted(record)}; expected text, prompt + "
        "completion, messages, or instruction + output (Alpaca)"
    )


def _check_messages(messages: Any, where: str) -> list[dict[str, str]]:
    if not isinstance(messages, list) or not messages:
        raise ValueError(f"{where}: field 'messages' must be a non-empty list of messages")
    for index, message in enumerate(messages):
        field = f"messages[{index}]"
        if not isinstance(message, dict):
            raise ValueError(f"{where}: field {field!r} must be an object with role and content")
        role = message.get("role")
        if role not in ROLES:
            raise ValueError(
                f"{where}: field '{field}.role' is {role!r}; expected one of {', '.join(ROLES)}"
            )
        if not isinstance(message.get("content"), str):
            raise ValueError(f"{where}: field '{field}.content' must be a string")
    if not any(m["role"] == "assistant" for m in messages):
        raise ValueError(f"{where}: field 'messages' has no assistant message to train on")
    return messages


def _render_messages(messages: Any, where: str, chat_template: Any) -> list[Segment]:
    """Assistant turns trained, the rest not. With a template, each assistant turn is the
    text the template adds for it after the prompt (``add_generation_prompt``) of the turns
    before it, so the split is the template's own."""
    messages = _check_messages(messages, where)
    if chat_template is None:
        segments = []
        for m in messages:
            header = DEFAULT_CHAT_TEMPLATE.split("{content}")[0].format(role=m["role"])
            trained = m["role"] == "assistant"
            segments += [Segment(header, False), Segment(m["content"] + "\n", trained)]
        return segments
    segments: list[Segment] = []
    done = ""
    for index, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        prompt = chat_template(messages[:index], True)
        full = chat_template(messages[: index + 1], False)
        if not prompt.startswith(done) or not full.startswith(prompt):
            raise ValueError(
                f"{where}: the chat template does not render this conversation turn by turn "
                "(an earlier turn's text changes later); use prompt/completion records"
            )
        segments += [Segment(prompt[len(done) :], False), Segment(full[len(prompt) :], True)]
        done = full
    rest = chat_template(messages, False)[len(done) :]
    if rest:
        segments.append(Segment(rest, False))
    return [s for s in segments if s.text]
