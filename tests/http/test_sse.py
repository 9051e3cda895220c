"""Prediction SSE streams against real servers, read from raw sockets (spec §8, §11, §14).

Every stream is parsed here, incrementally, from the bytes on the socket (chunked transfer
decoding included); no SSE client library is involved. Predictors hold at "gates" (files the
test creates) so that every step happens in a known order without sleeping. Whether a
prediction was canceled is observed through its ``completed`` webhook.

Checked against coglet 0.23.1 live: the event payloads byte for byte; the lag ``skipped``
count (events behind minus the 1024 the channel holds); the truncated replay; the ``Accept``
parsing quirks. A creator that lags cancels its prediction the moment it lags (ARCHITECTURE.md).
"""

from __future__ import annotations

import base64
import json
import linecache
import logging
import re
import socket
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests
from helpers import wait_until

from nbcog.core.broadcaster import BroadcasterStats
from nbcog.testing import RunningServer, serve_in_thread

WAIT = 30.0
SSE = "text/event-stream"
NOT_STREAMING = (
    b'{"error":"This model does not support streaming responses. '
    b'Add @cog.streaming to predict() to enable SSE."}'
)
TRAINING_NOT_STREAMING = b'{"error":"Training endpoints do not support streaming responses."}'
TRUNCATED = "SSE stream replay truncated; events were dropped"
LAGGED = "SSE stream lagged; events were dropped"

GATED = """
import os
import time
from typing import Iterator

from cog import BaseRunner, streaming


def hold(path: str) -> None:
    deadline = time.monotonic() + 120
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.005)


class Predictor(BaseRunner):
    @streaming
    def run(
        self,
        n: int = 3,
        hold_at: int = -1,
        gate: str = "",
        hold2_at: int = -1,
        gate2: str = "",
        fail_at: int = -1,
        pad: int = 0,
        pace: float = 0.0,
        say: str = "",
    ) -> Iterator[str]:
        if say:
            print(say)
        for i in range(n):
            if i == hold_at:
                hold(gate)
            if i == hold2_at:
                hold(gate2)
            if i == fail_at:
                raise ValueError("boom")
            yield f"t{i}" + "x" * pad
            if pace:
                time.sleep(pace)
        if hold_at >= n:
            hold(gate)
"""

EVENTS = """
import sys
from typing import Any, Iterator

from cog import BaseRunner, current_scope, streaming


class Predictor(BaseRunner):
    @streaming
    def run(self, word: str = "hi") -> Iterator[Any]:
        print("hello")
        sys.stderr.write("warn\\n")
        scope = current_scope()
        scope.record_metric("count", 1, "incr")
        scope.record_metric("count", 2, "increment")
        scope.record_metric("tokens", "a", "append")
        scope.record_metric("temp", 0.5)
        scope.metrics["gone"] = 1
        scope.metrics["gone"] = None
        scope.metrics["x"] = 2
        del scope.metrics["x"]
        scope.metrics["y"] = 3
        scope.metrics.delete("y")
        scope.record_metric("timing.pre", 0.1)
        yield word
        yield {"k": [1, 2]}
        print("after")
        scope.record_metric("done", True)
"""

# The exact body coglet 0.23.1 sends for EVENTS with {"id": "e1", "input": {"word": "w"}}
# (live), with the one value that varies replaced by PT.
EVENTS_BODY = """\
event: start
data: {"id":"e1","status":"processing"}

event: log
data: {"data":"hello\\n","source":"stdout"}

event: log
data: {"data":"warn\\n","source":"stderr"}

event: metric
data: {"mode":"increment","name":"count","value":1}

event: metric
data: {"mode":"increment","name":"count","value":2}

event: metric
data: {"mode":"append","name":"tokens","value":"a"}

event: metric
data: {"mode":"replace","name":"temp","value":0.5}

event: metric
data: {"mode":"replace","name":"gone","value":1}

event: metric
data: {"mode":"replace","name":"gone","value":null}

event: metric
data: {"mode":"replace","name":"x","value":2}

event: metric
data: {"mode":"replace","name":"x","value":null}

event: metric
data: {"mode":"replace","name":"y","value":3}

event: metric
data: {"mode":"replace","name":"y","value":null}

event: metric
data: {"mode":"replace","name":"timing.pre","value":0.1}

event: output
data: {"chunk":"w","index":0}

event: output
data: {"chunk":{"k":[1,2]},"index":1}

event: log
data: {"data":"after\\n","source":"stdout"}

event: metric
data: {"mode":"replace","name":"done","value":true}

event: completed
data: {"id":"e1","logs":"hello\\nwarn\\nafter\\n","metrics":{"count":3,"done":true,\
"predict_time":PT,"temp":0.5,"timing":{"pre":0.1},"tokens":["a"]},"output":["w",{"k":[1,2]}],\
"status":"succeeded"}

"""

NOT_OPTED_IN = """
import os
import time
from typing import Iterator

from cog import BaseRunner


class Predictor(BaseRunner):
    def run(self, n: int = 3, gate: str = "") -> Iterator[str]:
        deadline = time.monotonic() + 120
        while gate and not os.path.exists(gate) and time.monotonic() < deadline:
            time.sleep(0.005)
        for i in range(n):
            yield f"t{i}"
"""


# -- a raw SSE client ----------------------------------------------------------------------


@dataclass(frozen=True)
class Item:
    """One SSE event (``name``, decoded ``data``) or comment (``":"``, its text)."""

    name: str
    data: Any
    at: float  # time.monotonic() when parsed (as its bytes arrived, when read incrementally)


def parse_block(block: str, at: float) -> Item:
    """A block of coglet's wire format: a comment, or exactly ``event:`` then ``data:``."""
    if block.startswith(":"):
        assert "\n" not in block, block
        return Item(":", block[1:].strip(), at)
    lines = block.split("\n")
    assert len(lines) == 2, block
    assert lines[0].startswith("event: "), block
    assert lines[1].startswith("data: "), block
    return Item(lines[0][len("event: ") :], json.loads(lines[1][len("data: ") :]), at)


class RawStream:
    """One HTTP/1.1 request on a raw socket, its (chunked) response parsed as it arrives.

    Requests say ``Connection: close``, so the server closes the socket after the response.
    """

    def __init__(
        self,
        port: int,
        method: str,
        path: str,
        body: Any = None,
        headers: tuple[tuple[str, str], ...] = (),
        rcvbuf: int | None = None,
    ) -> None:
        self.sock = socket.socket()
        try:
            if rcvbuf is not None:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            self.sock.settimeout(WAIT)
            self.sock.connect(("127.0.0.1", port))
            payload = b"" if body is None else json.dumps(body).encode()
            lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
            if body is not None:
                lines += ["Content-Type: application/json", f"Content-Length: {len(payload)}"]
            lines += [f"{name}: {value}" for name, value in headers]
            self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + payload)
        except BaseException:
            self.sock.close()
            raise
        self._raw = bytearray()
        self._pos = 0
        self.body = bytearray()  # the de-chunked body
        self._parsed = 0
        self.items: list[Item] = []
        self._next = 0
        self.ended = False  # the terminating zero-size chunk arrived
        self.eof = False
        self.status, self.headers = self._read_head()

    def close(self) -> None:
        self.sock.close()

    def _recv(self) -> None:
        data = self.sock.recv(1 << 20)
        if data:
            self._raw += data
        else:
            self.eof = True

    def _read_head(self) -> tuple[int, dict[str, str]]:
        while (end := self._raw.find(b"\r\n\r\n")) < 0:
            self._recv()
            assert not self.eof, "connection closed before the response head"
        lines = self._raw[:end].decode().split("\r\n")
        self._pos = end + 4
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            assert name.lower() not in headers, f"repeated header {name}"
            headers[name.lower()] = value.strip()
        return int(lines[0].split()[1]), headers

    def _pump(self) -> None:
        """De-chunk what has arrived, then parse every complete SSE block."""
        raw = self._raw
        while not self.ended:
            eol = raw.find(b"\r\n", self._pos)
            if eol < 0:
                break
            size = int(raw[self._pos : eol], 16)
            if len(raw) < eol + 2 + size + 2:
                break
            self.body += raw[eol + 2 : eol + 2 + size]
            self._pos = eol + 2 + size + 2
            self.ended = size == 0
        now = time.monotonic()
        while (end := self.body.find(b"\n\n", self._parsed)) >= 0:
            self.items.append(parse_block(self.body[self._parsed : end].decode(), now))
            self._parsed = end + 2

    def next_item(self) -> Item | None:
        """The next event or comment, or None once the response has ended."""
        self._pump()  # what arrived with the head, or in the previous read
        while self._next >= len(self.items):
            if self.ended or self.eof:
                return None
            self._recv()
            self._pump()
        self._next += 1
        return self.items[self._next - 1]

    def read_until(self, done: Callable[[Item], bool]) -> list[Item]:
        """Items up to and including the first one for which ``done`` is true."""
        got: list[Item] = []
        while (item := self.next_item()) is not None:
            got.append(item)
            if done(item):
                return got
        raise AssertionError(f"stream ended before the awaited item; got {got}")

    def read_to_end(self) -> list[Item]:
        """Read (without parsing as it goes, to keep up) until the server closes; all items."""
        assert self.headers.get("transfer-encoding") == "chunked", self.headers
        while not self.eof:
            self._recv()
        self._pump()
        assert self.ended, "the server closed the connection mid-response"
        assert self._parsed == len(self.body), "a partial SSE block at the end"
        return self.items

    def json_body(self) -> bytes:
        """A plain (Content-Length) response body."""
        while not self.eof:
            self._recv()
        body = bytes(self._raw[self._pos :])
        assert len(body) == int(self.headers["content-length"])
        return body


Connect = Callable[..., RawStream]


@pytest.fixture
def connect() -> Iterator[Connect]:
    """``connect(server, method, path, body, headers=..., rcvbuf=...)``; all closed at teardown."""
    opened: list[RawStream] = []

    def _connect(
        server: RunningServer,
        method: str,
        path: str,
        body: Any = None,
        *,
        headers: tuple[tuple[str, str], ...] = (("Accept", SSE),),
        rcvbuf: int | None = None,
    ) -> RawStream:
        stream = RawStream(server.server.port, method, path, body, headers, rcvbuf)
        opened.append(stream)
        return stream

    yield _connect
    for stream in opened:
        stream.close()


def is_output(index: int) -> Callable[[Item], bool]:
    return lambda item: item.name == "output" and item.data["index"] == index


def kinds(items: list[Item]) -> list[str]:
    """``start``, ``t0``, ``t1`` ... ``completed``: an event list at a glance."""
    return [f"t{i.data['index']}" if i.name == "output" else i.name for i in items]


def tokens(n: int, start: int = 0) -> list[str]:
    return [f"t{i}" for i in range(start, n)]


# -- webhooks, to see how a prediction ended ---------------------------------------------


class Hooks:
    """A local receiver: webhook bodies POSTed to it, and file uploads PUT to it."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.uploads: dict[str, bytes] = {}
        self._cond = threading.Condition()
        hooks = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with hooks._cond:
                    hooks.bodies.append(body)
                    hooks._cond.notify_all()
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_PUT(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with hooks._cond:
                    hooks.uploads[self.path] = body
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    @property
    def url(self) -> str:
        return self.base + "/hook"

    def request(self, **input_: Any) -> dict[str, Any]:
        """A create body whose start and completed webhooks come here."""
        return {
            "input": input_,
            "webhook": self.url,
            "webhook_events_filter": ["start", "completed"],
        }

    def wait_for(self, status: str) -> dict[str, Any]:
        """The first webhook with this status (waits for it)."""
        with self._cond:
            assert self._cond.wait_for(
                lambda: any(b["status"] == status for b in self.bodies), WAIT
            ), f"no {status} webhook; got {self.bodies}"
            return next(b for b in self.bodies if b["status"] == status)

    def terminal(self) -> dict[str, Any]:
        """The ``completed`` webhook (waits for it)."""
        terminal = {"succeeded", "failed", "canceled"}
        with self._cond:
            assert self._cond.wait_for(
                lambda: any(b["status"] in terminal for b in self.bodies), WAIT
            ), f"no completed webhook; got {self.bodies}"
            return next(b for b in self.bodies if b["status"] in terminal)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(WAIT)


@pytest.fixture
def hooks() -> Iterator[Hooks]:
    receiver = Hooks()
    yield receiver
    receiver.close()


def broadcaster_stats(s: RunningServer, prediction_id: str) -> BroadcasterStats | None:
    """The in-flight prediction's broadcaster statistics (None once it has ended)."""

    def stats() -> BroadcasterStats | None:
        entry = s.server.service.get(prediction_id)
        return None if entry is None else entry.stream_stats()

    return s.call(stats)


def stream_subscribers(s: RunningServer, prediction_id: str) -> int:
    """How many subscribers the in-flight prediction's broadcaster has (-1 once it ended)."""
    stats = broadcaster_stats(s, prediction_id)
    return -1 if stats is None else stats.subscribers


# -- events and payloads (spec §11.2, §11.3) -------------------------------------------------


def test_every_event_type_and_payload_as_coglet_sends_them(serve_source, connect):
    """start, log, metric (increment, append, replace, delete = null), output, completed."""
    with serve_source(EVENTS) as s:
        stream = connect(s, "POST", "/predictions", {"id": "e1", "input": {"word": "w"}})
        items = stream.read_to_end()
    body = stream.body.decode()
    predict_time = re.search(r'"predict_time":([0-9.e-]+)', body)
    assert predict_time is not None and float(predict_time.group(1)) > 0
    assert body.replace(predict_time.group(0), '"predict_time":PT') == EVENTS_BODY
    assert items[-1].data["metrics"]["predict_time"] == float(predict_time.group(1))


def test_response_headers(serve_source, connect):
    """200, text/event-stream, no-cache and X-Accel-Buffering: no, chunked."""
    with serve_source(GATED) as s:
        stream = connect(s, "POST", "/predictions", {"input": {"n": 1}})
        stream.read_to_end()
    assert stream.status == 200
    assert stream.headers["content-type"] == "text/event-stream"
    assert stream.headers["cache-control"] == "no-cache"
    assert stream.headers["x-accel-buffering"] == "no"
    assert stream.headers["transfer-encoding"] == "chunked"


def test_streams_are_sent_without_nagle_delay(serve_source, connect, tmp_path):
    """An SSE response sets TCP_NODELAY, so no event waits for the client's delayed ACK."""
    gate = tmp_path / "gate"
    with serve_source(GATED) as s:
        stream = connect(
            s, "POST", "/predictions", {"input": {"n": 2, "hold_at": 1, "gate": str(gate)}}
        )
        stream.read_until(lambda item: item.name == "output")

        def nodelay() -> list[int]:
            connections = s.server._http._connections  # the server's live HTTP connections
            return [
                c.stream.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
                for c in connections
            ]

        assert s.call(nodelay) == [1]
        gate.touch()
        stream.read_to_end()


def test_post_and_put_both_create_streams(serve_source, connect):
    """POST and PUT /predictions/{id} with SSE each run a prediction and stream it to the end."""
    with serve_source(GATED) as s:
        posted = connect(s, "POST", "/predictions", {"id": "by-post", "input": {"n": 2}})
        posted_items = posted.read_to_end()
        put = connect(s, "PUT", "/predictions/by-put", {"input": {"n": 2}})
        put_items = put.read_to_end()
    for items, prediction_id in ((posted_items, "by-post"), (put_items, "by-put")):
        assert kinds(items) == ["start", "t0", "t1", "completed"]
        assert items[0].data == {"id": prediction_id, "status": "processing"}
        assert [i.data for i in items[1:3]] == [
            {"chunk": "t0", "index": 0},
            {"chunk": "t1", "index": 1},
        ]
        done = items[-1].data
        assert (done["id"], done["status"], done["output"]) == (
            prediction_id,
            "succeeded",
            ["t0", "t1"],
        )


def test_predictor_raising_mid_stream_ends_with_completed_failed(serve_source, connect):
    """A generator raising after two chunks: completed failed, with error, logs, partial output."""
    with serve_source(GATED) as s:
        stream = connect(
            s,
            "POST",
            "/predictions",
            {"id": "f1", "input": {"n": 5, "fail_at": 2, "say": "working"}},
        )
        items = stream.read_to_end()
    assert kinds(items) == ["start", "log", "t0", "t1", "completed"]
    done = items[-1].data
    assert done == {
        "error": "Prediction failed: Generator iteration error: ValueError: boom",
        "id": "f1",
        "logs": "working\n",
        "metrics": {"predict_time": done["metrics"]["predict_time"]},
        "output": ["t0", "t1"],
        "status": "failed",
    }


def test_canceled_prediction_ends_with_completed_canceled(serve_source, connect, tmp_path):
    """Cancelled by id mid-stream: completed is canceled with the chunks so far and no error."""
    with serve_source(GATED) as s:
        gate = tmp_path / "never"
        stream = connect(
            s,
            "POST",
            "/predictions",
            {"id": "c1", "input": {"n": 5, "hold_at": 2, "gate": str(gate)}},
        )
        stream.read_until(is_output(1))
        assert requests.post(s.url + "/predictions/c1/cancel", timeout=WAIT).status_code == 200
        items = stream.read_to_end()
    done = items[-1].data
    assert kinds(items) == ["start", "t0", "t1", "completed"]
    assert done == {
        "id": "c1",
        "logs": "",
        "metrics": {"predict_time": done["metrics"]["predict_time"]},
        "output": ["t0", "t1"],
        "status": "canceled",
    }


PATH_OUT = """
import tempfile
from typing import Iterator

from cog import BaseRunner, Path, streaming


class Predictor(BaseRunner):
    @streaming
    def run(self) -> Iterator[Path]:
        folder = Path(tempfile.mkdtemp())
        for name, text in (("a.txt", "hello"), ("b.json", "{}")):
            path = folder / name
            path.write_text(text)
            yield path
"""


def test_path_outputs_stream_as_data_urls(serve_source, connect):
    """A yielded Path is an output event whose chunk is its data URL, as in the final output."""
    with serve_source(PATH_OUT) as s:
        items = connect(s, "POST", "/predictions", {}).read_to_end()
    urls = [
        "data:text/plain;base64," + base64.b64encode(b"hello").decode(),
        "data:application/json;base64," + base64.b64encode(b"{}").decode(),
    ]
    assert [i.data for i in items if i.name == "output"] == [
        {"chunk": urls[0], "index": 0},
        {"chunk": urls[1], "index": 1},
    ]
    assert items[-1].data["output"] == urls


def test_path_outputs_stream_as_uploaded_urls(serve_source, connect, hooks):
    """With an upload URL, each file's output event carries the URL it was uploaded to."""
    with serve_source(PATH_OUT, upload_url=hooks.base + "/up") as s:
        items = connect(s, "POST", "/predictions", {}).read_to_end()
    urls = [hooks.base + "/up/a.txt", hooks.base + "/up/b.json"]
    outputs = sorted((i.data for i in items if i.name == "output"), key=lambda d: d["index"])
    assert outputs == [{"chunk": urls[0], "index": 0}, {"chunk": urls[1], "index": 1}]
    assert items[-1].data["output"] == urls
    assert hooks.uploads == {"/up/a.txt": b"hello", "/up/b.json": b"{}"}


ASYNC_GEN = """
import asyncio
import os
from typing import AsyncIterator

from cog import BaseRunner, streaming


class Predictor(BaseRunner):
    @streaming
    async def run(self, gate: str) -> AsyncIterator[str]:
        yield "first"
        while not os.path.exists(gate):
            await asyncio.sleep(0.005)
        yield "second"
"""


def test_async_generator_chunks_stream_live(serve_source, connect, tmp_path):
    """An async generator's first chunk arrives while it runs (nbcog, not §21.6's buffering)."""
    gate = tmp_path / "gate"
    with serve_source(ASYNC_GEN) as s:
        stream = connect(s, "POST", "/predictions", {"input": {"gate": str(gate)}})
        assert kinds(stream.read_until(is_output(0))) == ["start", "t0"]
        gate.touch()
        items = stream.read_to_end()
    assert kinds(items) == ["start", "t0", "t1", "completed"]
    assert items[-1].data["output"] == ["first", "second"]


# -- opt-in and refusals (spec §1, §5, §11.1) ------------------------------------------------


DECORATED = """
{imports}
from typing import Iterator

from cog import {base}


class Predictor({base}):
    {decorator}
    def {method}(self, n: int = 2) -> Iterator[str]:
        for i in range(n):
            yield f"t{{i}}"
"""


@pytest.mark.parametrize(
    ("imports", "decorator", "base", "method"),
    [
        ("from cog import streaming", "@streaming", "BaseRunner", "run"),
        ("from cog import streaming", "@streaming()", "BaseRunner", "run"),
        ("import cog", "@cog.streaming", "BaseRunner", "run"),
        ("import cog", "@cog.streaming()", "BaseRunner", "run"),
        ("from cog import streaming as live", "@live", "BaseRunner", "run"),
        ("import cog as c", "@c.streaming", "BaseRunner", "run"),
        ("from cog import streaming", "@streaming", "BasePredictor", "predict"),
    ],
)
def test_decorator_forms_opt_in(serve_source, connect, imports, decorator, base, method):
    """Each spelling of @streaming (aliases, predict() too) enables SSE and x-cog-streaming."""
    source = DECORATED.format(imports=imports, decorator=decorator, base=base, method=method)
    with serve_source(source) as s:
        stream = connect(s, "POST", "/predictions", {})
        items = stream.read_to_end()
        document = requests.get(s.url + "/openapi.json", timeout=WAIT).json()
    assert (stream.status, kinds(items)) == (200, ["start", "t0", "t1", "completed"])
    assert document["paths"]["/predictions"]["post"]["x-cog-streaming"] is True


FUNCTION = """
from typing import Iterator

import cog


@cog.streaming
def run(n: int = 2) -> Iterator[str]:
    for i in range(n):
        yield f"t{i}"
"""


def test_function_predictor_opts_in(serve_source, connect):
    """A plain function with @cog.streaming (``predict.py:run``) streams too."""
    with serve_source(FUNCTION, name="run") as s:
        items = connect(s, "POST", "/predictions", {}).read_to_end()
    assert kinds(items) == ["start", "t0", "t1", "completed"]


CELL = """\
from typing import Iterator
from cog import BaseRunner, streaming


class Cell(BaseRunner):
{decorator}
    def run(self, n: int = 2) -> Iterator[str]:
        for i in range(n):
            yield f"t{{i}}"
"""


def class_from_cell(source: str, filename: str, monkeypatch: pytest.MonkeyPatch) -> type:
    """Exec ``source`` as IPython runs a cell: compiled under a name registered in linecache."""
    lines = source.splitlines(keepends=True)
    monkeypatch.setitem(linecache.cache, filename, (len(source), None, lines, filename))
    namespace: dict[str, Any] = {"__name__": "__main__"}
    exec(compile(source, filename, "exec"), namespace)
    return namespace["Cell"]


def test_class_built_from_source_text_opts_in(connect, monkeypatch):
    """A notebook-cell class with @streaming streams; the same class without it gets 406."""
    streaming_cell = class_from_cell(
        CELL.format(decorator="    @streaming"), "<ipython-input-3-aaaa>", monkeypatch
    )
    plain_cell = class_from_cell(CELL.format(decorator=""), "<ipython-input-4-bbbb>", monkeypatch)
    with serve_in_thread(streaming_cell) as s:
        items = connect(s, "POST", "/predictions", {}).read_to_end()
        document = requests.get(s.url + "/openapi.json", timeout=WAIT).json()
    assert kinds(items) == ["start", "t0", "t1", "completed"]
    assert document["paths"]["/predictions"]["post"]["x-cog-streaming"] is True
    with serve_in_thread(plain_cell) as s:
        refused = connect(s, "POST", "/predictions", {})
        assert (refused.status, refused.json_body()) == (406, NOT_STREAMING)
        document = requests.get(s.url + "/openapi.json", timeout=WAIT).json()
    assert "x-cog-streaming" not in document["paths"]["/predictions"]["post"]


def test_without_opt_in_sse_is_406_but_iterators_work_as_json(serve_source, connect, tmp_path):
    """No @streaming: SSE on POST, PUT and PUT attach gets coglet's 406; JSON still gets chunks."""
    gate = tmp_path / "gate"
    with serve_source(NOT_OPTED_IN) as s:
        for method, path in (("POST", "/predictions"), ("PUT", "/predictions/new1")):
            refused = connect(s, method, path, {"input": {"n": 2}})
            assert refused.status == 406
            assert refused.headers["content-type"] == "application/json"
            assert refused.json_body() == NOT_STREAMING
        invalid = connect(s, "POST", "/predictions", {"input": {"n": "x"}})
        assert (invalid.status, invalid.json_body()) == (406, NOT_STREAMING)  # 406 before 422
        created = requests.put(
            s.url + "/predictions/held",
            json={"input": {"gate": str(gate)}},
            headers={"Prefer": "respond-async"},
            timeout=WAIT,
        )
        assert created.status_code == 202
        attach = connect(s, "PUT", "/predictions/held", {})
        assert (attach.status, attach.json_body()) == (406, NOT_STREAMING)
        gate.touch()
        wait_until(lambda: stream_subscribers(s, "held") == -1)  # "held" has finished
        sync = requests.post(s.url + "/predictions", json={"input": {"n": 2}}, timeout=WAIT)
        document = requests.get(s.url + "/openapi.json", timeout=WAIT).json()
    assert sync.json()["output"] == ["t0", "t1"]
    assert "x-cog-streaming" not in document["paths"]["/predictions"]["post"]


TRAIN = """
from cog import Input


def train(steps: int = Input(default=1)) -> str:
    return "trained"
"""


def test_trainings_refuse_sse_even_when_predict_streams(connect, tmp_path):
    """POST /trainings and PUT /trainings/{id} with SSE get coglet's training 406."""
    predictor = tmp_path / "predict.py"
    predictor.write_text(textwrap.dedent(GATED))
    trainer = tmp_path / "train.py"
    trainer.write_text(textwrap.dedent(TRAIN))
    with serve_in_thread(f"{predictor}:Predictor", train=f"{trainer}:train") as s:
        for method, path in (("POST", "/trainings"), ("PUT", "/trainings/t1")):
            refused = connect(s, method, path, {"input": {"steps": 2}})
            assert refused.status == 406
            assert refused.json_body() == TRAINING_NOT_STREAMING
        trained = requests.post(s.url + "/trainings", json={}, timeout=WAIT)
        streamed = connect(s, "POST", "/predictions", {"input": {"n": 1}}).read_to_end()
    assert trained.json()["output"] == "trained"
    assert kinds(streamed) == ["start", "t0", "completed"]


SLOW_SETUP = """
import os
import time
from typing import Iterator

from cog import BaseRunner, streaming


class Predictor(BaseRunner):
    def setup(self) -> None:
        deadline = time.monotonic() + 120
        gate = os.environ["NBCOG_TEST_SETUP_GATE"]
        while not os.path.exists(gate) and time.monotonic() < deadline:
            time.sleep(0.005)

    @streaming
    def run(self) -> Iterator[str]:
        yield "t0"
"""


def test_sse_errors_before_the_stream_are_plain_json(serve_source, connect, tmp_path, monkeypatch):
    """503 during setup, 422 for bad input and 409 at capacity are JSON responses, not streams."""
    gate = tmp_path / "setup-gate"
    monkeypatch.setenv("NBCOG_TEST_SETUP_GATE", str(gate))
    with serve_source(SLOW_SETUP, wait_ready=False) as s:
        starting = connect(s, "POST", "/predictions", {})
        assert starting.status == 503
        assert starting.headers["content-type"] == "application/json"
        assert json.loads(starting.json_body()) == {
            "error": "Setup has not finished yet. Wait until it has finished, "
            "or GET /health-check for status.",
            "status": "failed",
        }
        gate.touch()
    run_gate = tmp_path / "run-gate"
    with serve_source(GATED) as s:
        invalid = connect(s, "POST", "/predictions", {"input": {"n": "3"}})
        assert invalid.status == 422
        assert json.loads(invalid.json_body()) == {
            "detail": [
                {
                    "loc": ["body", "input", "n"],
                    "msg": '"3" is not of type "integer"',
                    "type": "value_error",
                }
            ]
        }
        first = connect(s, "POST", "/predictions", {"input": {"hold_at": 0, "gate": str(run_gate)}})
        first.read_until(lambda item: item.name == "start")
        busy = connect(s, "POST", "/predictions", {})
        assert (busy.status, busy.json_body()) == (
            409,
            b'{"error":"At capacity - all prediction slots busy","status":"failed"}',
        )
        run_gate.touch()
        assert first.read_to_end()[-1].data["status"] == "succeeded"


# -- choosing SSE (spec §8) ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("accept", "sse"),
    [
        ("text/event-stream", True),
        ("application/json, text/event-stream;q=0.9", True),
        ("text/event-stream;q=0.5", True),
        (" text/event-stream", True),
        ("text/plain,text/event-stream,application/json", True),
        ("TEXT/EVENT-STREAM", False),
        ("Text/Event-Stream", False),
        ("text/event-stream ;q=1", False),  # coglet trims before cutting at ";" (live)
        ("text/*", False),
        ("*/*", False),
        ("text/event-streams", False),
        ("application/json", False),
    ],
)
def test_accept_parsing(serve_source, connect, accept, sse):
    """SSE only when a comma-separated part is text/event-stream (params ignored, case matters)."""
    with serve_source(GATED) as s:
        response = connect(
            s, "POST", "/predictions", {"input": {"n": 1}}, headers=(("Accept", accept),)
        )
        if sse:
            assert response.headers["content-type"] == "text/event-stream"
            assert kinds(response.read_to_end()) == ["start", "t0", "completed"]
        else:
            assert response.headers["content-type"] == "application/json"
            assert json.loads(response.json_body())["output"] == ["t0"]


def test_only_the_first_accept_header_counts(serve_source, connect):
    """With two Accept headers coglet reads the first (live), so SSE second means JSON."""
    with serve_source(GATED) as s:
        json_first = connect(
            s,
            "POST",
            "/predictions",
            {"input": {"n": 1}},
            headers=(("Accept", "application/json"), ("Accept", SSE)),
        )
        assert json_first.headers["content-type"] == "application/json"
        json_first.json_body()
        sse_first = connect(
            s,
            "POST",
            "/predictions",
            {"input": {"n": 1}},
            headers=(("Accept", SSE), ("Accept", "application/json")),
        )
        assert kinds(sse_first.read_to_end()) == ["start", "t0", "completed"]


def test_prefer_respond_async_is_ignored_with_sse(serve_source, connect):
    """Accept: text/event-stream plus Prefer: respond-async streams (200), no 202."""
    with serve_source(GATED) as s:
        stream = connect(
            s,
            "POST",
            "/predictions",
            {"input": {"n": 2}},
            headers=(("Accept", SSE), ("Prefer", "respond-async")),
        )
        assert stream.status == 200
        assert kinds(stream.read_to_end()) == ["start", "t0", "t1", "completed"]


# -- keep-alive (spec §11.2) ---------------------------------------------------------------


def test_keepalive_when_idle_and_its_timer_restarts_on_each_event(serve_source, connect, tmp_path):
    """`: keep-alive` after `keepalive` s of silence; none while events come faster than that."""
    gate = tmp_path / "gate"
    with serve_source(GATED, keepalive=1.0) as s:
        # 75 events 20 ms apart (1.5 s in all), then silence at the gate.
        stream = connect(
            s,
            "POST",
            "/predictions",
            {"input": {"n": 75, "pace": 0.02, "hold_at": 75, "gate": str(gate)}},
        )
        paced = stream.read_until(is_output(74))
        idle = stream.read_until(lambda item: item.name == ":")
        idle += stream.read_until(lambda item: item.name == ":")
        gate.touch()
        rest = stream.read_to_end()
    assert ":" not in kinds(paced)
    assert kinds(idle) == [":", ":"]
    assert [i.data for i in idle] == ["keep-alive", "keep-alive"]
    assert idle[1].at - idle[0].at > 0.5  # one per interval, not a burst
    assert b"\n\n: keep-alive\n\n: keep-alive\n\n" in stream.body
    assert kinds(rest)[-1] == "completed"


# -- late subscribers and replay (spec §11.5) -----------------------------------------------


def test_late_subscriber_gets_full_replay_then_live_without_gap_or_duplicate(
    serve_source, connect, tmp_path
):
    """A PUT SSE attach mid-run gets the history, then live events: the creator's exact bytes."""
    gate = tmp_path / "gate"
    with serve_source(GATED) as s:
        creator = connect(
            s,
            "POST",
            "/predictions",
            {"id": "late", "input": {"n": 10, "hold_at": 5, "gate": str(gate)}},
        )
        creator.read_until(is_output(4))
        late = connect(s, "PUT", "/predictions/late", {"input": {"n": 99}})
        assert late.status == 200
        assert kinds(late.read_until(is_output(4))) == ["start", *tokens(5)]
        gate.touch()
        creator_items = creator.read_to_end()
        late_items = late.read_to_end()
    assert kinds(late_items) == ["start", *tokens(10), "completed"]
    assert late_items[-1].data["output"] == tokens(10)  # the attach's own input was ignored
    assert late.body == creator.body
    assert [(i.name, i.data) for i in late_items] == [(i.name, i.data) for i in creator_items]


@pytest.mark.parametrize("configured_by", ["option", "env"])
def test_truncated_replay_sends_error_with_skipped_and_closes(
    serve_source, connect, tmp_path, monkeypatch, configured_by
):
    """History 2 after 10 events: the late subscriber gets only the error, skipped 8, then EOF."""
    gate = tmp_path / "gate"
    options: dict[str, Any] = {}
    if configured_by == "env":
        monkeypatch.setenv("COG_STREAM_HISTORY_CAPACITY", "2")
    else:
        options["history_capacity"] = 2
    with serve_source(GATED, **options) as s:
        creator = connect(
            s,
            "POST",
            "/predictions",
            {"id": "tr", "input": {"n": 12, "hold_at": 9, "gate": str(gate)}},
        )
        creator.read_until(is_output(8))  # start + 9 outputs = 10 events
        late = connect(s, "PUT", "/predictions/tr", {})
        late_items = late.read_to_end()
        gate.touch()
        creator_items = creator.read_to_end()
    assert bytes(late.body) == (
        b'event: error\ndata: {"error":"SSE stream replay truncated; events were dropped",'
        b'"skipped":8}\n\n'
    )
    assert [(i.name, i.data) for i in late_items] == [("error", {"error": TRUNCATED, "skipped": 8})]
    # The creator was still there: the truncated subscriber leaving canceled nothing.
    assert kinds(creator_items) == ["start", *tokens(12), "completed"]
    assert creator_items[-1].data["status"] == "succeeded"


def test_capacity_zero_streams_only_live_events_to_late_subscribers(
    serve_source, connect, tmp_path
):
    """History 0: no replay and no error; a late subscriber gets what comes after it joined."""
    gate = tmp_path / "gate"
    with serve_source(GATED, history_capacity=0) as s:
        creator = connect(
            s,
            "POST",
            "/predictions",
            {"id": "z", "input": {"n": 12, "hold_at": 9, "gate": str(gate)}},
        )
        creator.read_until(is_output(8))
        late = connect(s, "PUT", "/predictions/z", {})
        assert late.status == 200  # the head is flushed once the subscription exists
        gate.touch()
        late_items = late.read_to_end()
        creator_items = creator.read_to_end()
    assert kinds(late_items) == ["t9", "t10", "t11", "completed"]
    assert kinds(creator_items) == ["start", *tokens(12), "completed"]


def test_invalid_history_capacity_env_means_1024_with_a_warning(
    serve_source, connect, tmp_path, monkeypatch, caplog
):
    """COG_STREAM_HISTORY_CAPACITY=nope: a warning, and history 1024 (1101 events -> skipped 77)."""
    monkeypatch.setenv("COG_STREAM_HISTORY_CAPACITY", "nope")
    gate = tmp_path / "gate"
    with caplog.at_level(logging.WARNING, logger="nbcog"), serve_source(GATED) as s:
        creator = connect(
            s,
            "POST",
            "/predictions",
            {"id": "d", "input": {"n": 1100, "hold_at": 1100, "gate": str(gate)}},
        )
        creator.read_until(is_output(1099))
        late_items = connect(s, "PUT", "/predictions/d", {}).read_to_end()
        gate.touch()
        creator.read_to_end()
    assert [(i.name, i.data) for i in late_items] == [
        ("error", {"error": TRUNCATED, "skipped": 77})
    ]
    assert any(
        "COG_STREAM_HISTORY_CAPACITY" in r.getMessage() and "'nope'" in r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING
    )


# -- ownership and cancel on disconnect (spec §11.4) ---------------------------------------


@pytest.mark.parametrize(
    "headers",
    [(("Accept", SSE),), (("Accept", SSE), ("Prefer", "respond-async"))],
    ids=["sse", "sse+async"],
)
def test_creator_disconnect_cancels_promptly_while_nothing_is_written(
    serve_source, connect, hooks, tmp_path, headers
):
    """The SSE creator hangs up while the predictor is silent: it is canceled without a write.

    The keep-alive is an hour and the predictor holds at its gate, so nothing would be written
    to the closed socket for far longer than ``hooks.terminal`` waits: the canceled webhook
    can only come from noticing the close itself.
    """
    with serve_source(GATED, keepalive=3600.0) as s:
        stream = connect(
            s,
            "POST",
            "/predictions",
            hooks.request(n=2, hold_at=0, gate=str(tmp_path / "never")),
            headers=headers,
        )
        stream.read_until(lambda item: item.name == "start")
        stream.close()
        done = hooks.terminal()
        assert (
            requests.post(s.url + f"/predictions/{done['id']}/cancel", timeout=WAIT).status_code
            == 404
        )
    assert done["status"] == "canceled"


def test_attached_subscriber_keeps_the_prediction_alive_until_it_leaves(
    serve_source, connect, hooks, tmp_path
):
    """Creator gone, a PUT subscriber remains: it runs on; the last one leaving cancels it."""
    gate, never = tmp_path / "gate", tmp_path / "never"
    with serve_source(GATED) as s:
        request = hooks.request(n=6, hold_at=2, gate=str(gate), hold2_at=4, gate2=str(never))
        creator = connect(s, "PUT", "/predictions/own", request)
        creator.read_until(is_output(1))
        attached = connect(s, "PUT", "/predictions/own", {})
        attached.read_until(is_output(1))
        creator.close()
        wait_until(lambda: stream_subscribers(s, "own") == 1)
        gate.touch()
        assert kinds(attached.read_until(is_output(3))) == ["t2", "t3"]  # still running
        attached.close()
        done = hooks.terminal()
    assert (done["status"], done["output"]) == ("canceled", tokens(4))


def test_async_json_predictions_survive_their_subscribers_leaving(
    serve_source, connect, hooks, tmp_path
):
    """Created with Prefer: respond-async, a prediction runs on when every SSE subscriber left."""
    gate = tmp_path / "gate"
    with serve_source(GATED) as s:
        created = requests.put(
            s.url + "/predictions/bg",
            json=hooks.request(n=3, hold_at=1, gate=str(gate)),
            headers={"Prefer": "respond-async"},
            timeout=WAIT,
        )
        assert created.status_code == 202
        subscriber = connect(s, "PUT", "/predictions/bg", {})
        subscriber.read_until(is_output(0))
        subscriber.close()
        wait_until(lambda: stream_subscribers(s, "bg") == 0)
        gate.touch()
        done = hooks.terminal()
    assert (done["status"], done["output"]) == ("succeeded", tokens(3))


def test_sync_json_client_disconnect_cancels(serve_source, hooks, tmp_path):
    """A sync JSON request whose connection drops cancels its prediction."""
    with serve_source(GATED) as s:
        sock = socket.create_connection(("127.0.0.1", s.server.port), timeout=WAIT)
        try:
            body = json.dumps(hooks.request(n=2, hold_at=0, gate=str(tmp_path / "never"))).encode()
            sock.sendall(
                b"POST /predictions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            hooks.wait_for("processing")
        finally:
            sock.close()
        done = hooks.terminal()
    assert done["status"] == "canceled"


# -- many and slow subscribers (spec §11.6) -------------------------------------------------


def test_hundred_concurrent_subscribers_all_receive_every_event_in_order(
    serve_source, connect, tmp_path
):
    """The creator and 99 PUT subscribers, each on a thread, get start, 200 tokens, completed."""
    gate = tmp_path / "gate"
    joined = threading.Semaphore(0)
    results: dict[int, list[Item]] = {}
    errors: list[BaseException] = []

    def follow(number: int, stream: RawStream) -> None:
        try:
            stream.read_until(is_output(9))
            joined.release()
            results[number] = stream.read_to_end()
        except BaseException as exc:
            errors.append(exc)
            joined.release()

    with serve_source(GATED) as s:
        creator = connect(
            s, "PUT", "/predictions/many", {"input": {"n": 200, "hold_at": 10, "gate": str(gate)}}
        )
        streams = [creator] + [connect(s, "PUT", "/predictions/many", {}) for _ in range(99)]
        threads = [
            threading.Thread(target=follow, args=(n, st), daemon=True)
            for n, st in enumerate(streams)
        ]
        for thread in threads:
            thread.start()
        for _ in threads:
            assert joined.acquire(timeout=WAIT)
        gate.touch()
        for thread in threads:
            thread.join(WAIT)
    assert errors == []
    assert sorted(results) == list(range(100))
    expected = [(i.name, i.data) for i in results[0]]
    assert kinds(results[0]) == ["start", *tokens(200), "completed"]
    for items in results.values():
        assert [(i.name, i.data) for i in items] == expected


def test_a_subscriber_that_never_reads_is_lagged_and_stalls_nobody(serve_source, connect, tmp_path):
    """A non-reader gets a prefix then the lag error (coglet's skipped); the other gets all."""
    gate = tmp_path / "gate"
    n, pad = 20_000, 1000  # 20 MB: far more than socket buffers and the 1024-event queue hold
    with serve_source(GATED) as s:
        fast = connect(
            s,
            "PUT",
            "/predictions/lag",
            {"input": {"n": n, "pad": pad, "hold_at": 0, "gate": str(gate)}},
        )
        slow = connect(s, "PUT", "/predictions/lag", {}, rcvbuf=4096)
        assert kinds(slow.read_until(lambda item: item.name == "start")) == ["start"]
        fast_items: list[Item] = []
        reader = threading.Thread(target=lambda: fast_items.extend(fast.read_to_end()), daemon=True)
        reader.start()
        gate.touch()
        reader.join(60)
        assert not reader.is_alive()
        # The slow subscriber has not read a byte since start, yet the prediction is over and
        # the server answers.
        assert requests.get(s.url + "/health-check", timeout=WAIT).json()["status"] == "READY"
        slow_items = slow.read_to_end()
    assert kinds(fast_items) == ["start", *tokens(n), "completed"]
    assert fast_items[-1].data["status"] == "succeeded"
    *prefix, error = slow_items
    received_outputs = len(prefix) - 1
    assert 0 < received_outputs < n
    assert kinds(prefix) == ["start", *tokens(received_outputs)]
    assert error.name == "error"
    total = n + 2  # start, the outputs, completed
    assert error.data == {"error": LAGGED, "skipped": total - len(prefix) - 1024}


def test_a_creator_that_lags_cancels_its_prediction_before_reading_on(
    serve_source, connect, hooks, tmp_path
):
    """A creator 1024+ events behind stops counting at once: canceled while it reads nothing."""
    n, pad = 20_000, 1000
    with serve_source(GATED) as s:
        request = hooks.request(n=n + 1, pad=pad, hold_at=n, gate=str(tmp_path / "never"))
        creator = connect(s, "PUT", "/predictions/lc", request, rcvbuf=4096)
        assert kinds(creator.read_until(lambda item: item.name == "start")) == ["start"]
        # Without the cancel-on-lag rule this waits for the predictor's 120 s hold.
        done = hooks.terminal()
        assert done["status"] == "canceled"
        assert requests.get(s.url + "/health-check", timeout=WAIT).json()["status"] == "READY"
        *prefix, error = creator.read_to_end()
    assert kinds(prefix) == ["start", *tokens(len(prefix) - 1)]
    total = len(done["output"]) + 2  # start, the outputs, completed
    assert (error.name, error.data) == (
        "error",
        {"error": LAGGED, "skipped": total - len(prefix) - 1024},
    )
