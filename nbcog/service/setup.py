"""Setup and health of one served predictor (spec §4, §12, §17).

``SetupState`` starts ``setup()`` on the runtime's setup thread, hears its end on the serving
loop, enforces ``COG_SETUP_TIMEOUT`` with a loop timer, and answers the health-check body. It
knows nothing of predictions except how many are running (handed to ``health_body``).
"""

from __future__ import annotations

import concurrent.futures
import enum
import logging
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from nbcog.core.schema import PredictorSchema
from nbcog.core.versions import versions
from nbcog.runner.runtime import Runtime, SetupFailed
from nbcog.service.request import Loop
from nbcog.service.settings import setup_timeout_from_env

log = logging.getLogger("nbcog")

SETUP_TIMED_OUT = "worker setup timed out\n"
"""The setup-log line a setup timeout adds (coglet's words)."""


class Health(str, enum.Enum):
    """The ``status`` of ``GET /health-check`` (spec §4).

    No ``DEFUNCT``: coglet reserves it and never sends it, and neither does nbcog.
    """

    STARTING = "STARTING"
    READY = "READY"
    BUSY = "BUSY"
    UNHEALTHY = "UNHEALTHY"
    SETUP_FAILED = "SETUP_FAILED"


def _utc_now() -> str:
    return datetime.now(timezone.utc).isoformat()


class SetupState:
    """Where setup is (``health``), when it started and ended, and what it produced.

    Args:
        runtime: the predictor to set up.
        loop: the serving loop; every method runs on its thread.

    Once setup succeeded, ``schema`` holds the OpenAPI document and what it says (the inlined
    ``Input``/``TrainingInput`` schemas, the outputs, the slots).
    """

    def __init__(self, runtime: Runtime, loop: Loop) -> None:
        self._runtime = runtime
        self._loop = loop
        self.health = Health.STARTING
        self.started_at: str | None = None
        self.completed_at: str | None = None
        self.schema: PredictorSchema | None = None
        self._callbacks: list[Callable[[Health], None]] = []
        self._stopped = False

    @property
    def is_ready(self) -> bool:
        """Setup succeeded: creates may run."""
        return self.health in (Health.READY, Health.BUSY, Health.UNHEALTHY)

    def on_done(self, callback: Callable[[Health], None]) -> None:
        """Call ``callback(health)`` on the loop thread once setup has ended (now if it has)."""
        if self.health is Health.STARTING:
            self._callbacks.append(callback)
        else:
            callback(self.health)

    def start(self) -> None:
        """Begin loading and ``setup()`` on a setup thread; returns at once."""
        self.started_at = _utc_now()
        future = self._runtime.start_setup()
        future.add_done_callback(lambda f: self._loop.call_soon_threadsafe(self._setup_done, f))
        timeout = setup_timeout_from_env()
        if timeout is not None:
            self._loop.call_later(timeout, self._timed_out)

    def stop(self) -> None:
        """The service is closing: a setup that ends later is ignored (spec §17)."""
        self._stopped = True

    def _ended(self, health: Health) -> None:
        self.health = health
        callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback(health)

    def _setup_done(self, future: concurrent.futures.Future[None]) -> None:
        if self.health is not Health.STARTING or self._stopped:
            return  # timed out already, or stopped: a late setup is ignored (spec §17)
        self.completed_at = _utc_now()
        exc = future.exception()
        if exc is not None:
            if not isinstance(exc, SetupFailed):
                log.error("nbcog setup crashed", exc_info=exc)
            self._ended(Health.SETUP_FAILED)
            return
        self.schema = PredictorSchema.from_openapi(
            self._runtime.openapi(), max_concurrency=self._runtime.slots
        )
        self._ended(Health.READY)

    def _timed_out(self) -> None:
        if self.health is Health.STARTING:
            self.completed_at = _utc_now()
            self._runtime.append_setup_log("stderr", SETUP_TIMED_OUT)
            self._ended(Health.SETUP_FAILED)

    # -- the health-check ----------------------------------------------------------------

    def setup_view(self) -> dict[str, Any] | None:
        """The ``setup`` object of the health-check, None before setup starts."""
        if self.started_at is None:
            return None
        status = {
            Health.STARTING: "starting",
            Health.SETUP_FAILED: "failed",
        }.get(self.health, "succeeded")
        view: dict[str, Any] = {"started_at": self.started_at, "status": status}
        if self.completed_at is not None:
            view["completed_at"] = self.completed_at
        logs = self._runtime.setup_logs
        if logs:
            view["logs"] = logs
        return view

    def health_body(self, *, busy: int, user_error: str | None = None) -> dict[str, Any]:
        """The health-check body with ``busy`` predictions running; ``user_error`` comes from
        the user ``healthcheck()``."""
        status = self.health
        if status is Health.READY and busy >= self._runtime.slots:
            status = Health.BUSY
        if user_error is not None and self.is_ready:
            status = Health.UNHEALTHY
        body: dict[str, Any] = {"status": status.value, "version": versions()}
        setup = self.setup_view()
        if setup is not None:
            body["setup"] = setup
        if status is Health.UNHEALTHY:
            body["user_healthcheck_error"] = user_error
        return body
