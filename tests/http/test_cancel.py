"""Cancellation over HTTP (spec §14): sync loops, generators, swallowed cancels, async tasks,
cancels before start, blocking C calls, and repeated cancels."""

from __future__ import annotations

import contextlib
import http.server
import os
import tempfile
import threading
import time
from collections.abc import Iterator

import pytest
import requests
from helpers import wait_until
from lifecycle_helpers import WAIT_FOR, Background, SSEStream, health, source

CANCELED_KEYS = {"id", "status", "logs", "metrics"}


def _cancel(url: str, prediction_id: str) -> requests.Response:
    return requests.post(f"{url}/predictions/{prediction_id}/cancel", timeout=10)


def _run_and_cancel(url: str, tmp_path, body: dict) -> dict:
    """Start a sync prediction, wait for its ``running`` marker, cancel it; the sync body."""
    sync = Background("POST", url + "/predictions", json=body)
    wait_until((tmp_path / "running").exists, "the prediction to start")
    cancel = _cancel(url, body["id"])
    assert (cancel.status_code, cancel.content) == (200, b"{}")
    result = sync.result()
    assert result.status_code == 200
    return result.json()


def _later_predictions_work(url: str, body: dict) -> None:
    """The slot came back and no stray cancel hits the next predictions."""
    for _ in range(20):
        response = requests.post(url + "/predictions", json=body, timeout=10)
        assert response.status_code == 200
        assert response.json()["status"] == "succeeded"
    assert health(url)["status"] == "READY"


BUSY_LOOP = (
    WAIT_FOR
    + """
from cog import BaseRunner

class Predictor(BaseRunner):
    def run(self, spin: bool = True) -> int:
        n = 0
        if spin:
            print("spinning")
            mark("@TMP@/running")
            while True:
                n += 1
        return n
"""
)


def test_sync_python_loop_is_interrupted_by_cancel(serve_source, tmp_path):
    """A sync predictor in a loop that never ends by itself is interrupted: canceled, slot back."""
    with serve_source(source(BUSY_LOOP, tmp_path)) as s:
        body = _run_and_cancel(s.url, tmp_path, {"id": "spin"})
        # The loop has no exit: an answer at all means the cancel broke into it. The slot's
        # thread serving the next predictions means the loop is no longer spinning there.
        # (How fast the cancel lands is a speed question, for bench/, not for this test.)
        assert body["status"] == "canceled"
        assert set(body) == CANCELED_KEYS
        assert body["logs"] == "spinning\n"
        _later_predictions_work(s.url, {"input": {"spin": False}})


GENERATORS = {
    "sync": """
import time
from typing import Iterator
from cog import BaseRunner, streaming

class Predictor(BaseRunner):
    @streaming
    def run(self, forever: bool = True) -> Iterator[int]:
        i = 0
        while forever or i < 3:
            yield i
            i += 1
            time.sleep(0.01)
""",
    "async": """
import asyncio
from typing import AsyncIterator
from cog import BaseRunner, streaming

class Predictor(BaseRunner):
    @streaming
    async def run(self, forever: bool = True) -> AsyncIterator[int]:
        i = 0
        while forever or i < 3:
            yield i
            i += 1
            await asyncio.sleep(0.01)
""",
}


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_generator_canceled_keeps_chunks(serve_source, kind):
    """A cancelled generator stops; the canceled snapshot keeps the chunks streamed so far."""
    with serve_source(GENERATORS[kind]) as s:
        stream = SSEStream(s.url, "POST", "/predictions", {"id": "gen"})
        try:
            chunks: list[int] = []
            for name, data in stream.events():
                if name == "output":
                    chunks.append(data["chunk"])
                    if len(chunks) == 3:
                        assert _cancel(s.url, "gen").status_code == 200
                if name == "completed":
                    completed = data
                    break
        finally:
            stream.close()
        assert completed["status"] == "canceled"
        assert "error" not in completed
        assert completed["output"] == chunks
        assert chunks == list(range(len(chunks)))
        finite = requests.post(
            s.url + "/predictions", json={"input": {"forever": False}}, timeout=10
        )
        assert finite.json()["output"] == [0, 1, 2]


@pytest.mark.parametrize(
    ("handler", "log"),
    [
        (
            "except CancelationException:\n"
            "            print('caught cancel')\n"
            "            return 'swallowed'",
            "caught cancel\n",
        ),
        ("except Exception:\n            print('wrongly caught')\n            return 'wrong'", ""),
        ("finally:\n            print('cleanup')", "cleanup\n"),
    ],
    ids=["swallowed", "except-exception", "finally"],
)
def test_sync_cancel_handlers(serve_source, tmp_path, handler, log):
    """Swallowing CancelationException still ends canceled; except Exception never catches it."""
    src = (
        WAIT_FOR
        + f"""
from cog import BaseRunner, CancelationException

class Predictor(BaseRunner):
    def run(self) -> str:
        try:
            mark("@TMP@/running")
            wait_for("@TMP@/never")
        {handler}
        return "finished"
"""
    )
    with serve_source(source(src, tmp_path)) as s:
        body = _run_and_cancel(s.url, tmp_path, {"id": "c"})
    assert body["status"] == "canceled"
    assert set(body) == CANCELED_KEYS
    assert body["logs"] == log


def test_async_predictor_gets_cancelled_error(serve_source, tmp_path):
    """An async predictor sees asyncio.CancelledError at its await and ends canceled."""
    src = (
        WAIT_FOR
        + """
import asyncio
from cog import BaseRunner

class Predictor(BaseRunner):
    async def run(self, wait: bool = True) -> str:
        if not wait:
            return "quick"
        try:
            mark("@TMP@/running")
            await asyncio.sleep(60)
            mark("@TMP@/slept")
        except asyncio.CancelledError as exc:
            print(f"got {type(exc).__name__}")
            raise
        return "slept"
"""
    )
    with serve_source(source(src, tmp_path)) as s:
        body = _run_and_cancel(s.url, tmp_path, {"id": "a"})
        assert body["status"] == "canceled"
        assert set(body) == CANCELED_KEYS
        assert body["logs"] == "got CancelledError\n"  # the await itself raised
        assert not (tmp_path / "slept").exists()  # the 60 s sleep never ran out
        _later_predictions_work(s.url, {"input": {"wait": False}})


class _SlowDownload:
    """A local file server whose responses wait until the test releases them.

    ``done`` is set once the client has closed its connection (HTTP/1.1 keeps it open until
    then), that is, once the downloading code has finished with the response.
    """

    def __init__(self) -> None:
        self.arrived = threading.Event()
        self.release = threading.Event()
        self.done = threading.Event()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def handle(self) -> None:
                try:  # serves requests until the client closes (or resets) the connection
                    super().handle()
                except OSError:
                    pass
                finally:
                    outer.done.set()

            def do_GET(self) -> None:
                outer.arrived.set()
                outer.release.wait(30)
                body = b"hello" * 1_000_000  # 5 MB: several pieces for the downloader
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                with contextlib.suppress(OSError):  # a downloader may stop reading early
                    self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/input.txt"

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)


@pytest.fixture
def slow_download() -> Iterator[_SlowDownload]:
    """A download that blocks until released, so a cancel can land before predict() starts."""
    server = _SlowDownload()
    try:
        yield server
    finally:
        server.close()


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_cancel_before_predict_starts(serve_source, tmp_path, slow_download, kind, monkeypatch):
    """A cancel that lands while inputs download is applied: predict() never runs.

    The download stops and its temporary file is deleted, even when (async) the prediction
    has already ended by the time the download thread gets its response.
    """
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(downloads))
    src = """
from cog import BaseRunner, Path

class Predictor(BaseRunner):
    @@DEF@@ run(self, data: Path) -> int:
        open("@TMP@/ran", "w").close()
        return len(data.read_text())
""".replace("@@DEF@@", "def" if kind == "sync" else "async def")
    with serve_source(source(src, tmp_path)) as s:
        sync = Background(
            "POST", s.url + "/predictions", json={"id": "pre", "input": {"data": slow_download.url}}
        )
        assert slow_download.arrived.wait(30)
        assert _cancel(s.url, "pre").status_code == 200
        slow_download.release.set()
        body = sync.result().json()
        assert body["status"] == "canceled"
        assert set(body) == CANCELED_KEYS
        assert not (tmp_path / "ran").exists()
        assert slow_download.done.wait(30)  # the downloader has let go of the response
        assert sorted(p.name for p in downloads.iterdir()) == []
        # The same input runs normally once nobody cancels it.
        again = requests.post(
            s.url + "/predictions", json={"input": {"data": slow_download.url}}, timeout=30
        )
        assert again.json()["output"] == 5_000_000


def test_cancel_waits_for_blocking_c_call(serve_source, tmp_path):
    """A cancel of a predictor inside a blocking C call takes effect only when the call returns.

    CancelationException is raised asynchronously in the predictor thread and Python delivers
    it at the next bytecode boundary, so a blocking C call (time.sleep, a big matrix multiply,
    a socket read, a GPU kernel launch that synchronises) always runs to its end first: a
    predictor stuck for minutes in one C call is canceled only minutes later. Predictors that
    want prompt cancellation should block in short slices.

    Here the C call is a read from a FIFO that only the test writes to, after the cancel was
    acknowledged: the byte is consumed, so the read was still waiting when the cancel came.
    """
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    src = (
        WAIT_FOR
        + """
import os
from cog import BaseRunner

class Predictor(BaseRunner):
    def run(self) -> str:
        fd = os.open("@TMP@/gate", os.O_RDWR)  # read-write: opening does not wait for a writer
        try:
            mark("@TMP@/running")
            os.read(fd, 1)
            print("after the read")
        finally:
            os.close(fd)
        return "read"
"""
    )
    with serve_source(source(src, tmp_path)) as s:
        sync = Background("POST", s.url + "/predictions", json={"id": "blocked"})
        wait_until((tmp_path / "running").exists, "the prediction to start")
        cancel = _cancel(s.url, "blocked")
        assert (cancel.status_code, cancel.content) == (200, b"{}")
        # Fails (ENXIO) if the predictor has already closed its end: the read was interrupted.
        writer = os.open(gate, os.O_WRONLY | os.O_NONBLOCK)
        try:
            os.write(writer, b"x")
            body = sync.result().json()
            reader = os.open(gate, os.O_RDONLY | os.O_NONBLOCK)
            try:
                with pytest.raises(BlockingIOError):  # empty: the predictor's read took it
                    os.read(reader, 1)
            finally:
                os.close(reader)
        finally:
            os.close(writer)
    assert body["status"] == "canceled"
    assert body["logs"] == ""  # the exception fired right after the read: no print ran


REPEATED = (
    WAIT_FOR
    + """
import os
from cog import BaseRunner

class Predictor(BaseRunner):
    def run(self, hold: bool = True) -> str:
        if not hold:
            return "quick"
        fd = os.open("@TMP@/fifo", os.O_RDWR)  # read-write: opening never blocks (Linux)
        try:
            mark("@TMP@/running")
            os.read(fd, 1)  # blocks in C until the test writes, so cancels pile up
            print("not reached")
        finally:
            os.close(fd)
        return "held"
"""
)


def test_repeated_cancels_then_404(serve_source, tmp_path):
    """Cancels answer 200 {} while the prediction is in flight, then 404 {} once it is gone."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with serve_source(source(REPEATED, tmp_path)) as s:
        sync = Background("POST", s.url + "/predictions", json={"id": "r"})
        try:
            wait_until((tmp_path / "running").exists, "the prediction to start")
            for _ in range(3):
                cancel = _cancel(s.url, "r")
                assert (cancel.status_code, cancel.content) == (200, b"{}")
        finally:
            writer = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)  # ENXIO, not a hang, if no reader
            os.write(writer, b"x")
            os.close(writer)
        body = sync.result().json()
        assert body["status"] == "canceled"
        assert body["logs"] == ""
        gone = _cancel(s.url, "r")
        assert (gone.status_code, gone.content) == (404, b"{}")
        unknown = _cancel(s.url, "never-existed")
        assert (unknown.status_code, unknown.content) == (404, b"{}")
        _later_predictions_work(s.url, {"input": {"hold": False}})


STUBBORN = (
    WAIT_FOR
    + """
import os
import time
from cog import BaseRunner, CancelationException

class Predictor(BaseRunner):
    def run(self) -> str:
        caught = 0
        mark("@TMP@/running")
        while True:
            try:
                while not os.path.exists("@TMP@/release"):
                    time.sleep(0.005)
                print(f"caught {caught}")
                return "finished"
            except CancelationException:
                caught += 1
                mark(f"@TMP@/caught-{caught}")
"""
)


def test_each_cancel_raises_again(serve_source, tmp_path):
    """Every cancel raises CancelationException again in a sync predictor that swallows them
    (coglet 0.23.1, live: three cancels, three exceptions); it still ends canceled."""
    with serve_source(source(STUBBORN, tmp_path)) as s:
        sync = Background("POST", s.url + "/predictions", json={"id": "stubborn"})
        try:
            wait_until((tmp_path / "running").exists, "the prediction to start")
            for n in (1, 2, 3):
                assert _cancel(s.url, "stubborn").status_code == 200
                wait_until((tmp_path / f"caught-{n}").exists, f"cancel {n} to be raised")
        finally:
            (tmp_path / "release").touch()
        body = sync.result().json()
    assert body["status"] == "canceled"
    assert body["logs"] == "caught 3\n"


RACED = {
    "sync": """
from cog import BaseRunner

class Predictor(BaseRunner):
    def run(self, n: int) -> int:
        total = 0
        for i in range(n):
            total += i
        return total
""",
    "async": """
import asyncio
from cog import BaseRunner

class Predictor(BaseRunner):
    async def run(self, n: int) -> int:
        for _ in range(n):
            await asyncio.sleep(0)
        return n
""",
}


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_cancels_racing_completion_never_leak(serve_source, kind):
    """A storm of cancels racing predictions' ends never loses a result, kills the worker, or
    hits the next prediction."""
    stop = threading.Event()

    def cancel_forever(url: str) -> None:
        with requests.Session() as http:
            while not stop.is_set():
                http.post(url + "/predictions/x/cancel", timeout=10)

    with serve_source(RACED[kind]) as s, requests.Session() as http:
        cancellers = [threading.Thread(target=cancel_forever, args=(s.url,)) for _ in range(2)]
        for thread in cancellers:
            thread.start()
        try:
            statuses = set()
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline:
                raced = http.post(
                    s.url + "/predictions", json={"id": "x", "input": {"n": 200}}, timeout=10
                )
                statuses.add(raced.json()["status"])
                other = http.post(
                    s.url + "/predictions", json={"id": "y", "input": {"n": 10}}, timeout=10
                )
                assert other.json()["status"] == "succeeded"
        finally:
            stop.set()
            for thread in cancellers:
                thread.join(10)
        assert "canceled" in statuses
        assert health(s.url)["status"] == "READY"
