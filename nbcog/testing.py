"""A test kit for nbcog and for people testing their predictors with it.

``serve_in_thread`` runs a real ``Server`` on 127.0.0.1 (port 0) on an asyncio loop in a
background thread, so a synchronous test (or a benchmark) can talk HTTP to it. ``parse_sse``
splits a raw ``text/event-stream`` body into ``(event, data)`` pairs without any SSE library.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from nbcog.assembly import Server
from nbcog.runner.loopthread import LoopThread, run_on_loop
from nbcog.service import Health

CALL_TIMEOUT = 10.0


@dataclass
class RunningServer:
    """A started server and the loop thread it lives on."""

    server: Server
    loop: asyncio.AbstractEventLoop
    health: Health

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:41234``."""
        return self.server.url

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn(*args)`` on the server's loop thread and return its result."""
        return run_on_loop(self.loop, lambda: fn(*args), CALL_TIMEOUT)


@contextmanager
def serve_in_thread(
    predictor: object, *, ready_timeout: float = 60.0, wait_ready: bool = True, **options: Any
) -> Iterator[RunningServer]:
    """Serve ``predictor`` on port 0 from a background loop thread; stop it on exit.

    ``options`` are ``Server`` keyword arguments. With ``wait_ready`` the context is entered
    only once setup has ended (READY or SETUP_FAILED).
    """
    options.setdefault("port", 0)
    thread = LoopThread("nbcog-test-server")
    server = Server(predictor, **options)

    async def _start() -> Health:
        server.start()
        assert server.service is not None
        if not wait_ready:
            return server.service.health
        return await server.wait_until_ready(ready_timeout)

    try:
        health = thread.submit(_start()).result(ready_timeout + 5)
        yield RunningServer(server, thread.loop, health)
    finally:

        async def _stop() -> None:
            server.stop()
            await server.wait_closed()

        thread.submit(_stop()).result(CALL_TIMEOUT)
        thread.stop(timeout=CALL_TIMEOUT)


def parse_sse(raw: bytes) -> list[tuple[str, Any]]:
    """``[(event, data), ...]`` from an SSE body; comments become ``(":", text)``."""
    out: list[tuple[str, Any]] = []
    for block in raw.decode().split("\n\n"):
        if not block:
            continue
        name, data = "message", []
        for line in block.split("\n"):
            if line.startswith(":"):
                out.append((":", line[1:].strip()))
            elif line.startswith("event: "):
                name = line[len("event: ") :]
            elif line.startswith("data: "):
                data.append(line[len("data: ") :])
        if data:
            out.append((name, json.loads("\n".join(data))))
    return out
