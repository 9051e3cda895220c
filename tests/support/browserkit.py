"""Jupyter in a real browser for the widget tests: JupyterLab or Notebook 7, Debian's chromium.

``jupyter_app(kind, root, home)`` serves ``root`` on 127.0.0.1 (config kept under ``home``) and
yields its base URL; ``notebook_folder`` writes the notebook (and files beside it) it serves;
``chromium_page`` is the Playwright page; ``open_notebook`` opens a notebook there and runs all
its cells. Both apps are run with ``expose_app_in_browser`` so the page can drive them through
``window.jupyterapp`` (commands, the current notebook panel).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests

REPO = Path(__file__).resolve().parents[2]
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

APPS = {
    # kind: (module, the app class for expose_app_in_browser, the notebook URL path)
    "lab": ("jupyterlab", "LabApp", "lab/tree"),
    "notebook": ("notebook", "JupyterNotebookApp", "notebooks"),
}


def require_browser() -> Any:
    """Playwright's sync API; skips when chromium or playwright are missing."""
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (scripts/test installs it)")
    return sync_api


def notebook_json(cells: list[str]) -> dict[str, Any]:
    """A notebook of code cells with the python3 kernel."""

    def cell(index: int, source: str) -> dict[str, Any]:
        return {
            "cell_type": "code",
            "execution_count": None,
            "id": f"cell{index}",
            "metadata": {},
            "outputs": [],
            "source": source,
        }

    return {
        "cells": [cell(index, source) for index, source in enumerate(cells)],
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def notebook_folder(
    tmp_path: Path, name: str, cells: list[str], files: Mapping[str, str] | None = None
) -> Path:
    """``tmp_path/notebooks``, holding notebook ``name`` of ``cells`` and ``files`` (name: text)."""
    root = tmp_path / "notebooks"
    root.mkdir()
    for file, text in (files or {}).items():
        (root / file).write_text(text)
    (root / name).write_text(json.dumps(notebook_json(cells)))
    return root


@contextmanager
def chromium_page(
    sync_api: Any, width: int, height: int, screenshot: Path | None = None
) -> Iterator[Any]:
    """A chromium page (Playwright, ``WAIT_MS`` timeouts); on leaving, a full-page screenshot
    to ``screenshot`` (when given, also when the test failed), then the browser is closed."""
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": width, "height": height})
        page.set_default_timeout(WAIT_MS)
        try:
            yield page
        finally:
            if screenshot is not None:
                page.screenshot(path=str(screenshot), full_page=True)
            browser.close()


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
        assert server.poll() is None, "the jupyter server exited"
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.2)
    pytest.fail(f"the jupyter server did not answer at {url}")


@contextmanager
def jupyter_app(kind: str, root: Path, home: Path) -> Iterator[str]:
    """JupyterLab (``"lab"``) or Notebook 7 (``"notebook"``) on 127.0.0.1 serving ``root``."""
    module, app_class, _ = APPS[kind]
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
        module,
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={TOKEN}",
        f"--ServerApp.root_dir={root}",
        "--ServerApp.allow_root=True",
        f"--{app_class}.expose_app_in_browser=True",
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


def open_notebook(page: Any, base: str, kind: str, name: str) -> None:
    """Open notebook ``name`` in the app and run all its cells (returns once they are queued)."""
    page.goto(f"{base}/{APPS[kind][2]}/{name}?token={TOKEN}")
    page.wait_for_function(
        "() => window.jupyterapp?.shell.currentWidget?.sessionContext !== undefined"
    )
    page.evaluate(
        """async () => {
            const panel = window.jupyterapp.shell.currentWidget;
            await panel.context.ready;
            await panel.sessionContext.ready;
            // Not awaited: the command resolves only when every cell has run.
            window.jupyterapp.commands.execute('notebook:run-all-cells');
        }"""
    )


def save_notebook(page: Any) -> None:
    """Save the open notebook and wait until it is written."""
    page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
    page.wait_for_function("() => !window.jupyterapp.shell.currentWidget.context.model.dirty")
