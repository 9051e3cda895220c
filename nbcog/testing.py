"""A test kit for nbcog and for people testing their predictors with it.

``serve_in_thread`` runs a real ``Server`` on 127.0.0.1 (port 0) on an asyncio loop in a
background thread, so a synchronous test (or a benchmark) can talk HTTP to it. ``parse_sse``
splits a raw ``text/event-stream`` body into ``(event, data)`` pairs without any SSE library.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from nbcog.assembly import Server
from nbcog.service import Health


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

    def call(self, fn: Any, *args: Any) -> Any:
        """Run ``fn(*args)`` on the server's loop thread and return its result."""

        async def _call() -> Any:
            return fn(*args)

        return asyncio.run_coroutine_threadsafe(_call(), self.loop).result(timeout=10)


@contextmanager
def serve_in_thread(
    predictor: object, *, ready_timeout: float = 60.0, wait_ready: bool = True, **options: Any
) -> Iterator[RunningServer]:
    """Serve ``predictor`` on port 0 from a background loop thread; stop it on exit.

    ``options`` are ``Server`` keyword arguments. With ``wait_ready`` the context is entered
    only once setup has ended (READY or SETUP_FAILED).
    """
    options.setdefault("port", 0)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="nbcog-test-server", daemon=True)
    thread.start()
    server = Server(predictor, **options)

    async def _start() -> Health:
        server.start()
        assert server.service is not None
        if not wait_ready:
            return server.service.health
        return await server.wait_until_ready(ready_timeout)

    try:
        health = asyncio.run_coroutine_threadsafe(_start(), loop).result(ready_timeout + 5)
        yield RunningServer(server, loop, health)
    finally:

        async def _stop() -> None:
            server.stop()
            await server.wait_closed()

        asyncio.run_coroutine_threadsafe(_stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


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
