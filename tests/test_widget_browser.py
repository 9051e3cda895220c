"""The live widget in a real browser: JupyterLab on 127.0.0.1, Debian's chromium via Playwright.

A notebook serves a streaming predictor from the kernel with plain Python calls
(``nbcog.Server`` on the kernel's loop), runs a prediction and shows its ``PredictionView`` and a
``ServerMonitor``. The browser must show tokens while the prediction runs, then the final
status, a log line and a metric; a prediction made over HTTP from outside the kernel must
appear in the monitor and open on click; the saved notebook must keep a static rendering.
A screenshot is saved to ``tests/artifacts/widget_browser.png``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "tests" / "artifacts"
CHROMIUM = "/usr/bin/chromium"
PORTS = range(5270, 5290)
TOKEN = "nbcog-widget-test"
WAIT_MS = 90_000
# As the machine notes say: without the background-networking flags chromium's connections
# are refused by the closed network, many at a time.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]

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


def _notebook() -> dict:
    def cell(source: str) -> dict:
        return {
            "cell_type": "code",
            "execution_count": None,
            "id": f"cell{abs(hash(source)) % 10**8}",
            "metadata": {},
            "outputs": [],
            "source": source,
        }

    return {
        "cells": [cell(source) for source in CELLS],
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def _free_port() -> int:
    for port in PORTS:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    pytest.fail(f"no free port in {PORTS}")


def _wait_http(url: str, server: subprocess.Popen, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert server.poll() is None, "jupyter lab exited"
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.2)
    pytest.fail(f"jupyter lab did not answer at {url}")


@contextmanager
def jupyter_lab(root: Path, home: Path) -> Iterator[str]:
    """JupyterLab on 127.0.0.1 serving ``root``, its config kept under ``home``."""
    port = _free_port()
    settings = home / "settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False})
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        "JUPYTER_CONFIG_DIR": str(home / "config"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(home / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"),
    }
    command = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={TOKEN}",
        f"--ServerApp.root_dir={root}",
        "--ServerApp.allow_root=True",
        "--LabApp.expose_app_in_browser=True",
    ]
    base = f"http://127.0.0.1:{port}"
    with (home / "server.log").open("wb") as log:
        server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait_http(f"{base}/api/status?token={TOKEN}", server)
            yield base
        finally:
            server.send_signal(signal.SIGINT)  # jupyter shuts its kernels down on SIGINT x2
            server.send_signal(signal.SIGINT)
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(10)


def test_live_widget_in_jupyterlab(tmp_path):
    """Tokens appear live, then status, a log line and a metric; HTTP predictions show up too."""
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (scripts/test installs it)")
    root = tmp_path / "notebooks"
    root.mkdir()
    (root / "predict.py").write_text(PREDICTOR)
    (root / "widget.ipynb").write_text(json.dumps(_notebook()))
    ARTIFACTS.mkdir(exist_ok=True)

    with jupyter_lab(root, tmp_path / "home") as base, sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1400})
        page.set_default_timeout(WAIT_MS)
        try:
            page.goto(f"{base}/lab/tree/widget.ipynb?token={TOKEN}")
            page.wait_for_function(
                "() => window.jupyterapp?.shell.currentWidget?.sessionContext !== undefined"
            )
            page.evaluate(
                """async () => {
                    const panel = window.jupyterapp.shell.currentWidget;
                    await panel.context.ready;
                    await panel.sessionContext.ready;
                    await window.jupyterapp.commands.execute('notebook:run-all-cells');
                }"""
            )
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

            page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
            page.wait_for_function(
                "() => !window.jupyterapp.shell.currentWidget.context.model.dirty"
            )
        finally:
            page.screenshot(path=str(ARTIFACTS / "widget_browser.png"), full_page=True)
            browser.close()

    saved = json.loads((root / "widget.ipynb").read_text())
    html = saved["cells"][1]["outputs"][0]["data"]["text/html"]
    html = "".join(html) if isinstance(html, list) else html
    assert ">succeeded</span>" in html and "token99 " in html and "loading the model" in html
