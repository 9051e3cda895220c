"""Where a notebook's server runs: a loop thread for ``--thread`` mode.

The server itself is ``nbcog.Server`` (``nbcog.assembly``), which hot-reloads on the same
socket (``nbcog.http.reloading``); the CLI's ``--reload`` uses the same one.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

CALL_TIMEOUT = 30.0


class ServerThread:
    """An asyncio loop on a daemon thread, for ``--thread`` mode.

    The server then keeps answering while a cell blocks the kernel's own loop (``time.sleep``,
    a long CPU loop). ``close()`` lets pending tasks (closing connections) run briefly, stops
    the loop, joins the thread and closes the loop, so nothing is left behind.
    """

    def __init__(self, name: str = "nbcog-server") -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def call(self, fn: Callable[[], T], timeout: float = CALL_TIMEOUT) -> T:
        """Run ``fn()`` on the loop thread and return its result (or raise its exception)."""

        async def run() -> T:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Finish pending tasks for up to ``timeout`` seconds, then stop and close the loop."""

        async def settle() -> None:
            current = asyncio.current_task()
            tasks = [task for task in asyncio.all_tasks() if task is not current]
            if tasks:
                _, late = await asyncio.wait(tasks, timeout=timeout / 2)
                for task in late:
                    task.cancel()
                await asyncio.gather(*late, return_exceptions=True)

        if self.loop.is_running():
            with contextlib.suppress(concurrent.futures.TimeoutError):
                asyncio.run_coroutine_threadsafe(settle(), self.loop).result(timeout)
            self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout)
        if not self._thread.is_alive() and not self.loop.is_closed():
            self.loop.close()
