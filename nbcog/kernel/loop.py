"""Blocking a cell until the server has an answer, while the server keeps serving.

``%cog predict`` and ``handle.predict()`` must block the calling cell (that is what a user
expects of a plain function call) although the server they wait for may live on the very loop
the cell runs in. Two cases:

* **the loop runs this cell** (the default, kernel-loop mode): the loop is already running
  further up the stack, so it is re-entered with ``nest_asyncio2`` and turned until the result
  is in. Outside clients, SSE streams and other timers are served meanwhile. ``nest_asyncio2``
  patches asyncio process-wide (pure-Python tasks and futures), so it is applied lazily, on the
  first blocking call, and only here: serving and awaiting never need it. (The original
  ``nest_asyncio`` is unmaintained and loses queued cells on ipykernel 7.4.)
* **the loop runs in another thread** (``--thread`` mode, or a caller off the kernel's main
  thread): the coroutine is handed over with ``run_coroutine_threadsafe`` and this thread waits.

Interrupting the kernel (SIGINT) while waiting does not raise in the middle of whatever the
loop happens to be running (a request handler, a broadcaster): a handler installed for the wait
cancels the coroutine's task *on the loop*, the coroutine cleans up (``%cog predict`` cancels
its prediction and waits for it to end ``canceled``), and then ``KeyboardInterrupt`` is raised
in the cell. A second interrupt stops waiting at once (for a predictor stuck in C code, which
cancellation cannot stop).
"""

from __future__ import annotations

import asyncio
import queue
import signal
import threading
from collections.abc import Callable, Coroutine
from types import FrameType
from typing import Any, TypeVar

T = TypeVar("T")
Sink = Callable[[Any], None]
MakeCoroutine = Callable[[Sink], Coroutine[Any, Any, T]]

_DONE = object()


def _ensure_reentrant(loop: asyncio.AbstractEventLoop) -> None:
    """Make ``loop`` re-entrant (idempotent); the one place nbcog touches nest_asyncio2."""
    if getattr(loop, "_nest_patched", False):
        return
    import nest_asyncio2

    nest_asyncio2.apply(loop)


class _Interrupts:
    """SIGINT during a wait: the first cancels the task, the second abandons the wait."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.task: asyncio.Future[Any] | None = None
        self.count = 0
        self.abandon: Callable[[], object] = lambda: None
        self._previous: Any = None
        self._installed = False

    def __enter__(self) -> _Interrupts:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
            self._installed = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._previous)

    def _handle(self, _signum: int, _frame: FrameType | None) -> None:
        # Runs between two bytecodes of whatever the main thread is doing: only schedule.
        self.count += 1
        if self.count == 1 and self.task is not None:
            self._loop.call_soon_threadsafe(self.task.cancel)
        else:
            self.abandon()


def block_on(
    loop: asyncio.AbstractEventLoop, make: MakeCoroutine[T], sink: Callable[[Any], None]
) -> T:
    """Run ``make(emit)`` on ``loop`` and return its result, blocking the calling thread.

    ``emit(item)`` may be called by the coroutine on the loop; every item reaches ``sink`` on
    the *calling* thread, in order, while the wait goes on (so a cell's live output is written
    by the cell's own thread).

    Raises:
        KeyboardInterrupt: the kernel was interrupted during the wait (once the cancelled
            coroutine has finished, or at once on a second interrupt).
    """
    if asyncio._get_running_loop() is loop:  # this thread is inside that loop's run
        return _nested(loop, make(sink))
    if loop.is_running():
        return _from_other_thread(loop, make, sink)
    msg = "the server's event loop is not running (was the kernel shut down?)"
    raise RuntimeError(msg)


def _nested(loop: asyncio.AbstractEventLoop, coroutine: Coroutine[Any, Any, T]) -> T:
    _ensure_reentrant(loop)
    task = loop.create_task(coroutine)
    waiter: asyncio.Future[None] = loop.create_future()

    def release() -> None:
        if not waiter.done():
            waiter.set_result(None)

    task.add_done_callback(lambda _: release())
    with _Interrupts(loop) as interrupts:
        interrupts.task = task
        interrupts.abandon = lambda: loop.call_soon_threadsafe(release)
        loop.run_until_complete(waiter)
    if interrupts.count:
        if task.done() and not task.cancelled():
            task.exception()  # retrieved: the interrupt is what the cell reports
        raise KeyboardInterrupt
    return task.result()


def _from_other_thread(
    loop: asyncio.AbstractEventLoop, make: MakeCoroutine[T], sink: Callable[[Any], None]
) -> T:
    items: queue.SimpleQueue[Any] = queue.SimpleQueue()
    interrupts = _Interrupts(loop)

    async def hold() -> T:
        # The task is cancelled by the interrupt handler, not through the concurrent future:
        # cancelling that future would end the wait before the coroutine has cleaned up.
        task = asyncio.ensure_future(make(items.put))
        interrupts.task = task
        return await task

    future = asyncio.run_coroutine_threadsafe(hold(), loop)
    future.add_done_callback(lambda _: items.put(_DONE))
    with interrupts:
        interrupts.abandon = lambda: items.put(_DONE)
        while (item := items.get()) is not _DONE:
            sink(item)
    if interrupts.count:
        raise KeyboardInterrupt
    return future.result()
