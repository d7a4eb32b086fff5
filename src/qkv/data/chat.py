"""Chat templates: a conversation rendered into a model's prompt exactly as transformers'
``apply_chat_template`` renders it (``transformers/utils/chat_template_utils.py``).

The template is Jinja from the model's files (``chat_template.jinja``, or
``additional_chat_templates/*.jinja`` for named ones, else ``tokenizer_config.json``'s
``chat_template``, a string or a list of ``{"name", "template"}``), run the way transformers
runs it, because templates are untrusted code written against that environment:

- jinja2's ``ImmutableSandboxedEnvironment`` with ``trim_blocks`` and ``lstrip_blocks``, the
  ``loopcontrols`` extension, and a ``{% generation %}`` block that renders its body;
- ``raise_exception(message)`` (a template's way to refuse a conversation; here a
  :class:`ChatTemplateError`), ``strftime_now(format)``, ``dict(...)``, and a ``namespace``
  that refuses underscore attributes;
- the ``tojson`` filter as ``json.dumps`` with ``ensure_ascii=False`` (jinja's own escapes
  HTML) and its ``indent`` / ``separators`` / ``sort_keys`` options;
- variables ``messages``, ``tools``, ``documents``, ``add_generation_prompt``, the tokenizer's
  named special tokens (``bos_token``, ``eos_token``, ...) and any extra keyword;
- messages normalised as transformers does: keys whose value is None dropped, reasoning under
  ``reasoning_content`` (also given as ``thinking``), only plain JSON data visible.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from qkv.atomic import read_json

__all__ = [
    "ChatTemplateError",
    "read_chat_templates",
    "render_chat",
    "select_template",
]

Templates = str | dict[str, str]
_REASONING_FIELDS = ("reasoning_content", "thinking", "reasoning")


class ChatTemplateError(ValueError):
    """A chat template that cannot render: a syntax error, a missing template, or the
    template's own ``raise_exception`` (e.g. "Conversation roles must alternate")."""


def read_chat_templates(directory: str | Path) -> Templates | None:
    """The chat template(s) saved in ``directory``: a string, a {name: template} dict when
    there are named ones (``default`` is the default), or None when the model has none.

    ``chat_template.jinja`` and ``additional_chat_templates/*.jinja`` take priority over
    ``tokenizer_config.json``'s ``chat_template``, as in transformers; a processor's
    ``chat_template.json`` (``{"chat_template": ...}``) is read when neither exists.
    """
    directory = Path(directory)
    found: dict[str, str] = {}
    default_file = directory / "chat_template.jinja"
    if default_file.is_file():
        found["default"] = default_file.read_text(encoding="utf-8")
    extra = directory / "additional_chat_templates"
    if extra.is_dir():
        for file in sorted(extra.glob("*.jinja")):
            found[file.name.removesuffix(".jinja")] = file.read_text(encoding="utf-8")
    if found:
        return found["default"] if list(found) == ["default"] else found
    config = directory / "tokenizer_config.json"
    raw = read_json(config).get("chat_template") if config.is_file() else None
    if raw is None and (directory / "chat_template.json").is_file():
        raw = read_json(directory / "chat_template.json").get("chat_template")
    if raw is None:
        return None
    if isinstance(raw, str):
        return raw
    if isinstance(raw, list) and all(
        isinstance(t, dict)
        and isinstance(t.get("name"), str)
        and isinstance(t.get("template"), str)
        for t in raw
    ):
        return {t["name"]: t["template"] for t in raw}
    raise ChatTemplateError(
        f"{config}: chat_template must be a string or a list of {{name, template}} objects, "
        f"got {type(raw).__name__}"
    )


def select_template(
    templates: Templates | None, name: str | None = None, tools: Sequence[Any] | None = None
) -> str:
    """The template to render, as transformers picks it: ``name`` (a name among named
    templates, else a template string itself), else ``tool_use`` when tools are given and
    the model has one, else ``default``."""
    if isinstance(templates, dict):
        if name is not None:
            return templates.get(name, name)
        if tools and "tool_use" in templates:
            return templates["tool_use"]
        if "default" in templates:
            return templates["default"]
        raise ChatTemplateError(
            f"this model has several chat templates ({', '.join(sorted(templates))}) and no "
            "'default'; choose one by name (chat_template=NAME)"
        )
    if name is not None:
        return name
    if templates is None:
        raise ChatTemplateError(
            "this model has no chat template (no chat_template.jinja, and no chat_template in "
            "tokenizer_config.json): it is probably a base model, not an instruct one; pass a "
            "template (--chat-template FILE, or chat_template=...)"
        )
    return templates


def render_chat(
    template: str,
    messages: Sequence[Mapping[str, Any]],
    *,
    add_generation_prompt: bool = False,
    tools: Sequence[Mapping[str, Any]] | None = None,
    documents: Sequence[Mapping[str, Any]] | None = None,
    **variables: Any,
) -> str:
    """The prompt text of ``messages`` (``[{"role": "user", "content": "Hi"}, ...]``) under
    the Jinja ``template``, equal to transformers' ``apply_chat_template(..., tokenize=False)``.

    ``add_generation_prompt`` appends the header of an assistant turn (where the model's answer
    starts); ``variables`` are the special tokens (``bos_token="<s>"``) and any extra template
    keyword (``enable_thinking=False``). Raises :class:`ChatTemplateError` (a ValueError) for a
    template that does not parse or refuses the conversation, naming the reason.

    Example::

        >>> render_chat("{% for m in messages %}<|{{ m.role }}|>{{ m.content }}{% endfor %}",
        ...             [{"role": "user", "content": "Hi"}])
        '<|user|>Hi'
    """
    import jinja2

    if isinstance(messages, Mapping) or not isinstance(messages, Sequence) or not messages:
        raise ChatTemplateError(
            "messages must be a non-empty list of {'role': ..., 'content': ...} dicts, got "
            f"{messages!r}"
        )
    chat = []
    for index, message in enumerate(messages):
        if not isinstance(message, Mapping) or not isinstance(message.get("role"), str):
            raise ChatTemplateError(
                f"message {index} must be a dict with a 'role' string (and usually 'content'), "
                f"got {message!r}"
            )
        kept = {key: value for key, value in message.items() if value is not None}
        chat.append(_alias_reasoning(_plain(kept)))
    compiled = _compile(template)
    try:
        return compiled.render(
            messages=chat,
            tools=_plain(list(tools)) if tools is not None else None,
            documents=_plain(list(documents)) if documents is not None else None,
            add_generation_prompt=bool(add_generation_prompt),
            **_plain(variables),
        )
    except jinja2.exceptions.TemplateError as error:
        raise ChatTemplateError(f"the chat template refused the conversation: {error}") from None
    except Exception as error:  # a template bug (None iterated, a missing key, ...)
        raise ChatTemplateError(
            f"the chat template failed on this conversation ({type(error).__name__}: {error})"
        ) from None


@lru_cache(maxsize=16)
def _compile(template: str) -> Any:
    """The template compiled in transformers' sandboxed environment (cached per text)."""
    import jinja2
    import jinja2.ext
    import jinja2.nodes
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class Generation(jinja2.ext.Extension):
        """``{% generation %}...{% endgeneration %}``: marks the assistant's part; renders it."""

        tags = {"generation"}

        def parse(self, parser: Any) -> Any:
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
            call = self.call_method("_body")
            return jinja2.nodes.CallBlock(call, [], [], body).set_lineno(lineno)

        def _body(self, caller: Any) -> str:
            return caller()

    class Namespace(jinja2.utils.Namespace):
        """jinja's namespace without underscore attributes (no reach into CPython internals)."""

        def __init__(*args: Any, **kwargs: Any) -> None:
            self, args = args[0], args[1:]
            attrs = dict(*args, **kwargs)
            for name in attrs:
                Namespace._check(name)
            jinja2.utils.Namespace.__init__(self, attrs)

        def __setitem__(self, name: str, value: Any) -> None:
            Namespace._check(name)
            jinja2.utils.Namespace.__setitem__(self, name, value)

        @staticmethod
        def _check(name: Any) -> None:
            if isinstance(name, str) and name.startswith("_"):
                raise jinja2.exceptions.SecurityError(
                    f"chat templates cannot store underscore attributes on a namespace: {name!r}"
                )

    class Dict:
        """``dict(...)`` for templates, without the type itself (no attribute tricks)."""

        def __call__(self, *args: Any, **kwargs: Any) -> dict:
            return dict(*args, **kwargs)

        def fromkeys(self, *args: Any, **kwargs: Any) -> dict:
            return dict.fromkeys(*args, **kwargs)

    def raise_exception(message: str) -> None:
        raise jinja2.exceptions.TemplateError(message)

    def tojson(
        value: Any,
        ensure_ascii: bool = False,
        indent: int | None = None,
        separators: Any = None,
        sort_keys: bool = False,
    ) -> str:
        return json.dumps(
            value, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
            sort_keys=sort_keys,
        )  # fmt: skip

    def strftime_now(format: str) -> str:
        return datetime.now().strftime(format)

    environment = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[Generation, jinja2.ext.loopcontrols]
    )
    environment.filters["tojson"] = tojson
    environment.globals["raise_exception"] = raise_exception
    environment.globals["strftime_now"] = strftime_now
    environment.globals["dict"] = Dict()
    environment.globals["namespace"] = Namespace
    try:
        return environment.from_string(template)
    except jinja2.exceptions.TemplateSyntaxError as error:
        raise ChatTemplateError(
            f"the chat template does not parse (line {error.lineno}: {error.message})"
        ) from None


def _alias_reasoning(message: dict[str, Any]) -> dict[str, Any]:
    """Reasoning under its older names also as ``reasoning_content`` and ``thinking``."""
    reasoning = next((message[k] for k in _REASONING_FIELDS if message.get(k) is not None), None)
    if reasoning is None:
        return message
    return {"thinking": reasoning, **message, "reasoning_content": reasoning}


def _plain(value: Any) -> Any:
    """Only plain JSON data reaches the sandbox; any other object becomes ``"<TypeName>"``."""
    if value is None or type(value) in (str, int, float, bool):
        return value
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int.__int__(value)
    if isinstance(value, float):
        return float.__float__(value)
    if isinstance(value, Mapping):
        return {_plain(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, tuple):
        return tuple(_plain(item) for item in value)
    return f"<{type(value).__name__}>"
