"""Prediction responses still being written, so that stopping the server lets them finish.

``Server.stop()`` ends every prediction at once (as ``canceled``). The clients waiting on
them (a sync request, an SSE stream) are then owed a last body or ``completed`` event; closing
their connections in the same loop turn would cut that off, and a large body may take a few
writes to leave. The server waits here, briefly, before it closes what is left.
"""

from __future__ import annotations

import asyncio
import contextlib


class OpenResponses:
    """Counts create requests from arrival until their response is flushed or the client left.

    Loop thread only.
    """

    def __init__(self) -> None:
        self._open = 0
        self._idle: list[asyncio.Future[None]] = []

    @property
    def count(self) -> int:
        """Responses not yet finished."""
        return self._open

    def opened(self) -> None:
        """A create request arrived."""
        self._open += 1

    def closed(self) -> None:
        """Its response is flushed, or its client has gone (call once per ``opened``)."""
        self._open -= 1
        if self._open == 0:
            idle, self._idle = self._idle, []
            for waiter in idle:
                if not waiter.done():
                    waiter.set_result(None)

    async def wait_idle(self, timeout: float) -> bool:
        """Wait until none is open, at most ``timeout`` seconds; True when none is."""
        if self._open == 0:
            return True
        waiter = asyncio.get_running_loop().create_future()
        self._idle.append(waiter)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(waiter, timeout)
        return self._open == 0
