"""How late the serving loop runs: the wait a request would have had before being read.

A server on the kernel's loop answers only while the loop turns. A cell that awaits keeps it
turning; a cell that blocks (``time.sleep``, a long CPU loop, a C call) stops it, and every
request waits until the cell ends. The monitor schedules a tick every ``interval`` seconds and
records how late each tick ran; ``%cog status`` shows the latest lag and the worst one of the
last ``window`` seconds, so a user can see that a blocking cell paused the server.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass

DEFAULT_INTERVAL = 0.25
DEFAULT_WINDOW = 60.0


@dataclass(frozen=True)
class Lag:
    """Loop lag in seconds: the latest tick's, and the worst in the window."""

    last: float
    worst: float
    window: float


class LagMonitor:
    """Ticks on ``loop`` and remembers how late each tick was (loop thread only, except ``lag``).

    Args:
        loop: the serving loop.
        interval: seconds between ticks (a tick costs a few microseconds).
        window: seconds of history kept for ``worst``.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        interval: float = DEFAULT_INTERVAL,
        window: float = DEFAULT_WINDOW,
    ) -> None:
        self._loop = loop
        self._interval = interval
        self._window = window
        self._samples: deque[tuple[float, float]] = deque()
        self._handle: asyncio.TimerHandle | None = None
        self._due = 0.0

    def start(self) -> None:
        """Begin ticking (call on the loop thread)."""
        self._schedule()

    def _schedule(self) -> None:
        self._due = self._loop.time() + self._interval
        self._handle = self._loop.call_at(self._due, self._tick)

    def _tick(self) -> None:
        now = self._loop.time()
        self._samples.append((now, max(0.0, now - self._due)))
        while self._samples and self._samples[0][0] < now - self._window:
            self._samples.popleft()
        self._schedule()

    def stop(self) -> None:
        """Stop ticking (call on the loop thread); idempotent."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    @property
    def lag(self) -> Lag:
        """The latest and the worst lag of the window (readable from any thread)."""
        samples = list(self._samples)
        if not samples:
            return Lag(0.0, 0.0, self._window)
        return Lag(samples[-1][1], max(lag for _, lag in samples), self._window)
