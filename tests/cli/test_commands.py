"""``python -m nbcog`` in real subprocesses: serve, schema, shutdown, port in use, and coglet
started on the schema nbcog prints (spec §17, §23). Ports come from 5190-5209."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from cliprocs import (
    COGLET_BANNER,
    PORTS,
    WAIT,
    bind_assigned_port,
    raw_request,
    run_cli,
    write,
)

from nbcog.testing import serve_in_thread

ECHO = """
from cog import BaseRunner, Input

class Predictor(BaseRunner):
    def run(self, text: str, times: int = Input(default=1, ge=1, le=3),
            color: str = Input(default="red", choices=["red", "green"])) -> str:
        print("echo", text)
        return text * times + color
"""

TRAIN = """
def train(steps: int = 1) -> str:
    return f"trained {steps}"
"""


def test_serve_file_ref_until_shutdown(launch, tmp_path):
    """serve predict.py:Predictor --port N answers curl-style requests; /shutdown exits 0."""
    write(tmp_path, "predict.py", ECHO)
    for port in PORTS:  # the next assigned port, should a parallel run hold this one
        server = launch(["serve", "predict.py:Predictor", "--port", str(port)], cwd=tmp_path)
        if server.wait_listening():
            break
        assert f"port {port} on 127.0.0.1 is already in use" in server.stderr()
    else:
        pytest.skip("every port in 5190-5209 is taken")
    assert server.port == port
    server.wait_ready()
    status, body = raw_request(
        server.url,
        "POST",
        "/predictions",
        b'{"id":"c1","input":{"text":"hi","times":2}}',
        **{"Content-Type": "application/json"},
    )
    assert status == 200
    result = json.loads(body)
    assert (result["id"], result["status"], result["output"], result["logs"]) == (
        "c1",
        "succeeded",
        "hihired",
        "echo hi\n",
    )
    status, body = raw_request(
        server.url,
        "POST",
        "/predictions",
        b'{"input":{"times":9}}',
        **{"Content-Type": "application/json"},
    )
    assert status == 422
    assert json.loads(body)["detail"][0]["msg"] == "9 is greater than the maximum of 3"
    assert raw_request(server.url, "POST", "/shutdown") == (200, b"{}")
    assert server.wait_exit() == 0
    stderr = server.stderr()
    assert f"nbcog: serving predict.py:Predictor at http://127.0.0.1:{port}\n" in stderr
    assert "Traceback" not in stderr


def test_module_ref_from_pythonpath(launch, tmp_path):
    """A package.module:Name ref is imported from PYTHONPATH, whatever the cwd."""
    write(tmp_path / "libs" / "mypkg", "__init__.py", "")
    write(tmp_path / "libs" / "mypkg", "model.py", ECHO)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    server = launch(
        ["serve", "mypkg.model:Predictor"],
        cwd=elsewhere,
        PYTHONPATH=str(tmp_path / "libs"),
    )
    server.wait_ready()
    body = requests.post(
        server.url + "/predictions", json={"input": {"text": "m"}}, timeout=WAIT
    ).json()
    assert body["output"] == "mred"


SCRIPT_LIKE = [
    sys.executable,
    "-c",
    # What the installed ``nbcog`` console script does: sys.path[0] is not the cwd.
    "import sys; sys.path.remove(''); from nbcog.cli import main; sys.argv[0] = 'nbcog'; "
    "raise SystemExit(main())",
]


@pytest.mark.parametrize("command", [None, SCRIPT_LIKE], ids=["python-m", "console-script"])
def test_module_ref_from_cwd(launch, tmp_path, command):
    """model:Predictor is found in the cwd, and the predictor can import a sibling module."""
    write(tmp_path, "helper.py", "SUFFIX = '!'\n")
    write(
        tmp_path,
        "model.py",
        """
        from cog import BaseRunner
        from helper import SUFFIX

        class Predictor(BaseRunner):
            def run(self, text: str) -> str:
                return text + SUFFIX
        """,
    )
    server = launch(["serve", "model:Predictor"], cwd=tmp_path, command=command)
    server.wait_ready()
    body = requests.post(
        server.url + "/predictions", json={"input": {"text": "w"}}, timeout=WAIT
    ).json()
    assert body["output"] == "w!"


def listening_addresses(port: int) -> set[str]:
    """Local addresses listening on ``port``, from /proc/net/tcp{,6} (hex, as the kernel writes)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:
                found.add(address)
    return found


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux /proc/net/tcp")
def test_host_defaults_to_loopback(launch, tmp_path):
    """Without --host the server listens on 127.0.0.1 only."""
    write(tmp_path, "predict.py", ECHO)
    server = launch(["serve", "predict.py:Predictor"], cwd=tmp_path)
    server.wait_ready()
    assert server.port is not None
    assert listening_addresses(server.port) == {"0100007F"}  # 127.0.0.1, little-endian hex


class UploadReceiver:
    """Records PUTs (path, content type, bytes) and answers 201 without a Location."""

    def __init__(self) -> None:
        self.puts: list[tuple[str, str, bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_PUT(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.puts.append((self.path, self.headers["Content-Type"], body))
                self.send_response(201)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                """Silence."""

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/uploads"
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_upload_url(launch, tmp_path):
    """--upload-url PUTs file outputs to URL/<name> and returns that URL as the output."""
    write(
        tmp_path,
        "predict.py",
        """
        import tempfile
        from cog import BaseRunner, Path

        class Predictor(BaseRunner):
            def run(self) -> Path:
                out = Path(tempfile.mkdtemp()) / "result.txt"
                out.write_text("file body")
                return out
        """,
    )
    receiver = UploadReceiver()
    try:
        server = launch(
            ["serve", "predict.py:Predictor", "--upload-url", receiver.url],
            cwd=tmp_path,
        )
        server.wait_ready()
        body = requests.post(server.url + "/predictions", json={}, timeout=WAIT).json()
    finally:
        receiver.close()
    assert body["status"] == "succeeded", body
    assert body["output"] == receiver.url + "/result.txt"
    assert receiver.puts == [("/uploads/result.txt", "text/plain", b"file body")]


def test_ctrl_c_stops_cleanly(launch, tmp_path):
    """SIGINT (Ctrl-C) stops the server and exits 0 without a traceback."""
    write(tmp_path, "predict.py", ECHO)
    server = launch(["serve", "predict.py:Predictor"], cwd=tmp_path)
    server.wait_ready()
    server.proc.send_signal(signal.SIGINT)
    assert server.wait_exit() == 0
    assert "Traceback" not in server.stderr()
    assert "nbcog: stopped" in server.stderr()


def test_port_in_use_exits_nonzero_naming_the_port(launch, tmp_path):
    """A port someone listens on: exit 1 at once with a message naming the port."""
    write(tmp_path, "predict.py", ECHO)
    with bind_assigned_port() as taken:
        port = taken.getsockname()[1]
        server = launch(["serve", "predict.py:Predictor", "--port", str(port)], cwd=tmp_path)
        code = server.wait_exit()
    assert code == 1
    stderr = server.stderr()
    assert stderr.startswith(f"nbcog: port {port} on 127.0.0.1 is already in use; ")
    assert stderr.count("\n") == 1


@pytest.mark.parametrize("train", [False, True])
def test_schema_is_the_served_document(launch, tmp_path, train):
    """schema REF prints exactly the JSON that GET /openapi.json of a running server answers."""
    write(tmp_path, "predict.py", ECHO)
    write(tmp_path, "train.py", TRAIN)
    extra = ["--train", "train.py:train"] if train else []
    printed = run_cli(["schema", "predict.py:Predictor", *extra], cwd=tmp_path)
    assert printed.returncode == 0, printed.stderr
    server = launch(["serve", "predict.py:Predictor", *extra], cwd=tmp_path)
    server.wait_ready()
    served = requests.get(server.url + "/openapi.json", timeout=WAIT)
    assert printed.stdout == served.text + "\n"
    assert ("/trainings" in served.json()["paths"]) is train


def test_schema_of_a_broken_ref_fails_clearly(tmp_path):
    """schema with a missing name exits 1 with one line saying what could not be loaded."""
    write(tmp_path, "predict.py", ECHO)
    printed = run_cli(["schema", "predict.py:Nope"], cwd=tmp_path)
    assert printed.returncode == 1
    assert printed.stdout == ""
    assert printed.stderr.startswith("nbcog: cannot load predict.py:Nope: AttributeError: ")
    assert printed.stderr.count("\n") == 1


COMPARED_INPUTS = [
    {"text": "a"},
    {"text": "a", "times": 3, "color": "green", "unknown": [1]},
    {},
    {"text": 5, "times": "2"},
    {"text": "a", "times": 9, "color": "blue"},
    {"text": None},
    {"text": "a", "times": 2.0},
    [1, 2],
]


def post_past_spurious_409(url: str, value: Any) -> requests.Response:
    """POST to coglet, retrying its spurious 409 right after a sync response (spec §21.1)."""
    deadline = time.monotonic() + WAIT
    while True:
        r = requests.post(url + "/predictions", json={"input": value}, timeout=WAIT)
        if r.status_code != 409 or time.monotonic() > deadline:
            return r
        time.sleep(0.01)


def test_coglet_on_our_schema_agrees(launch, tmp_path):
    """coglet started on `nbcog schema`'s output accepts and rejects the same inputs as nbcog."""
    pytest.importorskip("coglet")
    write(tmp_path, "predict.py", ECHO)
    printed = run_cli(["schema", "predict.py:Predictor"], cwd=tmp_path)
    (tmp_path / ".cog").mkdir()
    (tmp_path / ".cog" / "openapi_schema.json").write_text(printed.stdout)
    reference = launch(
        ["-m", "cog.server.http", "--host", "127.0.0.1"],
        cwd=tmp_path,
        command=[sys.executable],
        banner=COGLET_BANNER,
        COG_PREDICT_TYPE_STUB="predict.py:Predictor",
        PORT="0",  # coglet names the port it got in its log, as nbcog does in its banner
        PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""),
    )
    try:
        reference.wait_ready(20)
    except AssertionError as exc:
        pytest.skip(f"coglet did not become READY within 20 s: {exc}; {reference.stderr()[-500:]}")
    try:
        theirs_doc = requests.get(reference.url + "/openapi.json", timeout=WAIT).json()
        theirs = [post_past_spurious_409(reference.url, value) for value in COMPARED_INPUTS]
        with serve_in_thread(f"{tmp_path / 'predict.py'}:Predictor") as ours_server:
            ours_doc = requests.get(ours_server.url + "/openapi.json", timeout=WAIT).json()
            ours = [
                requests.post(ours_server.url + "/predictions", json={"input": value}, timeout=WAIT)
                for value in COMPARED_INPUTS
            ]
    finally:
        requests.post(reference.url + "/shutdown", timeout=WAIT)
    assert reference.wait_exit() == 0
    assert theirs_doc == ours_doc
    for value, mine, reference_response in zip(COMPARED_INPUTS, ours, theirs, strict=True):
        assert mine.status_code == reference_response.status_code, value
        if mine.status_code == 422:
            assert mine.content == reference_response.content, value
        else:
            fields = ("status", "output", "error")
            assert [mine.json().get(k) for k in fields] == [
                reference_response.json().get(k) for k in fields
            ], value
    assert [r.status_code for r in ours] == [200, 200, 422, 422, 422, 422, 200, 422]
    assert ours[6].json()["status"] == "failed"  # "a" * 2.0: 2.0 passes as an integer
