"""The broadcaster as a pure unit (spec §11.5, §11.6); the state machine is in test_prediction.py.

The lag numbers follow coglet 0.23.1, checked live: a subscriber more than the queue capacity
behind gets ``skipped`` = events published since its last read minus the capacity (tokio's
``Lagged(n)``), after what it had already read (and what was left of its replay).
"""

from __future__ import annotations

import pytest

from nbcog.core import events
from nbcog.core.broadcaster import (
    DEFAULT_HISTORY_CAPACITY,
    DEFAULT_MAX_SUBSCRIBERS,
    DEFAULT_QUEUE_CAPACITY,
    Broadcaster,
    BroadcasterStats,
    Subscription,
)
from nbcog.core.errors import TooManySubscribers
from nbcog.core.events import Event


def outs(start: int, stop: int) -> list[Event]:
    """Output events t{start}..t{stop-1}."""
    return [events.output_event(f"t{i}", i) for i in range(start, stop)]


def completed() -> Event:
    return events.completed_event({"id": "p", "status": "succeeded"})


def tokens_named(n: int) -> list[str]:
    return [f"t{i}" for i in range(n)]


def names(batch: list[Event]) -> list[str]:
    return [e.name if e.name != events.OUTPUT else f"t{e.data['index']}" for e in batch]


class Wakes:
    """A wake callback that counts its calls."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


def subscribe(b: Broadcaster, **kwargs: object) -> tuple[Subscription, Wakes]:
    wakes = Wakes()
    return b.subscribe(wakes, **kwargs), wakes  # type: ignore[arg-type]


# -- fan-out -------------------------------------------------------------------------------


def test_defaults_are_coglets():
    """History, per-subscriber queue and subscriber cap all default to 1024, as in coglet."""
    assert DEFAULT_HISTORY_CAPACITY == DEFAULT_QUEUE_CAPACITY == DEFAULT_MAX_SUBSCRIBERS == 1024
    stats = Broadcaster().stats()
    assert stats.history_capacity == 1024


def test_every_subscriber_gets_every_event_in_order():
    """Each subscriber takes the same events, in publish order, batches concatenated."""
    b = Broadcaster()
    one, _ = subscribe(b)
    two, _ = subscribe(b)
    b.publish([events.start_event("p")])
    b.publish(outs(0, 3))
    assert names(one.take()) == ["start", "t0", "t1", "t2"]
    b.publish(outs(3, 5))
    b.publish([completed()])
    assert names(one.take()) == ["t3", "t4", "completed"]
    assert names(two.take()) == ["start", "t0", "t1", "t2", "t3", "t4", "completed"]


def test_events_are_shared_not_copied():
    """Subscribers receive the very event objects published: one encoding per event."""
    b = Broadcaster()
    one, _ = subscribe(b)
    two, _ = subscribe(b)
    batch = outs(0, 2)
    b.publish(batch)
    taken_one, taken_two = one.take(), two.take()
    assert all(a is e and c is e for a, c, e in zip(taken_one, taken_two, batch, strict=True))


def test_wake_fires_when_the_queue_becomes_non_empty():
    """A consumer is woken once per empty-to-non-empty change, not once per event."""
    b = Broadcaster()
    sub, wakes = subscribe(b)
    b.publish(outs(0, 1))
    b.publish(outs(1, 3))
    assert wakes.count == 1
    assert names(sub.take()) == ["t0", "t1", "t2"]
    b.publish(outs(3, 4))
    assert wakes.count == 2


def test_completed_ends_the_subscription():
    """Taking ``completed`` marks the subscription done and detaches it; take() is then empty."""
    b = Broadcaster()
    sub, _ = subscribe(b)
    b.publish([*outs(0, 1), completed()])
    assert sub.done is False
    assert names(sub.take()) == ["t0", "completed"]
    assert sub.done is True
    assert sub.take() == []
    assert b.subscriber_count == 0


def test_publish_after_final_is_ignored():
    """Nothing is recorded or delivered after the stream-ending event."""
    b = Broadcaster()
    sub, _ = subscribe(b)
    b.publish([completed()])
    b.publish(outs(0, 2))
    assert names(sub.take()) == ["completed"]
    assert b.stats().published == 1


def test_empty_batch_is_a_no_op():
    """Publishing nothing wakes nobody and counts nothing."""
    b = Broadcaster()
    sub, wakes = subscribe(b)
    b.publish([])
    assert (wakes.count, sub.pending, b.stats().published) == (0, 0, 0)


def test_close_detaches_and_drops_pending():
    """A subscriber that leaves is detached at once and keeps nothing queued."""
    b = Broadcaster()
    sub, wakes = subscribe(b)
    b.publish(outs(0, 2))
    sub.close()
    b.publish(outs(2, 4))
    assert (sub.done, sub.pending, b.subscriber_count, wakes.count) == (True, 0, 0, 1)
    assert sub.take() == []
    b.unsubscribe(sub)  # unknown or already detached: ignored


# -- replay (spec §11.5) ------------------------------------------------------------------


def test_late_subscriber_gets_history_then_live_without_gap_or_duplicate():
    """A late subscriber's first take is the whole history; later takes continue exactly."""
    b = Broadcaster()
    early, _ = subscribe(b)
    b.publish([events.start_event("p"), *outs(0, 3)])
    assert names(early.take()) == ["start", "t0", "t1", "t2"]
    late, _ = subscribe(b)
    b.publish(outs(3, 5))
    assert names(late.take()) == ["start", "t0", "t1", "t2", "t3", "t4"]
    b.publish([*outs(5, 6), completed()])
    assert names(late.take()) == ["t5", "completed"]
    assert names(early.take()) == ["t3", "t4", "t5", "completed"]


def test_replay_can_be_declined():
    """``replay=False`` (a widget resubscribing after a reload) starts with live events only."""
    b = Broadcaster()
    b.publish(outs(0, 3))
    sub, _ = subscribe(b, replay=False)
    b.publish(outs(3, 4))
    assert names(sub.take()) == ["t3"]


def test_history_is_bounded_and_evictions_counted():
    """The history keeps the last ``history_capacity`` events and counts what it evicted."""
    b = Broadcaster(3)
    for i in range(10):
        b.publish(outs(i, i + 1))
    stats = b.stats()
    assert (stats.history_len, stats.evicted, stats.published) == (3, 7, 10)
    b.publish(outs(10, 15))
    assert (b.stats().history_len, b.stats().evicted) == (3, 12)


def test_truncated_replay_is_only_the_error_with_skipped():
    """Capacity 2 after 10 events: the late subscriber gets only coglet's error, skipped 8."""
    b = Broadcaster(2)
    b.publish([events.start_event("p")])
    b.publish(outs(0, 9))
    sub, _ = subscribe(b)
    batch = sub.take()
    assert [e.wire for e in batch] == [
        b'event: error\ndata: {"error":"SSE stream replay truncated; events were dropped",'
        b'"skipped":8}\n\n'
    ]
    assert (sub.done, sub.skipped) == (True, 8)
    b.publish(outs(9, 10))
    assert sub.take() == []
    assert b.subscriber_count == 0


def test_capacity_zero_disables_replay_but_streams_live():
    """History 0: no truncation error, a late subscriber sees only later events."""
    b = Broadcaster(0)
    b.publish([events.start_event("p"), *outs(0, 5)])
    sub, _ = subscribe(b)
    assert sub.take() == []
    b.publish([*outs(5, 6), completed()])
    assert names(sub.take()) == ["t5", "completed"]
    stats = b.stats()
    assert (stats.history_len, stats.evicted, stats.history_capacity) == (0, 0, 0)


@pytest.mark.parametrize(
    ("capacity", "expected"),
    [
        (10, ["t0", "t1", "completed"]),
        (0, ["completed"]),
        (1, ["error"]),
    ],
)
def test_subscribing_after_the_end_still_ends(capacity, expected):
    """After ``completed`` a subscriber gets the history, or just the final/truncation event."""
    b = Broadcaster(capacity)
    b.publish([*outs(0, 2), completed()])
    sub, _ = subscribe(b)
    assert names(sub.take()) == expected
    assert sub.done is True
    assert b.subscriber_count == 0


# -- slow consumers (spec §11.6) ----------------------------------------------------------


def test_lagged_subscriber_gets_the_error_counted_like_coglet():
    """Over the queue capacity behind: next take is the lag error, skipped = behind - capacity."""
    b = Broadcaster()
    sub, wakes = subscribe(b, queue_capacity=4)
    for i in range(4):
        b.publish(outs(i, i + 1))
    assert (sub.lagged, sub.pending) == (False, 4)
    b.publish(outs(4, 5))
    assert (sub.lagged, sub.pending) == (True, 0)
    assert wakes.count == 2  # once for the first event, once for the lag
    for i in range(5, 10):
        b.publish(outs(i, i + 1))
    batch = sub.take()
    assert [e.wire for e in batch] == [
        b'event: error\ndata: {"error":"SSE stream lagged; events were dropped","skipped":6}\n\n'
    ]
    assert (sub.done, sub.skipped, b.subscriber_count) == (True, 6, 0)


def test_lag_counts_from_the_last_take():
    """Events already taken are delivered; only what piled up since counts toward the lag."""
    b = Broadcaster()
    sub, _ = subscribe(b, queue_capacity=3)
    b.publish(outs(0, 3))
    assert names(sub.take()) == ["t0", "t1", "t2"]
    b.publish(outs(3, 6))
    assert names(sub.take()) == ["t3", "t4", "t5"]
    b.publish(outs(6, 13))  # one batch of 7: 4 more than the queue holds
    assert names(sub.take()) == ["error"]
    assert sub.skipped == 4


def test_lagged_late_subscriber_keeps_its_replay():
    """The replay does not count toward the queue; a late joiner that lags still gets it first."""
    b = Broadcaster()
    b.publish(outs(0, 5))
    sub, _ = subscribe(b, queue_capacity=2)
    b.publish(outs(5, 7))
    assert sub.lagged is False
    b.publish(outs(7, 8))
    assert sub.lagged is True
    batch = sub.take()
    assert names(batch) == ["t0", "t1", "t2", "t3", "t4", "error"]
    assert batch[-1].data == {"error": events.STREAM_LAGGED, "skipped": 1}


def test_a_full_replay_leaves_the_whole_queue_for_live_events():
    """Joining with 1024 events of history, a subscriber may still fall 1024 live events behind."""
    b = Broadcaster()
    b.publish(outs(0, 1024))
    sub, _ = subscribe(b)
    b.publish(outs(1024, 2048))
    assert sub.lagged is False
    assert names(sub.take()) == tokens_named(2048)


def test_a_lagged_subscriber_never_affects_the_others():
    """Publishing never waits and a healthy subscriber keeps getting every event."""
    b = Broadcaster()
    slow, _ = subscribe(b, queue_capacity=8)
    fast, _ = subscribe(b)
    got: list[Event] = []
    for i in range(0, 100, 5):
        b.publish(outs(i, i + 5))
        got += fast.take()
    b.publish([completed()])
    got += fast.take()
    assert names(got) == [f"t{i}" for i in range(100)] + ["completed"]
    assert names(slow.take()) == ["error"]
    assert slow.skipped == 101 - 8


def test_memory_stays_bounded_however_slow_a_subscriber_is():
    """A subscriber that never takes holds at most its queue capacity, whatever is published."""
    b = Broadcaster(16)
    never, _ = subscribe(b, queue_capacity=64)
    largest = 0
    for i in range(0, 100_000, 100):
        b.publish(outs(i, i + 100))
        largest = max(largest, b.stats().largest_queue)
    assert largest <= 64
    assert never.pending == 0
    stats = b.stats()
    assert (stats.lagged_subscribers, stats.history_len, stats.evicted) == (1, 16, 100_000 - 16)
    assert never.take()[-1].data["skipped"] == 100_000 - 64


def test_queue_capacity_must_be_positive():
    """A zero queue would lag on the first event: rejected, like a negative history."""
    b = Broadcaster()
    with pytest.raises(ValueError, match="queue_capacity"):
        b.subscribe(lambda: None, queue_capacity=0)
    for kwargs in ({"history_capacity": -1}, {"queue_capacity": 0}, {"max_subscribers": 0}):
        with pytest.raises(ValueError, match="capacities"):
            Broadcaster(**kwargs)  # type: ignore[arg-type]


# -- subscriber cap (spec §11.5) -----------------------------------------------------------


def test_subscriber_cap_raises_too_many_subscribers():
    """The 1025th subscriber gets TooManySubscribers (429, coglet's body); leaving frees a place."""
    b = Broadcaster()
    subs = [b.subscribe(lambda: None) for _ in range(1024)]
    with pytest.raises(TooManySubscribers) as raised:
        b.subscribe(lambda: None)
    assert (raised.value.status, raised.value.body) == (
        429,
        {"error": "Too many stream subscribers"},
    )
    assert b.subscriber_count == 1024
    subs[0].close()
    b.subscribe(lambda: None)
    assert b.subscriber_count == 1024


def test_subscribing_inside_a_wake_callback_is_safe():
    """A wake callback may subscribe or leave while a batch is being delivered."""
    b = Broadcaster()
    joined: list[Subscription] = []
    leaver = b.subscribe(lambda: leaver.close())
    b.subscribe(lambda: joined.append(b.subscribe(lambda: None)) if not joined else None)
    b.publish(outs(0, 1))
    assert leaver.done is True
    assert names(joined[0].take()) == ["t0"]
    b.publish(outs(1, 2))
    assert names(joined[0].take()) == ["t1"]


def test_stats_snapshot():
    """stats() reports published, history, evictions, subscribers, lagged and the largest queue."""
    b = Broadcaster(4)
    lagging, _ = subscribe(b, queue_capacity=3)
    queued, _ = subscribe(b)
    taken, _ = subscribe(b)
    b.publish(outs(0, 6))
    taken.take()
    assert b.stats() == BroadcasterStats(
        published=6,
        history_len=4,
        history_capacity=4,
        evicted=2,
        subscribers=3,
        lagged_subscribers=1,
        largest_queue=6,
    )
    assert (lagging.pending, queued.pending, taken.pending) == (0, 6, 0)
