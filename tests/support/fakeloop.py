"""A stand-in for the serving loop that runs nothing until the test says so.

It has the three loop methods our code calls (``call_soon_threadsafe``, ``call_later``,
``time``) and records every callback instead of running it, so a test decides when "the loop"
gets a turn and can check the order of hand-offs exactly, without sleeping and without a
real event loop's scheduling in the way.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(eq=False)
class Timer:
    """A ``call_later`` callback: due at ``when`` on the fake clock unless cancelled."""

    when: float
    callback: Callable[..., object]
    args: tuple[Any, ...]
    cancelled: bool = False

    def cancel(self) -> None:
        self.cancelled = True


@dataclass(eq=False)
class FakeLoop:
    """Callbacks wait in ``ready`` (any thread may add one) until ``run_ready``; the clock
    moves only through ``advance``."""

    now: float = 0.0
    ready: list[tuple[Callable[..., object], tuple[Any, ...]]] = field(default_factory=list)
    timers: list[Timer] = field(default_factory=list)
    posted: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def call_soon_threadsafe(self, callback: Callable[..., object], *args: Any) -> None:
        with self._lock:
            self.ready.append((callback, args))
            self.posted += 1

    def call_later(self, delay: float, callback: Callable[..., object], *args: Any) -> Timer:
        timer = Timer(self.now + delay, callback, args)
        with self._lock:
            self.timers.append(timer)
        return timer

    def time(self) -> float:
        return self.now

    def pending(self) -> int:
        """Callbacks posted and not yet run."""
        with self._lock:
            return len(self.ready)

    def run_ready(self) -> int:
        """One loop iteration: run the callbacks posted so far (not ones they post); count them."""
        with self._lock:
            batch, self.ready = self.ready, []
        for callback, args in batch:
            callback(*args)
        return len(batch)

    def advance(self, seconds: float) -> None:
        """Move the clock; timers now due become ready, earliest first."""
        self.now += seconds
        with self._lock:
            due = sorted((t for t in self.timers if t.when <= self.now), key=lambda t: t.when)
            self.timers = [t for t in self.timers if t.when > self.now]
            self.ready.extend((t.callback, t.args) for t in due if not t.cancelled)
