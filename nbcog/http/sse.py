"""Writing a prediction's events as a Server-Sent Events response (spec §11).

One subscriber per response. Each wake-up takes *everything* pending and writes it with one
``write`` + ``flush``, so a fast stream costs one syscall per batch, not per token; the SSE
bytes were encoded once when the event was made. A keep-alive comment goes out after
``keepalive`` seconds without an event. The client leaving is noticed at once (tornado calls
``on_connection_close`` even while nothing is being written); the stream counts for
cancel-on-disconnect, so the service decides whether that cancels the prediction.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from nbcog.core.events import KEEPALIVE
from nbcog.service import PredictionRef


class StreamTarget(Protocol):
    """The part of a tornado ``RequestHandler`` an SSE stream writes to."""

    def set_status(self, status_code: int) -> None: ...

    def set_header(self, name: str, value: str) -> None: ...

    def write(self, chunk: bytes) -> None: ...

    def flush(self) -> asyncio.Future[None]: ...

    def finish(self) -> asyncio.Future[None]: ...


class Closer:
    """Wakes a stream waiting for events: new events are pending, or the client has gone.

    Cheaper than ``asyncio.wait_for(event.wait(), timeout)``, which costs a task and two
    extra loop turns per wake-up (time to first output): here, one future and one timer.
    Used only on the loop thread.
    """

    def __init__(self) -> None:
        self.closed = False
        self._woken = False
        self._waiter: asyncio.Future[bool] | None = None

    def wake(self) -> None:
        """Something happened: a pending ``wait`` returns True (a later one at once)."""
        self._woken = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(True)

    def close(self) -> None:
        """The client has gone."""
        self.closed = True
        self.wake()

    def clear(self) -> None:
        """Forget past wake-ups (the caller is about to look for itself)."""
        self._woken = False

    async def wait(self, timeout: float) -> bool:
        """True once woken, False after ``timeout`` seconds without a wake-up."""
        if self._woken:
            return True
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[bool] = loop.create_future()
        self._waiter = waiter
        timer = loop.call_later(timeout, _expire, waiter)
        try:
            return await waiter
        finally:
            timer.cancel()
            self._waiter = None


def _expire(waiter: asyncio.Future[bool]) -> None:
    if not waiter.done():
        waiter.set_result(False)


async def stream_events(
    handler: StreamTarget,
    ref: PredictionRef,
    *,
    closer: Closer,
    keepalive: float,
) -> None:
    """Stream ``ref``'s events (replay, then live) until ``completed``/``error`` or hang-up.

    Raises:
        TooManySubscribers: before anything is written (so the caller can answer 429).
        tornado.iostream.StreamClosedError: when the client left mid-write.
    """
    subscription = ref.subscribe(closer.wake, counts_for_cancel=True)
    try:
        handler.set_status(200)
        handler.set_header("Content-Type", "text/event-stream")
        handler.set_header("Cache-Control", "no-cache")
        handler.set_header("X-Accel-Buffering", "no")
        await handler.flush()
        while not closer.closed:
            closer.clear()
            batch = subscription.take()
            if batch:
                handler.write(b"".join([event.wire for event in batch]))
                await handler.flush()
                if subscription.done:
                    break
                continue
            if not await closer.wait(keepalive):
                handler.write(KEEPALIVE)
                await handler.flush()
    finally:
        subscription.close()
    if not closer.closed:
        await handler.finish()
