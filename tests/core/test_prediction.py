"""The prediction state machine as a pure unit (spec §9.3, §9.4): moves, folding, snapshots."""

from __future__ import annotations

import itertools

import pytest

from nbcog.core import events
from nbcog.core.errors import InvalidTransition
from nbcog.core.events import Event
from nbcog.core.prediction import TRANSITIONS, Prediction, Status

TERMINAL = (Status.SUCCEEDED, Status.FAILED, Status.CANCELED)


def completed() -> Event:
    return events.completed_event({"id": "p", "status": "succeeded"})


def test_transition_table_is_the_spec_lifecycle():
    """starting -> processing | terminal; processing -> terminal; terminal states never move."""
    assert {
        Status.STARTING: frozenset({Status.PROCESSING, *TERMINAL}),
        Status.PROCESSING: frozenset(TERMINAL),
        Status.SUCCEEDED: frozenset(),
        Status.FAILED: frozenset(),
        Status.CANCELED: frozenset(),
    } == TRANSITIONS


def in_status(status: Status) -> Prediction:
    """A prediction brought to ``status`` through the public API."""
    p = Prediction("p", created_at=1.0, input={"x": 1})
    if status is Status.STARTING:
        return p
    p.apply(events.start_event("p"))
    p.apply(events.output_event("a", 0))
    if status is not Status.PROCESSING:
        p.finish(status, completed_at=2.0, error="E" if status is Status.FAILED else None)
    return p


def attempt(p: Prediction, target: Status) -> None:
    """Ask the prediction to move to ``target`` the only ways the runner can."""
    if target is Status.PROCESSING:
        p.apply(events.start_event("p"))
    else:
        p.finish(target, completed_at=3.0, error="late")


@pytest.mark.parametrize(("source", "target"), list(itertools.product(Status, Status)))
def test_every_transition_row(source, target):
    """Allowed moves change the status; illegal ones raise or are ignored and change nothing."""
    p = in_status(source)
    before = (p.status, p.snapshot(with_input=True), p.sync_body(), p.completed_at)
    if target in TRANSITIONS[source]:
        attempt(p, target)
        assert p.status is target
        return
    if source.is_terminal:
        attempt(p, target)  # the first terminal transition wins: silently ignored
    else:
        with pytest.raises(InvalidTransition):
            attempt(p, target)
    assert (p.status, p.snapshot(with_input=True), p.sync_body(), p.completed_at) == before


def test_only_runner_events_are_applied():
    """A ``completed`` or ``error`` event is not a runner event: rejected, state unchanged."""
    p = in_status(Status.PROCESSING)
    before = p.snapshot()
    for event in (completed(), events.stream_error_event(events.STREAM_LAGGED, 1)):
        with pytest.raises(InvalidTransition):
            p.apply(event)
    assert p.snapshot() == before


def test_events_after_the_end_are_ignored():
    """A late log or output cannot change a terminal prediction's snapshot."""
    p = in_status(Status.SUCCEEDED)
    before = p.snapshot()
    p.apply(events.output_event("late", 1))
    p.apply(events.log_event("stdout", "late\n"))
    p.apply(events.metric_event("m", 1, "replace"))
    assert p.snapshot() == before


def test_apply_folds_outputs_logs_and_metrics():
    """Chunks accumulate, logs interleave in order, metrics aggregate by mode."""
    p = in_status(Status.STARTING)
    for event in (
        events.start_event("p"),
        events.log_event("stdout", "a\n"),
        events.output_event("x", 0),
        events.log_event("stderr", "b\n"),
        events.metric_event("n", 1, "increment"),
        events.metric_event("n", 2, "increment"),
        events.metric_event("seen", "x", "append"),
        events.metric_event("gone", 1, "replace"),
        events.metric_event("gone", None, "replace"),
        events.metric_event("timing.pre", 0.5, "replace"),
        events.output_event({"k": 1}, 1),
    ):
        p.apply(event)
    assert p.snapshot() == {
        "id": "p",
        "status": "processing",
        "logs": "a\nb\n",
        "metrics": {"n": 3, "seen": ["x"], "timing": {"pre": 0.5}},
        "output": ["x", {"k": 1}],
    }


def test_terminal_snapshots_and_sync_bodies():
    """succeeded has the final output; failed the error and partial chunks; canceled the chunks."""
    ok = in_status(Status.PROCESSING)
    completed_event = ok.finish(Status.SUCCEEDED, completed_at=2.5)
    assert completed_event is not None and completed_event.name == events.COMPLETED
    assert completed_event.data == {
        "id": "p",
        "status": "succeeded",
        "logs": "",
        "metrics": {"predict_time": 1.5},
        "output": "a",
    }
    assert ok.sync_body() == completed_event.data
    array = in_status(Status.PROCESSING)
    array.finish(Status.SUCCEEDED, completed_at=2.0, output_is_array=True)
    assert array.snapshot()["output"] == ["a"]

    failed = in_status(Status.PROCESSING)
    failed.finish(Status.FAILED, completed_at=2.0, error="Prediction failed: boom")
    assert failed.snapshot() == {
        "id": "p",
        "status": "failed",
        "logs": "",
        "metrics": {"predict_time": 1.0},
        "output": ["a"],
        "error": "Prediction failed: boom",
    }
    assert "output" not in failed.sync_body()

    canceled = in_status(Status.PROCESSING)
    canceled.finish(Status.CANCELED, completed_at=2.0)
    assert canceled.snapshot() == {
        "id": "p",
        "status": "canceled",
        "logs": "",
        "metrics": {"predict_time": 1.0},
        "output": ["a"],
    }
    assert canceled.sync_body() == {
        "id": "p",
        "status": "canceled",
        "logs": "",
        "metrics": {"predict_time": 1.0},
    }
    assert in_status(Status.PROCESSING).snapshot(with_input=True)["input"] == {"x": 1}
