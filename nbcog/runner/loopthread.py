"""Asyncio loops on daemon threads, and running a function on a loop's thread.

Three kinds of loop live on threads of their own: the async predictors' loop (spec §1: async
``setup()``, ``run()``/``predict()``, ``train()`` and ``healthcheck()`` share it, so
loop-bound resources made in setup keep working in predictions, and user code cannot stall
the serving loop), a notebook server's loop in ``--thread`` mode, and ``nbcog.testing``'s.
They are all a ``LoopThread``. ``run_on_loop`` is the one way code elsewhere runs a function
on a loop's thread (the serving loop owns the service) and waits for its result.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

CALL_TIMEOUT = 30.0
"""Seconds ``run_on_loop`` waits for the loop by default: a stuck loop fails the caller."""


def run_on_loop(
    loop: asyncio.AbstractEventLoop, fn: Callable[[], T], timeout: float = CALL_TIMEOUT
) -> T:
    """Run ``fn()`` on ``loop``'s thread and return its result (or raise its exception).

    ``fn`` runs inside a task of ``loop``, as a callback of the loop would. Called on that
    thread, inside the loop's run, it runs ``fn()`` at once: waiting there would deadlock.
    """
    if asyncio._get_running_loop() is loop:
        return fn()

    async def run() -> T:
        return fn()

    return asyncio.run_coroutine_threadsafe(run(), loop).result(timeout)


class LoopThread:
    """A daemon thread running an asyncio loop, started on first use.

    ``stop()`` ends the thread and closes the loop; using it again afterwards starts a new
    one. A ``SystemExit`` escaping a callback (user code calling ``sys.exit()``) does not end
    the thread: the task that raised it (and whoever waits on it) still gets the exception.
    """

    def __init__(self, name: str) -> None:
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

    def call(self, fn: Callable[[], T], timeout: float = CALL_TIMEOUT) -> T:
        """Run ``fn()`` on the loop thread and return its result (see ``run_on_loop``)."""
        return run_on_loop(self.loop, fn, timeout)

    def stop(self, grace: float = 0.0, timeout: float = 5.0) -> None:
        """End the thread and close the loop (idempotent, from any other thread).

        Pending tasks get up to ``grace`` seconds to finish (a server's closing connections);
        the rest are cancelled and their cleanup awaited. All of it, joining the thread
        included, takes at most ``timeout`` seconds: a loop whose thread is still busy then (a
        callback stuck in user code) is left running, unclosed.
        """
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None:
            return
        deadline = time.monotonic() + timeout
        settled = asyncio.run_coroutine_threadsafe(_settle(grace), loop)
        with contextlib.suppress(concurrent.futures.TimeoutError):
            settled.result(timeout)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(max(0.0, deadline - time.monotonic()))
        if not thread.is_alive():
            loop.close()


async def _settle(grace: float) -> None:
    """Let the loop's other tasks finish for up to ``grace`` seconds, then cancel the rest."""
    current = asyncio.current_task()
    late = {task for task in asyncio.all_tasks() if task is not current}
    if late and grace > 0:
        _, late = await asyncio.wait(late, timeout=grace)
    for task in late:
        task.cancel()
    await asyncio.gather(*late, return_exceptions=True)


def _run_forever(loop: asyncio.AbstractEventLoop) -> None:
    """Run ``loop`` until ``stop()``, surviving ``sys.exit()`` in user coroutines.

    asyncio re-raises ``SystemExit``/``KeyboardInterrupt`` out of ``run_forever`` after
    storing it on the task, so an async ``setup()``/``healthcheck()`` calling ``sys.exit()``
    would otherwise end this thread and strand every later async prediction.
    """
    asyncio.set_event_loop(loop)
    while True:
        try:
            loop.run_forever()
        except (SystemExit, KeyboardInterrupt):
            continue
        return
