"""A fake serving loop for the service's unit tests: the test drives it, and owns its clock.

It has what ``nbcog.service.Loop`` asks for. ``call_soon_threadsafe`` queues callbacks (from
any thread: the setup thread, the runner's workers); ``run_until`` runs them on the test's
thread until a condition holds, so the test thread is the service's loop thread. Timers fire
only when the test moves the clock with ``advance``: a timeout is tested without waiting
for it.
"""

from __future__ import annotations

import heapq
import itertools
import queue
from collections.abc import Callable
from typing import Any

from helpers import WAIT


class FakeTimer:
    """What ``call_later`` returns: a timer that can be cancelled before it fires."""

    def __init__(self, when: float, callback: Callable[..., object], args: tuple[Any, ...]):
        self.when = when
        self.callback = callback
        self.args = args
        self.cancelled = False

    def cancel(self) -> None:
        """Do not fire."""
        self.cancelled = True


class FakeLoop:
    """A loop whose clock starts at 0 and moves only by ``advance``."""

    def __init__(self) -> None:
        self.now = 0.0
        self._ready: queue.SimpleQueue[tuple[Callable[..., object], tuple[Any, ...]]] = (
            queue.SimpleQueue()
        )
        self._timers: list[tuple[float, int, FakeTimer]] = []
        self._order = itertools.count()
        self.ran = 0  # queued callbacks run so far (timers not counted)

    def call_soon_threadsafe(self, callback: Callable[..., object], *args: object) -> None:
        """Queue ``callback(*args)`` for the next ``run_until``/``run_ready``."""
        self._ready.put((callback, args))

    def call_later(self, delay: float, callback: Callable[..., object], *args: object) -> FakeTimer:
        """Fire ``callback(*args)`` once the clock has been advanced by ``delay``."""
        timer = FakeTimer(self.now + delay, callback, args)
        heapq.heappush(self._timers, (timer.when, next(self._order), timer))
        return timer

    def time(self) -> float:
        """The fake clock."""
        return self.now

    def pending(self) -> int:
        """Callbacks queued and not yet run: what the next ``run_ready`` starts with."""
        return self._ready.qsize()

    def advance(self, seconds: float) -> None:
        """Move the clock, firing every timer that falls due, in order."""
        self.now += seconds
        while self._timers and self._timers[0][0] <= self.now:
            _, _, timer = heapq.heappop(self._timers)
            if not timer.cancelled:
                timer.callback(*timer.args)

    def run_ready(self) -> None:
        """Run the callbacks queued so far (and any they queue), without blocking."""
        while True:
            try:
                callback, args = self._ready.get_nowait()
            except queue.Empty:
                return
            self.ran += 1
            callback(*args)

    def run_until(self, condition: Callable[[], object], what: str = "") -> None:
        """Run queued callbacks, waiting for more, until ``condition()`` is true.

        Fails after ``WAIT`` seconds without a callback (a safety net, not a time bound).
        """
        self.run_ready()
        while not condition():
            try:
                callback, args = self._ready.get(timeout=WAIT)
            except queue.Empty:
                raise AssertionError(f"nothing happened for {WAIT} s waiting for {what}") from None
            self.ran += 1
            callback(*args)
