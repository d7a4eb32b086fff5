"""The viewer in a real browser: headless Chromium via Selenium, offline, from file://.

Skips with the reason when selenium, /usr/bin/chromium or /usr/bin/chromedriver is missing
(Debian: ``apt-get install -y chromium chromium-driver``; Python: ``pip install selenium``).
The network is blocked twice over (a dead proxy and CDP Network.setBlockedURLs) and the CDP
performance log must show no request other than file: and data: URLs.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

try:  # the sibling test module's capture builder (tests/viz is not a package today)
    from test_html_viewer import synthetic_capture
except ImportError:  # pragma: no cover - if tests/viz becomes a package
    from .test_html_viewer import synthetic_capture  # type: ignore[no-redef]

from qkv.viz.html import write_html

selenium = pytest.importorskip("selenium", reason="selenium not installed: pip install selenium")
from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.select import Select  # noqa: E402

CHROMIUM = os.environ.get("QKV_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("QKV_CHROMEDRIVER", "/usr/bin/chromedriver")
INJECTION = "</script><script>window.__pwned = 1</script><img src=x onerror=window.__pwned=2>"


def _missing() -> str | None:
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not (Path(path).is_file() and os.access(path, os.X_OK)):
            return f"{path} not found: apt-get install -y {package}"
    return None


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[webdriver.Chrome]:
    reason = _missing()
    if reason:
        pytest.skip(reason)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--proxy-server=http://127.0.0.1:9",  # a closed port: anything that leaks fails
        "--window-size=1400,1800",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SE_OFFLINE", "true")  # Selenium Manager must never try to download
        driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(20)
    try:
        driver.execute_cdp_cmd("Network.enable", {})
        blocked = ["http://*", "https://*", "ws://*", "wss://*", "ftp://*"]
        driver.execute_cdp_cmd("Network.setBlockedURLs", {"urls": blocked})
        yield driver
    finally:
        driver.quit()


def _open_plain(driver: webdriver.Chrome, path: Path) -> None:
    driver.get_log("browser")  # drop anything from earlier pages
    driver.get_log("performance")
    driver.get(path.as_uri())


def _open(driver: webdriver.Chrome, path: Path) -> None:
    _open_plain(driver, path)
    assert driver.execute_script("return document.body.dataset.ready") == "true"


def _requested_urls(driver: webdriver.Chrome) -> list[str]:
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            url = message["params"]["request"]["url"]
            # The browser's own pages (the new-tab page it opens before our file, chromium 156)
            # load chrome:// resources from inside the binary: never the network, not ours.
            if not url.startswith(("chrome://", "chrome-untrusted://")):
                urls.append(url)
    return urls


def _console_errors(driver: webdriver.Chrome) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def _heatmap_value_at(driver: webdriver.Chrome, row: int, col: int) -> str:
    """Move the pointer to the centre of displayed cell (row, col); return the readout."""
    canvas = driver.find_element(By.ID, "heatmap")
    cell, margin = driver.execute_script(
        "const c = arguments[0]; return [Number(c.dataset.cell), Number(c.dataset.margin)];",
        canvas,
    )
    width = canvas.size["width"]
    # ActionChains offsets are from the element's centre.
    x = margin + (col + 0.5) * cell - width / 2
    y = margin + (row + 0.5) * cell - canvas.size["height"] / 2
    ActionChains(driver).move_to_element_with_offset(canvas, int(x), int(y)).perform()
    return driver.find_element(By.ID, "heatmap-readout").text


def test_viewer_works_offline_in_chromium(browser: webdriver.Chrome, tmp_path: Path) -> None:
    from PIL import Image, ImageStat

    tokens = ["[CLS]", "the", INJECTION, "sat", "on", "the", "mat", "[SEP]"]
    cap = synthetic_capture(layers=2, heads=3, dim=8, tokens=tokens, causal=True)
    path = write_html(cap, tmp_path / "view.html", title="browser <test>")
    _open(browser, path)

    assert browser.title == "browser <test>"
    assert browser.execute_script("return window.__pwned") is None
    assert not browser.find_elements(By.TAG_NAME, "img")
    queries = browser.find_elements(By.CSS_SELECTOR, "#lines text.tok-q")
    assert [q.get_attribute("textContent")[:3] for q in queries][2] == "</s"

    # Switch layer and head with the selectors; the overview follows.
    Select(browser.find_element(By.ID, "layer-select")).select_by_value("1")
    Select(browser.find_element(By.ID, "head-select")).select_by_value("2")
    current = browser.find_element(By.CSS_SELECTOR, "#overview canvas.current")
    assert (current.get_attribute("data-layer"), current.get_attribute("data-head")) == ("1", "2")

    # The value under the pointer is the weight the model computed.
    readout = _heatmap_value_at(browser, 5, 3)
    expected = cap.weights[1, 2, 5, 3].item()
    assert readout.startswith('q[5] "the" → k[3] "sat": ')
    assert float(readout.rsplit(": ", 1)[1]) == pytest.approx(expected, rel=1e-3)

    # Hovering a query token draws one line per key it may attend to (causal: j <= i).
    queries = browser.find_elements(By.CSS_SELECTOR, "#lines text.tok-q")  # rebuilt per head
    ActionChains(browser).move_to_element(queries[4]).perform()
    lines = browser.find_elements(By.CSS_SELECTOR, "#lines line")
    assert len(lines) == int((cap.weights[1, 2, 4] > 0).sum())
    best = int(cap.weights[1, 2, 4].argmax())
    assert f"attends most to key {best} " in browser.find_element(By.ID, "lines-readout").text
    keys = browser.find_elements(By.CSS_SELECTOR, "#lines text.tok-k")
    ActionChains(browser).move_to_element(keys[6]).perform()
    assert len(browser.find_elements(By.CSS_SELECTOR, "#lines line")) == 2  # queries 6 and 7

    # Clicking a query opens the step-by-step formula, recomputed in JS and checked.
    browser.find_elements(By.CSS_SELECTOR, "#lines text.tok-q")[6].click()
    check = browser.find_element(By.ID, "formula-check")
    assert float(check.get_attribute("data-max-abs-diff")) < 1e-4
    assert float(check.get_attribute("data-max-abs-diff-weights")) < 1e-4
    assert "ok" in check.get_attribute("class").split()
    rows = browser.find_elements(By.CSS_SELECTOR, "#formula tr")
    assert len(rows) == 1 + len(tokens)
    assert rows[1 + 7].find_elements(By.TAG_NAME, "td")[5].text == "−∞"  # key 7 > query 6

    # The keyboard reaches the same readout and formula.
    heatmap = browser.find_element(By.ID, "heatmap")
    heatmap.send_keys(Keys.ARROW_DOWN, Keys.ARROW_DOWN, Keys.ARROW_DOWN, Keys.ARROW_RIGHT)
    assert browser.find_element(By.ID, "heatmap-readout").text.startswith('q[3] "sat" → k[1] ')
    heatmap.send_keys(Keys.ENTER)
    assert browser.find_element(By.CSS_SELECTOR, "#formula p").text.startswith(
        "Layer 1, head 2, query token 3"
    )

    # Small multiples select a head; "hide" renormalises rows over non-special keys.
    browser.find_element(By.CSS_SELECTOR, '#overview canvas[data-layer="0"][data-head="1"]').click()
    assert Select(browser.find_element(By.ID, "head-select")).first_selected_option.text == "1"
    Select(browser.find_element(By.ID, "special-mode")).select_by_value("hide")
    kept = [i for i, s in enumerate(cap.special) if not s]
    renormalised = cap.weights[0, 1][kept][:, kept]
    renormalised = renormalised / renormalised.sum(-1, keepdim=True)
    readout = _heatmap_value_at(browser, 4, 2)  # displayed row 4 = token 5, column 2 = token 3
    assert readout.startswith('q[5] "the" → k[3] "sat": ')
    shown = float(readout.split(": ", 1)[1].split(" ")[0])
    assert shown == pytest.approx(renormalised[4, 2].item(), rel=1e-3)
    Select(browser.find_element(By.ID, "special-mode")).select_by_value("show")

    # A screenshot whose heatmap is not blank.
    heatmap = browser.find_element(By.ID, "heatmap")
    image = Image.open(io.BytesIO(heatmap.screenshot_as_png)).convert("L")
    assert image.size[0] > 100 and image.size[1] > 100
    assert ImageStat.Stat(image).stddev[0] > 20

    assert _console_errors(browser) == []
    urls = _requested_urls(browser)
    assert urls, "the performance log recorded no request at all: the check would be vacuous"
    assert all(url.startswith(("file:", "data:")) for url in urls), urls


def test_formula_check_flags_a_wrong_head_output(browser: webdriver.Chrome, tmp_path: Path) -> None:
    cap = synthetic_capture(layers=1, heads=2, dim=4, causal=False)
    cap.head_outputs = cap.head_outputs + torch.tensor([0.0, 0.0, 0.05, 0.0])  # (L, H, T, D)
    _open(browser, write_html(cap, tmp_path / "wrong.html"))
    browser.find_elements(By.CSS_SELECTOR, "#lines text.tok-q")[3].click()
    check = browser.find_element(By.ID, "formula-check")
    assert float(check.get_attribute("data-max-abs-diff")) == pytest.approx(0.05, rel=1e-3)
    assert "bad" in check.get_attribute("class").split()
    assert _console_errors(browser) == []


def _llama_nano_capture():
    from qkv.models import build, preset
    from qkv.viz.capture import capture_ids

    model = build(preset("llama-nano"))  # random weights; rotary, grouped-query (4 q / 2 kv heads)
    return capture_ids(model, torch.randint(0, 512, (24,)), model_name="llama-nano")


def _minilm_capture():
    from qkv.viz.capture import capture
    from qkv.viz.model_source import open_model

    try:
        opened = open_model(None)  # the pretrained all-minilm-l6-v2 that installs with qkv
    except (FileNotFoundError, ValueError) as error:
        pytest.skip(f"pretrained all-minilm-l6-v2 not available: {error}")
    return capture(
        opened.model, opened.tokenizer, "The cat sat on the mat.", model_name=opened.name
    )


@pytest.mark.parametrize("make", [_llama_nano_capture, _minilm_capture], ids=["llama", "minilm"])
def test_formula_panel_agrees_with_real_models(
    browser: webdriver.Chrome, tmp_path: Path, make
) -> None:
    """The JS recomputation of z from the embedded q, k, v matches what the model computed:
    every head of a causal rotary GQA decoder, two heads a layer of the pretrained encoder."""
    cap = make()
    _open(browser, write_html(cap, tmp_path / "model.html"))
    layers, heads, tokens, _ = cap.weights.shape
    worst = 0.0
    for layer in range(layers):
        for head in range(heads) if heads <= 4 else (layer % heads, heads - 1 - layer):
            tile = f'#overview canvas[data-layer="{layer}"][data-head="{head}"]'
            browser.find_element(By.CSS_SELECTOR, tile).click()
            query = (layer * heads + head) % tokens
            browser.find_elements(By.CSS_SELECTOR, "#lines text.tok-q")[query].click()
            check = browser.find_element(By.ID, "formula-check")
            assert check.text.startswith("check: max |z − z_model|")
            worst = max(worst, float(check.get_attribute("data-max-abs-diff")))
            assert float(check.get_attribute("data-max-abs-diff-weights")) < 1e-4
    assert worst < 1e-4
    assert _console_errors(browser) == []


def test_two_notebook_views_coexist(browser: webdriver.Chrome, tmp_path: Path) -> None:
    """Two `_repr_html_` outputs on one page (as in a notebook) render independently."""
    from qkv.viz.html import AttentionView

    views = [
        AttentionView(synthetic_capture(layers=1, heads=2, dim=4, seed=1)),
        AttentionView(synthetic_capture(layers=2, heads=3, dim=4, seed=2)),
    ]
    page = tmp_path / "notebook.html"
    page.write_text("<!DOCTYPE html><body>" + "".join(v._repr_html_() for v in views) + "</body>")
    _open_plain(browser, page)
    frames = browser.find_elements(By.TAG_NAME, "iframe")
    assert len(frames) == 2
    for frame, view in zip(frames, views):
        browser.switch_to.frame(frame)
        try:
            assert browser.execute_script("return document.body.dataset.ready") == "true"
            tiles = browser.find_elements(By.CSS_SELECTOR, "#overview canvas")
            assert len(tiles) == view.capture.num_layers * view.capture.num_heads
            browser.find_elements(By.CSS_SELECTOR, "#lines text.tok-q")[1].click()
            check = browser.find_element(By.ID, "formula-check")
            assert float(check.get_attribute("data-max-abs-diff")) < 1e-4
        finally:
            browser.switch_to.default_content()
    assert _console_errors(browser) == []


def test_viewer_names_the_shared_key_value_head(browser: webdriver.Chrome, tmp_path: Path) -> None:
    """Under grouped-query attention the viewer says which key/value head a query head reads
    (llama-nano: 4 query heads over 2 key/value heads); without grouping it says nothing."""
    cap = _llama_nano_capture()
    assert (cap.num_heads, cap.kv_heads) == (4, 2)
    _open(browser, write_html(cap, tmp_path / "gqa.html"))
    assert "(2 key/value heads)" in browser.find_element(By.ID, "summary").text
    for head in range(4):
        Select(browser.find_element(By.ID, "head-select")).select_by_value(str(head))
        group = cap.kv_head_of(head)
        note = browser.find_element(By.ID, "kv-note").text
        assert f"query head {head} shares key/value head {group} of 2" in note
        assert f"with query heads {2 * group}–{2 * group + 1}" in note
    browser.find_elements(By.CSS_SELECTOR, "#lines text.tok-q")[5].click()
    assert "shares key/value head 1 of 2" in browser.find_element(By.ID, "formula").text
    _open(browser, write_html(synthetic_capture(), tmp_path / "mha.html"))
    assert browser.find_element(By.ID, "kv-note").text == ""
    assert _console_errors(browser) == []
