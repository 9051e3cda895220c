"""EventPipe (nbcog/runner/pipe.py) against a fake loop: when drains are scheduled, what each
batch holds, and how a producer is paced to the loop (ARCHITECTURE.md, "Threads").

The loop only runs when a test calls ``run_ready``, so "at once" means "a drain is already
posted when ``put`` returns", and batching is checked by what one drain delivers.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Callable

from fake_loop import FakeLoop
from helpers import wait_until

from nbcog.runner.pipe import DEFAULT_HIGH_WATER, EventPipe


class Delivered:
    """The pipe's ``deliver``: every batch, as the loop received it."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []

    def __call__(self, batch: list[int]) -> None:
        self.batches.append(list(batch))

    @property
    def items(self) -> list[int]:
        return [item for batch in self.batches for item in batch]


def pipe_on(
    loop: FakeLoop, high_water: int = DEFAULT_HIGH_WATER
) -> tuple[EventPipe[int], Delivered]:
    delivered = Delivered()
    return EventPipe(loop.call_soon_threadsafe, delivered, high_water), delivered


def waiting_in(thread: threading.Thread, function: Callable[..., object]) -> bool:
    """Whether ``thread`` is blocked in a ``Condition.wait`` called from ``function``."""
    frame = sys._current_frames().get(thread.ident or -1)
    while frame is not None:
        if frame.f_code is threading.Condition.wait.__code__:
            caller = frame.f_back
            return caller is not None and caller.f_code is function.__code__
        frame = frame.f_back
    return False


def producer(pipe: EventPipe[int], items: range) -> tuple[threading.Thread, list[int]]:
    """A started thread putting ``items``; the list records each put that returned."""
    returned: list[int] = []

    def produce() -> None:
        for item in items:
            pipe.put(item)
            returned.append(item)

    thread = threading.Thread(target=produce, daemon=True)
    thread.start()
    return thread, returned


def test_the_first_item_of_a_burst_is_posted_at_once() -> None:
    """A put after a quiet period posts a drain before it returns: nothing is held back."""
    loop = FakeLoop()
    pipe, delivered = pipe_on(loop)
    pipe.put(1)
    assert loop.pending() == 1
    loop.run_ready()
    assert loop.ran == 1
    assert delivered.batches == [[1]]


def test_later_items_join_the_pending_drain_as_one_batch() -> None:
    """While a drain is pending, puts post nothing more; the one drain delivers them all."""
    loop = FakeLoop()
    pipe, delivered = pipe_on(loop)
    for item in range(5):
        pipe.put(item)
    assert loop.pending() == 1
    loop.run_ready()
    assert delivered.batches == [[0, 1, 2, 3, 4]]


def test_each_quiet_period_ends_with_one_new_drain() -> None:
    """After a drain ran, the next put posts again: one drain scheduled at a time, never none."""
    loop = FakeLoop()
    pipe, delivered = pipe_on(loop)
    pipe.put(0)
    pipe.put(1)
    loop.run_ready()
    pipe.put(2)
    assert (loop.ran, loop.pending()) == (1, 1)
    pipe.put(3)
    assert (loop.ran, loop.pending()) == (1, 1)
    loop.run_ready()
    assert delivered.batches == [[0, 1], [2, 3]]


def test_an_item_put_during_delivery_gets_its_own_drain() -> None:
    """The pending list is taken before ``deliver`` runs: an item put meanwhile is not lost."""
    loop = FakeLoop()
    delivered = Delivered()
    pipes: list[EventPipe[int]] = []

    def deliver_and_put(batch: list[int]) -> None:
        delivered(batch)
        if batch == [0]:
            producer(pipes[0], range(1, 2))[0].join()

    pipes.append(EventPipe(loop.call_soon_threadsafe, deliver_and_put))
    pipes[0].put(0)
    loop.run_ready()  # runs the drain the delivery's put posted too
    assert loop.ran == 2
    assert delivered.batches == [[0], [1]]


def test_items_keep_each_producers_order() -> None:
    """Two threads' items interleave in some order, but each thread's stay in its own order."""
    loop = FakeLoop()
    pipe, delivered = pipe_on(loop, high_water=1000)
    threads = [producer(pipe, range(start, start + 500))[0] for start in (0, 1000)]
    for thread in threads:
        thread.join()
    loop.run_ready()
    assert [i for i in delivered.items if i < 1000] == list(range(500))
    assert [i for i in delivered.items if i >= 1000] == list(range(1000, 1500))


def test_a_producer_ahead_by_high_water_waits_for_the_loop() -> None:
    """At ``high_water`` pending items ``put`` blocks until a drain runs, then goes on."""
    loop = FakeLoop()
    pipe, delivered = pipe_on(loop, high_water=3)
    thread, returned = producer(pipe, range(5))
    wait_until(lambda: waiting_in(thread, EventPipe.put), "the producer to block in put")
    assert returned == [0, 1, 2]
    assert loop.pending() == 1
    loop.run_ready()  # the loop catches up: the producer may go on
    thread.join()
    assert returned == [0, 1, 2, 3, 4]
    loop.run_ready()
    assert delivered.batches == [[0, 1, 2], [3, 4]]


def test_the_pace_is_the_loops_not_the_delivery_callbacks() -> None:
    """The producer is released when the batch is taken, before ``deliver`` returns."""
    loop = FakeLoop()
    returned: list[int] = []

    def slow_deliver(batch: list[int]) -> None:
        if batch == [0, 1]:
            wait_until(lambda: len(returned) == 3, "the producer to go on while deliver runs")

    pipe: EventPipe[int] = EventPipe(loop.call_soon_threadsafe, slow_deliver, high_water=2)
    thread, returned = producer(pipe, range(3))
    wait_until(lambda: waiting_in(thread, EventPipe.put), "the producer to block in put")
    loop.run_ready()
    thread.join()


def test_close_returns_what_was_pending_and_drops_later_items() -> None:
    """``close`` hands back undelivered items; puts after it post and deliver nothing."""
    loop = FakeLoop()
    pipe, delivered = pipe_on(loop)
    pipe.put(0)
    pipe.put(1)
    assert pipe.close() == [0, 1]
    pipe.put(2)
    assert loop.pending() == 1
    loop.run_ready()  # the drain posted before the close finds nothing
    assert delivered.batches == []
    assert pipe.close() == []


def test_close_releases_a_blocked_producer_without_queueing_its_item() -> None:
    """A producer waiting at high water returns once the pipe closes: it never hangs."""
    loop = FakeLoop()
    pipe, delivered = pipe_on(loop, high_water=2)
    thread, returned = producer(pipe, range(4))
    wait_until(lambda: waiting_in(thread, EventPipe.put), "the producer to block in put")
    assert pipe.close() == [0, 1]
    thread.join()
    assert returned == [0, 1, 2, 3]
    loop.run_ready()
    assert delivered.batches == []


def test_a_closed_loop_closes_the_pipe() -> None:
    """When posting fails (the server's loop is gone) the pipe closes: no producer can block."""
    gone = asyncio.new_event_loop()
    gone.close()
    posts: list[object] = []

    def post(callback: Callable[[], None]) -> object:
        posts.append(callback)
        return gone.call_soon_threadsafe(callback)

    pipe: EventPipe[int] = EventPipe(post, Delivered(), high_water=1)
    pipe.put(0)
    for item in range(1, 10):  # would block at the second item if the pipe stayed open
        pipe.put(item)
    assert len(posts) == 1
    assert pipe.close() == []
