"""Stopping a server with predictions in flight (spec §17: SHOULD cancel them).

Every waiting client hears how its prediction ended before its connection closes: an SSE
stream gets ``completed`` (canceled), a sync request its canceled body, a webhook its
``completed`` call. And ``stop()`` never blocks the serving loop (the kernel's, in a
notebook) while webhooks drain.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
from collections.abc import Iterator

import pytest
import requests
from helpers import wait_until
from webhook_receiver import Receiver

from nbcog.testing import RunningServer, parse_sse

# Yields `tokens` chunks, then runs until cancelled (or for 60 s at most).
RUNS_UNTIL_CANCELLED = """
import time
from typing import Iterator
from cog import BaseRunner, streaming

class Predictor(BaseRunner):
    @streaming
    def run(self, tokens: int = 1) -> Iterator[str]:
        for n in range(tokens):
            yield f"t{n}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            time.sleep(0.005)
"""

SSE = {"Accept": "text/event-stream"}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    hooks = Receiver()
    yield hooks
    hooks.close()


def stop(s: RunningServer, within: float = 10.0) -> None:
    """Run ``stop()`` on the server's loop; fail if it has not returned ``within`` seconds."""

    async def _stop() -> None:
        s.server.stop()

    asyncio.run_coroutine_threadsafe(_stop(), s.loop).result(timeout=within)


def wait_running(s: RunningServer) -> list[str]:
    """The ids of the predictions in flight, once one of them is processing (bounded wait)."""
    service = s.server.service
    assert service is not None

    def processing() -> list[str] | None:
        statuses = s.call(
            lambda: {e.prediction.id: e.prediction.status.value for e in service.inflight()}
        )
        return list(statuses) if "processing" in statuses.values() else None

    ids: list[str] = wait_until(processing, "a prediction to start processing")
    return ids


def test_stop_ends_a_stream_with_completed_canceled(serve_source):
    """The SSE client reads every event so far, then `completed` (canceled), then the end."""
    with (
        serve_source(RUNS_UNTIL_CANCELLED) as s,
        requests.post(
            s.url + "/predictions",
            json={"input": {"tokens": 2}},
            headers=SSE,
            stream=True,
            timeout=60,
        ) as response,
    ):
        chunks = response.iter_content(chunk_size=None)
        raw = b""
        while raw.count(b"event: output") < 2:
            raw += next(chunks)
        stop(s)
        raw += b"".join(chunks)  # ends only when the server closes the stream
    events = parse_sse(raw)
    assert [name for name, _ in events] == ["start", "output", "output", "completed"]
    completed = events[-1][1]
    assert completed["status"] == "canceled"
    assert completed["output"] == ["t0", "t1"]


def test_stop_answers_a_waiting_sync_request_with_the_canceled_prediction(serve_source):
    """A sync client gets 200 and its prediction, canceled, instead of a dropped connection."""
    with serve_source(RUNS_UNTIL_CANCELLED) as s, concurrent.futures.ThreadPoolExecutor(1) as pool:
        pending = pool.submit(
            requests.post,
            s.url + "/predictions",
            json={"id": "sync-1", "input": {"tokens": 1}},
            timeout=60,
        )
        assert wait_running(s) == ["sync-1"]
        stop(s)
        response = pending.result(30)
    assert response.status_code == 200
    body = response.json()
    assert (body["id"], body["status"]) == ("sync-1", "canceled")
    assert "output" not in body  # a sync body has no partial output (spec §9.2)


def test_stop_sends_the_completed_webhook_without_blocking_the_loop(serve_source, receiver):
    """The `completed` webhook still goes out, and stop() returns while webhooks are held.

    The receiver holds the `start` webhook unanswered. A stop() that drained webhooks on the
    loop would block it for the sender's 5 s drain; it must return at once instead.
    """
    receiver.gate.clear()
    with serve_source(RUNS_UNTIL_CANCELLED) as s:
        created = requests.post(
            s.url + "/predictions",
            json={
                "id": "hooked",
                "input": {"tokens": 0},
                "webhook": receiver.url,
                "webhook_events_filter": ["start", "completed"],
            },
            headers={"Prefer": "respond-async"},
            timeout=30,
        )
        assert created.status_code == 202
        receiver.wait_for(1)  # the start webhook, held by the receiver
        stop(s, within=2.5)
        assert s.call(lambda: 42) == 42  # the loop still answers
        receiver.gate.set()
        final = receiver.wait_for_match(lambda r: json.loads(r.body)["status"] != "processing")
    assert final.json["id"] == "hooked"
    assert final.json["status"] == "canceled"
