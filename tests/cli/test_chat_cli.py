"""``qkv chat``: driven through a pseudo-terminal on a small random model saved in a temporary
folder, it streams answers equal to greedy ``qkv.generate`` on the chat-templated history (so
the history is kept) and leaves on Ctrl-D with exit code 0; in-process, answers stream piece by
piece, Ctrl-C stops one and keeps what was said, /reset clears the history, old turns are
dropped (with a message) to fit the context, and a message too long for it is refused."""

from __future__ import annotations

import argparse
import os
import pty
import re
import select
import sys
import time
from pathlib import Path

import pytest
import torch

import qkv
from hub_fixtures import write_model
from qkv.cli.chat import ChatSession, ContextFull, converse
from qkv.cli.model_args import open_language_model, sampling

NEW = 12
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\r")


def _oracle(directory: Path, messages: list[dict], new: int = NEW) -> str:
    """The greedy answer: qkv.generate on the templated history, stopped at the EOS ids."""
    model, tok = qkv.load(directory), qkv.load_tokenizer(directory)
    ids = tok.apply_chat_template(messages, add_generation_prompt=True)
    eos = [tok.eos_token_id]
    out = qkv.generate(model, torch.tensor([ids]), max_new_tokens=new, temperature=0,
                       eos_token_id=eos)  # fmt: skip
    return tok.decode(out[0, len(ids) :].tolist(), skip_special_tokens=True)


def _read_until(
    fd: int, marker: str, buffer: list[str], since: int = 0, timeout: float = 120.0
) -> str:
    """Read the terminal into ``buffer`` until ``marker`` appears after character ``since``
    of its text (escape sequences and carriage returns removed); return that text."""
    deadline = time.monotonic() + timeout
    while True:
        text = ANSI.sub("", "".join(buffer))[since:]
        if marker in text:
            return text
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"no {marker!r} from qkv chat within {timeout}s; got {text!r}")
        ready, _, _ = select.select([fd], [], [], remaining)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # the child closed the terminal
                chunk = b""
            if not chunk:
                raise AssertionError(f"qkv chat ended before {marker!r}; got {text!r}")
            buffer.append(chunk.decode("utf-8", errors="replace"))


def test_chat_in_a_terminal_answers_keeps_history_and_leaves_on_ctrl_d(tmp_path: Path) -> None:
    directory = write_model(tmp_path / "model", "chatml", context=256)
    argv = [sys.executable, "-m", "qkv", "chat", str(directory), "--max-new-tokens", str(NEW),
            "--system", "Be brief."]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    pid, fd = pty.fork()
    if pid == 0:  # the child: qkv chat on the terminal
        os.execvpe(argv[0], argv, env)
    try:
        buffer: list[str] = []
        _read_until(fd, ">>> ", buffer)
        history = [{"role": "system", "content": "Be brief."}]
        for question in ("Hello!", "What is the capital of France?"):
            start = len(ANSI.sub("", "".join(buffer)))
            os.write(fd, question.encode() + b"\n")
            text = _read_until(fd, "\n>>> ", buffer, since=start)
            answer = text.split(question + "\n", 1)[1].rsplit("\n>>> ", 1)[0]
            history.append({"role": "user", "content": question})
            expected = _oracle(directory, history)
            assert answer == expected.replace("\r", "")
            history.append({"role": "assistant", "content": expected})
        os.write(fd, b"\x04")  # Ctrl-D
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0


@pytest.fixture
def session_for(tmp_path: Path):
    def make(context: int = 256, max_new_tokens: int = NEW, system: str | None = None):
        directory = write_model(tmp_path / f"m{context}", "chatml", context=context)
        lm = open_language_model(str(directory), None, device="cpu", command="chat")
        args = argparse.Namespace(temperature=None, top_k=None, top_p=None,
                                  repetition_penalty=None, seed=None)  # fmt: skip
        written: list[str] = []
        session = ChatSession(lm, sampling(args, lm, stop_at_tokenizer_eos=True), template=None,
                              system=system, max_new_tokens=max_new_tokens,
                              write=written.append)  # fmt: skip
        return session, written, directory

    return make


def test_answers_stream_piece_by_piece(session_for) -> None:
    session, written, directory = session_for()
    reply = session.answer("Tell me a story")
    assert reply == _oracle(directory, [{"role": "user", "content": "Tell me a story"}])
    assert len(written) > 2 and "".join(written) == reply + "\n"  # many pieces, then a newline


def test_ctrl_c_stops_the_answer_and_keeps_what_was_said(session_for) -> None:
    session, written, _ = session_for()
    pieces: list[str] = []

    def write(text: str) -> None:  # Ctrl-C arrives while the fourth piece is printed
        pieces.append(text)
        if len(pieces) == 4:
            raise KeyboardInterrupt

    session.write = write
    reply = session.answer("Tell me a story")
    assert reply == "".join(pieces[:3]) and pieces[4:] == [" [stopped]", "\n"]
    assert session.history[-1] == {"role": "assistant", "content": reply}


def test_commands_and_ctrl_d(session_for) -> None:
    session, written, _ = session_for()
    lines = iter(["Hello!", "  ", "/help", "/reset", "Hello!"])

    def read_line(prompt: str) -> str:
        assert prompt == ">>> "
        try:
            return next(lines)
        except StopIteration:
            raise EOFError from None

    assert converse(session, read_line) == 0
    output = "".join(written)
    assert "(unknown command /help" in output and "(history cleared)" in output
    assert [m["role"] for m in session.history] == ["user", "assistant"]  # after /reset


def test_old_turns_are_dropped_to_fit_the_context(session_for) -> None:
    session, written, _ = session_for(context=96, max_new_tokens=8, system="Be brief.")
    prompts = []
    build = session.prompt
    session.prompt = lambda: prompts.append(build()) or prompts[-1]
    for _ in range(6):
        session.answer("What is the capital of France? Tell me a story.")
    assert all(len(ids) + session.reserve <= session.context for ids, _ in prompts)
    assert [dropped for _, dropped in prompts][:2] == [0, 0] and max(d for _, d in prompts) > 0
    assert any("dropped the 2 oldest messages" in text for text in written)
    assert session.history[0]["role"] == "user"  # whole pairs dropped, alternation kept


def test_a_message_too_long_for_the_context_is_refused(session_for) -> None:
    session, _, _ = session_for(context=96)
    with pytest.raises(ContextFull, match="leaving fewer than .* tokens of context"):
        session.answer("Tell me a story about a brave little robot. " * 12)
    assert session.history == []
