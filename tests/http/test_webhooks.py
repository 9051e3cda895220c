"""Webhooks over HTTP (spec §15): a real nbcog server POSTing to a real local receiver.

Non-terminal webhooks may arrive in any order, so the tests wait for a count and compare
multisets. Exact "nothing else was sent" checks are made after the server has stopped: ``stop()``
drains the webhook queue first, so the receiver's list is final by then.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from webhook_receiver import Receiver

import nbcog
from nbcog.testing import parse_sse

WAIT = 30.0

GENERATOR = """
from typing import Iterator
from cog import BaseRunner

class Predictor(BaseRunner):
    def run(self, n: int = 2) -> Iterator[str]:
        print("one")
        print("two")
        for i in range(n):
            yield f"c{i}"
"""

STREAMING = """
from typing import Iterator
from cog import BaseRunner, streaming

class Predictor(BaseRunner):
    @streaming
    def run(self) -> Iterator[str]:
        print("hi")
        yield "a"
        yield "b"
"""

SINGLE = """
from cog import BaseRunner

class Predictor(BaseRunner):
    def run(self, fail: bool = False) -> str:
        print("hello")
        if fail:
            raise ValueError("boom")
        return "v"
"""


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture(autouse=True)
def webhook_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No throttle unless a test sets one; no auth token unless a test sets one."""
    monkeypatch.setenv("COG_THROTTLE_RESPONSE_INTERVAL", "0")
    monkeypatch.delenv("WEBHOOK_AUTH_TOKEN", raising=False)


def post(url: str, body: dict[str, Any], **headers: str) -> requests.Response:
    return requests.post(url + "/predictions", json=body, headers=headers, timeout=WAIT)


def canonical(bodies: list[Any]) -> list[str]:
    """Order-free comparison of JSON bodies."""
    return sorted(json.dumps(b, sort_keys=True) for b in bodies)


def test_every_event_of_a_generator(serve_source, receiver):
    """start (processing), one logs per line, one output per chunk, completed = the sync body."""
    with serve_source(GENERATOR) as s:
        r = post(s.url, {"id": "g", "webhook": receiver.url})
        assert r.status_code == 200
    received = receiver.wait_for(6)
    assert len(received) == 6
    completed = [x for x in received if x.json["status"] != "processing"]
    assert [x.body for x in completed] == [r.content]
    processing = {"id": "g", "metrics": {}, "status": "processing"}
    assert canonical([x.json for x in received if x not in completed]) == canonical(
        [
            {**processing, "logs": ""},
            {**processing, "logs": "one\n"},
            {**processing, "logs": "one\ntwo\n"},
            {**processing, "logs": "one\ntwo\n", "output": ["c0"]},
            {**processing, "logs": "one\ntwo\n", "output": ["c0", "c1"]},
        ]
    )
    assert r.json()["output"] == ["c0", "c1"]


def test_single_value_is_list_wrapped_until_completed(serve_source, receiver):
    """A single-value predictor's output webhook says ["v"]; completed says "v"."""
    with serve_source(SINGLE) as s:
        r = post(
            s.url,
            {
                "id": "one",
                "webhook": receiver.url,
                "webhook_events_filter": ["output", "completed"],
            },
        )
    bodies = receiver.bodies()
    assert len(bodies) == 2
    output = next(b for b in bodies if b["status"] == "processing")
    completed = next(b for b in bodies if b["status"] == "succeeded")
    assert output == {
        "id": "one",
        "logs": "hello\n",
        "metrics": {},
        "output": ["v"],
        "status": "processing",
    }
    assert completed == r.json()
    assert completed["output"] == "v"


def test_failed_prediction_completed_webhook(serve_source, receiver):
    """A failing predictor's completed webhook carries status failed and coglet's error text."""
    with serve_source(SINGLE) as s:
        r = post(
            s.url,
            {
                "id": "f",
                "input": {"fail": True},
                "webhook": receiver.url,
                "webhook_events_filter": ["completed"],
            },
        )
    [completed] = receiver.bodies()
    assert completed == r.json()
    assert completed["status"] == "failed"
    assert completed["error"] == "Prediction failed: Prediction failed: ValueError: boom"
    assert "output" not in completed


def test_logs_within_the_interval_are_dropped(serve_source, receiver, monkeypatch):
    """With a 60 s throttle, logs webhooks are dropped (not delayed); completed has every line."""
    monkeypatch.setenv("COG_THROTTLE_RESPONSE_INTERVAL", "60")
    with serve_source(GENERATOR) as s:
        post(s.url, {"id": "t", "input": {"n": 0}, "webhook": receiver.url})
    bodies = receiver.bodies()
    assert len(bodies) == 2
    assert {"id": "t", "logs": "", "metrics": {}, "status": "processing"} in bodies
    completed = next(b for b in bodies if b["status"] != "processing")
    assert (completed["status"], completed["logs"], completed["output"]) == (
        "succeeded",
        "one\ntwo\n",
        [],
    )


def test_logs_after_the_interval_are_sent(serve_source, receiver, monkeypatch):
    """Once the interval has passed since the last webhook, a logs webhook goes out again."""
    monkeypatch.setenv("COG_THROTTLE_RESPONSE_INTERVAL", "0.3")
    source = """
    import time
    from cog import BaseRunner

    class Predictor(BaseRunner):
        def run(self) -> str:
            print("early")
            time.sleep(2.0)  # the behaviour under test is the 0.3 s interval passing
            print("late")
            return "ok"
    """
    with serve_source(source) as s:
        post(
            s.url, {"id": "l", "webhook": receiver.url, "webhook_events_filter": ["start", "logs"]}
        )
    bodies = receiver.bodies()
    assert {"id": "l", "logs": "early\nlate\n", "metrics": {}, "status": "processing"} in bodies
    assert bodies.count({"id": "l", "logs": "", "metrics": {}, "status": "processing"}) == 1


def test_metrics_never_fire_webhooks(serve_source, receiver):
    """Recording metrics sends nothing; the metrics ride along in the completed webhook."""
    source = """
    from typing import Any
    from cog import BaseRunner, current_scope

    class Predictor(BaseRunner):
        def run(self) -> Any:
            scope = current_scope()
            scope.record_metric("a", 1)
            scope.record_metric("a", 2, mode="incr")
            scope.record_metric("b", "x", mode="append")
    """
    with serve_source(source) as s:
        r = post(s.url, {"id": "m", "webhook": receiver.url})
    bodies = receiver.bodies()
    assert len(bodies) == 2
    assert {"id": "m", "logs": "", "metrics": {}, "status": "processing"} in bodies
    assert r.json() in bodies
    assert r.json()["metrics"]["a"] == 3
    assert r.json()["metrics"]["b"] == ["x"]


@pytest.mark.parametrize(
    ("events_filter", "expected"),
    [
        (["completed"], ["succeeded"]),
        (["start"], ["processing:"]),
        (["logs"], ["processing:one\n", "processing:one\ntwo\n"]),
        (["output"], ["processing:c0", "processing:c0,c1"]),
        (["start", "completed"], ["processing:", "succeeded"]),
    ],
)
def test_webhook_events_filter(serve_source, receiver, events_filter, expected):
    """Only the events named in webhook_events_filter are sent."""
    with serve_source(GENERATOR) as s:
        post(s.url, {"webhook": receiver.url, "webhook_events_filter": events_filter})

    def describe(body: dict[str, Any]) -> str:
        if body["status"] != "processing":
            return body["status"]
        if "output" in body:
            return "processing:" + ",".join(body["output"])
        return "processing:" + body["logs"]

    assert sorted(describe(b) for b in receiver.bodies()) == sorted(expected)


@pytest.mark.parametrize("token", [None, "s3cret"])
def test_webhook_headers(serve_source, receiver, monkeypatch, token):
    """Every webhook has JSON, nbcog's User-Agent, the trace headers and the bearer token if set."""
    if token is not None:
        monkeypatch.setenv("WEBHOOK_AUTH_TOKEN", token)
    trace = {
        "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "tracestate": "congo=t61rcWkgMzE",
    }
    with serve_source(SINGLE) as s:
        post(s.url, {"webhook": receiver.url}, **trace)
    received = receiver.wait_for(4)
    assert len(received) == 4
    for each in received:
        headers = {k.lower(): v for k, v in each.headers.items()}
        assert headers["content-type"] == "application/json"
        assert headers["user-agent"] == f"nbcog/{nbcog.__version__}"
        assert headers["traceparent"] == trace["traceparent"]
        assert headers["tracestate"] == trace["tracestate"]
        if token is None:
            assert "authorization" not in headers
        else:
            assert headers["authorization"] == f"Bearer {token}"


def test_no_trace_headers_when_the_request_has_none(serve_source, receiver):
    """traceparent/tracestate are only copied, never invented."""
    with serve_source(SINGLE) as s:
        post(s.url, {"webhook": receiver.url, "webhook_events_filter": ["completed"]})
    [only] = receiver.wait_for(1)
    assert not {"traceparent", "tracestate"} & {k.lower() for k in only.headers}


@pytest.mark.parametrize("mode", ["sync", "async", "sse"])
def test_webhooks_in_every_mode(serve_source, receiver, mode):
    """Sync, async and SSE creates all send start, output and completed webhooks."""
    headers = {
        "sync": {},
        "async": {"Prefer": "respond-async"},
        "sse": {"Accept": "text/event-stream"},
    }[mode]
    with serve_source(STREAMING) as s:
        r = post(s.url, {"id": mode, "webhook": receiver.url}, **headers)
        received = receiver.wait_for(5)
    bodies = [x.json for x in received]
    assert len(bodies) == 5
    completed = next(b for b in bodies if b["status"] == "succeeded")
    assert completed["output"] == ["a", "b"]
    assert completed["logs"] == "hi\n"
    assert {"id": mode, "logs": "", "metrics": {}, "status": "processing"} in bodies
    if mode == "sync":
        assert r.json() == completed
    elif mode == "async":
        assert (r.status_code, r.content) == (
            202,
            f'{{"id":"{mode}","status":"starting"}}'.encode(),
        )
    else:
        assert parse_sse(r.content)[-1] == ("completed", completed)


def test_failing_receiver_never_fails_the_prediction(serve_source, receiver):
    """Non-terminal webhooks answered 500 are not retried and change nothing."""
    receiver.always = 500
    with serve_source(GENERATOR) as s:
        r = post(
            s.url,
            {
                "id": "x",
                "webhook": receiver.url,
                "webhook_events_filter": ["start", "logs", "output"],
            },
        )
        assert r.status_code == 200
        assert r.json()["status"] == "succeeded"
        assert requests.get(s.url + "/health-check", timeout=WAIT).json()["status"] == "READY"
    assert len(receiver.bodies()) == 5


def test_completed_webhook_retried_on_5xx_and_429(serve_source, receiver):
    """A completed webhook answered 500 then 429 is sent again until it gets a 2xx."""
    receiver.statuses = [500, 429]
    with serve_source(SINGLE) as s:
        r = post(
            s.url, {"id": "r", "webhook": receiver.url, "webhook_events_filter": ["completed"]}
        )
        assert r.json()["status"] == "succeeded"
        received = receiver.wait_for(3)
        assert requests.get(s.url + "/health-check", timeout=WAIT).json()["status"] == "READY"
    assert [x.body for x in received] == [r.content] * 3
    assert len(receiver.bodies()) == 3


def test_completed_webhook_not_retried_on_400(serve_source, receiver):
    """A 4xx other than 429 stops the retries at once."""
    receiver.statuses = [400]
    with serve_source(SINGLE) as s:
        post(s.url, {"webhook": receiver.url, "webhook_events_filter": ["completed"]})
    assert len(receiver.bodies()) == 1


def test_receiver_down_then_up(serve_source):
    """A receiver that refuses connections fails nothing; completed arrives once it is up."""
    down = Receiver(listening=False)
    try:
        with serve_source(SINGLE) as s:
            r = post(s.url, {"id": "d", "webhook": down.url})
            assert r.status_code == 200
            assert r.json()["status"] == "succeeded"
            assert requests.get(s.url + "/health-check", timeout=WAIT).json()["status"] == "READY"
            again = post(s.url, {"id": "d2"})
            assert again.json()["output"] == "v"
            assert down.bodies() == []
            down.listen()
            completed = down.wait_for_match(lambda x: x.json["status"] != "processing")
            assert completed.body == r.content
    finally:
        down.close()


def test_hanging_receiver_never_delays_the_response(serve_source, receiver):
    """The sync response comes back while the receiver is still holding a webhook."""
    receiver.gate.clear()
    with serve_source(SINGLE) as s:
        r = post(s.url, {"id": "h", "webhook": receiver.url})
        assert r.json()["status"] == "succeeded"
        assert len(receiver.wait_for(1)) >= 1
        assert not receiver.gate.is_set()
        receiver.gate.set()
        receiver.wait_for(4)
