"""Failures over HTTP: prediction error strings (spec §9.4) and bad requests (spec §2, §6, §14).

Every test talks to a real nbcog server, and every bad request is followed by a good one on
the same server. The error strings and the 400/413/415/422 statuses, content types and fixed
texts match coglet 0.23.1 (checked live); the free-form detail after coglet's 400/422 text
prefixes comes from Python's parsers here, from serde there.
"""

from __future__ import annotations

import http.client
import socket
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from helpers import wait_until

from nbcog.testing import parse_sse

RAISES = """
import sys
from cog import BaseRunner

class Predictor(BaseRunner):
    def run(self, kind: str = "ok") -> str:
        class MyErr(Exception):
            pass

        print("before")
        if kind == "value":
            raise ValueError("boom")
        if kind == "empty":
            raise ValueError()
        if kind == "key":
            raise KeyError("k")
        if kind == "exit":
            sys.exit(3)
        if kind == "local":
            raise MyErr("msg")
        return "ok"
"""

GENERATOR = """
from typing import Iterator
from cog import BaseRunner, streaming

class Predictor(BaseRunner):
    @streaming
    def run(self, kind: str = "ok") -> Iterator[str]:
        print("generating")
        if kind == "early":
            raise ValueError("early")
        yield "a"
        if kind == "mid":
            raise RuntimeError("mid")
        yield "b"
"""

ASYNC = """
from cog import BaseRunner

class Predictor(BaseRunner):
    async def run(self, kind: str = "ok") -> str:
        if kind == "raise":
            raise ValueError("async boom")
        return "ok"
"""

ASYNC_GENERATOR = """
from typing import AsyncIterator
from cog import BaseRunner

class Predictor(BaseRunner):
    async def run(self, kind: str = "ok") -> AsyncIterator[str]:
        if kind == "early":
            raise ValueError("early")
        yield "a"
        if kind == "mid":
            raise RuntimeError("mid")
        yield "b"
"""

ECHO = """
from cog import BaseRunner

class Predictor(BaseRunner):
    def run(self, text: str = "default") -> str:
        return text
"""

REQUIRED = """
from cog import BaseRunner

class Predictor(BaseRunner):
    def run(self, text: str) -> str:
        return text
"""

# Marks its start, then swallows cancels (marking them too) until the test creates the gate.
# Everything it does sits inside the try, so a cancel can never land outside it unseen.
STUBBORN = """
import os, time
from cog import BaseRunner, CancelationException

class Predictor(BaseRunner):
    def run(self, gate: str) -> str:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                open(gate + ".started", "w").close()
                while not os.path.exists(gate):
                    if time.monotonic() > deadline:
                        raise TimeoutError(gate)
                    time.sleep(0.005)
                return "done"
            except CancelationException:
                open(gate + ".canceled", "w").close()
        return "timed out"
"""


JSON = {"Content-Type": "application/json"}
PARSE_PREFIX = "Failed to parse the request body as JSON: "
DESERIALIZE_PREFIX = "Failed to deserialize the JSON body into the target type: "
TEXT = "text/plain; charset=utf-8"


def sync_body(url: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """A sync prediction's body (always HTTP 200, failed or not)."""
    response = requests.post(url + "/predictions", json={"input": inputs}, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


def failure(url: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """The body of a sync prediction that must fail: no output, an error, the real logs."""
    body = sync_body(url, inputs)
    assert body["status"] == "failed", body
    assert set(body) == {"id", "status", "error", "logs", "metrics"}
    return body


def assert_still_serving(url: str, inputs: dict[str, Any] | None = None) -> None:
    """The server still runs good predictions (and says READY)."""
    assert sync_body(url, inputs or {})["status"] == "succeeded"
    assert requests.get(url + "/health-check", timeout=30).json()["status"] == "READY"


def raw_post(url: str, head: bytes, body: bytes = b"") -> http.client.HTTPResponse:
    """Send ``POST /predictions`` with exactly these header lines and body bytes, in one write.

    Returns the response, body already read (``.data``). One write means the server has the
    whole request when it answers, so an early 413 never races our own sending.
    """
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=60) as sock:
        request = b"POST /predictions HTTP/1.1\r\nHost: test\r\nConnection: close\r\n"
        sock.sendall(request + head + b"\r\n" + body)
        response = http.client.HTTPResponse(sock)
        response.begin()
        response.data = response.read()  # type: ignore[attr-defined]
        response.close()
        return response


def cancel(url: str, prediction_id: str) -> requests.Response:
    """``POST /predictions/{id}/cancel``."""
    return requests.post(url + f"/predictions/{prediction_id}/cancel", timeout=30)


def chunked(*parts: bytes) -> bytes:
    """``parts`` as a chunked transfer-encoded body."""
    return b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in parts) + b"0\r\n\r\n"


# --- error strings (spec §9.4) ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "error"),
    [
        ("value", "Prediction failed: Prediction failed: ValueError: boom"),
        ("empty", "Prediction failed: Prediction failed: ValueError: "),
        ("key", "Prediction failed: Prediction failed: KeyError: 'k'"),
        ("exit", "Prediction failed: Prediction failed: SystemExit: 3"),
        ("local", "Prediction failed: Prediction failed: Predictor.run.<locals>.MyErr: msg"),
    ],
)
def test_sync_exception_error_strings(serve_source, kind, error):
    """A sync run() that raises fails with coglet's doubled prefix and the exception's qualname."""
    with serve_source(RAISES) as s:
        body = failure(s.url, {"kind": kind})
        assert_still_serving(s.url)
    assert body["error"] == error
    # coglet sends "logs": "" here (spec §21.3); nbcog keeps the real logs.
    assert body["logs"] == "before\n"


def test_sys_exit_fails_only_that_prediction(serve_source):
    """sys.exit(3) in run() fails that prediction; the server and this process keep going."""
    with serve_source(RAISES) as s:
        for _ in range(2):
            assert failure(s.url, {"kind": "exit"})["error"].endswith("SystemExit: 3")
            assert s.server.running
            assert_still_serving(s.url, {"kind": "ok"})


def test_generator_raising_before_its_first_yield(serve_source):
    """Code before a generator's first yield fails with the generator prefix."""
    with serve_source(GENERATOR) as s:
        body = failure(s.url, {"kind": "early"})
        assert_still_serving(s.url)
    assert body["error"] == "Prediction failed: Generator iteration error: ValueError: early"
    assert body["logs"] == "generating\n"


def test_generator_raising_mid_stream(serve_source):
    """A mid-stream raise fails it; the partial output is in the snapshot, not the sync body."""
    with serve_source(GENERATOR) as s:
        body = failure(s.url, {"kind": "mid"})
        events = parse_sse(
            requests.post(
                s.url + "/predictions",
                json={"input": {"kind": "mid"}},
                headers={"Accept": "text/event-stream"},
                timeout=60,
            ).content
        )
        assert_still_serving(s.url)
    error = "Prediction failed: Generator iteration error: RuntimeError: mid"
    assert body["error"] == error
    assert [name for name, _ in events] == ["start", "log", "output", "completed"]
    completed = events[-1][1]
    assert completed["status"] == "failed"
    assert completed["error"] == error
    assert completed["output"] == ["a"]


@pytest.mark.parametrize(
    ("source", "kind", "error"),
    [
        (ASYNC, "raise", "Prediction failed: Async prediction failed: ValueError: async boom"),
        (ASYNC_GENERATOR, "early", "Prediction failed: Async prediction failed: ValueError: early"),
        (ASYNC_GENERATOR, "mid", "Prediction failed: Async prediction failed: RuntimeError: mid"),
    ],
    ids=["coroutine", "async-generator-early", "async-generator-mid"],
)
def test_async_exception_error_strings(serve_source, source, kind, error):
    """Async run() and async generators that raise fail with the async prefix."""
    with serve_source(source) as s:
        assert failure(s.url, {"kind": kind})["error"] == error
        assert_still_serving(s.url)


# --- malformed envelopes (spec §6) ------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [b"{not json", b"", b'{"input": {"text": "x"}} trailing', b"\xff", b'{"input": '],
)
def test_invalid_json_is_400_text(serve_source, body):
    """Invalid or empty JSON with a JSON content type gets 400 text with coglet's prefix."""
    with serve_source(ECHO) as s:
        response = requests.post(s.url + "/predictions", data=body, headers=JSON, timeout=30)
        put = requests.put(s.url + "/predictions/p1", data=body, headers=JSON, timeout=30)
        assert_still_serving(s.url)
    for answer in (response, put):
        assert answer.status_code == 400
        assert answer.headers["Content-Type"] == TEXT
        assert answer.text.startswith(PARSE_PREFIX)
        assert len(answer.text) > len(PARSE_PREFIX)


@pytest.mark.parametrize(
    "envelope",
    [
        b'{"id": 5}',
        b'{"webhook_events_filter": ["start", "bogus"]}',
        b'{"context": {"a": 1}}',
        b'{"webhook": 5}',
        b"null",
        b"[1]",
    ],
)
def test_wrong_envelope_field_types_are_422_text(serve_source, envelope):
    """Valid JSON with a wrongly typed envelope field gets 422 text with coglet's prefix."""
    with serve_source(ECHO) as s:
        response = requests.post(s.url + "/predictions", data=envelope, headers=JSON, timeout=30)
        assert_still_serving(s.url)
    assert response.status_code == 422
    assert response.headers["Content-Type"] == TEXT
    assert response.text.startswith(DESERIALIZE_PREFIX)
    assert len(response.text) > len(DESERIALIZE_PREFIX)


def test_unknown_top_level_fields_are_ignored(serve_source):
    """Unknown envelope fields do not matter; the prediction runs."""
    with serve_source(ECHO) as s:
        response = requests.post(
            s.url + "/predictions",
            json={"input": {"text": "x"}, "extra": [1], "output_file_prefix": None},
            timeout=30,
        )
    assert response.json()["output"] == "x"


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b'["x"]', b'[\\"x\\"] is not of type \\"object\\"'),
        (b'"x"', b'\\"x\\" is not of type \\"object\\"'),
    ],
)
def test_input_that_is_not_an_object_is_a_root_422(serve_source, payload, message):
    """An 'input' that is not an object gets the JSON 422 at loc __root__."""
    with serve_source(ECHO) as s:
        response = requests.post(
            s.url + "/predictions", data=b'{"input": ' + payload + b"}", headers=JSON, timeout=30
        )
        assert_still_serving(s.url)
    assert response.status_code == 422
    assert response.headers["Content-Type"] == "application/json"
    assert response.content == (
        b'{"detail":[{"loc":["body","input","__root__"],"msg":"'
        + message
        + b'","type":"value_error"}]}'
    )


def test_null_or_missing_input_means_empty(serve_source):
    """'input': null and no 'input' both mean {}: defaults apply, required fields are missing."""
    missing = (
        b'{"detail":[{"loc":["body","input","text"],"msg":"Field required",'
        b'"type":"value_error.missing"}]}'
    )
    with serve_source(ECHO) as s:
        for envelope in (b'{"input": null}', b"{}"):
            response = requests.post(
                s.url + "/predictions", data=envelope, headers=JSON, timeout=30
            )
            assert response.json()["output"] == "default"
    with serve_source(REQUIRED) as s:
        for envelope in (b'{"input": null}', b"{}"):
            response = requests.post(
                s.url + "/predictions", data=envelope, headers=JSON, timeout=30
            )
            assert (response.status_code, response.content) == (422, missing)
        assert_still_serving(s.url, {"text": "x"})


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
def test_non_json_content_type_is_415(serve_source, content_type):
    """A non-JSON Content-Type gets 415 with coglet's exact text, whatever the body."""
    with serve_source(ECHO) as s:
        response = requests.post(
            s.url + "/predictions",
            data=b'{"input": {"text": "x"}}',
            headers={"Content-Type": content_type},
            timeout=30,
        )
        assert_still_serving(s.url)
    assert response.status_code == 415
    assert response.headers["Content-Type"] == TEXT
    assert response.text == "Expected request with `Content-Type: application/json`"


@pytest.mark.parametrize(
    "content_type", ["application/json; charset=utf-8", "application/vnd.api+json"]
)
def test_json_content_type_variants_are_accepted(serve_source, content_type):
    """application/json with parameters and application/*+json bodies are parsed as JSON."""
    with serve_source(ECHO) as s:
        response = requests.post(
            s.url + "/predictions",
            data=b'{"input": {"text": "x"}}',
            headers={"Content-Type": content_type},
            timeout=30,
        )
    assert response.json()["output"] == "x"


def test_no_content_type_ignores_the_body(serve_source):
    """Without a Content-Type the body is ignored and the input is {}."""
    body = b'{"input": {"text": "x"}}'
    head = b"Content-Length: %d\r\n" % len(body)
    with serve_source(ECHO) as s:
        echoed = raw_post(s.url, head, body)
    with serve_source(REQUIRED) as s:
        refused = raw_post(s.url, head, body)
        assert_still_serving(s.url, {"text": "x"})
    assert (echoed.status, echoed.getheader("Content-Type")) == (200, "application/json")
    assert b'"output":"default"' in echoed.data
    assert (refused.status, refused.getheader("Content-Type")) == (422, "application/json")
    assert refused.data == (
        b'{"detail":[{"loc":["body","input","text"],"msg":"Field required",'
        b'"type":"value_error.missing"}]}'
    )


# --- body size limit (spec §2) ----------------------------------------------------------------

LIMIT = 64


def envelope_of_size(size: int) -> bytes:
    """A valid create body of exactly ``size`` bytes."""
    body = b'{"input":{"text":"' + b"x" * (size - 21) + b'"}}'
    assert len(body) == size
    return body


@pytest.fixture
def limited(serve_source) -> Iterator[str]:
    """The URL of an echo server whose request bodies are limited to LIMIT bytes."""
    with serve_source(ECHO, max_body_size=LIMIT) as s:
        yield s.url


@pytest.mark.parametrize("transfer", ["content-length", "chunked"])
def test_body_over_the_limit_is_413(limited, transfer):
    """A body one byte over the limit gets 413 text/plain; one at the limit is accepted."""

    def send(body: bytes) -> http.client.HTTPResponse:
        if transfer == "chunked":
            half = len(body) // 2
            head = b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
            return raw_post(limited, head, chunked(body[:half], body[half:]))
        head = b"Content-Type: application/json\r\nContent-Length: %d\r\n" % len(body)
        return raw_post(limited, head, body)

    refused = send(envelope_of_size(LIMIT + 1))
    assert (refused.status, refused.reason) == (413, "Payload Too Large")
    assert refused.getheader("Content-Type") == TEXT
    assert refused.data == b"Failed to buffer the request body: length limit exceeded"
    accepted = send(envelope_of_size(LIMIT))
    assert accepted.status == 200
    assert b'"status":"succeeded"' in accepted.data
    assert_still_serving(limited)


# --- cancel (spec §14) ------------------------------------------------------------------------


def test_cancel_of_an_unknown_id_is_404_empty_object(serve_source):
    """Cancelling an unknown or finished id gets 404 with the JSON body {}."""
    with serve_source(ECHO) as s:
        response = cancel(s.url, "nope")
        after = cancel(s.url, sync_body(s.url, {})["id"])
        assert_still_serving(s.url)
    assert (response.status_code, response.headers["Content-Type"]) == (404, "application/json")
    assert response.content == b"{}"
    assert (after.status_code, after.content) == (404, b"{}")


def test_cancelling_twice_then_after_the_end(serve_source, tmp_path):
    """Two cancels of an in-flight prediction get 200 {}; it ends canceled; later 404 {}."""
    gate = tmp_path / "gate"
    answers: list[requests.Response] = []
    with serve_source(STUBBORN) as s:
        sync = threading.Thread(
            target=lambda: answers.append(
                requests.post(
                    s.url + "/predictions",
                    json={"id": "twice", "input": {"gate": str(gate)}},
                    timeout=60,
                )
            )
        )
        sync.start()
        # A cancel before run() starts would cancel it before any user code runs.
        wait_until((tmp_path / "gate.started").exists, "run() to start")
        first = cancel(s.url, "twice")
        # The predictor swallows the cancel (marking it with a file) and keeps running.
        wait_until((tmp_path / "gate.canceled").exists, "the cancel to reach run()")
        second = cancel(s.url, "twice")
        gate.touch()
        sync.join(60)
        after = cancel(s.url, "twice")
        assert_still_serving(s.url, {"gate": str(gate)})
    assert (first.status_code, first.content) == (200, b"{}")
    assert (second.status_code, second.content) == (200, b"{}")
    assert (after.status_code, after.content) == (404, b"{}")
    assert answers[0].json()["status"] == "canceled"
