"""``qkv chat MODEL``: an interactive, streaming conversation with an instruct model.

Each turn renders the whole history with the model's chat template (or ``--chat-template
FILE``), ending in the assistant header, and streams the answer token by token until an
end-of-sequence id (the generation config's and the tokenizer's) or ``--max-new-tokens``. The
history is kept; when it would overflow the model's context (leaving less than a quarter of
it, or ``--max-new-tokens`` if smaller, for the answer), the oldest user/assistant pairs are
dropped with a message, the system prompt kept; a single message too long for that is refused.
Ctrl-C stops the current answer (what was said is kept), ``/reset`` starts over, ``/exit`` or
Ctrl-D leaves with exit code 0.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable
from typing import Any

MAX_NEW_TOKENS = 256
HELP = "/reset starts over, /exit or Ctrl-D leaves, Ctrl-C stops an answer"


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from qkv.cli.model_args import add_model_arguments, add_sampling_arguments

    parser = subparsers.add_parser(
        "chat",
        help="chat with an instruct model in the terminal (a folder or a hub id)",
        description="An interactive conversation with a model that has a chat template "
        "(instruct models: Qwen2.5-Instruct, Llama-3.x-Instruct, SmolLM2-Instruct, ...). "
        "Answers stream as they are produced; the history is kept and trimmed, oldest turns "
        f"first, to fit the model's context. {HELP}.",
    )
    add_model_arguments(parser)
    parser.add_argument("--system", default=None, help="a system prompt opening the chat")
    parser.add_argument(
        "--chat-template", metavar="FILE", default=None,
        help="a Jinja chat template file (for a model without one)",
    )  # fmt: skip
    add_sampling_arguments(parser, max_new_tokens=MAX_NEW_TOKENS)
    return parser


class ContextFull(ValueError):
    """The newest message alone leaves no room for an answer within the context."""


class ChatSession:
    """The conversation: history, prompt building within the context, streamed answers."""

    def __init__(
        self,
        lm: Any,
        settings: Any,
        *,
        template: str | None,
        system: str | None,
        max_new_tokens: int,
        write: Callable[[str], Any],
    ) -> None:
        self.lm, self.settings, self.template = lm, settings, template
        self.system = [{"role": "system", "content": system}] if system else []
        self.max_new_tokens = max_new_tokens
        self.write = write
        self.history: list[dict[str, str]] = []
        self.context = lm.model.config.n_positions
        # The answer needs this much room; older turns are dropped to keep it.
        self.reserve = max(1, min(max_new_tokens, self.context // 4))

    def reset(self) -> None:
        self.history.clear()

    def prompt(self) -> tuple[list[int], int]:
        """(token ids of system + history + assistant header, messages dropped to fit)."""
        from qkv.cli.generate import chat_prompt

        dropped = 0
        while True:
            ids = chat_prompt(self.lm, [*self.system, *self.history], self.template)
            if len(ids) + self.reserve <= self.context:
                return ids, dropped
            if len(self.history) <= 1:
                raise ContextFull(
                    f"that message makes a prompt of {len(ids)} tokens, leaving fewer than "
                    f"{self.reserve} of the model's {self.context} tokens of context for an "
                    "answer; send a shorter one" + (" or a shorter --system" if self.system else "")
                )
            del self.history[:2]  # the oldest user message and its answer
            dropped += 2

    def answer(self, text: str) -> str:
        """Add the user's ``text``, stream the model's answer, add it; return it."""
        from qkv.cli.generate import stream_text, stream_tokens

        self.history.append({"role": "user", "content": text})
        try:
            ids, dropped = self.prompt()
        except ContextFull:
            self.history.pop()
            raise
        if dropped:
            self.write(
                f"(the conversation outgrew the model's {self.context}-token context: dropped "
                f"the {dropped} oldest messages)\n"
            )
        room = min(self.max_new_tokens, self.context - len(ids))
        pieces: list[str] = []
        tokens = stream_tokens(self.lm.model, ids, max_new_tokens=room, **self.settings.options())
        try:
            for piece in stream_text(self.lm.tokenizer, tokens):
                self.write(piece)
                pieces.append(piece)  # kept once shown
        except KeyboardInterrupt:
            self.write(" [stopped]")
        finally:
            tokens.close()
        self.write("\n")
        reply = "".join(pieces)
        self.history.append({"role": "assistant", "content": reply})
        return reply


def converse(session: ChatSession, read_line: Callable[[str], str]) -> int:
    """The read-answer loop until Ctrl-D or /exit; returns the exit code (0)."""
    write = session.write
    while True:
        try:
            line = read_line(">>> ")
        except EOFError:  # Ctrl-D
            write("\n")
            return 0
        except KeyboardInterrupt:  # Ctrl-C at the prompt: a new line, not an exit
            write(f"\n({HELP})\n")
            continue
        text = line.strip()
        if not text:
            continue
        if text in ("/exit", "/quit", "/bye"):
            return 0
        if text == "/reset":
            session.reset()
            write("(history cleared)\n")
            continue
        if text.startswith("/") and " " not in text:
            write(f"(unknown command {text}; {HELP})\n")
            continue
        try:
            session.answer(line)
        except ContextFull as error:
            write(f"({error})\n")


def run(args: argparse.Namespace) -> int:
    from qkv.cli.generate import chat_prompt
    from qkv.cli.model_args import (
        max_new_tokens,
        model_name,
        open_language_model,
        read_chat_template,
        sampling,
    )

    template = read_chat_template(args.chat_template)
    name = model_name(args)
    lm = open_language_model(
        name, args.revision, device=args.device, command="chat", precision=args.precision
    )
    settings = sampling(args, lm, stop_at_tokenizer_eos=True)
    system = [{"role": "system", "content": args.system}] if args.system else []
    # Refuse a model without a template, or a template that refuses this setup, up front.
    chat_prompt(lm, [*system, {"role": "user", "content": "hi"}], template)
    count = max_new_tokens(args, lm, 0, MAX_NEW_TOKENS)

    def write(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    session = ChatSession(lm, settings, template=template, system=args.system,
                          max_new_tokens=count, write=write)  # fmt: skip
    if sys.stdin.isatty():
        with contextlib.suppress(ImportError):  # line editing and history for input()
            import readline  # noqa: F401
    write(f"qkv chat: {name}, {session.context} tokens of context; {HELP}.\n")
    return converse(session, input)
