"""The Binder environment, tested without Docker: what repo2docker would build, and its proxy.

``binder/requirements.txt`` is installed into a fresh virtualenv (no system site packages, so
a missing requirement shows), exactly as repo2docker installs it: ``pip install -r`` from the
repository root. pip's own cache keeps this to about 20 s once warm. Then every notebook is
executed there by that environment's own ``jupyter nbconvert``, and a Jupyter server from it,
with jupyter-server-proxy, carries a JSON prediction and an SSE stream to a server running in a
kernel, under a JupyterHub-style base URL, as Binder does.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import nbformat
import pytest
import requests
from freshvenv import make_venv, venv_environ
from kernelkit import Kernel, sse_events

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[2]
JUPYTER_PORT = 5297
KERNEL_SERVER_PORT = 5298
PREFIX = "/user/newcomer/"  # the base URL JupyterHub gives a user's server on Binder
TOKEN = "nbcog-binder-test"
AUTH = {"Authorization": f"token {TOKEN}"}
NOTEBOOK_TIMEOUT = 300

# One line each notebook prints when it has done its job (test_notebooks.py checks more).
NOTEBOOKS = {
    "01-quickstart.ipynb": "Hello notebook! This reply is streamed word by word from a notebook.",
    "02-streaming-logs-metrics.ipynb": "status: canceled",
    "03-images-and-files.ipynb": "got a 240x160 image; results are 100x67",
    "04-async-webhooks-concurrency.ipynb": (
        "positive +0.8478  I love this notebook, it is wonderful!"
    ),
    "05-notebook-to-cog.ipynb": "same answers; checked in ",
}

PREDICTOR = """
import time
from cog import BaseRunner, ConcatenateIterator, streaming

class Predictor(BaseRunner):
    @streaming
    def run(self, words: int = 8, delay: float = 0.3) -> ConcatenateIterator[str]:
        print("streaming through the proxy")
        for n in range(words):
            time.sleep(delay)
            yield f"w{n} "
"""


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv with binder/requirements.txt installed, as repo2docker does it."""
    path = tmp_path_factory.mktemp("binder") / "venv"
    return make_venv(path, "-r", "binder/requirements.txt", cwd=ROOT)


def test_binder_requirements_install_into_a_fresh_venv(venv, tmp_path):
    """The pinned requirements are consistent, bring nbcog from this repo and enable the proxy."""
    python = str(venv / "bin" / "python")
    env = venv_environ(venv, tmp_path)
    subprocess.run([python, "-m", "pip", "check"], env=env, check=True, capture_output=True)
    probe = (
        "import sys, nbcog, cog, coglet, jupyter_server_proxy, PIL, vaderSentiment;"
        "print(sys.prefix); print(nbcog.__file__); print(cog.__version__)"
    )
    found = subprocess.run(
        [python, "-c", probe], env=env, cwd=tmp_path, check=True, capture_output=True, text=True
    ).stdout.splitlines()
    assert found == [str(venv), str(ROOT / "nbcog" / "__init__.py"), "0.23.1"]
    extensions = subprocess.run(
        [str(venv / "bin" / "jupyter"), "server", "extension", "list"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    listed = re.sub(r"\x1b\[[0-9;]*m", "", extensions.stdout + extensions.stderr)  # colours
    assert "jupyter_server_proxy enabled" in listed


def _outputs_text(path: Path) -> tuple[str, list[str]]:
    """All stream and text/plain output of an executed notebook, and its error outputs."""
    notebook = nbformat.read(path, as_version=4)
    text, errors = "", []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            if output.output_type == "stream":
                text += output.text
            elif output.output_type == "error":
                errors.append(f"{output.ename}: {output.evalue}")
            elif "data" in output:
                text += "\n" + output.data.get("text/plain", "") + "\n"
    return text, errors


@pytest.mark.parametrize("name", sorted(NOTEBOOKS))
def test_every_notebook_runs_in_the_binder_environment(venv, tmp_path, name):
    """Each notebook runs top to bottom with the Binder environment's own Jupyter and kernel."""
    shutil.copy(ROOT / "notebooks" / name, tmp_path / name)
    executed = subprocess.run(
        [
            *(str(venv / "bin" / "jupyter"), "nbconvert", "--to", "notebook", "--execute"),
            *("--ExecutePreprocessor.timeout=120", "--output", "executed.ipynb", name),
        ],
        cwd=tmp_path,
        env=venv_environ(venv, tmp_path / "home"),
        capture_output=True,
        text=True,
        timeout=NOTEBOOK_TIMEOUT,
    )
    assert executed.returncode == 0, executed.stderr[-5000:]
    text, errors = _outputs_text(tmp_path / "executed.ipynb")
    assert errors == []
    assert "Traceback" not in text
    assert NOTEBOOKS[name] in text


@contextmanager
def jupyter_server(venv: Path, home: Path) -> Iterator[str]:
    """The Binder environment's Jupyter server on 127.0.0.1 under ``PREFIX``; yields its URL."""
    root = home / "root"
    root.mkdir(parents=True)
    argv = [str(venv / "bin" / "jupyter"), "server", "--no-browser", "--ServerApp.ip=127.0.0.1"]
    argv += [f"--ServerApp.port={JUPYTER_PORT}", "--ServerApp.port_retries=0"]
    argv += [f"--ServerApp.base_url={PREFIX}", f"--IdentityProvider.token={TOKEN}"]
    argv += [f"--ServerApp.root_dir={root}"]
    if os.geteuid() == 0:
        argv.append("--allow-root")
    log = (home / "jupyter-server.log").open("w")
    server = subprocess.Popen(argv, env=venv_environ(venv, home), stdout=log, stderr=log)
    url = f"http://127.0.0.1:{JUPYTER_PORT}{PREFIX}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert server.poll() is None, (home / "jupyter-server.log").read_text()
            try:
                if requests.get(url + "api/status", headers=AUTH, timeout=5).ok:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, "the Jupyter server did not start"
            time.sleep(0.1)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(30)
        log.close()


def _timed_sse(url: str, accept: str) -> list[tuple[float, str, dict]]:
    """POST an SSE prediction through ``url``; ``(seconds after sending, event, data)`` each."""
    headers = {**AUTH, "Accept": accept}
    sent = time.monotonic()
    with requests.post(
        url + "predictions", json={"input": {}}, headers=headers, stream=True, timeout=60
    ) as response:
        assert response.status_code == 200
        assert response.headers["Content-Type"].startswith("text/event-stream")
        return [(time.monotonic() - sent, event, data) for event, data in sse_events(response)]


def test_jupyter_proxy_carries_json_and_sse_to_the_kernel(venv, tmp_path):
    """Through /proxy/<port>/: JSON answers, SSE streams live only with Accept exactly SSE."""
    chunks = [f"w{n} " for n in range(8)]
    with jupyter_server(venv, tmp_path / "jupyter") as jupyter:
        kernel = Kernel(
            str(venv / "bin" / "python"), tmp_path, env={"JUPYTERHUB_SERVICE_PREFIX": PREFIX}
        )
        try:
            kernel.ok("%load_ext nbcog")
            kernel.ok(textwrap.dedent(PREDICTOR))
            served = kernel.ok(f"%cog serve Predictor --port {KERNEL_SERVER_PORT}").text
            path = f"{PREFIX}proxy/{KERNEL_SERVER_PORT}/"
            assert f"through the Jupyter proxy: {path}" in served
            proxied = f"http://127.0.0.1:{JUPYTER_PORT}{path}"
            assert proxied.startswith(jupyter)

            deadline = time.monotonic() + 60
            while True:
                health = requests.get(proxied + "health-check", headers=AUTH, timeout=10)
                assert health.headers["Content-Type"] == "application/json"
                if health.json()["status"] == "READY":
                    break
                assert time.monotonic() < deadline, health.text
                time.sleep(0.05)

            response = requests.post(
                proxied + "predictions",
                json={"input": {"delay": 0}},
                headers=AUTH,
                timeout=60,
            )
            body = response.json()
            assert response.status_code == 200
            assert body == {
                "id": body["id"],
                "status": "succeeded",
                "output": chunks,
                "logs": "streaming through the proxy\n",
                "metrics": {"predict_time": body["metrics"]["predict_time"]},
            }

            live = _timed_sse(proxied, "text/event-stream")
            assert [event for _, event, _ in live] == ["start", "log"] + ["output"] * 8 + [
                "completed"
            ]
            assert live[-1][2]["output"] == chunks
            # 7 more words at 0.3 s each follow the first: the proxy passed them on as they came.
            assert live[-1][0] - live[2][0] > 1.0

            buffered = _timed_sse(proxied, "text/event-stream, */*")
            assert [event for _, event, _ in buffered] == [event for _, event, _ in live]
            # Any other Accept header: the proxy holds the whole stream until it has ended, so
            # even the first word arrives only after the predictor has slept before all eight.
            assert buffered[2][0] >= 8 * 0.3
        finally:
            kernel.shutdown()
