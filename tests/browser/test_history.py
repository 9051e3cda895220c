"""Re-run from the monitor in a real browser (issue 15): JupyterLab on 127.0.0.1, chromium.

``%cog serve`` shows the monitor; predictions made over HTTP appear in it. Re-run runs one again
as it was; Edit opens the input form filled with its inputs, and the edited run gives the new
output; re-running one with a Secret input asks for the secret again. The secret is never on
the page or in the saved notebook.
"""

from __future__ import annotations

import re
import time

import pytest
import requests
from browserkit import (
    WAIT_MS,
    chromium_page,
    jupyter_app,
    notebook_folder,
    open_notebook,
    require_browser,
    save_notebook,
)

# JupyterLab, a kernel and chromium on a shared machine: more than the suite's 120 s hang
# guard can pass under load (alone it takes about 20 s).
pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

PREDICTOR = """
from cog import BaseRunner, Input, Secret

class Predictor(BaseRunner):
    def run(
        self,
        text: str,
        times: int = Input(default=1, ge=1, le=5),
        key: Secret = Input(default=None),
    ) -> str:
        secret = key.get_secret_value() if key is not None else ""
        return f"{text * times} ({len(secret)})"
"""
CELLS = [
    "%load_ext nbcog\n%cog serve predict.py:Predictor --port 0",
    "from pathlib import Path\nimport nbcog\n"
    "Path('server_url.txt').write_text(nbcog.kernel.serving.servers()[-1].url)",
]
SECRET = "sk-browser-40417"


def test_rerun_and_edit_from_the_monitor(tmp_path):
    """Re-run as is, Edit then Run, and a Secret asked again, all clicked in the browser."""
    sync_api = require_browser()
    root = notebook_folder(tmp_path, "history.ipynb", CELLS, {"predict.py": PREDICTOR})
    with (
        jupyter_app("lab", root, tmp_path / "home") as base,
        chromium_page(sync_api, 1280, 1600, tmp_path / "history_browser.png") as page,
    ):
        open_notebook(page, base, "lab", "history.ipynb")
        page.locator(".nbcog-monitor").wait_for()
        url_file = root / "server_url.txt"
        deadline = time.monotonic() + WAIT_MS / 1000
        while not url_file.exists():  # written by the second cell
            assert time.monotonic() < deadline, "the notebook did not write the URL"
            page.wait_for_timeout(50)
        url = url_file.read_text()
        for body in (
            {"id": "plain", "input": {"text": "ab", "times": 2}},
            {"id": "secret", "input": {"text": "s", "key": SECRET}},
        ):
            requests.post(f"{url}/predictions", json=body, timeout=60).raise_for_status()
        plain = page.locator(".nbcog-monitor tr[data-id=plain]")
        plain.locator(".nbcog-status[data-status=succeeded]").wait_for()

        # Re-run as it was: a third row, and its view shows the same output.
        plain.locator(".nbcog-rerun").click()
        page.locator(".nbcog-monitor tbody tr:nth-child(3)").wait_for()
        rerun = page.locator(".nbcog-view").last
        rerun.locator(".nbcog-status[data-status=succeeded]").wait_for()
        assert rerun.locator(".nbcog-output-text").inner_text().strip() == "abab (0)"
        assert rerun.locator(".nbcog-id").inner_text() not in ("plain", "secret")

        # Its view offers the request for every client: the Python one has the URL.
        rerun.locator(".nbcog-snippets summary").click()
        rerun.locator(".nbcog-snippet-tab[data-lang=python]").click()
        python = rerun.locator(".nbcog-snippet-code").inner_text()
        assert "import requests" in python and f"{url}/predictions" in python
        assert "'text': 'ab'" in python

        # Edit: the form holds the inputs; change the text, Run, see the new output.
        plain.locator(".nbcog-edit").click()
        form = page.locator(".nbcog-form")
        text = _field(page, form, "Text")
        text.wait_for()
        assert text.input_value() == "ab"
        text.fill("xy")
        text.press("Tab")
        form.locator("button", has_text="Run").click()
        edited = form.locator(".nbcog-view")
        edited.locator(".nbcog-status[data-status=succeeded]").wait_for()
        assert edited.locator(".nbcog-output-text").inner_text().strip() == "xyxy (0)"

        # A Secret: re-run asks for it again; typed in, the run gets it.
        page.locator(".nbcog-monitor tr[data-id=secret] .nbcog-rerun").click()
        form.get_by_text("Enter key again: secret inputs are never stored.").wait_for()
        key = _field(page, form, "Key")
        assert key.input_value() == ""
        assert _field(page, form, "Text").input_value() == "s"
        key.fill("k3y")
        key.press("Tab")
        form.locator("button", has_text="Run").click()
        asked = form.locator(".nbcog-view")
        asked.locator(".nbcog-status[data-status=succeeded]").wait_for()
        assert asked.locator(".nbcog-output-text").inner_text().strip() == "s (3)"
        assert SECRET not in page.content()

        save_notebook(page)
    saved = (root / "history.ipynb").read_text()
    assert SECRET not in saved
    assert "plain" in saved  # the monitor's static table was saved, without the secret


def _field(page, form, label: str):
    """The input box of the form field labelled ``label``."""
    title = page.locator("b", has_text=re.compile(f"^{label}$"))
    return form.locator(".widget-hbox", has=title).locator("input, textarea").first
