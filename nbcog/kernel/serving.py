"""``nbcog.serve``: a predictor served from a notebook, and the registry of this kernel's servers.

Rules a user can rely on (``%cog serve`` follows them too):

* **Serving again reloads.** Serving with the ``port`` of a running server, or without a
  port (or with 0) under the name of a running server, *reloads* that server in place: same
  port, same URL, new code, ``setup()`` re-run on a thread (see ``nbcog.http.reloading`` for
  what happens to predictions in flight). Another name or another port starts another
  server. A change of ``host`` or ``thread`` restarts the server on its port instead.
* **Ports.** Without ``port``: Cog's 5000 when free, else the next free one up to 5099, and the
  message says which port was taken and by whom. An explicit ``port`` that another program
  holds is a ``PortInUse`` error naming the holder (another nbcog server, a Cog server, a pid).
* **Loops.** By default the server runs on the loop of the calling thread (the kernel's, in a
  notebook); ``thread=True`` runs it on a loop of its own in a daemon thread. Without a running
  loop (a script, IPython in a terminal) a thread is used.
* **No leaks.** ``stop()`` (``%cog stop``), ``%reload_ext nbcog`` and kernel shutdown close the
  socket, the worker threads and, in thread mode, the loop thread.
"""

from __future__ import annotations

import asyncio
import errno
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from nbcog.assembly import Server
from nbcog.core.errors import AtCapacity, InputValidationError, NbcogError, NotReady
from nbcog.core.schema import PredictorSchema
from nbcog.core.urls import PROXY_SSE_NOTE, local_url, proxy_url
from nbcog.http.auth import TOKEN_ENV, exposure_warning, new_token
from nbcog.http.server import DEFAULT_PORT, PortInUse
from nbcog.kernel import widgets
from nbcog.kernel.hosting import CALL_TIMEOUT, ServerThread
from nbcog.kernel.lag import LagMonitor
from nbcog.kernel.loop import block_on
from nbcog.kernel.onsave import SaveReloader
from nbcog.kernel.ports import describe_holder
from nbcog.kernel.predict import (
    PredictionFailed,
    PredictionResult,
    run_prediction,
    setup_done,
    show,
)
from nbcog.kernel.report import LOOP_NOTE, PredictionLine, ServerStatus, SetupView
from nbcog.runner.watching import predictor_file
from nbcog.service import PredictionService

T = TypeVar("T")

PORT_SEARCH = 100
RECENT_SHOWN = 5

_handles: dict[int, ServerHandle] = {}
_notes_shown: set[str] = set()


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


def _running_loop() -> asyncio.AbstractEventLoop | None:
    """The loop running in this thread, or None (``get_running_loop`` raises instead).

    Inside a notebook cell this is the kernel's loop: ipykernel runs cells from its callbacks.
    """
    return asyncio._get_running_loop()


class ServerHandle:
    """A server started by ``nbcog.serve``: its URLs, blocking and async predictions, status.

    Use ``nbcog.serve`` to make one; it also reloads an existing one.
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
        self._runner = ServerThread() if thread else None
        loop = self._runner.loop if self._runner is not None else _running_loop()
        assert loop is not None, "kernel-loop mode needs a running loop"
        self.loop: asyncio.AbstractEventLoop = loop
        self._lag = LagMonitor(loop)
        self._stopped = False
        self._reloader: SaveReloader | None = None

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

    # -- running on the serving loop -----------------------------------------------------

    def _call(self, fn: Callable[[], T]) -> T:
        """Run ``fn()`` on the serving loop's thread and return its result."""
        if _running_loop() is self.loop:
            return fn()

        async def run() -> T:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(CALL_TIMEOUT)

    def _service(self) -> PredictionService:
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
            self._call(start)
        except BaseException:
            if self._runner is not None:
                self._runner.close()
            raise

    def _watch_setup(self, view: SetupView | None = None) -> None:
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
            widgets.server_reloaded(self, self._service())
            return cancelled

        cancelled = self._call(reload)
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
        if _handles.get(self.port) is self:
            del _handles[self.port]

        def stop() -> None:
            self._lag.stop()
            self._server.stop()
            widgets.server_stopped(self)

        if self._runner is not None:
            self._runner.call(stop)
            self._runner.close()
        elif _running_loop() is self.loop or not self.loop.is_running():
            stop()
        else:  # the kernel's loop, from another thread (kernel shutdown: the control thread)
            self.loop.call_soon_threadsafe(stop)

    # -- predictions ---------------------------------------------------------------------

    async def _predict(
        self, values: dict[str, Any], emit: Callable[[Any], None]
    ) -> PredictionResult:
        try:
            return await run_prediction(self._service(), values, emit)
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
        sink = widgets.ViewSink(self) if show_view else show
        result = block_on(self.loop, lambda emit: self._predict(inputs, emit), sink)
        in_view = isinstance(sink, widgets.ViewSink) and sink.view is not None
        if isinstance(sink, widgets.ViewSink):
            sink.settle()
            shown_once(result)  # the view shows it: no Out[n] repeating it
        if result.status != "succeeded":
            raise PredictionFailed(result, in_view=in_view)
        return result

    def watch(self) -> Any:
        """Display the live monitor of every prediction of this server (``%cog watch``)."""
        return widgets.show_monitor(self)

    def wait_until_ready(self) -> str:
        """Block until setup has ended (the server keeps serving); returns the health status."""

        async def ready(_emit: Callable[[Any], None]) -> str:
            service = self._service()
            await setup_done(service)
            return service.health.value

        return block_on(self.loop, ready, show)

    async def apredict(self, **inputs: Any) -> PredictionResult:
        """``predict`` for async cells: ``await handle.apredict(text="hi")``."""
        if _running_loop() is self.loop:
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
        return self._call(lambda: self._server.service.schema if self._server.service else None)

    def status(self) -> ServerStatus:
        """URL, health, predictions in flight and recent ones, and the loop's lag."""
        if not self.running:
            return ServerStatus(self.label, self.url, self.proxy_url, self.mode, False, {})
        return self._call(self._status_on_loop)

    def _status_on_loop(self) -> ServerStatus:
        service = self._service()
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


# -- the registry ----------------------------------------------------------------------------


def servers() -> list[ServerHandle]:
    """This process's running servers, oldest first (stopped ones are forgotten)."""
    for port, handle in list(_handles.items()):
        if not handle.running:
            handle.stop()
            _handles.pop(port, None)
    return list(_handles.values())


def stop_all() -> None:
    """Stop every server this process started (``%cog stop``, unload, kernel shutdown)."""
    for handle in list(_handles.values()):
        handle.stop()


def _target(port: int | None, label: str) -> ServerHandle | None:
    running = servers()
    if port is not None:
        return _handles.get(port)
    same = [handle for handle in running if handle.label == label]
    return same[-1] if same else None


def _say(message: str) -> None:
    print(message, flush=True)


def _note_once(key: str, message: str) -> None:
    if key not in _notes_shown:
        _notes_shown.add(key)
        _say(message)


def _start(
    predictor: object,
    label: str,
    host: str,
    port: int,
    upload_url: str | None,
    thread: bool,
    token: str | None,
) -> ServerHandle:
    handle = ServerHandle(
        predictor, label, host=host, port=port, upload_url=upload_url, thread=thread, token=token
    )
    handle._start()
    _handles[handle.port] = handle
    return handle


def _start_on_free_port(
    predictor: object,
    label: str,
    host: str,
    upload_url: str | None,
    thread: bool,
    token: str | None,
) -> ServerHandle:
    first_taken: str | None = None
    for port in range(DEFAULT_PORT, DEFAULT_PORT + PORT_SEARCH):
        try:
            handle = _start(predictor, label, host, port, upload_url, thread, token)
        except PortInUse:
            if first_taken is None:
                first_taken = f"port {port} is taken by {describe_holder(host, port)}"
            continue
        if first_taken is not None:
            _say(f"nbcog: {first_taken}; serving on port {handle.port} instead")
        return handle
    return _start(predictor, label, host, 0, upload_url, thread, token)


def serve(
    predictor: object,
    *,
    port: int | None = None,
    host: str = "127.0.0.1",
    upload_url: str | None = None,
    thread: bool | None = None,
    name: str | None = None,
    token: str | bool | None = None,
    reload: bool = False,
) -> ServerHandle:
    """Serve ``predictor`` over Cog's HTTP API from this process and return its handle.

    Args:
        predictor: a class, instance or function (cells included), or ``file.py:Name``.
        port: the TCP port; None takes 5000 or the next free one; 0 any free one.
        host: the interface to bind (127.0.0.1; ``0.0.0.0`` exposes it to the network).
        upload_url: PUT file outputs there instead of returning data URLs.
        thread: serve from a daemon thread (True), the calling thread's running loop (False),
            or the loop when one is running here, else a thread (None).
        name: how messages call it (default: the class or function name, or the ref).
        token: require ``Authorization: Bearer TOKEN`` on every route but the health-check:
            a string is the token; True makes a random one (printed once; a reload keeps the
            server's current one); None uses ``NBCOG_TOKEN`` if set; False serves openly.
        reload: reload on each save of ``predictor`` (a ``file.py:Name`` reference) and of
            the local modules it imports (``nbcog.kernel.onsave``).

    Raises:
        ValueError: ``reload`` with a predictor that is not a ``file.py`` reference.

    Raises:
        PortInUse: ``port`` is held by another program (the message names it).
    """
    label = name or label_of(predictor)
    watched: str | None = None
    if reload:
        if not isinstance(predictor, str):
            msg = "reload on save watches a file: serve file.py:Name"
            raise ValueError(msg)
        predictor_file(predictor)  # a ValueError for a module:Name reference
        watched = predictor
    if thread is None:
        thread = _running_loop() is None
    target = _target(port or None, label)  # port 0 is "any free port", not a server
    current = target.token if target is not None else None
    token_value, generated = _resolve_token(token, current)
    if target is not None and target.host == host and target.thread == thread:
        was = target.label
        cancelled = target.reload(predictor, label, token_value)
        what = f"{label} (was {was})" if was != label else label
        fate = "no predictions were in flight"
        if cancelled:
            fate = f"cancelled {len(cancelled)} in flight on the old code: {', '.join(cancelled)}"
        _say(f"nbcog: reloaded {what} at {target.url} (same port); {fate}; running setup() again")
        _say_token(target, token_value if generated else None)
        target._watch_setup()
        target.reload_on_save(watched)
        return target
    if target is not None:
        port = target.port
        mode = "thread" if thread else "kernel loop"
        _say(f"nbcog: restarting the server on port {port} ({mode} mode, host {host})")
        target.stop()
    install_shutdown_hook()
    if port is None:
        handle = _start_on_free_port(predictor, label, host, upload_url, thread, token_value)
    else:
        try:
            handle = _start(predictor, label, host, port, upload_url, thread, token_value)
        except PortInUse:
            holder = describe_holder(host, port)
            msg = (
                f"port {port} on {host} is taken by {holder}; stop it, or pick another port "
                "(leave the port out to take 5000 or the next free one)"
            )
            raise PortInUse(errno.EADDRINUSE, msg) from None
    _say(f"nbcog: serving {label} at {handle.url} ({handle.mode})")
    if handle.proxy_url:
        _say(f"nbcog: through the Jupyter proxy: {handle.proxy_url}\n       note: {PROXY_SSE_NOTE}")
    _say(f"  curl -s {handle.url}/health-check")
    _say_token(handle, token_value if generated else None)
    if not thread:
        _note_once("loop", LOOP_NOTE)
    handle._watch_setup()
    handle.reload_on_save(watched)
    return handle


def _resolve_token(token: str | bool | None, current: str | None) -> tuple[str | None, bool]:
    """The token to require, and whether it was made just now (then it is shown once)."""
    if token is None:
        return os.environ.get(TOKEN_ENV) or None, False
    if token is False:
        return None, False
    if token is True or token == "":
        return (current, False) if current else (new_token(), True)
    return str(token), False


def _say_token(handle: ServerHandle, generated: str | None) -> None:
    """Show a generated token once, and warn about a network interface without one."""
    if generated is not None:
        _say(f"nbcog: token (shown once; handle.token has it): {generated}")
    warning = exposure_warning(handle.host, handle.token)
    if warning:
        _say(warning)


# -- kernel shutdown ---------------------------------------------------------------------------

_hooked_shells: set[int] = set()


def install_shutdown_hook(shell: Any = None) -> None:
    """Stop every server when the kernel shuts down (ipykernel sets ``shell.exit_now``).

    The observer runs on the thread that handled the shutdown request (ipykernel's control
    thread); ``ServerHandle.stop`` hands the work to each server's loop.
    """
    if shell is None:
        from IPython.core.getipython import get_ipython

        shell = get_ipython()
    if shell is None or id(shell) in _hooked_shells:
        return
    _hooked_shells.add(id(shell))

    def on_exit(change: dict[str, Any]) -> None:
        if change["new"]:
            stop_all()

    shell.observe(on_exit, names="exit_now")
