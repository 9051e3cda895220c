"""The one asyncio loop, on its own thread, where async predictors live (spec §1).

Async ``setup()``, ``run()``/``predict()``, ``train()`` and ``healthcheck()`` all run here, so
loop-bound resources made in setup keep working in predictions. It is never the serving loop:
user code must not be able to stall the HTTP server or the notebook.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class AsyncLoopThread:
    """A daemon thread running an asyncio loop, started on first use."""

    def __init__(self, name: str = "nbcog-async-predictor") -> None:
        self._name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The loop, starting the thread if needed."""
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=_run_forever, args=(loop,), name=self._name, daemon=True
                )
                thread.start()
                self._loop, self._thread = loop, thread
            return self._loop

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Schedule ``coro`` on the loop thread; the future completes with its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def stop(self) -> None:
        """Cancel what is left, stop the loop and close it (idempotent)."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None:
            return

        def _shutdown() -> None:
            for task in asyncio.all_tasks(loop):
                task.cancel()
            loop.stop()

        loop.call_soon_threadsafe(_shutdown)
        thread.join(timeout=5)
        if not thread.is_alive():
            loop.close()


def _run_forever(loop: asyncio.AbstractEventLoop) -> None:
    """Run ``loop`` until ``stop()``, surviving ``sys.exit()`` in user coroutines.

    asyncio re-raises ``SystemExit``/``KeyboardInterrupt`` out of ``run_forever`` after
    storing it on the task, so an async ``setup()``/``healthcheck()`` calling ``sys.exit()``
    would otherwise end this thread and strand every later async prediction. The task (and
    whoever waits on it) still gets the exception.
    """
    while True:
        try:
            loop.run_forever()
        except (SystemExit, KeyboardInterrupt):
            continue
        return
