"""Helpers every test module may use (one copy of each)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

WAIT = 60.0
"""Seconds a test waits for something that should happen before it gives up (on a loaded
machine too); never a bound on how fast it happens (speed lives in bench/)."""


def wait_until(predicate: Callable[[], Any], what: str = "", timeout: float = WAIT) -> Any:
    """Poll ``predicate`` (a real observable) until it is truthy and return that value.

    Fails the test after ``timeout`` seconds, naming ``what`` it waited for.
    """
    deadline = time.monotonic() + timeout
    while not (result := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or predicate}")
        time.sleep(0.005)
    return result


def assert_check_rows_same(table: str, requests: Iterable[str]) -> None:
    """The ``--check`` table has a row for each of ``requests`` and each ends in ``yes``."""
    for request in requests:
        row = next(line for line in table.splitlines() if line.strip().startswith(request))
        assert row.endswith("  yes"), table
