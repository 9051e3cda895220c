"""Webhook delivery against a real local receiver (spec §15)."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from webhook_receiver import Receiver

from nbcog.core.events import (
    Event,
    completed_event,
    log_event,
    metric_event,
    output_event,
    start_event,
)
from nbcog.core.prediction import Prediction, Status
from nbcog.runner.webhooks import (
    MAX_RETRIES,
    WebhookSender,
    WebhookTracker,
    backoff_delay,
    throttle_interval,
)

WAIT = 10.0


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WEBHOOK_AUTH_TOKEN", raising=False)
    monkeypatch.delenv("COG_THROTTLE_RESPONSE_INTERVAL", raising=False)


@pytest.fixture
def delays() -> list[float]:
    return []


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sender(clock: Clock, delays: list[float]) -> Iterator[WebhookSender]:
    def backoff(retry: int) -> float:
        delays.append(backoff_delay(retry))  # coglet's policy, recorded but not waited out
        return 0.0

    s = WebhookSender(user_agent="nbcog/0.1.0", clock=clock, backoff=backoff)
    yield s
    s.close(timeout=WAIT)


class Run:
    """A prediction plus its tracker: apply an event, then let the tracker see it, in order."""

    def __init__(self, sender: WebhookSender, tracker: WebhookTracker) -> None:
        self.sender = sender
        self.tracker = tracker
        self.prediction = Prediction("p1", created_at=10.0)

    def event(self, event: Event) -> None:
        self.prediction.apply(event)
        self.tracker.observe(event, self.prediction)
        assert self.sender.drain(WAIT)  # one at a time, so arrival order is observation order

    def finish(self, status: Status = Status.SUCCEEDED, **kwargs: Any) -> None:
        completed = self.prediction.finish(status, completed_at=12.5, **kwargs)
        assert completed is not None
        self.tracker.observe(completed, self.prediction)
        assert self.sender.drain(WAIT)


def run(
    sender: WebhookSender,
    receiver: Receiver,
    events_filter: frozenset[str] | None = None,
    trace: dict[str, str] | None = None,
) -> Run:
    return Run(sender, sender.track(receiver.url, events_filter, trace or {}))


def test_generator_prediction_bodies(sender: WebhookSender, receiver: Receiver) -> None:
    """start is processing, each output carries the chunks so far, completed the final list."""
    r = run(sender, receiver)
    r.event(start_event("p1"))
    r.event(output_event("a", 0))
    r.event(output_event("b", 1))
    r.finish(output_is_array=True)
    assert [req.body for req in receiver.received] == [
        b'{"id":"p1","logs":"","metrics":{},"status":"processing"}',
        b'{"id":"p1","logs":"","metrics":{},"output":["a"],"status":"processing"}',
        b'{"id":"p1","logs":"","metrics":{},"output":["a","b"],"status":"processing"}',
        b'{"id":"p1","logs":"","metrics":{"predict_time":2.5},"output":["a","b"],'
        b'"status":"succeeded"}',
    ]
    assert [req.path for req in receiver.received] == ["/hook"] * 4


def test_single_value_output_is_listed_until_completed(
    sender: WebhookSender, receiver: Receiver
) -> None:
    """A single-value predictor's output webhook has "output":[value]; completed the value."""
    r = run(sender, receiver)
    r.event(start_event("p1"))
    r.event(output_event({"k": 1}, 0))
    r.finish()
    assert [b.get("output") for b in receiver.bodies()] == [None, [{"k": 1}], {"k": 1}]


def test_failed_prediction_completed_body(sender: WebhookSender, receiver: Receiver) -> None:
    """A failed prediction's completed webhook has the error and the chunks so far."""
    r = run(sender, receiver)
    r.event(start_event("p1"))
    r.event(output_event(1, 0))
    r.finish(Status.FAILED, error="Prediction failed: Prediction failed: ValueError: boom")
    assert receiver.bodies()[-1] == {
        "id": "p1",
        "status": "failed",
        "error": "Prediction failed: Prediction failed: ValueError: boom",
        "logs": "",
        "metrics": {"predict_time": 2.5},
        "output": [1],
    }


def test_start_once_metrics_never_nothing_after_completed(
    sender: WebhookSender, receiver: Receiver
) -> None:
    """A repeated start, metrics, and events after completed send nothing."""
    r = run(sender, receiver)
    r.event(start_event("p1"))
    r.tracker.observe(start_event("p1"), r.prediction)
    r.event(metric_event("m", 3, "replace"))
    r.finish()
    r.tracker.observe(output_event("late", 0), r.prediction)
    r.tracker.observe(completed_event(r.prediction.snapshot()), r.prediction)
    assert sender.drain(WAIT)
    assert [b["status"] for b in receiver.bodies()] == ["processing", "succeeded"]
    assert receiver.bodies()[-1]["metrics"] == {"m": 3, "predict_time": 2.5}


def test_events_filter(sender: WebhookSender, receiver: Receiver) -> None:
    """Only the filtered-in event kinds are sent."""
    r = run(sender, receiver, frozenset({"output", "completed"}))
    r.event(start_event("p1"))
    r.event(log_event("stdout", "hi\n"))
    r.event(output_event("x", 0))
    r.finish()
    assert [(b["status"], b["output"]) for b in receiver.bodies()] == [
        ("processing", ["x"]),
        ("succeeded", "x"),
    ]


def test_completed_filtered_out_sends_nothing(sender: WebhookSender, receiver: Receiver) -> None:
    """Without completed in the filter the terminal state sends no webhook."""
    r = run(sender, receiver, frozenset({"start"}))
    r.event(start_event("p1"))
    r.finish()
    assert [b["status"] for b in receiver.bodies()] == ["processing"]


def test_logs_are_throttled_and_dropped(
    sender: WebhookSender, receiver: Receiver, clock: Clock
) -> None:
    """logs go out only 0.5 s after the last non-terminal webhook of any kind; others drop."""
    r = run(sender, receiver)
    clock.now = 100.0
    r.event(start_event("p1"))  # sent, throttle clock at 100.0
    clock.now = 100.2
    r.event(log_event("stdout", "a\n"))  # dropped
    clock.now = 100.5
    r.event(log_event("stderr", "b\n"))  # sent: exactly the interval
    clock.now = 100.6
    r.event(output_event(1, 0))  # output is never throttled, and it resets the clock
    clock.now = 101.0
    r.event(log_event("stdout", "c\n"))  # dropped: 0.4 s after the output
    clock.now = 101.1
    r.event(log_event("stdout", "d\n"))  # sent
    clock.now = 101.2
    r.event(log_event("stdout", "e\n"))  # dropped, and never sent later
    r.finish()
    assert [(b["status"], b["logs"], b.get("output")) for b in receiver.bodies()] == [
        ("processing", "", None),
        ("processing", "a\nb\n", None),
        ("processing", "a\nb\n", [1]),
        ("processing", "a\nb\nc\nd\n", [1]),
        ("succeeded", "a\nb\nc\nd\ne\n", 1),
    ]


def test_first_log_is_sent_at_once(sender: WebhookSender, receiver: Receiver) -> None:
    """With nothing sent yet a log goes out immediately (filtered-out start does not count)."""
    r = run(sender, receiver, frozenset({"logs"}))
    r.event(start_event("p1"))
    r.event(log_event("stdout", "first\n"))
    assert [b["logs"] for b in receiver.bodies()] == ["first\n"]


def test_throttle_interval_from_environment(
    monkeypatch: pytest.MonkeyPatch, receiver: Receiver, clock: Clock
) -> None:
    """COG_THROTTLE_RESPONSE_INTERVAL sets the logs interval in seconds."""
    monkeypatch.setenv("COG_THROTTLE_RESPONSE_INTERVAL", "2")
    s = WebhookSender(user_agent="nbcog/0.1.0", clock=clock)
    try:
        assert s.interval == 2.0
        r = run(s, receiver)
        clock.now = 100.0
        r.event(start_event("p1"))
        clock.now = 101.9
        r.event(log_event("stdout", "dropped\n"))
        clock.now = 102.0
        r.event(log_event("stdout", "sent\n"))
        assert [b["logs"] for b in receiver.bodies()] == ["", "dropped\nsent\n"]
    finally:
        s.close(timeout=WAIT)


@pytest.mark.parametrize(
    ("raw", "seconds"),
    [
        (None, 0.5),
        ("0.25", 0.25),
        ("1.2345", 1.234),
        ("0.0005", 0.0),
        ("-1", 0.0),
        ("nan", 0.0),
        ("soon", 0.5),
    ],
)
def test_throttle_interval_parsing(raw: str | None, seconds: float) -> None:
    """The variable is read like coglet: float seconds cut to whole ms, bad values default."""
    assert throttle_interval(raw) == seconds


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_completed_retries_on_retryable_status(
    sender: WebhookSender, receiver: Receiver, delays: list[float], status: int
) -> None:
    """A retryable status is retried after 0.2 s, with the same body, until it succeeds."""
    receiver.statuses = [status, status, 200]
    r = run(sender, receiver, frozenset({"completed"}))
    r.event(start_event("p1"))
    r.finish()
    assert len(receiver.received) == 3
    assert len({req.body for req in receiver.received}) == 1
    assert delays == [0.2, 0.4]


@pytest.mark.parametrize("status", [400, 404, 422])
def test_completed_not_retried_on_other_status(
    sender: WebhookSender, receiver: Receiver, delays: list[float], status: int
) -> None:
    """A non-2xx status outside 429/500/502/503/504 ends the delivery."""
    receiver.statuses = [status]
    r = run(sender, receiver, frozenset({"completed"}))
    r.finish()
    assert len(receiver.received) == 1
    assert delays == []


def test_backoff_sequence_and_retry_limit(
    sender: WebhookSender, receiver: Receiver, delays: list[float], caplog: pytest.LogCaptureFixture
) -> None:
    """12 retries (13 attempts), waiting 0.1 * 2**min(n, 10) s before retry n."""
    receiver.always = 503
    r = run(sender, receiver)
    with caplog.at_level(logging.WARNING, logger="nbcog.webhooks"):
        r.finish()
    assert len(receiver.received) == MAX_RETRIES + 1 == 13
    assert delays == [0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8, 25.6, 51.2, 102.4, 102.4, 102.4]
    assert [backoff_delay(n) for n in range(1, 13)] == delays
    assert caplog.messages[-1] == (
        f"completed webhook to {receiver.url} failed after 12 retries: status 503"
    )


def test_non_terminal_failure_is_not_retried(
    sender: WebhookSender, receiver: Receiver, delays: list[float]
) -> None:
    """A failing start or output webhook is a single attempt."""
    receiver.always = 503
    r = run(sender, receiver, frozenset({"start", "output"}))
    r.event(start_event("p1"))
    r.event(output_event("x", 0))
    assert len(receiver.received) == 2
    assert delays == []


def test_headers(monkeypatch: pytest.MonkeyPatch, receiver: Receiver) -> None:
    """Content-Type, User-Agent, bearer token and trace headers are on every request."""
    monkeypatch.setenv("WEBHOOK_AUTH_TOKEN", "s3cret")
    s = WebhookSender(user_agent="nbcog/1.2.3")
    try:
        trace = {
            "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "tracestate": "congo=t61rcWkgMzE",
        }
        r = run(s, receiver, trace=trace)
        r.event(start_event("p1"))
        r.finish()
    finally:
        s.close(timeout=WAIT)
    for req in receiver.received:
        assert req.headers["Content-Type"] == "application/json"
        assert req.headers["User-Agent"] == "nbcog/1.2.3"
        assert req.headers["Authorization"] == "Bearer s3cret"
        assert req.headers["traceparent"] == trace["traceparent"]
        assert req.headers["tracestate"] == trace["tracestate"]
    assert len(receiver.received) == 2


def test_no_authorization_or_trace_headers_by_default(
    sender: WebhookSender, receiver: Receiver
) -> None:
    """Without WEBHOOK_AUTH_TOKEN or trace context those headers are absent."""
    r = run(sender, receiver)
    r.finish()
    assert not set(receiver.received[0].headers) & {"Authorization", "traceparent", "tracestate"}


def test_receiver_down_does_not_raise(
    sender: WebhookSender, delays: list[float], caplog: pytest.LogCaptureFixture
) -> None:
    """Connection errors are logged as warnings and the completed webhook is retried 12 times."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    tracker = sender.track(f"http://127.0.0.1:{port}/hook", None, {})
    prediction = Prediction("p1", created_at=0.0)
    with caplog.at_level(logging.WARNING, logger="nbcog.webhooks"):
        for event in (start_event("p1"), output_event("x", 0)):
            prediction.apply(event)
            tracker.observe(event, prediction)
        completed = prediction.finish(Status.SUCCEEDED, completed_at=1.0)
        assert completed is not None
        tracker.observe(completed, prediction)
        assert sender.drain(WAIT)
    assert len(delays) == 12
    records = [r for r in caplog.records if r.name == "nbcog.webhooks"]
    assert {r.levelno for r in records} == {logging.WARNING}
    assert sum("(not retried)" in r.getMessage() for r in records) == 2
    url = f"http://127.0.0.1:{port}/hook"
    # Deliveries run on several threads, so the completed one's record need not come last.
    final = [r.getMessage() for r in records if "failed after 12 retries" in r.getMessage()]
    assert len(final) == 1
    assert final[0].startswith(
        f"completed webhook to {url} failed after 12 retries: request error:"
    )


def test_close_abandons_a_waiting_retry(receiver: Receiver) -> None:
    """close() cuts the real backoff short: no further attempt is made."""
    s = WebhookSender(user_agent="nbcog/0.1.0")
    receiver.always = 503
    receiver.gate.clear()
    r = run(s, receiver)
    completed = r.prediction.finish(Status.SUCCEEDED, completed_at=11.0)
    assert completed is not None
    r.tracker.observe(completed, r.prediction)
    receiver.wait_for(1)
    s.close(timeout=0)
    receiver.gate.set()
    assert s.drain(WAIT)
    assert len(receiver.received) == 1
