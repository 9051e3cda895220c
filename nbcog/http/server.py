"""``Server``: a prediction service served over Cog's HTTP API on the current asyncio loop.

``start()`` does not block: it binds the socket, registers the server with the running loop
(the kernel's, in a notebook) and begins ``setup()`` on a thread, like Bokeh's ``show_app``.
``run()`` is the blocking entry point for the CLI. ``stop()`` is idempotent, because notebook
users re-run cells.

The server does not build what it serves: a ``ServiceFactory`` does (``nbcog/assembly.py``
puts runtime, webhooks and service together; ``nbcog.Server(predictor)`` is that assembly
around this class), so this package never imports the runner.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import threading
from collections.abc import Callable
from typing import Protocol

import tornado.httpserver
import tornado.httputil

from nbcog.http.app import DEFAULT_KEEPALIVE, DEFAULT_MAX_BODY_SIZE, make_app
from nbcog.http.auth import guard
from nbcog.http.connection import MAX_HEADER_BYTES, GuardedHTTPServer
from nbcog.http.responses import OpenResponses
from nbcog.service import Health, PredictionService

DEFAULT_PORT = 5000
STOP_GRACE = 2.0
"""Seconds ``stop()`` lets the last bodies and ``completed`` events flush before closing."""


class PortInUse(OSError):
    """The requested port is taken by another listener."""


class ServiceFactory(Protocol):
    """What a ``Server`` serves: a fresh service at each start and each ``replace_service``."""

    def build(self, loop: asyncio.AbstractEventLoop) -> PredictionService:
        """A new service on ``loop``, not started."""
        ...

    def release(self) -> Callable[[], None]:
        """Detach what the built services share; the returned call finishes releasing it.

        That call may block (queued webhooks get a few seconds to go out), so ``stop()`` runs
        it on a thread of its own.
        """
        ...


class Server:
    """Serve the services ``services`` builds over HTTP.

    Args:
        services: builds each service (``nbcog.assembly.PredictorServices``).
        host: the interface to bind; 127.0.0.1 by default.
        port: the TCP port; 0 picks a free one (see ``port`` after ``start()``).
        max_body_size: request bodies above this get 413.
        keepalive: seconds without an event before an SSE keep-alive comment.
        token: require ``Authorization: Bearer <token>`` on every route but the
            health-check (``nbcog.http.auth``); None serves openly, as Cog does.
    """

    def __init__(
        self,
        services: ServiceFactory,
        *,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        max_body_size: int = DEFAULT_MAX_BODY_SIZE,
        keepalive: float = DEFAULT_KEEPALIVE,
        token: str | None = None,
    ) -> None:
        self.host = host
        self.token = token
        self.port = port
        self.services = services
        self._max_body_size = max_body_size
        self._keepalive = keepalive
        self.service: PredictionService | None = None
        self._http: tornado.httpserver.HTTPServer | None = None
        self._stopped: asyncio.Event | None = None
        self._closing: asyncio.Future[None] | None = None
        self._responses = OpenResponses()

    @property
    def url(self) -> str:
        """``http://host:port`` of the running server."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def _bind(self) -> list[socket.socket]:
        # Not tornado.netutil.bind_sockets: it leaves the socket whose bind() failed open.
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        try:
            sock = socket.create_server((self.host, self.port), family=family, backlog=128)
            sock.setblocking(False)
            return [sock]
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                msg = (
                    f"port {self.port} on {self.host} is already in use; "
                    "stop what is listening there or pick another port (port=0 picks a free one)"
                )
                raise PortInUse(errno.EADDRINUSE, msg) from None
            raise

    def start(self) -> None:
        """Bind, listen on the current loop and begin setup; returns at once.

        Raises:
            PortInUse: the port is taken (nothing is left running).
            RuntimeError: already started.
        """
        if self._http is not None:
            msg = f"server already running at {self.url}"
            raise RuntimeError(msg)
        sockets = self._bind()
        self.port = sockets[0].getsockname()[1]
        self.service, app = self._make_service(asyncio.get_event_loop())
        # Bodies are limited by the create handlers (coglet's 413 text), not by tornado.
        self._http = GuardedHTTPServer(app, max_body_size=1 << 62, max_header_size=MAX_HEADER_BYTES)
        self._http.add_sockets(sockets)
        self._stopped = asyncio.Event()
        self.service.start()

    def _make_service(
        self, loop: asyncio.AbstractEventLoop
    ) -> tuple[PredictionService, tornado.httputil.HTTPServerConnectionDelegate]:
        """A new service from ``services`` and the application serving it (not started)."""
        service = self.services.build(loop)
        app = make_app(
            service,
            on_shutdown=self.stop,
            responses=self._responses,
            max_body_size=self._max_body_size,
            keepalive=self._keepalive,
        )
        return service, guard(app, self.token)

    def replace_service(self) -> PredictionService:
        """Route every new request to a new service (not started); returns the old one, open.

        The listening socket stays, so the port and URL never change: tornado's HTTPServer
        reads ``request_callback`` per request, keep-alive connections included. Requests
        already being handled finish against the old service. Serving loop only.
        """
        if self._http is None or self.service is None:
            msg = "the server is not running"
            raise RuntimeError(msg)
        old = self.service
        self.service, self._http.request_callback = self._make_service(asyncio.get_running_loop())
        return old

    @property
    def running(self) -> bool:
        """Started and not stopped."""
        return self._http is not None

    async def wait_until_ready(self, timeout: float | None = None) -> Health:
        """Wait until setup has ended (READY or SETUP_FAILED) and return the health."""
        assert self.service is not None, "start() first"
        ended: asyncio.Future[Health] = asyncio.get_running_loop().create_future()

        def end(health: Health) -> None:
            if not ended.done():
                ended.set_result(health)

        self.service.on_setup_done(end)
        return await asyncio.wait_for(ended, timeout)

    def stop(self) -> None:
        """Stop listening, end predictions as canceled, stop the runtime; no-op when stopped.

        Never blocks the loop (the kernel's, in a notebook): clients still waiting get their
        ``canceled`` body or ``completed`` event, then their connections close, and queued
        webhooks (each prediction's ``completed`` one included) drain on a thread for up to
        5 s. ``wait_closed()`` waits for all of that.
        """
        if self._http is None:
            return
        http, self._http = self._http, None
        http.stop()
        if self.service is not None:
            self.service.close()
        webhooks_closed = threading.Thread(
            target=self.services.release(), name="nbcog-webhooks-close", daemon=True
        )
        webhooks_closed.start()
        self._closing = asyncio.ensure_future(self._close(http, webhooks_closed))
        if self._stopped is not None:
            self._stopped.set()

    async def _close(
        self, http: tornado.httpserver.HTTPServer, webhooks_closed: threading.Thread
    ) -> None:
        await self._responses.wait_idle(STOP_GRACE)
        await http.close_all_connections()
        await asyncio.to_thread(webhooks_closed.join)

    async def serve_until_stopped(self) -> None:
        """Start (if needed) and wait until ``stop()`` or ``POST /shutdown``."""
        if self._http is None:
            self.start()
        assert self._stopped is not None
        await self._stopped.wait()
        await self.wait_closed()

    async def wait_closed(self) -> None:
        """After ``stop()``: wait until every open connection has been closed."""
        if self._closing is not None:
            await self._closing

    def run(self) -> None:
        """Blocking: serve on a new asyncio loop until stopped (the CLI's entry point)."""
        asyncio.run(self.serve_until_stopped())
