"""Fan-out of one prediction's events to every subscriber: SSE streams, webhooks, widgets.

Bounded everywhere (spec §11.5, §11.6):

* history: the last ``history_capacity`` events, for late subscribers; evicting is O(1)
  (a ``deque`` with ``maxlen``) and counted, and a late subscriber who would miss evicted
  events gets only the ``error`` event with ``skipped``. Capacity 0 turns replay off.
* per-subscriber queue: at most ``queue_capacity`` undelivered events. A subscriber that falls
  further behind is *lagged*: its queue is dropped (memory stays bounded however slow it is),
  the events it misses are counted, and its next ``take()`` returns the lag ``error`` event.
  Nobody ever waits for a slow subscriber.
* subscribers: at most ``max_subscribers`` (``TooManySubscribers``, HTTP 429).

Ownership: a broadcaster is used from one thread (the serving loop). ``wake`` callbacks are
called on that thread when a subscriber's queue goes from empty to non-empty, so a consumer
can sleep until there is something to take and then take everything in one go.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from nbcog.core import events
from nbcog.core.errors import TooManySubscribers
from nbcog.core.events import Event

DEFAULT_HISTORY_CAPACITY = 1024
DEFAULT_QUEUE_CAPACITY = 1024
DEFAULT_MAX_SUBSCRIBERS = 1024


@dataclass(frozen=True)
class BroadcasterStats:
    """A snapshot of a broadcaster's buffers, for status displays and tests."""

    published: int
    history_len: int
    history_capacity: int
    evicted: int
    subscribers: int
    lagged_subscribers: int
    largest_queue: int


class Subscription:
    """One subscriber's cursor into a prediction's events.

    Call ``take()`` after ``wake`` fires (or on a timer) to get everything pending. Once
    ``done`` is true nothing more will come: the last event taken ended the stream.
    """

    __slots__ = ("_broadcaster", "_capacity", "_queue", "_wake", "done", "lagged", "skipped")

    def __init__(
        self, broadcaster: Broadcaster, wake: Callable[[], None], capacity: int
    ) -> None:
        self._broadcaster = broadcaster
        self._wake = wake
        self._capacity = capacity
        self._queue: deque[Event] = deque()
        self.lagged = False
        self.skipped = 0
        self.done = False

    @property
    def pending(self) -> int:
        """Events waiting to be taken (0 once lagged: those were dropped)."""
        return len(self._queue)

    def _push(self, batch: Sequence[Event]) -> None:
        if self.done:
            return
        if self.lagged:
            self.skipped += len(batch)
            return
        was_empty = not self._queue
        self._queue.extend(batch)
        if len(self._queue) > self._capacity:
            self.lagged = True
            self.skipped = len(self._queue)
            self._queue.clear()
            self._wake()
        elif was_empty:
            self._wake()

    def _truncate(self, skipped: int) -> None:
        """Replace the replay with the truncation error (the late joiner missed events)."""
        self._queue.append(events.stream_error_event(events.REPLAY_TRUNCATED, skipped))

    def take(self) -> list[Event]:
        """Everything pending, in order; the list ends with ``completed`` or ``error`` last."""
        if self.done:
            return []
        if self.lagged:
            self.done = True
            self._broadcaster.unsubscribe(self)
            return [events.stream_error_event(events.STREAM_LAGGED, self.skipped)]
        batch = list(self._queue)
        self._queue.clear()
        if batch and batch[-1].ends_stream:
            self.done = True
            self._broadcaster.unsubscribe(self)
        return batch

    def close(self) -> None:
        """Leave: no more events are queued for this subscriber."""
        self.done = True
        self._queue.clear()
        self._broadcaster.unsubscribe(self)


class Broadcaster:
    """Delivers one prediction's events, in production order, to any number of subscribers.

    Args:
        history_capacity: events kept for late subscribers; 0 disables replay.
        queue_capacity: default per-subscriber bound before a subscriber is lagged.
        max_subscribers: subscribers allowed at once.
    """

    def __init__(
        self,
        history_capacity: int = DEFAULT_HISTORY_CAPACITY,
        *,
        queue_capacity: int = DEFAULT_QUEUE_CAPACITY,
        max_subscribers: int = DEFAULT_MAX_SUBSCRIBERS,
    ) -> None:
        if history_capacity < 0 or queue_capacity < 1 or max_subscribers < 1:
            msg = "capacities must be non-negative (queue and subscribers at least 1)"
            raise ValueError(msg)
        self.history_capacity = history_capacity
        self._history: deque[Event] = deque(maxlen=history_capacity)
        self._evicted = 0
        self._published = 0
        self._queue_capacity = queue_capacity
        self._max_subscribers = max_subscribers
        self._subscribers: list[Subscription] = []
        self.final: Event | None = None

    @property
    def subscriber_count(self) -> int:
        """Subscribers currently attached."""
        return len(self._subscribers)

    def publish(self, batch: Sequence[Event]) -> None:
        """Record a batch of events and queue it for every subscriber."""
        if not batch or self.final is not None:
            return
        self._published += len(batch)
        if self.history_capacity:
            overflow = len(self._history) + len(batch) - self.history_capacity
            if overflow > 0:
                self._evicted += overflow
            self._history.extend(batch)
        if batch[-1].ends_stream:
            self.final = batch[-1]
        for subscriber in list(self._subscribers):
            subscriber._push(batch)  # noqa: SLF001 - the two classes are one unit

    def subscribe(
        self,
        wake: Callable[[], None],
        *,
        replay: bool = True,
        queue_capacity: int | None = None,
    ) -> Subscription:
        """Attach a subscriber; with ``replay`` it first receives the retained history.

        A subscriber that joins after the end receives the history (or, with replay off or
        truncated, just the final event or the truncation error), so it always ends.

        Raises:
            TooManySubscribers: ``max_subscribers`` are already attached.
        """
        if len(self._subscribers) >= self._max_subscribers:
            raise TooManySubscribers
        subscription = Subscription(self, wake, queue_capacity or self._queue_capacity)
        if replay and self._evicted:
            subscription._truncate(self._evicted)  # noqa: SLF001
            return subscription
        if replay and self._history:
            subscription._queue.extend(self._history)  # noqa: SLF001
        elif self.final is not None:
            subscription._queue.append(self.final)  # noqa: SLF001
        if self.final is None:
            self._subscribers.append(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        """Detach a subscriber; unknown or already-detached subscribers are ignored."""
        try:
            self._subscribers.remove(subscription)
        except ValueError:
            pass

    def stats(self) -> BroadcasterStats:
        """Buffer occupancy, in the spirit of trio's channel ``statistics()``."""
        return BroadcasterStats(
            published=self._published,
            history_len=len(self._history),
            history_capacity=self.history_capacity,
            evicted=self._evicted,
            subscribers=len(self._subscribers),
            lagged_subscribers=sum(1 for s in self._subscribers if s.lagged),
            largest_queue=max((s.pending for s in self._subscribers), default=0),
        )
