"""The runner's worker threads (nbcog/runner/worker.py) with tiny cog predictors.

Each job's items go through a real ``EventPipe`` to a fake loop, which the test turns by
hand, so the items are checked in exactly the order the loop receives them: ``start``, what
predict() produced, and one ``Finished`` last.
"""

from __future__ import annotations

import asyncio
import gc
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from cog import BasePredictor, CancelationException, Input
from fake_loop import FakeLoop
from helpers import WAIT, wait_until

from nbcog.core import events
from nbcog.core.events import Event
from nbcog.core.prediction import Status
from nbcog.runner.cog_adapter import describe_predictor, load_target
from nbcog.runner.loopthread import LoopThread
from nbcog.runner.pipe import EventPipe
from nbcog.runner.worker import Finished, Job, Runner

Item = Event | Finished


@dataclass
class Run:
    """One job handed to the runner and the items its pipe delivered to the fake loop."""

    job: Job
    loop: FakeLoop
    items: list[Item]

    def finish(self) -> Finished:
        """Turn the loop until the ``Finished`` item arrives; it must be the last one."""

        def ended() -> bool:
            return bool(self.items) and isinstance(self.items[-1], Finished)

        self.loop.run_until(ended, f"{self.job.prediction_id} to finish")
        assert [type(item) for item in self.items].count(Finished) == 1
        finished = self.items[-1]
        assert isinstance(finished, Finished)
        return finished

    def events(self) -> list[tuple[str, Any]]:
        """The events before ``Finished``, as ``(name, data)``."""
        return [(i.name, i.data) for i in self.items if isinstance(i, Event)]

    def logs(self) -> str:
        return "".join(data["data"] for name, data in self.events() if name == events.LOG)


def start(runner: Runner, predictor: BasePredictor, prediction_id: str = "p", **values: Any) -> Run:
    """Start ``predictor``'s predict() as the service does: a Job whose put is a pipe's."""
    handler = describe_predictor(load_target(predictor)).predict
    assert handler is not None
    loop, items = FakeLoop(), list[Item]()
    pipe: EventPipe[Item] = EventPipe(loop.call_soon_threadsafe, items.extend)
    run = Run(Job(prediction_id, handler, values, pipe.put), loop, items)
    runner.start(run.job)
    return run


@pytest.fixture
def async_loop() -> Iterator[LoopThread]:
    loop = LoopThread("nbcog-async-predictor")
    yield loop
    loop.stop()


def runner_with(slots: int, async_loop: LoopThread) -> Iterator[Runner]:
    """A runner whose threads have exited, and whose garbage is collected, after the test.

    A runner and its threads form reference cycles. Left to the cyclic collector, they would
    be freed in whatever thread allocates then, possibly a later test's predictor thread:
    an asynchronous cancel landing in one of their weakref callbacks there is lost.
    """
    before = set(threading.enumerate())
    runner = Runner(slots=slots, async_loop=async_loop)
    workers = [t for t in threading.enumerate() if t not in before]
    yield runner
    runner.close()
    for thread in workers:
        thread.join(WAIT)
    gc.collect()


@pytest.fixture
def runner(async_loop: LoopThread) -> Iterator[Runner]:
    """Two slots, as ``concurrency.max = 2``."""
    yield from runner_with(2, async_loop)


@pytest.fixture
def one_slot(async_loop: LoopThread) -> Iterator[Runner]:
    yield from runner_with(1, async_loop)


class Shout(BasePredictor):
    def __init__(self) -> None:
        self.thread = ""

    def predict(self, text: str = Input(default="hi")) -> str:
        self.thread = threading.current_thread().name
        print("shouting")
        return text.upper()


class Stream(BasePredictor):
    def predict(self) -> Iterator[str]:
        yield "a"
        print("between")
        yield "b"
        print("tail", end="")


class Gated(BasePredictor):
    """Records where it got to; waits at ``gate`` (polling, so a cancel can land) until set."""

    def __init__(self, name: str, order: list[str], gate: threading.Event | None = None) -> None:
        self.name, self.order = name, order
        self.gate = gate or threading.Event()
        self.running = threading.Event()
        self.caught: list[type[BaseException]] = []

    def predict(self) -> str:
        self.order.append(f"{self.name} start")
        self.running.set()
        try:
            while not self.gate.wait(0.005):
                pass
        except BaseException as exc:
            self.caught.append(type(exc))
            raise
        self.order.append(f"{self.name} end")
        return self.name


class Fails(BasePredictor):
    def __init__(self, error: BaseException) -> None:
        self.error = error

    def predict(self) -> str:
        raise self.error


class FailsMidStream(BasePredictor):
    def predict(self) -> Iterator[str]:
        yield "kept"
        raise RuntimeError("mid")


class Talker(BasePredictor):
    """Prints its name, lets the other talker print, then prints again."""

    def __init__(self, name: str, mine: threading.Event, theirs: threading.Event) -> None:
        self.name, self.mine, self.theirs = name, mine, theirs

    def predict(self) -> str:
        print(f"{self.name} 1")
        self.mine.set()
        assert self.theirs.wait(WAIT)
        print(f"{self.name} 2")
        return self.name


class AsyncSleeper(BasePredictor):
    def __init__(self) -> None:
        self.thread = ""
        self.running = threading.Event()
        self.caught: list[type[BaseException]] = []

    async def predict(self) -> AsyncIterator[str]:
        self.thread = threading.current_thread().name
        yield "first"
        self.running.set()
        try:
            await asyncio.sleep(WAIT * 10)
        except BaseException as exc:
            self.caught.append(type(exc))
            raise
        yield "never"


# -- running -------------------------------------------------------------------------------


def test_a_sync_predictor_runs_on_a_worker_thread(runner: Runner) -> None:
    """predict() runs on one of the runner's threads; start, log, output, then Finished."""
    shout = Shout()
    run = start(runner, shout, text="hey")
    assert run.finish() == Finished(Status.SUCCEEDED)
    assert shout.thread.startswith("nbcog-predict-")
    assert shout.thread != threading.current_thread().name
    assert run.events() == [
        (events.START, {"id": "p", "status": "processing"}),
        (events.LOG, {"source": "stdout", "data": "shouting\n"}),
        (events.OUTPUT, {"chunk": "HEY", "index": 0}),
    ]


def test_a_generator_streams_in_production_order(runner: Runner) -> None:
    """Chunks and logs arrive as produced; a partial last line is flushed before the end."""
    run = start(runner, Stream())
    assert run.finish() == Finished(Status.SUCCEEDED, output_is_array=True)
    assert run.events()[1:] == [
        (events.OUTPUT, {"chunk": "a", "index": 0}),
        (events.LOG, {"source": "stdout", "data": "between\n"}),
        (events.OUTPUT, {"chunk": "b", "index": 1}),
        (events.LOG, {"source": "stdout", "data": "tail"}),
    ]


def test_two_slots_run_two_predictions_at_once(runner: Runner) -> None:
    """With two threads the second starts while the first still waits."""
    order: list[str] = []
    first = Gated("A", order)
    second = Gated("B", order, gate=first.running)
    runs = [start(runner, first, "a"), start(runner, second, "b")]
    wait_until(second.running.is_set, "B to start while A runs")
    first.gate.set()
    assert [run.finish().status for run in runs] == [Status.SUCCEEDED] * 2
    assert order[:2] == ["A start", "B start"]


# -- slots ---------------------------------------------------------------------------------


def test_one_slot_runs_jobs_one_after_another(one_slot: Runner) -> None:
    """A second job waits for the thread: it starts only after the first has ended."""
    order: list[str] = []
    first, second = Gated("A", order), Gated("B", order)
    second.gate.set()
    runs = [start(one_slot, first, "a"), start(one_slot, second, "b")]
    wait_until(first.running.is_set, "A to start")
    first.gate.set()
    assert [run.finish().status for run in runs] == [Status.SUCCEEDED] * 2
    assert order == ["A start", "A end", "B start", "B end"]


@pytest.mark.parametrize("error", [ValueError("boom"), SystemExit(3), KeyboardInterrupt()])
def test_a_failure_frees_the_slot(one_slot: Runner, error: BaseException) -> None:
    """Whatever predict() raises, the one thread lives on and runs the next job."""
    failed = start(one_slot, Fails(error), "a")
    assert failed.finish().status is Status.FAILED
    shout = Shout()
    assert start(one_slot, shout, "b").finish() == Finished(Status.SUCCEEDED)
    assert shout.thread == "nbcog-predict-0"


# -- failures ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (ValueError("boom"), "Prediction failed: Prediction failed: ValueError: boom"),
        (KeyError("k"), "Prediction failed: Prediction failed: KeyError: 'k'"),
        (SystemExit(3), "Prediction failed: Prediction failed: SystemExit: 3"),
    ],
)
def test_an_exception_becomes_a_failure(runner: Runner, error: BaseException, message: str) -> None:
    """The error string of spec §9.4, and a traceback from the user's frame on."""
    finished = start(runner, Fails(error)).finish()
    assert (finished.status, finished.error) == (Status.FAILED, message)
    assert finished.traceback is not None
    assert "raise self.error" in finished.traceback
    assert "nbcog/runner" not in finished.traceback


def test_a_generator_failure_keeps_the_chunks_before_it(runner: Runner) -> None:
    run = start(runner, FailsMidStream())
    finished = run.finish()
    assert (finished.status, finished.error, finished.output_is_array) == (
        Status.FAILED,
        "Prediction failed: Generator iteration error: RuntimeError: mid",
        True,
    )
    assert run.events()[1:] == [(events.OUTPUT, {"chunk": "kept", "index": 0})]


# -- cancel --------------------------------------------------------------------------------


def test_cancel_interrupts_a_running_sync_predictor(runner: Runner) -> None:
    """CancelationException lands in predict(), which never gets past its wait."""
    order: list[str] = []
    gated = Gated("A", order)
    run = start(runner, gated)
    try:
        wait_until(gated.running.is_set, "predict() to run")
        Runner.cancel(run.job)
        assert run.finish() == Finished(Status.CANCELED)
    finally:
        gated.gate.set()
    assert gated.caught == [CancelationException]
    assert order == ["A start"]


def test_cancel_before_the_thread_takes_the_job(one_slot: Runner) -> None:
    """A job canceled while queued ends canceled without predict() ever being called."""
    order: list[str] = []
    first, second = Gated("A", order), Gated("B", order)
    runs = [start(one_slot, first, "a"), start(one_slot, second, "b")]
    wait_until(first.running.is_set, "A to start")
    Runner.cancel(runs[1].job)
    first.gate.set()
    assert runs[0].finish() == Finished(Status.SUCCEEDED)
    assert runs[1].finish() == Finished(Status.CANCELED)
    assert [name for name, _ in runs[1].events()] == [events.START]
    assert order == ["A start", "A end"]


def test_cancel_after_the_end_changes_nothing(runner: Runner) -> None:
    """A late cancel is a no-op: the next job on that thread is not hit by it."""
    first = start(runner, Shout(), "a")
    assert first.finish() == Finished(Status.SUCCEEDED)
    Runner.cancel(first.job)
    Runner.cancel(first.job)
    second = [start(runner, Shout(), f"b{n}") for n in range(4)]
    assert [run.finish() for run in second] == [Finished(Status.SUCCEEDED)] * 4


def test_an_async_predictor_runs_on_the_async_loop_and_cancels(runner: Runner) -> None:
    """An async generator runs on the async loop thread; a cancel ends its await."""
    sleeper = AsyncSleeper()
    run = start(runner, sleeper)
    wait_until(sleeper.running.is_set, "the async predictor to await")
    Runner.cancel(run.job)
    assert run.finish() == Finished(Status.CANCELED, output_is_array=True)
    assert sleeper.thread == "nbcog-async-predictor"
    assert sleeper.caught == [asyncio.CancelledError]
    assert run.events()[1:] == [(events.OUTPUT, {"chunk": "first", "index": 0})]


# -- logs ----------------------------------------------------------------------------------


def test_logs_are_captured_per_prediction(
    runner: Runner, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two predictions printing in turn each get only their own lines; others' text passes by."""
    a_printed, b_printed = threading.Event(), threading.Event()
    runs = [
        start(runner, Talker("A", a_printed, b_printed), "a"),
        start(runner, Talker("B", b_printed, a_printed), "b"),
    ]
    print("the test's own line")
    assert [run.finish().status for run in runs] == [Status.SUCCEEDED] * 2
    assert [run.logs() for run in runs] == ["A 1\nA 2\n", "B 1\nB 2\n"]
    assert capsys.readouterr().out == "the test's own line\n"
