"""The user ``healthcheck()`` as seen by ``GET /health-check`` (spec §4).

Called on every GET once setup succeeded; simultaneous GETs share one call; 5 s timeout.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable
from typing import Any

from nbcog.core.errors import describe_exception

HEALTHCHECK_TIMEOUT = 5.0
FAILED_FALSE = "Healthcheck failed: user-defined healthcheck returned False"
TIMED_OUT = "Healthcheck failed: user-defined healthcheck timed out after 5.0 seconds"


class HealthChecker:
    """Runs the user healthcheck for the health-check handler, one call at a time.

    ``start`` begins one call and returns its future, or None when there is no healthcheck
    (``PredictionService.user_healthcheck``).
    """

    def __init__(
        self,
        start: Callable[[], concurrent.futures.Future[Any] | None],
        timeout: float = HEALTHCHECK_TIMEOUT,
    ) -> None:
        self._start = start
        self._timeout = timeout
        self._current: asyncio.Future[str | None] | None = None

    async def check(self) -> str | None:
        """The ``user_healthcheck_error`` text, or None when healthy (or no healthcheck)."""
        if self._current is None or self._current.done():
            self._current = asyncio.ensure_future(self._run())
        return await asyncio.shield(self._current)

    async def _run(self) -> str | None:
        future = self._start()
        if future is None:
            return None
        try:
            result = await asyncio.wait_for(asyncio.wrap_future(future), self._timeout)
        except asyncio.TimeoutError:
            return TIMED_OUT
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            return f"Healthcheck failed: {describe_exception(exc)}"
        return FAILED_FALSE if result is False else None
