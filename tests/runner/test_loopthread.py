"""``nbcog.runner.loopthread``: the one loop-on-a-thread class and the one run-on-loop helper.

Real threads and real asyncio loops; every wait is on an event the code under test sets.
"""

from __future__ import annotations

import asyncio
import sys
import threading

import pytest

from nbcog.runner.loopthread import LoopThread, run_on_loop

WAIT = 30.0


def names() -> set[str]:
    return {thread.name for thread in threading.enumerate()}


def test_the_thread_starts_on_first_use_and_stop_ends_it():
    """No thread until the loop is asked for; a daemon thread runs it; stop() ends and closes."""
    runner = LoopThread("nbcog-test-lazy")
    assert "nbcog-test-lazy" not in names()
    loop = runner.loop
    thread = runner.call(threading.current_thread)
    assert thread.name == "nbcog-test-lazy"
    assert thread.daemon
    assert runner.loop is loop  # one loop until stopped
    runner.stop()
    assert not thread.is_alive()
    assert loop.is_closed()
    runner.stop()  # idempotent
    again = runner.loop  # used again: a new loop on a new thread
    try:
        assert again is not loop
        assert runner.call(lambda: asyncio.get_running_loop()) is again
    finally:
        runner.stop()
    assert again.is_closed()


def test_run_on_loop_returns_the_result_and_raises_the_error_on_the_caller():
    """fn runs on the loop's thread, inside a task; its value or exception reaches the caller."""
    runner = LoopThread("nbcog-test-call")
    try:

        def where() -> tuple[str, bool]:
            return threading.current_thread().name, asyncio.current_task() is not None

        assert run_on_loop(runner.loop, where) == ("nbcog-test-call", True)

        def fail() -> None:
            raise LookupError("no such prediction")

        with pytest.raises(LookupError, match="no such prediction"):
            run_on_loop(runner.loop, fail)
    finally:
        runner.stop()


def test_run_on_loop_from_the_loops_own_thread_runs_at_once():
    """Called inside the loop (a callback, a handler), fn runs in place instead of deadlocking."""
    runner = LoopThread("nbcog-test-nested")
    try:

        def outer() -> list[str]:
            order = ["before"]
            order.append(run_on_loop(runner.loop, lambda: "inner"))
            order.append("after")
            return order

        assert runner.call(outer) == ["before", "inner", "after"]
    finally:
        runner.stop()


def test_stop_cancels_pending_tasks_and_awaits_their_cleanup():
    """Without grace, a task still waiting is cancelled, and its ``finally`` runs before close."""
    runner = LoopThread("nbcog-test-cancel")
    started = threading.Event()
    cleaned: list[str] = []

    async def forever() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            cleaned.append("cleaned")

    runner.submit(forever())
    assert started.wait(WAIT)
    loop = runner.loop
    runner.stop()
    assert cleaned == ["cleaned"]
    assert loop.is_closed()


def test_stop_with_grace_lets_a_pending_task_finish():
    """With grace, a task still running when stop() begins is let finish, not cancelled."""
    runner = LoopThread("nbcog-test-grace")
    started = threading.Event()
    ended: list[str] = []

    async def closing() -> None:
        alone = len(asyncio.all_tasks())
        started.set()
        while len(asyncio.all_tasks()) == alone:  # until stop() adds its own task
            await asyncio.sleep(0.001)
        for _ in range(10):  # a few more turns of the loop: a connection being closed
            await asyncio.sleep(0)
        ended.append("finished")

    runner.submit(closing())
    assert started.wait(WAIT)
    runner.stop(grace=WAIT)
    assert ended == ["finished"]


def test_sys_exit_in_a_coroutine_does_not_end_the_thread():
    """SystemExit reaches the waiter; the loop keeps serving later work on the same thread."""
    runner = LoopThread("nbcog-test-exit")
    try:

        async def leave() -> None:
            sys.exit(3)

        with pytest.raises(SystemExit):
            runner.submit(leave()).result(WAIT)
        assert runner.call(lambda: threading.current_thread().name) == "nbcog-test-exit"
    finally:
        runner.stop()
