"""The prediction scope behind cog.current_scope() (spec §1, §13), through the cog SDK."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import cog
import pytest

from nbcog.core.events import Event, metric_event
from nbcog.core.metrics import aggregate_metric
from nbcog.runner.scope import (
    PredictionScope,
    current_scope,
    install_scope_hook,
    scope_active,
)

T = TypeVar("T")


@pytest.fixture(autouse=True)
def _hook() -> None:
    install_scope_hook()


def new_scope(context: dict[str, str] | None = None) -> tuple[PredictionScope, list[Event]]:
    """A scope whose events land in a list."""
    emitted: list[Event] = []
    return PredictionScope(emitted.append, context or {}), emitted


def in_prediction_thread(scope: PredictionScope, fn: Callable[[], T]) -> T:
    """Run fn on a worker thread with scope bound there, as the worker does for sync predict."""

    def run() -> T:
        with scope_active(scope):
            return fn()

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(run).result()


# -- the scope object -------------------------------------------------------------------------


def test_record_emits_one_metric_event() -> None:
    """record_metric and metrics.record each emit a metric event with the argument value."""
    scope, emitted = new_scope()
    scope.record_metric("temperature", 0.7)
    scope.metrics.record("timing.pre", 0.1, mode="replace")
    assert emitted == [
        metric_event("temperature", 0.7, "replace"),
        metric_event("timing.pre", 0.1, "replace"),
    ]


def test_modes_travel_with_wire_names() -> None:
    """incr is sent as increment; append as append; the value is the argument, not the total."""
    scope, emitted = new_scope()
    scope.record_metric("tokens", 1, "incr")
    scope.record_metric("tokens", 2, "increment")
    scope.metrics.record("lp", -1.2, "append")
    assert [e.data for e in emitted] == [
        {"name": "tokens", "value": 1, "mode": "increment"},
        {"name": "tokens", "value": 2, "mode": "increment"},
        {"name": "lp", "value": -1.2, "mode": "append"},
    ]
    assert emitted[0].wire == (
        b'event: metric\ndata: {"mode":"increment","name":"tokens","value":1}\n\n'
    )


def test_dict_style_set_and_the_three_deletes() -> None:
    """metrics[k] = v replaces; = None, del and delete() each emit a null replace."""
    scope, emitted = new_scope()
    scope.metrics["a"] = 1
    scope.metrics["a"] = None
    del scope.metrics["b"]
    scope.metrics.delete("c")
    assert [e.data for e in emitted] == [
        {"name": "a", "value": 1, "mode": "replace"},
        {"name": "a", "value": None, "mode": "replace"},
        {"name": "b", "value": None, "mode": "replace"},
        {"name": "c", "value": None, "mode": "replace"},
    ]


def test_repr_counts_locked_keys() -> None:
    """repr shows coglet's Scope(MetricRecorder(keys=N)); a delete releases a key."""
    scope, _ = new_scope()
    assert repr(scope) == "Scope(MetricRecorder(keys=0))"
    scope.record_metric("a", 1)
    scope.record_metric("b.c", "x")
    assert repr(scope.metrics) == "MetricRecorder(keys=2)"
    del scope.metrics["a"]
    assert repr(scope) == "Scope(MetricRecorder(keys=1))"


def test_context_is_the_requests_dict() -> None:
    """context is a copy of the request's context, the same object on every access."""
    given = {"user": "u1"}
    scope, _ = new_scope(given)
    assert scope.context == {"user": "u1"}
    assert scope.context is scope.context
    assert scope.context is not given


def test_invalid_calls_raise_and_emit_nothing() -> None:
    """Name, value, mode, lock and incr errors raise with coglet's messages; nothing is sent."""
    scope, emitted = new_scope()
    scope.record_metric("m", 1)
    cases: list[tuple[Callable[[], None], type[Exception], str]] = [
        (
            lambda: scope.record_metric("_invalid", 1),
            ValueError,
            "metric name segment '_invalid' must start with a letter",
        ),
        (
            lambda: scope.record_metric("ok", None),
            TypeError,
            "Unsupported metric value type: NoneType. "
            "Expected bool, int, float, str, list, or dict.",
        ),
        (
            lambda: scope.record_metric("ok", 1, "bogus"),
            TypeError,
            "Invalid metric mode: 'bogus'. Expected 'replace', 'incr', or 'append'.",
        ),
        (
            lambda: scope.record_metric("m", "s"),
            TypeError,
            "Metric 'm' has type int, cannot set to str without deleting first",
        ),
        (
            lambda: scope.record_metric("s", "x", "incr"),
            TypeError,
            "Increment mode requires int or float, got str",
        ),
        (
            lambda: scope.metrics.delete("a..b"),
            ValueError,
            "metric name must not contain empty segments (consecutive dots)",
        ),
        (
            lambda: scope.record_metric(1, 1),
            TypeError,  # type: ignore[arg-type]
            "argument 'key': 'int' object cannot be cast as 'str'",
        ),
    ]
    for call, error, message in cases:
        with pytest.raises(error) as info:
            call()
        assert str(info.value) == message
    assert len(emitted) == 1


def test_deletes_skip_the_reserved_rules() -> None:
    """Deleting predict_time or a cog. key is accepted and sent."""
    scope, emitted = new_scope()
    scope.metrics.delete("predict_time")
    del scope.metrics["cog.x"]
    assert [e.data["name"] for e in emitted] == ["predict_time", "cog.x"]


def test_inactive_scope_is_silent_but_checks_the_mode() -> None:
    """The no-op scope ignores bad names and values, yet an unknown mode or key type raises."""
    scope = PredictionScope.inactive()
    assert repr(scope) == "Scope(MetricRecorder(inactive))"
    assert repr(scope.metrics) == "MetricRecorder(inactive)"
    assert scope.context == {}
    scope.record_metric("_x", None)
    scope.metrics["predict_time"] = object()
    del scope.metrics["a..b"]
    with pytest.raises(TypeError) as info:
        scope.record_metric("a", 1, "bogus")
    assert str(info.value) == (
        "Invalid metric mode: 'bogus'. Expected 'replace', 'incr', or 'append'."
    )
    with pytest.raises(TypeError) as info:
        scope.metrics.delete(None)  # type: ignore[arg-type]
    assert str(info.value) == "argument 'key': 'NoneType' object cannot be cast as 'str'"


def test_scope_ends_when_the_prediction_ends() -> None:
    """After scope_active exits, the scope is inactive and later records are dropped."""
    scope, emitted = new_scope()
    in_prediction_thread(scope, lambda: scope.record_metric("a", 1))
    scope.record_metric("b", 1)
    assert repr(scope) == "Scope(MetricRecorder(inactive))"
    assert [e.data["name"] for e in emitted] == ["a"]


def test_replaying_coglets_live_probe_gives_its_metrics() -> None:
    """A call sequence run against live coglet 0.23.1 yields the same events' totals and repr."""
    scope, emitted = new_scope()
    calls: list[Callable[[], None]] = [
        lambda: scope.metrics.delete("x.y"),
        lambda: scope.record_metric("a", 5),
        lambda: scope.record_metric("a.b", 1),
        lambda: scope.record_metric("a", 1, "incr"),
        lambda: scope.record_metric("d", {1: 2}),
        lambda: scope.record_metric("e", [1, {2}]),
        lambda: scope.record_metric("f", 2**64),
        lambda: scope.record_metric("g", float("nan")),
        lambda: scope.record_metric("h", 2**63 - 1, "incr"),
        lambda: scope.record_metric("h", 1, "incr"),
        lambda: scope.record_metric("i", 1e308, "incr"),
        lambda: scope.record_metric("i", 1e308, "incr"),
        lambda: scope.record_metric("i", 1.0, "append"),
        lambda: scope.record_metric("k", 1, "increment"),
        lambda: scope.metrics.delete("cog.x"),
        lambda: scope.record_metric("m", [1], "append"),
        lambda: scope.record_metric("n", 1),
        lambda: scope.record_metric("o", {"k": float("inf")}),
        lambda: scope.metrics.__setitem__("p", None),
    ]
    for call in calls:
        with contextlib.suppress(TypeError):  # d and e are refused, as they were live
            call()
    metrics: dict[str, Any] = {}
    for event in emitted:
        aggregate_metric(metrics, event.data["name"], event.data["value"], event.data["mode"])
    assert metrics == {
        "a": {"b": 1},
        "cog": {},
        "f": 1.8446744073709552e19,
        "h": -9223372036854775808,
        "i": [None, 1.0],
        "k": 1,
        "m": [[1]],
        "n": 1,
        "o": {"k": None},
        "x": {},
    }
    assert repr(scope) == "Scope(MetricRecorder(keys=10))"


# -- through the real cog SDK -------------------------------------------------------------------


def test_cog_current_scope_in_a_prediction_thread() -> None:
    """cog.current_scope() in the thread running predict() is that prediction's scope."""
    scope, _ = new_scope({"k": "v"})
    seen = in_prediction_thread(scope, cog.current_scope)
    assert seen is scope
    assert seen.context == {"k": "v"}


def test_outside_a_prediction_cog_gets_the_inactive_scope() -> None:
    """With no prediction running, the SDK gets a silent scope on any thread."""
    assert repr(cog.current_scope()) == "Scope(MetricRecorder(inactive))"
    assert cog.current_scope().context == {}
    with ThreadPoolExecutor(1) as pool:
        assert repr(pool.submit(cog.current_scope).result()) == "Scope(MetricRecorder(inactive))"
    cog.BaseRunner().record_metric("_bad", None)


def test_base_runner_record_metric_and_scope() -> None:
    """BaseRunner.record_metric (default mode replace) and self.scope.metrics reach the scope."""

    class Runner(cog.BaseRunner):
        def run(self) -> str:
            self.record_metric("temperature", 0.7)
            self.record_metric("tokens", 1, mode="incr")
            self.scope.metrics["count"] = 42
            del self.scope.metrics["count"]
            return self.scope.context["user"]

    scope, emitted = new_scope({"user": "u1"})
    assert in_prediction_thread(scope, Runner().run) == "u1"
    assert [e.data for e in emitted] == [
        {"name": "temperature", "value": 0.7, "mode": "replace"},
        {"name": "tokens", "value": 1, "mode": "increment"},
        {"name": "count", "value": 42, "mode": "replace"},
        {"name": "count", "value": None, "mode": "replace"},
    ]


def test_errors_raise_inside_predict() -> None:
    """A metric error is raised in the thread running predict(), where predict() can catch it."""

    class Runner(cog.BaseRunner):
        def run(self) -> str:
            self.record_metric("_invalid", 1)
            return "unreachable"

    scope, emitted = new_scope()
    with pytest.raises(ValueError) as info:
        in_prediction_thread(scope, Runner().run)
    assert str(info.value) == "metric name segment '_invalid' must start with a letter"
    assert emitted == []


def test_concurrent_async_predictions_are_isolated() -> None:
    """Two interleaved asyncio tasks each see and record into their own scope."""
    first, first_events = new_scope({"n": "1"})
    second, second_events = new_scope({"n": "2"})
    both_inside = asyncio.Event()
    arrived: list[str] = []

    async def predict(scope: PredictionScope, name: str) -> object:
        with scope_active(scope):
            arrived.append(name)
            if len(arrived) == 2:
                both_inside.set()
            await both_inside.wait()
            cog.current_scope().record_metric(name, 1)
            child = await asyncio.create_task(asyncio.sleep(0, cog.current_scope()))
            return child

    async def main() -> list[object]:
        return await asyncio.gather(predict(first, "one"), predict(second, "two"))

    assert asyncio.run(main()) == [first, second]
    assert [e.data["name"] for e in first_events] == ["one"]
    assert [e.data["name"] for e in second_events] == ["two"]


def test_thread_started_by_predict_records_into_it() -> None:
    """A thread started inside predict() reaches the running prediction, as in coglet (live)."""
    scope, emitted = new_scope({"u": "v"})

    def predict() -> str:
        seen: list[str] = []

        def child() -> None:
            current = cog.current_scope()
            seen.append(repr(current) + " " + str(current.context))
            current.record_metric("from_thread", 1)

        thread = threading.Thread(target=child)
        thread.start()
        thread.join()
        return seen[0]

    assert in_prediction_thread(scope, predict) == "Scope(MetricRecorder(keys=0)) {'u': 'v'}"
    assert [e.data["name"] for e in emitted] == ["from_thread"]


def test_main_thread_never_reaches_a_running_prediction() -> None:
    """Notebook cells (the main thread) get the inactive scope while a prediction runs."""
    scope, emitted = new_scope()
    inside = threading.Event()
    release = threading.Event()

    def predict() -> None:
        with scope_active(scope):
            inside.set()
            release.wait(5)

    thread = threading.Thread(target=predict)
    thread.start()
    inside.wait(5)
    try:
        assert current_scope() is not scope
        cog.current_scope().record_metric("from_cell", 1)
    finally:
        release.set()
        thread.join()
    assert emitted == []


def test_emit_metric_prints_a_notice_once_then_records() -> None:
    """The deprecated cog.emit_metric warns once on stderr and records through the scope."""
    script = """
import json
from nbcog.runner.scope import PredictionScope, install_scope_hook, scope_active
install_scope_hook()
import cog
emitted = []
with scope_active(PredictionScope(emitted.append, {})):
    cog.emit_metric("latency", 0.5)
    cog.emit_metric("latency", 0.25)
print(json.dumps([e.data for e in emitted]))
"""
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        cwd=Path(__file__).parents[2],  # so the child imports this checkout's nbcog
    )
    assert json.loads(done.stdout) == [
        {"name": "latency", "value": 0.5, "mode": "replace"},
        {"name": "latency", "value": 0.25, "mode": "replace"},
    ]
    assert done.stderr == (
        "cog: emit_metric() is deprecated and will be removed in a future release. "
        "Use current_scope().record_metric(name, value) instead.\n"
    )
