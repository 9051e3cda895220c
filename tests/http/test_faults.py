"""Fault injection: malformed requests of every kind get a 4xx, log no traceback, lose no slot.

One real server (a streaming predictor whose ``setup()`` prints undecodable bytes) takes every
case in turn; after each, ``/health-check`` must say READY, so a case that leaked the only
slot fails the next check. The statuses and texts are coglet 0.23.1's (live), except where a
comment says otherwise. The slot-leak cases (a lone surrogate in the body ``id``, an exception
quoting undecodable bytes, an id no encoder can write) hang, 500 or stay BUSY on the code
before issue 12.
"""

from __future__ import annotations

import asyncio
import logging
import os
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from faults import Response, exchange, health, request, tracebacks
from helpers import wait_until

from nbcog.service import CreateRequest, Mode, PredictionRef
from nbcog.testing import RunningServer, serve_in_thread

PREDICTOR = """
import os
import time
from typing import Iterator

from cog import BaseRunner, streaming


class Predictor(BaseRunner):
    def setup(self) -> None:
        print("setup says", os.fsdecode(b"\\xff"))

    @streaming
    def run(self, text: str = "hi", gate: str = "", fail: bool = False) -> Iterator[str]:
        print("predict says", os.fsdecode(b"\\xfe"))
        deadline = time.monotonic() + 60
        while gate and not os.path.exists(gate) and time.monotonic() < deadline:
            time.sleep(0.005)
        if fail:
            raise ValueError("bad " + os.fsdecode(b"\\xfd"))
        yield text
"""

PARSE = "Failed to parse the request body as JSON: "
DESERIALIZE = "Failed to deserialize the JSON body into the target type: "
TLS_CLIENT_HELLO = bytes.fromhex("160301012c010001280303") + bytes(range(32)) + b"\x00" * 200


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    path = tmp_path_factory.mktemp("faults") / "predict.py"
    path.write_text(textwrap.dedent(PREDICTOR))
    with serve_in_thread(f"{path}:Predictor") as running:
        yield running


@pytest.fixture
def port(served: RunningServer, caplog: pytest.LogCaptureFixture) -> Iterator[int]:
    """The server's port; after the test it must be READY, with no traceback logged."""
    caplog.set_level(logging.DEBUG)
    yield served.server.port
    assert health(served.server.port) == "READY"
    assert tracebacks(caplog.records) == []


def post(body: bytes, *, path: str = "/predictions", method: str = "POST", **kw: Any) -> bytes:
    return request(method, path, body, **kw)


SSE = {"Accept": "text/event-stream"}
ASYNC = {"Prefer": "respond-async"}

BAD_IDS = [
    pytest.param(
        post(rb'{"id":"a\udfff","input":{}}'),
        400,
        PARSE + "id: lone leading surrogate in hex escape at line 1 column 14",
        id="lone-trailing-surrogate-sync",
    ),
    pytest.param(
        post(rb'{"id":"a\udfff","input":{}}', headers=ASYNC),
        400,
        PARSE + "id: lone leading surrogate in hex escape at line 1 column 14",
        id="lone-trailing-surrogate-async",
    ),
    pytest.param(
        post(rb'{"id":"a\udfff","input":{}}', headers=SSE),
        400,
        PARSE + "id: lone leading surrogate in hex escape at line 1 column 14",
        id="lone-trailing-surrogate-sse",
    ),
    pytest.param(
        post(rb'{"id":"a\ud800","input":{}}'),
        400,
        PARSE + "id: unexpected end of hex escape at line 1 column 15",
        id="lone-leading-surrogate",
    ),
    pytest.param(
        post(b'{"id":"a\xff","input":{}}'),
        400,
        PARSE + "id: invalid unicode code point at line 1 column 10",
        id="invalid-utf8-id",
    ),
    pytest.param(
        post(b'{"input":{}}', path="/predictions/a%ED%A0%80", method="PUT"),
        400,
        "Invalid URL: Invalid UTF-8 in `id`",
        id="put-path-id-not-utf8",
    ),
    pytest.param(
        post(rb'{"id":"\udfff"}', path="/predictions/x", method="PUT", headers=SSE),
        400,
        PARSE + "id: lone leading surrogate in hex escape at line 1 column 13",
        id="put-body-id-surrogate",
    ),
    pytest.param(post(b'{"id":5}'), 422, None, id="id-not-a-string"),
]

BAD_BODIES = [
    pytest.param(
        post(rb'{"input":{"text":"a\ud800"}}'),
        400,
        PARSE + "input.text: unexpected end of hex escape at line 1 column 26",
        id="input-surrogate",
    ),
    pytest.param(
        post(rb'{"input":{},"context":{"k":"\ud800"}}'),
        400,
        PARSE + "context.k: unexpected end of hex escape at line 1 column 35",
        id="context-surrogate",
    ),
    pytest.param(
        post(rb'{"input":{"\udfff":"x"}}'),
        400,
        PARSE + "input.\ufffd: lone leading surrogate in hex escape at line 1 column 17",
        id="key-surrogate",
    ),
    pytest.param(
        post(b'{"input":{"text":NaN}}'),
        400,
        PARSE + "input.text: expected value at line 1 column 18",
        id="nan",
    ),
    pytest.param(
        post(b'{"input":{"text":Infinity}}'),
        400,
        PARSE + "input.text: expected value at line 1 column 18",
        id="infinity",
    ),
    pytest.param(post(b'{"input":{"text":-Infinity}}'), 400, None, id="minus-infinity"),
    pytest.param(
        post(b'\xef\xbb\xbf{"input":{}}'),
        400,
        PARSE + "expected value at line 1 column 1",
        id="bom",
    ),
    pytest.param(post('{"input":{}}'.encode("utf-16")), 400, None, id="utf16"),
    pytest.param(
        post('{"input":{"text":"é"}}'.encode("latin-1")),
        400,
        PARSE + "input.text: invalid unicode code point at line 1 column 20",
        id="latin1",
    ),
    pytest.param(post(b'{"input":' + b"[" * 100_000 + b"}"), 400, None, id="100k-brackets"),
    pytest.param(
        post(b'{"input":{},"context":' + b'{"a":' * 5000 + b"}"), 400, None, id="5k-braces"
    ),
    pytest.param(
        post(b'{"input":{"text":' + b"[" * 126 + b"]" * 126 + b"}}"),
        400,
        None,
        id="nested-128",  # 128 levels with the two objects: one too many for serde
    ),
    pytest.param(post(b""), 400, None, id="empty"),
    pytest.param(post(b'{"input":'), 400, None, id="truncated"),
    pytest.param(post(b"hello"), 400, None, id="not-json"),
    pytest.param(post(b"{}", content_type="text/plain"), 415, None, id="text-plain"),
    pytest.param(post(b'{"input":[1]}'), 422, None, id="input-not-an-object"),
    pytest.param(post(b'{"input":{"text":5}}'), 422, None, id="input-wrong-type"),
    pytest.param(post(b'{"webhook_events_filter":["nope"]}'), 422, None, id="bad-filter"),
    pytest.param(post(b'{"context":{"k":1}}'), 422, None, id="context-not-strings"),
    pytest.param(
        b"POST /predictions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 200000000\r\nConnection: close\r\n\r\n{}",
        413,
        "Failed to buffer the request body: length limit exceeded",
        id="too-large",
    ),
]

BAD_HEADS = [
    pytest.param(
        request("GET", "/health-check", headers={"X-Big": "a" * 65536}), 431, None, id="64k-header"
    ),
    pytest.param(
        request("GET", "/health-check", headers={f"X-H{i}": "v" * 400 for i in range(200)}),
        431,
        None,
        id="many-headers",
    ),
    pytest.param(request("GET", "/health-check?" + "a" * 102_400), 414, None, id="100k-url"),
    pytest.param(TLS_CLIENT_HELLO, 400, None, id="tls-client-hello"),
    pytest.param(b"\x00\x01\x02garbage\r\n\r\n", 400, None, id="binary-garbage"),
    pytest.param(b"GET / HTTP/9.9\r\nHost: x\r\n\r\n", 400, None, id="bad-version"),
    pytest.param(b"GET / HTTP/1.1\r\nHost x\r\n\r\n", 400, None, id="header-without-colon"),
    pytest.param(b"GET /\r\n\r\n", 400, None, id="no-version"),
    pytest.param(
        b"POST /predictions HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        400,
        None,
        id="content-length-not-a-number",
    ),
    pytest.param(
        b"POST /predictions HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
        None,
        id="length-and-chunked",
    ),
]

ODD_METHODS = [
    pytest.param("DELETE", "/predictions", "POST", id="delete-predictions"),
    pytest.param("GET", "/predictions", "POST", id="get-predictions"),
    pytest.param("PATCH", "/predictions/x", "PUT", id="patch-prediction"),
    pytest.param("GET", "/predictions/x", "PUT", id="get-prediction"),
    pytest.param("GET", "/predictions/x/cancel", "POST", id="get-cancel"),
    pytest.param("POST", "/health-check", "GET,HEAD", id="post-health"),
    pytest.param("PUT", "/openapi.json", "GET,HEAD", id="put-openapi"),
    pytest.param("OPTIONS", "/", "GET,HEAD", id="options-root"),
    pytest.param("GET", "/shutdown", "POST", id="get-shutdown"),
    pytest.param("FOO", "/predictions", "POST", id="unknown-method"),
]


def check(response: Response, status: int, text: str | None) -> None:
    assert response.status == status, response
    if text is not None:
        assert response.text == text


@pytest.mark.parametrize(("raw", "status", "text"), BAD_IDS)
def test_bad_ids_get_coglets_4xx_and_keep_the_slot(
    port: int, raw: bytes, status: int, text: str | None
) -> None:
    """An id no encoder can write is refused like coglet, in every mode; the slot stays free."""
    check(exchange(port, raw), status, text)


@pytest.mark.parametrize(("raw", "status", "text"), BAD_BODIES)
def test_bad_bodies_get_coglets_4xx(port: int, raw: bytes, status: int, text: str | None) -> None:
    """Surrogates, NaN, BOMs, bad UTF-8, deep nesting and wrong types: a 4xx, never a 500."""
    check(exchange(port, raw), status, text)


@pytest.mark.parametrize(("raw", "status", "text"), BAD_HEADS)
def test_bad_request_heads_get_a_status_line(
    port: int, raw: bytes, status: int, text: str | None
) -> None:
    """Huge heads, huge URLs, TLS bytes and malformed lines are answered, not dropped."""
    check(exchange(port, raw), status, text)


@pytest.mark.parametrize(("method", "path", "allow"), ODD_METHODS)
def test_wrong_methods_get_405_with_allow(port: int, method: str, path: str, allow: str) -> None:
    """A known path with a method it does not serve: 405, empty, ``Allow`` as coglet's."""
    response = exchange(port, request(method, path, b"" if method != "GET" else None))
    assert (response.status, response.headers.get("allow"), response.body) == (405, allow, b"")


@pytest.mark.parametrize("path", ["/", "/health-check", "/openapi.json"])
def test_head_on_get_routes_answers_headers_only(port: int, path: str) -> None:
    """HEAD works wherever GET does (coglet's ``GET,HEAD``): 200, no body."""
    response = exchange(port, request("HEAD", path))
    assert (response.status, response.body) == (200, b"")
    assert response.headers["content-type"] == "application/json"


def test_unknown_paths_get_404_for_every_method(port: int) -> None:
    """404 with an empty body, whatever the method."""
    for method in ("GET", "POST", "PUT", "DELETE", "FOO"):
        response = exchange(port, request(method, "/nope", b"" if method != "GET" else None))
        assert (response.status, response.body) == (404, b"")


def test_setup_printing_undecodable_bytes_keeps_health_answering(port: int) -> None:
    """setup() printed ``os.fsdecode(b"\\xff")``: its logs show U+FFFD, health is 200."""
    response = exchange(port, request("GET", "/health-check"))
    assert response.status == 200
    assert "setup says \ufffd\n" in response.json()["setup"]["logs"]


def test_predict_printing_undecodable_bytes_logs_replacement_characters(port: int) -> None:
    """A prediction's logs are text whatever bytes predict() printed."""
    response = exchange(port, post(b'{"input":{}}'))
    assert response.status == 200
    assert (response.json()["status"], response.json()["logs"]) == (
        "succeeded",
        "predict says \ufffd\n",
    )


def test_an_exception_quoting_undecodable_bytes_fails_the_prediction_cleanly(port: int) -> None:
    """The error string can always be sent: U+FFFD for the bad byte, then READY."""
    response = exchange(port, post(b'{"input":{"fail":true}}'))
    assert response.status == 200
    body = response.json()
    assert (body["status"], body["error"]) == (
        "failed",
        "Prediction failed: Generator iteration error: ValueError: bad \ufffd",
    )


def test_put_attach_with_a_surrogate_in_its_input_is_a_400(port: int, tmp_path: Path) -> None:
    """Attaching to an in-flight id with an unencodable body: 400; the prediction goes on."""
    gate = tmp_path / "gate"
    body = f'{{"input":{{"gate":"{gate}"}}}}'.encode()
    created = exchange(port, post(body, path="/predictions/att", method="PUT", headers=ASYNC))
    assert created.status == 202
    attach = post(rb'{"input":{"text":"a\ud800"}}', path="/predictions/att", method="PUT")
    message = PARSE + "input.text: unexpected end of hex escape at line 1 column 26"
    check(exchange(port, attach), 400, message)
    assert health(port) == "BUSY"  # still running, untouched by the refused attach
    gate.touch()
    wait_until(lambda: health(port) == "READY", "READY")
    # The same id again once it is done: a new prediction (finished ids are forgotten).
    again = exchange(port, post(b'{"input":{}}', path="/predictions/att", method="PUT"))
    assert (again.status, again.json()["status"]) == (200, "succeeded")


def create_unencodable(served: RunningServer) -> PredictionRef:
    """Create a prediction in-process with a lone surrogate id; wait until it ends."""
    service = served.server.service
    assert service is not None
    done: asyncio.Future[PredictionRef] = served.loop.create_future()

    def create() -> None:
        entry = service.create(CreateRequest(id="a\udfff"), mode=Mode.ASYNC)
        entry.on_done(done.set_result)  # called on the loop thread

    served.call(create)
    return asyncio.run_coroutine_threadsafe(_wait(done), served.loop).result(30)


def test_an_id_the_runner_cannot_encode_ends_failed_and_frees_the_slot(
    served: RunningServer, port: int
) -> None:
    """In-process creates skip the HTTP parse: a surrogate id still ends ``failed``, not stuck."""
    entry = create_unencodable(served)
    assert entry.prediction.status.value == "failed"
    assert entry.prediction.error is not None
    assert entry.prediction.error.startswith(
        "Prediction failed: internal error: UnicodeEncodeError"
    )
    ok = exchange(port, post(b'{"input":{}}'))
    assert ok.json()["status"] == "succeeded"


def test_put_attach_to_an_input_no_encoder_can_write_answers_with_replacement(
    served: RunningServer, port: int, tmp_path: Path
) -> None:
    """An in-process prediction's input holds a lone surrogate: attach is 202, not 500."""
    service = served.server.service
    assert service is not None
    gate = tmp_path / "gate"
    request_ = CreateRequest(input={"text": "a\udcff", "gate": str(gate)})
    served.call(lambda: service.create(request_, mode=Mode.ASYNC, put_id="odd"))
    attached = exchange(port, post(b"{}", path="/predictions/odd", method="PUT"))
    assert (attached.status, attached.json()["input"]["text"]) == (202, "a\ufffd")
    gate.touch()
    wait_until(lambda: health(port) == "READY", "READY")


ASYNC_PREDICTOR = """
from cog import BasePredictor


class Predictor(BasePredictor):
    async def predict(self, text: str = "hi") -> str:
        return text
"""


def test_an_async_predictor_with_an_unencodable_id_ends_failed_too(tmp_path: Path) -> None:
    """The async runner path has the same guard: failed, and the next prediction runs."""
    path = tmp_path / "predict.py"
    path.write_text(textwrap.dedent(ASYNC_PREDICTOR))
    with serve_in_thread(f"{path}:Predictor") as s:
        entry = create_unencodable(s)
        assert entry.prediction.status.value == "failed"
        ok = exchange(s.server.port, post(b'{"input":{}}'))
        assert (ok.json()["status"], ok.json()["output"]) == ("succeeded", "hi")
        assert health(s.server.port) == "READY"


async def _wait(future: asyncio.Future[PredictionRef]) -> PredictionRef:
    return await future


def test_every_case_leaves_no_open_file_behind(served: RunningServer) -> None:
    """Refused connections are closed after their answer: the fd count returns to where it was."""
    before = len(os.listdir("/proc/self/fd"))
    for raw in (TLS_CLIENT_HELLO, request("GET", "/health-check?" + "a" * 102_400)):
        for _ in range(20):
            exchange(served.server.port, raw)
    assert health(served.server.port) == "READY"
    assert len(os.listdir("/proc/self/fd")) <= before


def test_an_evicted_prediction_is_as_unknown_as_any_finished_one(tmp_path: Path) -> None:
    """Kept in ``recent`` or evicted by the byte budget: cancel 404, GET 405, PUT runs anew."""
    path = tmp_path / "predict.py"
    path.write_text(textwrap.dedent(PREDICTOR))
    with serve_in_thread(f"{path}:Predictor", recent_bytes=4_000) as s:
        port = s.server.port
        big = b'{"input":{"text":"' + b"x" * 5_000 + b'"}}'
        for prediction_id, body in (("kept", b'{"input":{}}'), ("evicted", big)):
            first = exchange(port, post(body, path=f"/predictions/{prediction_id}", method="PUT"))
            assert first.json()["status"] == "succeeded"
        service = s.server.service
        assert service is not None
        assert s.call(lambda: [p.id for p in service.recent]) == ["kept"]
        for prediction_id in ("kept", "evicted"):
            cancel = exchange(port, post(b"", path=f"/predictions/{prediction_id}/cancel"))
            assert (cancel.status, cancel.body) == (404, b"{}")
            get = exchange(port, request("GET", f"/predictions/{prediction_id}"))
            assert (get.status, get.headers["allow"]) == (405, "PUT")
            again = exchange(
                port, post(b'{"input":{}}', path=f"/predictions/{prediction_id}", method="PUT")
            )
            assert (again.status, again.json()["status"]) == (200, "succeeded")
        assert health(port) == "READY"
