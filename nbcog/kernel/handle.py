"""``ServerHandle``: one server started from a notebook, its URLs, predictions and status.

A handle lives on two threads: the calling cell's and the serving loop's, which owns the
service (the kernel's own loop by default, a ``LoopThread`` of its own in thread mode). Work
on the service goes through ``run_on_loop``. The handle keeps the live monitors it showed, so
they follow a reload and learn of a stop. It knows nothing of the registry that lists it:
``nbcog.kernel.registry`` forgets a handle once it is no longer ``running``.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from nbcog.assembly import Server
from nbcog.core.errors import AtCapacity, InputValidationError, NbcogError, NotReady
from nbcog.core.schema import PredictorSchema
from nbcog.core.urls import local_url, proxy_url
from nbcog.kernel import widgets
from nbcog.kernel.lag import LagMonitor
from nbcog.kernel.loop import block_on
from nbcog.kernel.onsave import SaveReloader
from nbcog.kernel.predict import (
    PredictionFailed,
    PredictionResult,
    run_prediction,
    setup_done,
    show,
)
from nbcog.kernel.report import PredictionLine, ServerStatus, SetupView
from nbcog.runner import loopthread
from nbcog.runner.loopthread import LoopThread
from nbcog.service import PredictionService
from nbcog.widget import ServerMonitor

T = TypeVar("T")

RECENT_SHOWN = 5
CLOSE_GRACE = 2.5
"""Seconds a thread-mode loop gives its pending tasks (closing connections) when stopped."""


class CannotPredict(RuntimeError):
    """The server refused the prediction (not ready, busy, invalid input)."""

    def _render_traceback_(self) -> list[str]:
        """One line in the notebook: the message says it all."""
        return [f"{type(self).__name__}: {self}"]


def label_of(predictor: object) -> str:
    """A short name for messages: ``Predictor``, ``run``, or the ``file.py:Name`` ref."""
    if isinstance(predictor, str):
        return predictor
    name = getattr(predictor, "__qualname__", None) or type(predictor).__qualname__
    return str(name)


def running_loop() -> asyncio.AbstractEventLoop | None:
    """The loop running in this thread, or None (``get_running_loop`` raises instead).

    Inside a notebook cell this is the kernel's loop: ipykernel runs cells from its callbacks.
    """
    return asyncio._get_running_loop()


class ServerHandle:
    """A server started by ``nbcog.serve``: its URLs, blocking and async predictions, status.

    Use ``nbcog.serve`` to make one; it also reloads an existing one. Making one binds the
    port and starts serving (``PortInUse`` when the port is taken).
    """

    def __init__(
        self,
        predictor: object,
        label: str,
        *,
        host: str,
        port: int,
        upload_url: str | None,
        thread: bool,
        token: str | None = None,
    ) -> None:
        self.label = label
        self.host = host
        self.thread = thread
        self.reloads = 0
        self._server = Server(predictor, host=host, port=port, upload_url=upload_url, token=token)
        self._runner = LoopThread("nbcog-server") if thread else None
        loop = self._runner.loop if self._runner is not None else running_loop()
        assert loop is not None, "kernel-loop mode needs a running loop"
        self.loop: asyncio.AbstractEventLoop = loop
        self._lag = LagMonitor(loop)
        self._stopped = False
        self._reloader: SaveReloader | None = None
        self._monitors: list[ServerMonitor] = []
        self._start()

    # -- where ---------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The bound TCP port."""
        return self._server.port

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``: for curl and clients on this machine."""
        return local_url(self.host, self.port)

    @property
    def token(self) -> str | None:
        """The bearer token every route but the health-check requires, or None (open)."""
        return self._server.token

    @property
    def public_url(self) -> str:
        """The URL snippets use: the absolute proxy URL under JupyterHub/Binder, else ``url``."""
        proxied = self.proxy_url
        return proxied if proxied and proxied.startswith("http") else self.url

    @property
    def proxy_url(self) -> str | None:
        """The JupyterHub/Binder proxy URL, or None outside a hub (see ``nbcog.core.urls``)."""
        return proxy_url(self.port, os.environ)

    @property
    def running(self) -> bool:
        """Started and not stopped (``POST /shutdown`` stops it too)."""
        return not self._stopped and self._server.running

    @property
    def mode(self) -> str:
        """``"thread"`` or ``"kernel loop"``."""
        return "thread" if self.thread else "kernel loop"

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<nbcog server {self.label} at {self.url} ({self.mode}, {state})>"

    # -- the serving loop ----------------------------------------------------------------

    def run_on_loop(self, fn: Callable[[], T]) -> T:
        """Run ``fn()`` on the serving loop's thread and return its result."""
        return loopthread.run_on_loop(self.loop, fn)

    def service(self) -> PredictionService:
        """The service answering now (use it on the serving loop's thread).

        Raises:
            CannotPredict: the server is stopped.
        """
        service = self._server.service
        if service is None or not self.running:
            msg = f"the server at {self.url} is stopped; %cog serve (or nbcog.serve) it again"
            raise CannotPredict(msg)
        return service

    def _start(self) -> None:
        def start() -> None:
            self._server.start()
            self._lag.start()

        try:
            self.run_on_loop(start)
        except BaseException:
            if self._runner is not None:
                self._runner.stop(grace=CLOSE_GRACE)
            raise

    def show_setup(self, view: SetupView | None = None) -> None:
        """Show the progress of ``setup()`` (in the calling cell, or in ``view``'s display)."""
        view = view or SetupView(self.label, self.url, self.token)
        service = self._server.service
        assert service is not None

        def watch() -> None:
            view.watch(self.loop, service, lambda: self._server.service is service and self.running)

        self.loop.call_soon_threadsafe(watch)

    # -- lifecycle -------------------------------------------------------------------------

    def reload(
        self, predictor: object, label: str | None = None, token: str | None = None
    ) -> list[str]:
        """Serve ``predictor`` on the same port and URL; returns the cancelled predictions' ids.

        ``token`` is required from then on (None: the server is open).
        """
        self._server.token = token

        def reload() -> list[str]:
            cancelled = self._server.reload(predictor)
            service = self.service()
            for monitor in self._monitors:
                monitor.server_reloaded(service)
            return cancelled

        cancelled = self.run_on_loop(reload)
        self.label = label or label_of(predictor)
        self.reloads += 1
        return cancelled

    def reload_on_save(self, ref: str | None) -> None:
        """Reload on each save of ``ref`` (``file.py:Name``) and its local modules; None: stop.

        Call it from the serving cell: the reports of each save go to that cell.

        Raises:
            ValueError: ``ref`` is not a ``file.py`` reference.
        """
        if self._reloader is not None:
            self._reloader.stop()
            self._reloader = None
        if ref is not None:
            self._reloader = SaveReloader(self, ref)
            self._reloader.start()

    def stop(self) -> None:
        """Close the socket, cancel predictions, end the threads (idempotent, any thread)."""
        if self._stopped:
            return
        self._stopped = True
        self.reload_on_save(None)

        def stop() -> None:
            self._lag.stop()
            self._server.stop()
            monitors, self._monitors = self._monitors, []
            for monitor in monitors:
                monitor.server_stopped()

        if self._runner is not None:
            self._runner.call(stop)
            self._runner.stop(grace=CLOSE_GRACE)
        elif running_loop() is self.loop or not self.loop.is_running():
            stop()
        else:  # the kernel's loop, from another thread (kernel shutdown: the control thread)
            self.loop.call_soon_threadsafe(stop)

    # -- predictions ---------------------------------------------------------------------

    async def _predict(
        self, values: dict[str, Any], emit: Callable[[Any], None]
    ) -> PredictionResult:
        try:
            return await run_prediction(self.service(), values, emit)
        except NbcogError as error:
            raise CannotPredict(explain(error, self)) from None

    def predict(self, show_view: bool = False, **inputs: Any) -> PredictionResult:
        """Run a prediction and return its result, blocking until it ends.

        The server keeps serving outside clients meanwhile. Logs are printed as they come, or,
        with ``show_view``, a live ``PredictionView`` shows the output, logs and metrics (and
        nothing is printed: the view is where they are).
        Interrupting the kernel cancels this prediction (only) and raises KeyboardInterrupt.

        Raises:
            PredictionFailed: the prediction ended failed or canceled.
            CannotPredict: the server refused it (setup failed, busy, invalid input).
        """
        view_sink = None
        if show_view:
            view_sink = widgets.ViewSink(
                self.run_on_loop, self.service, self.public_url, self.token
            )
        sink = view_sink or show
        result = block_on(self.loop, lambda emit: self._predict(inputs, emit), sink)
        in_view = view_sink is not None and view_sink.view is not None
        if view_sink is not None:
            view_sink.settle()
            shown_once(result)  # the view shows it: no Out[n] repeating it
        if result.status != "succeeded":
            raise PredictionFailed(result, in_view=in_view)
        return result

    def watch(self) -> ServerMonitor:
        """Display the live monitor of every prediction of this server (``%cog watch``)."""
        service = self.service()
        return widgets.show_monitor(
            self.run_on_loop, service, self.public_url, self.token, self._monitors
        )

    def wait_until_ready(self) -> str:
        """Block until setup has ended (the server keeps serving); returns the health status."""

        async def ready(_emit: Callable[[Any], None]) -> str:
            service = self.service()
            await setup_done(service)
            return service.health.value

        return block_on(self.loop, ready, show)

    async def apredict(self, **inputs: Any) -> PredictionResult:
        """``predict`` for async cells: ``await handle.apredict(text="hi")``."""
        if running_loop() is self.loop:
            result = await self._predict(inputs, show)
        else:
            here = asyncio.get_running_loop()

            def emit(event: Any) -> None:
                here.call_soon_threadsafe(show, event)

            future = asyncio.run_coroutine_threadsafe(self._predict(inputs, emit), self.loop)
            result = await asyncio.wrap_future(future)
        if result.status != "succeeded":
            raise PredictionFailed(result)
        return result

    # -- status --------------------------------------------------------------------------

    def schema(self) -> PredictorSchema | None:
        """What the OpenAPI document says (inputs, outputs) once setup has succeeded, else None."""
        return self.run_on_loop(
            lambda: self._server.service.schema if self._server.service else None
        )

    def status(self) -> ServerStatus:
        """URL, health, predictions in flight and recent ones, and the loop's lag."""
        if not self.running:
            return ServerStatus(self.label, self.url, self.proxy_url, self.mode, False, {})
        return self.run_on_loop(self._status_on_loop)

    def _status_on_loop(self) -> ServerStatus:
        service = self.service()
        now = self.loop.time()
        in_flight = [
            PredictionLine(
                e.prediction.id, e.prediction.status.value, now - e.prediction.created_at
            )
            for e in service.inflight()
        ]
        recent = [
            PredictionLine(p.id, p.status.value, p.predict_time or 0.0, p.error)
            for p in list(service.recent)[:RECENT_SHOWN]
        ]
        return ServerStatus(
            label=self.label,
            url=self.url,
            proxy_url=self.proxy_url,
            mode=self.mode,
            running=True,
            health=service.health_body(),
            in_flight=in_flight,
            recent=recent,
            lag=self._lag.lag,
            reloads=self.reloads,
        )


def shown_once(value: object) -> None:
    """Keep IPython from echoing ``value`` as the cell's ``Out[n]``: it is on screen already.

    ``out = %cog predict ...`` gets the output; a bare ``%cog predict`` (or a cell ending in
    ``handle.predict(show_view=True)``) would otherwise show it a second time under its view.
    Only the display hook's next call is affected; IPython puts its own hook back when the
    cell ends.
    """
    previous = sys.displayhook

    def skip(result: object) -> None:
        sys.displayhook = previous
        if result is not value:
            previous(result)

    sys.displayhook = skip


def explain(error: NbcogError, handle: ServerHandle) -> str:
    """An ``NbcogError`` from the service, said for a notebook user."""
    if isinstance(error, InputValidationError):
        details = [
            f"{'/'.join(str(part) for part in item['loc'][2:]) or 'input'}: {item['msg']}"
            for item in error.body["detail"]
        ]
        return "invalid input: " + "; ".join(details)
    if isinstance(error, AtCapacity):
        return f"the server at {handle.url} is busy: every prediction slot is in use"
    if isinstance(error, NotReady):
        return f"setup of {handle.label} failed; `%cog status` (or handle.status()) shows its logs"
    return str(error.body)
