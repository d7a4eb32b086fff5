"""The offline HTML viewer, without a browser: self-contained, data embedded exactly, escaping,
Jupyter rendering, file writing and input validation. The browser half is in
test_browser_viewer.py."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import qkv
from qkv.viz.capture import Capture
from qkv.viz.html import (
    MAX_TOKENS,
    AttentionView,
    decode_array,
    payload,
    payload_from_html,
    write_html,
)

INJECTION = "</script><script>alert(1)</script><!-- <img src=x onerror=alert(2)>"


def synthetic_capture(
    *,
    layers: int = 2,
    heads: int = 3,
    dim: int = 8,
    tokens: list[str] | None = None,
    special: list[bool] | None = None,
    causal: bool = True,
    seed: int = 0,
) -> Capture:
    """A Capture (layers, heads, T, dim) whose weights and head outputs come from the
    reference backend: the oracle the viewer's own formula check must agree with."""
    tokens = tokens or ["[CLS]", "the", "cat", "sat", "on", "the", "mat", "[SEP]"]
    special = special or [t.startswith("[") and t.endswith("]") for t in tokens]
    generator = torch.Generator().manual_seed(seed)
    shape = (layers, heads, len(tokens), dim)  # layers play the role of the batch axis
    q, k, v = (torch.randn(shape, generator=generator) * 2 for _ in range(3))
    out, weights = qkv.attention_with_weights(q, k, v, causal=causal, backend="reference")
    return Capture(
        tokens=tokens,
        special=special,
        weights=weights,
        queries=q,
        keys=k,
        values=v,
        head_outputs=out,
        scale=dim**-0.5,
        causal=causal,
        model_name="synthetic",
    )


class _Elements(HTMLParser):
    """Every start tag with its attributes, and the text of each <script>."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"
        if self._in_script:
            self.scripts.append("")

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts[-1] += data


def _parse(document: str) -> _Elements:
    parser = _Elements()
    parser.feed(document)
    parser.close()
    return parser


def test_file_is_self_contained() -> None:
    document = AttentionView(synthetic_capture()).to_html()
    assert not re.search(r"https?://", document)
    assert "//" + "cdn" not in document and "@import" not in document and "url(" not in document
    elements = _parse(document)
    for tag, attrs in elements.tags:
        assert "src" not in attrs and "href" not in attrs, (tag, attrs)
        assert tag not in ("link", "iframe", "img", "object", "embed"), tag
    csp = [a for t, a in elements.tags if t == "meta" and a.get("http-equiv")]
    assert "default-src 'none'" in csp[0]["content"]
    # Two inline scripts: the JSON data block, then the viewer code.
    assert [a.get("type") for t, a in elements.tags if t == "script"] == ["application/json", None]
    assert "function drawFormula" in elements.scripts[1]
    assert "#heatmap" in document.split("<style>")[1].split("</style>")[0]


def test_embedded_data_round_trips_exactly() -> None:
    cap = synthetic_capture(layers=2, heads=3, dim=8, causal=False)
    document = AttentionView(cap, title="round trip").to_html()
    data = payload_from_html(document)
    assert data == payload(cap, title="round trip")  # the JSON parses back to what was written
    assert data["format"] == "qkv-attention-view"
    assert data["tokens"] == cap.tokens and data["special"] == cap.special
    assert (data["num_layers"], data["num_heads"], data["num_tokens"]) == (2, 3, 8)
    assert (data["head_dim"], data["value_dim"]) == (8, 8)
    assert data["scale"] == cap.scale and data["causal"] is False
    for name in ("weights", "queries", "keys", "values", "head_outputs"):
        array = decode_array(data[name])
        assert torch.equal(torch.from_numpy(array), getattr(cap, name)), name


def test_token_strings_cannot_break_the_page() -> None:
    tokens = ["[CLS]", INJECTION, 'quote " and \\ back', "line\u2028sep", "&amp;", "é漢🙂", "[SEP]"]
    cap = synthetic_capture(tokens=tokens, dim=4)
    title = 'Title <b>bold</b> & "quoted" </title><script>alert(3)</script>'
    document = AttentionView(cap, title=title).to_html()
    elements = _parse(document)
    # Exactly the two scripts of the template: nothing the tokens or title smuggled in.
    assert [t for t, _ in elements.tags].count("script") == 2
    assert document.lower().count("</script") == 2
    assert [t for t, _ in elements.tags].count("img") == 0
    escaped = "Title &lt;b&gt;bold&lt;/b&gt; &amp; &quot;quoted&quot; &lt;/title&gt;"
    assert f"<title>{escaped}" in document
    data = payload_from_html(document)
    assert data["tokens"] == tokens and data["title"] == title
    assert "\u2028" not in elements.scripts[0]  # a line separator would end a JS string literal


def test_repr_html_is_an_isolated_iframe() -> None:
    views = [AttentionView(synthetic_capture(seed=s, dim=4)) for s in (1, 2)]
    for view in views:
        outer = view._repr_html_()
        elements = _parse(outer)
        assert [t for t, _ in elements.tags] == ["iframe"]  # no ids or scripts leak out
        srcdoc = elements.tags[0][1]["srcdoc"]
        assert srcdoc == view.to_html()  # the attribute unescapes to the full document
        assert "allow-scripts" in elements.tags[0][1]["sandbox"]
    assert views[0]._repr_html_() != views[1]._repr_html_()
    assert repr(views[0]) == "AttentionView('synthetic', layers=2, heads=3, tokens=8)"


def test_save_and_write_html(tmp_path: Path) -> None:
    cap = synthetic_capture(dim=4)
    view = AttentionView(cap)
    path = view.save(tmp_path / "a.html")
    assert path == tmp_path / "a.html"
    assert path.read_text(encoding="utf-8") == view.to_html()
    assert path.stat().st_mode & 0o444 == 0o444
    written = write_html(cap, str(tmp_path / "b.html"), title="b")
    assert isinstance(written, Path) and payload_from_html(written.read_text())["title"] == "b"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.html", "b.html"]  # no temp left
    with pytest.raises(FileNotFoundError, match="does not exist"):
        write_html(cap, tmp_path / "missing" / "c.html")
    with pytest.raises(ValueError, match="is a directory"):
        write_html(cap, tmp_path)


def _fields(cap: Capture, **changes: object) -> SimpleNamespace:
    fields = {name: getattr(cap, name) for name in cap.__dataclass_fields__}
    return SimpleNamespace(**{**fields, **changes})


def test_bad_captures_are_refused_with_the_fix() -> None:
    cap = synthetic_capture(dim=4)
    with pytest.raises(ValueError, match="8 positions but 7 tokens"):
        AttentionView(_fields(cap, tokens=cap.tokens[:-1]))
    with pytest.raises(ValueError, match=r"capture.keys must be \(2, 3, 8, D\)"):
        AttentionView(_fields(cap, keys=cap.keys[:, :, :5]))
    with pytest.raises(ValueError, match="weights must be"):
        AttentionView(_fields(cap, weights=cap.weights[0]))
    with pytest.raises(ValueError, match="NaN"):
        AttentionView(_fields(cap, values=cap.values.clone().fill_(float("nan"))))
    with pytest.raises(ValueError, match="scale must be a positive"):
        AttentionView(_fields(cap, scale=-1.0))
    with pytest.raises(ValueError, match="must be a torch.Tensor"):
        AttentionView(_fields(cap, queries=cap.queries.tolist()))
    with pytest.raises(ValueError, match="title must be a str"):
        AttentionView(cap, title=3)  # type: ignore[arg-type]


def test_long_texts_are_capped_with_a_clear_error(tmp_path: Path) -> None:
    tokens = [f"t{i}" for i in range(MAX_TOKENS + 1)]
    cap = synthetic_capture(layers=1, heads=1, dim=2, tokens=tokens)
    with pytest.raises(ValueError, match=rf"T={MAX_TOKENS + 1} tokens.*max_tokens={MAX_TOKENS}"):
        AttentionView(cap)
    view = AttentionView(cap, max_tokens=MAX_TOKENS + 1)  # the fix the message names
    assert payload_from_html(view.to_html())["num_tokens"] == MAX_TOKENS + 1
    with pytest.raises(ValueError, match="max_tokens"):
        write_html(cap, tmp_path / "long.html")
    assert not (tmp_path / "long.html").exists()
    write_html(cap, tmp_path / "long.html", max_tokens=MAX_TOKENS + 1)
    with pytest.raises(ValueError, match="max_tokens must be a positive int"):
        AttentionView(cap, max_tokens=0)


def test_file_size_is_about_five_bytes_per_number() -> None:
    # MiniLM-shaped: 6 layers, 12 heads, d_k 32, 24 tokens.
    tokens = ["[CLS]", *[f"w{i}" for i in range(22)], "[SEP]"]
    cap = synthetic_capture(layers=6, heads=12, dim=32, tokens=tokens)
    numbers = 6 * 12 * 24 * (24 + 4 * 32)
    size = len(AttentionView(cap).to_html().encode("utf-8"))
    assert numbers * 16 / 3 < size < numbers * 16 / 3 + 40_000  # base64 float32 + the viewer
