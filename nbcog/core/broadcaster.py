"""Fan-out of one prediction's events to every subscriber: SSE streams, webhooks, widgets.

Bounded everywhere (spec §11.5, §11.6), with coglet's semantics (a ``tokio`` broadcast
channel of 1024 plus a replay ``VecDeque``), checked against coglet 0.23.1 live:

* history: the last ``history_capacity`` events, for late subscribers; evicting is O(1)
  (a ``deque`` with ``maxlen``) and counted. A late subscriber who would miss evicted events
  gets only the truncation ``error`` event, whose ``skipped`` is the evicted count. Capacity
  0 turns replay off: late subscribers see only later events.
* per-subscriber queue: live events the subscriber has not taken yet, at most
  ``queue_capacity`` (the replay is separate and does not count, as in coglet). A subscriber
  that falls further behind is *lagged*: its live queue is dropped at once (memory stays
  bounded however slow it is, and later publishes skip it), and its next ``take()`` returns
  what is left of its replay, then the lag ``error`` event. Its ``skipped`` is counted as
  tokio counts ``Lagged(n)``: events published since its last ``take()``, minus the
  ``queue_capacity`` the channel would still have held. Nobody ever waits for a slow
  subscriber.
* subscribers: at most ``max_subscribers`` (``TooManySubscribers``, HTTP 429).

Ownership: a broadcaster is used from one thread (the serving loop). ``wake`` callbacks are
called on that thread when a subscriber's queue goes from empty to non-empty (or it lags), so
a consumer can sleep until there is something to take and then take everything in one go.
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

    Call ``take()`` right after subscribing (for the replay), then whenever ``wake`` fires.
    Once ``done`` is true nothing more will come: the last event taken ended the stream
    (``completed``, or an ``error`` for truncation or lag).
    """

    __slots__ = (
        "_broadcaster",
        "_capacity",
        "_cursor",
        "_queue",
        "_replay",
        "_wake",
        "done",
        "lagged",
        "skipped",
    )

    def __init__(self, broadcaster: Broadcaster, wake: Callable[[], None], capacity: int) -> None:
        self._broadcaster = broadcaster
        self._wake = wake
        self._capacity = capacity
        # Events published before this point were either replayed or are not ours.
        self._cursor = broadcaster.published
        self._replay: list[Event] = []
        self._queue: list[Event] = []
        self.lagged = False
        self.skipped = 0
        self.done = False

    @property
    def pending(self) -> int:
        """Events waiting to be taken (a lagged subscriber's live events were dropped)."""
        return len(self._replay) + len(self._queue)

    def _push(self, batch: Sequence[Event]) -> None:
        if self.done or self.lagged:
            return
        was_empty = not self._queue
        self._queue.extend(batch)
        if self._broadcaster.published - self._cursor > self._capacity:
            self.lagged = True
            self._queue = []
            self._wake()
        elif was_empty:
            self._wake()

    def take(self) -> list[Event]:
        """Everything pending, in order; a list ending the stream has its end event last."""
        if self.done:
            return []
        batch = self._queue
        if self._replay:
            batch = self._replay + batch
            self._replay = []
        if self.lagged:
            self.skipped = self._broadcaster.published - self._cursor - self._capacity
            batch.append(events.stream_error_event(events.STREAM_LAGGED, self.skipped))
        self._queue = []
        self._cursor = self._broadcaster.published
        if batch and batch[-1].ends_stream:
            self._leave()
        return batch

    def close(self) -> None:
        """Leave: no more events are queued for this subscriber."""
        self._replay = []
        self._queue = []
        self._leave()

    def _leave(self) -> None:
        # The wake callback usually closes over its follower, which holds this subscription:
        # dropping it breaks that cycle, so a finished prediction is freed by reference
        # counting instead of waiting for a full garbage collection.
        self.done = True
        self._wake = _asleep
        self._broadcaster.unsubscribe(self)


def _asleep() -> None:
    """The wake callback of a subscription that has ended: nothing more will come."""


class Broadcaster:
    """Delivers one prediction's events, in production order, to any number of subscribers.

    Args:
        history_capacity: events kept for late subscribers; 0 disables replay.
        queue_capacity: default per-subscriber bound on untaken live events before lagging.
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
        self.published = 0
        self._queue_capacity = queue_capacity
        self._max_subscribers = max_subscribers
        # Copy-on-write: publishing iterates it without a copy while a wake callback may
        # subscribe or unsubscribe.
        self._subscribers: tuple[Subscription, ...] = ()
        self.final: Event | None = None

    @property
    def subscriber_count(self) -> int:
        """Subscribers currently attached (lagged ones too, until they take their error)."""
        return len(self._subscribers)

    def publish(self, batch: Sequence[Event]) -> None:
        """Record a batch of events and queue it for every subscriber.

        A batch's stream-ending event (``completed``), if any, must be its last; anything
        published after it is ignored.
        """
        if not batch or self.final is not None:
            return
        self.published += len(batch)
        if self.history_capacity:
            overflow = len(self._history) + len(batch) - self.history_capacity
            if overflow > 0:
                self._evicted += overflow
            self._history.extend(batch)
        if batch[-1].ends_stream:
            self.final = batch[-1]
        for subscriber in self._subscribers:
            subscriber._push(batch)

    def subscribe(
        self,
        wake: Callable[[], None],
        *,
        replay: bool = True,
        queue_capacity: int | None = None,
    ) -> Subscription:
        """Attach a subscriber; with ``replay`` its first ``take()`` returns the history.

        A subscriber that joins after the end receives the history (or, with replay off or
        truncated, just the final event or the truncation error), so it always ends.

        Raises:
            TooManySubscribers: ``max_subscribers`` are already attached.
            ValueError: ``queue_capacity`` is less than 1.
        """
        if len(self._subscribers) >= self._max_subscribers:
            raise TooManySubscribers
        capacity = self._queue_capacity if queue_capacity is None else queue_capacity
        if capacity < 1:
            msg = "queue_capacity must be at least 1"
            raise ValueError(msg)
        subscription = Subscription(self, wake, capacity)
        if replay and self._evicted:
            subscription._replay = [
                events.stream_error_event(events.REPLAY_TRUNCATED, self._evicted)
            ]
            subscription.skipped = self._evicted
            return subscription
        if replay and self._history:
            subscription._replay = list(self._history)
        elif self.final is not None:
            subscription._replay = [self.final]
        if self.final is None:
            self._subscribers = (*self._subscribers, subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        """Detach a subscriber; unknown or already-detached subscribers are ignored."""
        if subscription in self._subscribers:
            self._subscribers = tuple(s for s in self._subscribers if s is not subscription)

    def stats(self) -> BroadcasterStats:
        """Buffer occupancy, in the spirit of trio's channel ``statistics()``."""
        return BroadcasterStats(
            published=self.published,
            history_len=len(self._history),
            history_capacity=self.history_capacity,
            evicted=self._evicted,
            subscribers=len(self._subscribers),
            lagged_subscribers=sum(1 for s in self._subscribers if s.lagged),
            largest_queue=max((s.pending for s in self._subscribers), default=0),
        )
