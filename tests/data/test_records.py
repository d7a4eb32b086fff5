"""Instruction and chat records: rendering, loss masks that are real, and one clear error
naming file, line and field for every malformed record."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from qkv.data.record_batches import IGNORE, RecordRows, encode_records, row_batch
from qkv.data.records import DEFAULT_CHAT_JINJA, Segment, read_records
from qkv.data.tokenizer import Tokenizer
from qkv.models import build, language_model_loss, preset

TEXT = "abcdefghijklmnopqrstuvwxyz :->.\n#<|>ABCDEFGHIJKLMNOPQRSTUVWXYZ,"


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    return Tokenizer.train_char(TEXT)


def _write(tmp_path: Path, *records: object) -> Path:
    path = tmp_path / "data.jsonl"
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in records) + "\n")
    return path


def test_each_format_renders_with_its_trained_part(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        {"text": "plain"},
        {"prompt": "q:", "completion": " a."},
        {"messages": [{"role": "user", "content": "hi"},
                      {"role": "assistant", "content": "yo"}]},  # fmt: skip
        {"instruction": "do", "input": "x", "output": "done"},
    )
    plain, pc, chat, alpaca = read_records(path)
    assert plain == [Segment("plain", True)]
    assert pc == [Segment("q:", False), Segment(" a.", True)]
    assert chat == [Segment("<|user|>\n", False), Segment("hi\n", False),
                    Segment("<|assistant|>\n", False), Segment("yo\n", True)]  # fmt: skip
    # the Jinja form saved with fine-tuned tokenizers renders the same text, split the same
    tokenizer = Tokenizer.train_char(TEXT + "hiyo")
    tokenizer.chat_template = DEFAULT_CHAT_JINJA
    (jinja,) = read_records(
        _write(tmp_path, {"messages": [{"role": "user", "content": "hi"},
                                       {"role": "assistant", "content": "yo"}]}),
        chat_template=lambda m, p: tokenizer.apply_chat_template(
            m, add_generation_prompt=p, tokenize=False),
    )  # fmt: skip
    assert "".join(x.text for x in jinja) == "".join(x.text for x in chat)
    assert [x.text for x in jinja if x.trained] == ["yo\n"]
    assert "### Instruction:\ndo" in alpaca[0].text and "### Input:\nx" in alpaca[0].text
    assert alpaca[1] == Segment("done", True) and not alpaca[0].trained


def test_a_chat_template_splits_the_turns_its_own_way(tmp_path: Path) -> None:
    def template(messages: list, prompt: bool) -> str:
        text = "".join(f"[{m['role']}]{m['content']}[end]" for m in messages)
        return text + ("[assistant]" if prompt else "")

    messages = [{"role": role, "content": text}
                for role, text in zip(["user", "assistant"] * 2, "abcd")]  # fmt: skip
    (segments,) = read_records(_write(tmp_path, {"messages": messages}), chat_template=template)
    trained = "".join(s.text for s in segments if s.trained)
    # the assistant header is the prompt's; only what the assistant says (and its end) trains
    assert trained == "b[end]d[end]"
    assert "".join(s.text for s in segments) == template(messages, False)


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return build(preset("gpt-nano", vocab_size=80, n_layer=1, n_embd=16, n_head=2)).eval()


def test_prompt_masking_is_real(tokenizer: Tokenizer) -> None:
    """Logits are fixed (from the original inputs); only the labels the real batching code
    derives from the rows change: prompt tokens' labels do not move the loss, completion
    tokens' labels do, and --no-mask-prompt counts the prompt too."""
    records = [[Segment("abc:", False), Segment("xyz.", True)],
               [Segment("hello ->", False), Segment("world.", True)]]  # fmt: skip
    rows = encode_records(records, tokenizer, block_size=24)
    index = torch.arange(len(rows))
    inputs, labels = row_batch(rows, index)
    with torch.no_grad():
        logits = _model()(inputs)
    loss = language_model_loss(logits, labels)
    trained = rows.trained[:, 1:]  # (N, T): which targets count
    assert (labels[torch.from_numpy(~trained)] == IGNORE).all()

    def relabelled(where: np.ndarray) -> torch.Tensor:
        ids = rows.ids.copy()
        ids[:, 1:][where] = (ids[:, 1:][where] + 7) % 40  # other target tokens there
        changed = RecordRows(ids=ids, trained=rows.trained, truncated=0)
        return language_model_loss(logits, row_batch(changed, index)[1])

    prompt = ~trained & (rows.ids[:, 1:] != 0) & ~rows.trained[:, :-1]  # prompt targets
    assert prompt.sum() > 0 and trained.sum() > 0
    assert torch.equal(relabelled(prompt), loss)
    assert not torch.allclose(relabelled(trained), loss)
    unmasked = encode_records(records, tokenizer, block_size=24, mask_prompt=False)
    counted = unmasked.trained[:, 1:]
    assert counted.sum() > trained.sum() and (counted | ~trained).all()
    unmasked_labels = row_batch(unmasked, index)[1]
    assert not torch.equal(language_model_loss(logits, unmasked_labels), loss)


def test_padding_changes_no_logit_of_the_record(tokenizer: Tokenizer) -> None:
    records = [[Segment("ab:", False), Segment("cd.", True)]]
    short, long = (encode_records(records, tokenizer, block_size=n) for n in (8, 20))
    model = _model()
    with torch.no_grad():
        a = model(row_batch(short, torch.arange(1))[0])
        b = model(row_batch(long, torch.arange(1))[0])
    n = int((short.ids[0] != 0).sum()) - 1
    torch.testing.assert_close(a[:, :n], b[:, :n])
    labels = row_batch(long, torch.arange(1))[1]
    assert (labels[0, n + 1 :] == IGNORE).all()  # no loss on padding


MALFORMED = [
    ("{not json", "line 2", "not valid JSON"),
    ('["a list"]', "line 2", "must be a JSON object"),
    ({"prompt": "q"}, "line 2", "field 'completion' is missing"),
    ({"prompt": 3, "completion": "a"}, "line 2", "field 'prompt' must be a string"),
    ({"prompt": "q", "completion": ""}, "line 2", "field 'completion' is empty"),
    ({"messages": []}, "line 2", "field 'messages' must be a non-empty list"),
    ({"messages": ["hi"]}, "line 2", "field 'messages[0]' must be an object"),
    ({"messages": [{"role": "bot", "content": "x"}]}, "line 2", "'messages[0].role' is 'bot'"),
    ({"messages": [{"role": "user", "content": 1}]}, "line 2", "'messages[0].content' must"),
    ({"messages": [{"role": "user", "content": "x"}]}, "line 2", "no assistant message"),
    ({"instruction": "do"}, "line 2", "field 'output' is missing"),
    ({"output": "x"}, "line 2", "field 'instruction' is missing"),
    ({"instruction": "do", "input": 5, "output": "x"}, "line 2", "field 'input' must be"),
    ({"question": "x"}, "line 2", "unknown record with fields ['question']"),
]


@pytest.mark.parametrize(("record", "line", "message"), MALFORMED,
                         ids=[m[2][:30] for m in MALFORMED])  # fmt: skip
def test_every_malformed_record_names_file_line_and_field(
    tmp_path: Path, record: object, line: str, message: str
) -> None:
    path = _write(tmp_path, {"text": "fine"}, record)
    with pytest.raises(ValueError, match=f"{path}, {line}: .*") as error:
        read_records(path)
    assert message in str(error.value)


def test_an_empty_file_and_prompts_that_fill_the_context(tmp_path: Path, tokenizer) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    with pytest.raises(ValueError, match="holds no records"):
        read_records(empty)
    with pytest.raises(ValueError, match="no record has a trained token within --block-size 4"):
        encode_records([[Segment("long prompt", False), Segment("a", True)]], tokenizer,
                       block_size=4)  # fmt: skip
