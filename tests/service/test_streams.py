"""What front ends get: ``PredictionRef`` and its streams, and the cancel policy of spec §11.4.

A stream that counts for cancel (an HTTP SSE response) cancels a prediction created in SSE
mode when it is the last to leave, or the moment it lags; in-process followers never do.
"""

from __future__ import annotations

import gc
import weakref
from pathlib import Path

from nbcog.core import events
from nbcog.core.prediction import Status
from nbcog.service import CreateRequest, Mode, PredictionRef, PredictionState

STREAMING = """
import os
import time
from typing import Iterator

from cog import BaseRunner, streaming


class Predictor(BaseRunner):
    @streaming
    def run(self, n: int = 3, gate: str = "") -> Iterator[str]:
        for i in range(n):
            yield str(i)
        while gate and not os.path.exists(gate):
            time.sleep(0.005)
"""

FAILING = """
from cog import BasePredictor


class Predictor(BasePredictor):
    def predict(self, n: int = 3) -> str:
        print("about to fail")
        raise ValueError(f"n={n} is not supported")
"""


def held(gate: Path, n: int = 3) -> CreateRequest:
    """A request whose prediction yields ``n`` outputs, then waits for ``gate``."""
    return CreateRequest(input={"n": n, "gate": str(gate)})


def test_the_last_counting_stream_leaving_cancels_an_sse_prediction(make_service, tmp_path):
    """Two SSE responses: the first leaving changes nothing, the second cancels."""
    service, loop = make_service(STREAMING)
    ref = service.create(held(tmp_path / "gate"), mode=Mode.SSE)
    first = ref.subscribe(lambda: None, counts_for_cancel=True)
    second = ref.subscribe(lambda: None, counts_for_cancel=True)
    loop.run_until(lambda: len(ref.prediction.chunks) == 3, "three outputs")
    first.close()
    first.close()  # idempotent: still one counting stream left
    loop.run_ready()
    assert not ref.is_terminal
    second.close()
    loop.run_until(lambda: ref.is_terminal, "the cancel")
    assert ref.prediction.status is Status.CANCELED


def test_in_process_followers_and_async_creates_are_never_canceled_by_leaving(
    make_service, tmp_path
):
    """A widget-like stream leaving, or an SSE response leaving an async create: it runs on."""
    service, loop = make_service(STREAMING)
    gate = tmp_path / "gate"
    sse = service.create(held(gate), mode=Mode.SSE)
    sse.subscribe(lambda: None).close()
    loop.run_until(lambda: len(sse.prediction.chunks) == 3, "three outputs")
    assert not sse.is_terminal
    gate.touch()
    loop.run_until(lambda: sse.is_terminal, "the end")
    assert sse.prediction.status is Status.SUCCEEDED

    async_ref = service.create(CreateRequest(input={"n": 2}), mode=Mode.ASYNC)
    async_ref.subscribe(lambda: None, counts_for_cancel=True).close()
    loop.run_until(lambda: async_ref.is_terminal, "the end")
    assert async_ref.prediction.status is Status.SUCCEEDED


def test_a_counting_stream_that_lags_cancels_at_once(make_service, tmp_path):
    """A creator that never reads: lagging stops it counting, without waiting for a close."""
    service, loop = make_service(STREAMING)
    ref = service.create(held(tmp_path / "gate", n=50), mode=Mode.SSE)
    woken: list[bool] = []
    stream = ref.subscribe(lambda: woken.append(True), counts_for_cancel=True, queue_capacity=2)
    loop.run_until(lambda: ref.is_terminal, "the cancel")
    assert ref.prediction.status is Status.CANCELED
    assert stream.lagged and woken
    taken = stream.take()
    assert taken[-1].name == events.ERROR
    assert taken[-1].data["error"] == events.STREAM_LAGGED
    assert stream.done


def test_a_stream_replays_the_history_then_ends_with_completed(make_service):
    """Subscribing late replays what was published; ``replay=False`` gets just the end."""
    service, loop = make_service(STREAMING)
    ref = service.create(CreateRequest(input={"n": 3}), mode=Mode.ASYNC)
    loop.run_until(lambda: ref.is_terminal, "the end")
    replayed = ref.subscribe(lambda: None)
    names = [event.name for event in replayed.take()]
    assert names.count(events.OUTPUT) == 3
    assert names[-1] == events.COMPLETED
    assert replayed.done
    assert [event.name for event in ref.subscribe(lambda: None, replay=False).take()] == [
        events.COMPLETED
    ]


def test_on_done_listeners_and_the_traceback_see_one_ref(make_service):
    """The ref handed out by create is the one listeners and on_done get; a failure's
    traceback is text on it (the runner's Finished stays inside the service)."""
    service, loop = make_service(FAILING)
    heard: list[tuple[str, PredictionRef]] = []
    service.add_listener(lambda kind, ref: heard.append((kind, ref)))
    ref = service.create(CreateRequest(), mode=Mode.ASYNC)
    assert service.get(ref.id) is ref
    assert service.inflight() == [ref]
    assert ref.traceback is None
    done: list[PredictionRef] = []
    ref.on_done(done.append)
    loop.run_until(lambda: done, "the failure")
    assert done == [ref]
    assert heard == [("created", ref), ("finished", ref)]
    assert ref.prediction.status is Status.FAILED
    assert ref.traceback is not None
    assert "ValueError: n=3 is not supported" in ref.traceback
    assert ref.completed is not None
    assert service.get(ref.id) is None
    late: list[PredictionRef] = []
    ref.on_done(late.append)  # after the end: called at once
    assert late == [ref]


def test_close_ends_every_prediction_in_flight_canceled(make_service, tmp_path):
    """Closing the service cancels what runs and tells its followers, before it returns."""
    service, loop = make_service(STREAMING)
    ref = service.create(held(tmp_path / "gate"), mode=Mode.ASYNC)
    stream = ref.subscribe(lambda: None)
    service.close()
    assert ref.prediction.status is Status.CANCELED
    assert stream.take()[-1].name == events.COMPLETED
    loop.run_ready()  # events the worker produced later are dropped
    assert ref.prediction.status is Status.CANCELED


def test_a_finished_prediction_is_freed_without_the_cycle_collector(make_service):
    """Once nobody holds its ref, a finished prediction (output, replay history) is freed by
    reference counting alone: no cycle through its ref, its pipe or its streams keeps it until
    a full garbage collection, which a long stream can put off for many predictions."""
    service, loop = make_service(STREAMING, recent_bytes=0)  # none kept for status displays

    def run_one(mode: Mode) -> weakref.ref[PredictionState]:
        ref = service.create(CreateRequest(input={"n": 3}), mode=mode)
        follower = ref.subscribe(lambda: None)  # as the widget follows
        stream = ref.subscribe(lambda: None, counts_for_cancel=True)  # as an SSE response
        loop.run_until(lambda: ref.is_terminal, "the end")
        assert follower.take()[-1].name == stream.take()[-1].name == events.COMPLETED
        return weakref.ref(ref.prediction)

    gc.disable()
    try:
        predictions = [run_one(Mode.SSE), run_one(Mode.ASYNC)]
        loop.run_ready()
        assert [prediction() for prediction in predictions] == [None, None]
    finally:
        gc.enable()
