"""The live widget in a real browser: JupyterLab on 127.0.0.1, Debian's chromium via Playwright.

A notebook serves a streaming predictor from the kernel with plain Python calls
(``nbcog.Server`` on the kernel's loop), runs a prediction and shows its ``PredictionView`` and a
``ServerMonitor``. The browser must show tokens while the prediction runs, then the final
status, a log line and a metric; a prediction made over HTTP from outside the kernel must
appear in the monitor and open on click; the saved notebook must keep a static rendering.
A screenshot is saved to ``widget_browser.png`` in the test's temporary directory.
"""

from __future__ import annotations

import json

import pytest
import requests
from browserkit import (
    chromium_page,
    jupyter_app,
    notebook_folder,
    open_notebook,
    require_browser,
    save_notebook,
)

pytestmark = pytest.mark.slow

PREDICTOR = """
import time
from cog import BaseRunner, ConcatenateIterator, streaming

class Predictor(BaseRunner):
    @streaming
    def run(self, n: int = 100) -> ConcatenateIterator[str]:
        print("loading the model")
        self.record_metric("temperature", 0.7)
        for i in range(n):
            self.record_metric("tokens", 1, "incr")
            yield f"token{i} "
            time.sleep(0.02)
        print("generation finished")
"""

CELLS = [
    """\
import nbcog
from pathlib import Path
from IPython.display import display
from nbcog.service import CreateRequest, Mode
from nbcog.widget import PredictionView, ServerMonitor

server = nbcog.Server("predict.py:Predictor", port=0)
server.start()
await server.wait_until_ready(60)
Path("server_url.txt").write_text(server.url)
print("serving at", server.url)""",
    """\
entry = server.service.create(CreateRequest(input={"n": 100}), mode=Mode.ASYNC)
view = PredictionView(entry, server.service, base_url=server.url)
handle = display(view, display_id=True)
view.on_done(handle.update)  # the saved notebook keeps the final static rendering""",
    "ServerMonitor(server.service, base_url=server.url)",
]


def test_live_widget_in_jupyterlab(tmp_path):
    """Tokens appear live, then status, a log line and a metric; HTTP predictions show up too."""
    sync_api = require_browser()
    root = notebook_folder(tmp_path, "widget.ipynb", CELLS, {"predict.py": PREDICTOR})
    with (
        jupyter_app("lab", root, tmp_path / "home") as base,
        chromium_page(sync_api, 1280, 1400, tmp_path / "widget_browser.png") as page,
    ):
        open_notebook(page, base, "lab", "widget.ipynb")
        view = page.locator(".nbcog-view").first
        # Live: tokens are on screen while the prediction is still processing.
        page.wait_for_function(
            """() => {
                const view = document.querySelector('.nbcog-view');
                const status = view?.querySelector('.nbcog-status')?.textContent;
                const text = view?.querySelector('.nbcog-output-text')?.textContent ?? '';
                return status === 'processing' && text.includes('token1 ')
                    && !text.includes('token99 ');
            }"""
        )
        page.wait_for_selector(".nbcog-view .nbcog-status[data-status=succeeded]")
        output = view.locator(".nbcog-output-text")
        assert output.is_visible()
        assert output.inner_text().strip() == " ".join(f"token{i}" for i in range(100))
        logs = view.locator(".nbcog-logs-text")
        assert logs.is_visible()
        assert logs.inner_text() == "loading the model\ngeneration finished\n"
        tokens = view.locator("tr[data-metric=tokens]")
        assert tokens.is_visible()
        assert tokens.inner_text().split() == ["tokens", "100", "increment"]
        assert view.locator(".nbcog-status").inner_text() == "succeeded"

        # A prediction from outside the kernel appears in the monitor and opens on click.
        url = (root / "server_url.txt").read_text()
        body = requests.post(
            f"{url}/predictions",
            json={"id": "from_outside", "input": {"n": 3}},
            timeout=60,
        ).json()
        assert body["status"] == "succeeded"
        row = page.locator(".nbcog-monitor tr[data-id=from_outside]")
        row.locator(".nbcog-status[data-status=succeeded]").wait_for()
        row.click()
        title = page.locator(".nbcog-id", has_text="from_outside")
        opened = page.locator(".nbcog-view", has=title)
        opened.locator(".nbcog-status[data-status=succeeded]").wait_for()
        text = opened.locator(".nbcog-output-text").inner_text()
        assert text.strip() == "token0 token1 token2"

        save_notebook(page)

    saved = json.loads((root / "widget.ipynb").read_text())
    html = saved["cells"][1]["outputs"][0]["data"]["text/html"]
    html = "".join(html) if isinstance(html, list) else html
    assert ">succeeded</span>" in html and "token99 " in html and "loading the model" in html
