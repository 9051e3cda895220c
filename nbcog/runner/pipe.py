"""The hand-off of events from predictor threads to the serving loop.

Worker threads ``put`` items; the loop receives them in batches through ``deliver``. A drain
is scheduled (``post``, i.e. ``loop.call_soon_threadsafe``) only when none is pending, so:

* the first item after a quiet period is scheduled at once: batching never holds a token
  back, and time to first output is one loop wake-up;
* while the loop is busy, a fast producer's items pile up and arrive as one batch, which the
  SSE layer writes with one ``write`` + ``flush`` (per-event flushing tops out far lower).

Backpressure: a producer that gets more than ``high_water`` items ahead of the loop waits
until the loop has drained them. Without it, a generator yielding in a tight loop fills every
subscriber's bounded queue within one GIL switch interval (5 ms), and fast readers would be
cut off as "lagged". This paces the producer to the *loop*, never to one slow subscriber:
subscribers have their own bounded queues and are dropped when they lag.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

Item = TypeVar("Item")
Post = Callable[[Callable[[], None]], object]  # loop.call_soon_threadsafe; result unused

DEFAULT_HIGH_WATER = 256


class EventPipe(Generic[Item]):
    """A thread-safe, batching, bounded queue from any thread to the loop thread.

    Args:
        post: schedules a callable on the loop thread (thread-safe).
        deliver: called on the loop thread with every item put since the last call.
        high_water: pending items at which ``put`` waits for the loop to catch up.
    """

    __slots__ = (
        "_closed",
        "_deliver",
        "_drained",
        "_high_water",
        "_lock",
        "_pending",
        "_post",
        "_scheduled",
    )

    def __init__(
        self,
        post: Post,
        deliver: Callable[[list[Item]], None],
        high_water: int = DEFAULT_HIGH_WATER,
    ) -> None:
        self._post = post
        self._deliver = deliver
        self._high_water = high_water
        # put() takes the bare lock: its C-level ``with`` costs less per event than the
        # Condition's Python-level one. The Condition shares it for the backpressure wait.
        self._lock = threading.Lock()
        self._drained = threading.Condition(self._lock)
        self._pending: list[Item] = []
        self._scheduled = False
        self._closed = False

    def put(self, item: Item) -> None:
        """Queue ``item`` for the loop; callable from any thread but the loop's own."""
        with self._lock:
            while len(self._pending) >= self._high_water and not self._closed:
                self._drained.wait()
            if self._closed:
                return
            self._pending.append(item)
            if self._scheduled:
                return
            self._scheduled = True
        try:
            self._post(self._drain)
        except RuntimeError:
            self.close()  # the loop is gone (server stopped): nobody will drain

    def close(self) -> list[Item]:
        """Stop accepting items and never block a producer again; return what was pending."""
        with self._drained:
            self._closed = True
            pending, self._pending = self._pending, []
            self._drained.notify_all()
        return pending

    def _drain(self) -> None:
        with self._drained:
            batch = self._pending
            self._pending = []
            self._scheduled = False
            self._drained.notify_all()
        if batch:
            self._deliver(batch)
