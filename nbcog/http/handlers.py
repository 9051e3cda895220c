"""Request handlers for Cog's predictions API (spec §2-§8, §14, §17, §18).

Every handler is thin: parse, call the service, write. ``NbcogError``s become responses in
one place (``CogHandler.send_error_body``); unknown paths and wrong methods get coglet's empty
404/405.
"""

from __future__ import annotations

import asyncio
from typing import Any

import tornado.web
from tornado.http1connection import HTTP1Connection
from tornado.httputil import HTTPServerRequest
from tornado.iostream import IOStream, StreamClosedError

from nbcog.core.errors import NbcogError
from nbcog.core.jsonenc import dumpb
from nbcog.core.prediction import Status
from nbcog.core.versions import versions
from nbcog.http.envelope import EnvelopeError, parse_envelope
from nbcog.http.health import HealthChecker
from nbcog.http.responses import OpenResponses
from nbcog.http.sse import Closer, stream_events
from nbcog.service import Mode, PredictionRef, PredictionService

PAYLOAD_TOO_LARGE = "Failed to buffer the request body: length limit exceeded"
INVALID_URL_ID = "Invalid URL: Invalid UTF-8 in `id`"
_METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")
SSE_MIME = "text/event-stream"
# Above this, a body is written separately from the headers (see CogHandler.finish_body).
_SEPARATE_BODY_BYTES = 1 << 20


def wants_sse(accept: str | None) -> bool:
    """``Accept`` lists exactly ``text/event-stream`` (parameters ignored, case-sensitive).

    As coglet: each comma-separated part is trimmed, then cut at ``;``, so
    ``text/event-stream;q=0.9`` matches and ``text/event-stream ;q=1`` does not (live).
    """
    if not accept:
        return False
    return any(part.strip().split(";", 1)[0] == SSE_MIME for part in accept.split(","))


def first_header(headers: Any, name: str) -> str | None:
    """The first ``name`` header, as coglet reads it (tornado joins repeats with commas)."""
    values = headers.get_list(name)
    return values[0] if values else None


def request_mode(headers: Any) -> Mode:
    """SSE beats ``Prefer: respond-async`` (exact match), which beats sync (spec §8)."""
    if wants_sse(first_header(headers, "Accept")):
        return Mode.SSE
    if first_header(headers, "Prefer") == "respond-async":
        return Mode.ASYNC
    return Mode.SYNC


def _client_stream(request: HTTPServerRequest) -> IOStream:
    """The client's socket: tornado's HTTPServer serves every request over an HTTP1Connection."""
    connection = request.connection
    assert isinstance(connection, HTTP1Connection), connection
    return connection.stream


class _TextError(tornado.web.HTTPError):
    """A 4xx whose body is coglet's plain-text message (logged without a traceback)."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(status, text)
        self.text = text


class CogHandler(tornado.web.RequestHandler):
    """Common plumbing: JSON bodies with sorted keys, coglet-like headers and errors."""

    service: PredictionService

    def initialize(self, service: PredictionService, **_: Any) -> None:
        """Handlers share the application's one service."""
        self.service = service

    def set_default_headers(self) -> None:
        """No ``Server`` header and no ``text/html`` default: coglet sends neither."""
        self.clear_header("Server")
        self.clear_header("Content-Type")

    def decode_argument(self, value: bytes, name: str | None = None) -> str:
        """Path ids that are not UTF-8 get coglet's 400 text (tornado's would be empty)."""
        try:
            return super().decode_argument(value, name)
        except tornado.web.HTTPError:
            if name is not None:
                raise
            raise _TextError(400, INVALID_URL_ID) from None

    @classmethod
    def allowed_methods(cls) -> list[str]:
        """The methods this route answers, for the ``Allow`` header of its 405s."""
        base = tornado.web.RequestHandler
        return [m for m in _METHODS if getattr(cls, m.lower()) is not getattr(base, m.lower())]

    def compute_etag(self) -> None:
        """No ETag/304 handling: coglet answers every GET in full."""
        return

    def send_json(self, status: int, body: Any) -> None:
        """Finish with ``body`` as compact sorted JSON."""
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish_body(dumpb(body))

    def finish_body(self, body: bytes) -> None:
        """Finish with ``body``; a large one goes out after the headers, not appended to them.

        Tornado copies a body into its header buffer when both are written at once. For a
        20 MB file returned as a 27 MB data URL, that fresh 27 MB copy costs more than the
        rest of the HTTP layer together.
        """
        if len(body) > _SEPARATE_BODY_BYTES:
            self.set_header("Content-Length", len(body))
            self.flush()
        self.finish(body)

    def send_text(self, status: int, text: str) -> None:
        """Finish with a ``text/plain`` body (coglet's body-parsing errors)."""
        # coglet's status line says "413 Payload Too Large"; Python's phrase is older.
        self.set_status(status, "Payload Too Large" if status == 413 else None)
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.finish(text.encode())

    def send_error_body(self, error: NbcogError) -> None:
        """The single translation of core/service errors to HTTP."""
        self.send_json(error.status, error.body)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """404/405 and friends: empty bodies, as coglet; 500s say what broke, in JSON.

        A 405 names the route's methods in ``Allow`` (RFC 9110), as coglet does.
        """
        exc = kwargs.get("exc_info", (None, None))[1]
        if isinstance(exc, _TextError):
            self.send_text(status_code, exc.text)
            return
        if status_code == 405:
            self.set_header("Allow", ",".join(self.allowed_methods()))
        if status_code >= 500:
            self.set_header("Content-Type", "application/json")
            self.finish(dumpb({"error": f"internal error: {type(exc).__name__}: {exc}"}))
            return
        self.finish()


class NotFoundHandler(CogHandler):
    """Any unknown path: 404 with an empty body."""

    def prepare(self) -> None:
        """Answer before any method dispatch, so every method gets 404."""
        raise tornado.web.HTTPError(404)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """404 even for a method Tornado does not know (it would answer 405 before prepare)."""
        self.set_status(404)
        self.finish()


class RootHandler(CogHandler):
    """``GET /``: the discovery document (spec §3)."""

    def get(self) -> None:
        """Always 200, during setup too."""
        body = {
            "cog_version": versions()["python_sdk"],
            "docs_url": "/docs",
            "healthcheck_url": "/health-check",
            "openapi_url": "/openapi.json",
            "predictions_cancel_url": "/predictions/{prediction_id}/cancel",
            "predictions_idempotent_url": "/predictions/{prediction_id}",
            "predictions_url": "/predictions",
            "shutdown_url": "/shutdown",
        }
        if self.service.has_training:
            body["trainings_url"] = "/trainings"
            body["trainings_idempotent_url"] = "/trainings/{training_id}"
            body["trainings_cancel_url"] = "/trainings/{training_id}/cancel"
        self.send_json(200, body)

    head = get  # coglet answers HEAD on every GET route (headers only)


class HealthHandler(CogHandler):
    """``GET /health-check`` (spec §4): always 200."""

    def initialize(self, service: PredictionService, **kwargs: Any) -> None:
        """Simultaneous GETs share one user healthcheck call through the checker."""
        super().initialize(service)
        self.checker: HealthChecker = kwargs["health_checker"]

    async def get(self) -> None:
        """Run the user healthcheck once setup succeeded, then report."""
        user_error = await self.checker.check() if self.service.is_ready else None
        self.send_json(200, self.service.health_body(user_error))

    head = get


class OpenAPIHandler(CogHandler):
    """``GET /openapi.json``: 503 until setup succeeded (spec §5)."""

    def get(self) -> None:
        """The generated document, or coglet's 503."""
        if self.service.openapi is None:
            self.send_json(503, {"error": "OpenAPI schema not available"})
            return
        self.send_json(200, self.service.openapi)

    head = get


class ShutdownHandler(CogHandler):
    """``POST /shutdown``: 200 ``{}``, then the server (never the kernel) stops (spec §17)."""

    def initialize(self, service: PredictionService, **kwargs: Any) -> None:
        """``on_shutdown`` is the server's stop, scheduled once the response is out."""
        super().initialize(service)
        self.on_shutdown = kwargs["on_shutdown"]

    def post(self) -> None:
        """Reply, then stop on the next loop turn."""
        self.send_json(200, {})

    def on_finish(self) -> None:
        """Stop only after the ``{}`` has been written."""
        if self.get_status() == 200:
            asyncio.get_running_loop().call_soon(self.on_shutdown)


class CancelHandler(CogHandler):
    """``POST /predictions/{id}/cancel``: 200 ``{}`` in flight, else 404 ``{}`` (spec §14)."""

    def post(self, prediction_id: str) -> None:
        """Trainings and predictions share one id namespace."""
        found = self.service.cancel(prediction_id)
        self.send_json(200 if found else 404, {})


@tornado.web.stream_request_body
class CreateHandler(CogHandler):
    """``POST /predictions`` and ``PUT /predictions/{id}`` (and the training twins).

    The body is streamed in so an oversized one gets coglet's 413 without being buffered.
    """

    def initialize(self, service: PredictionService, **kwargs: Any) -> None:
        """Route options: training or not, the body limit, the SSE keep-alive interval."""
        super().initialize(service)
        self.training: bool = kwargs["training"]
        self.max_body_size: int = kwargs["max_body_size"]
        self.keepalive: float = kwargs["keepalive"]
        self.responses: OpenResponses = kwargs["responses"]
        self._counted = False
        self._chunks: list[bytes] = []
        self._received = 0
        self._waiting: PredictionRef | None = None
        self._closer = Closer()

    def prepare(self) -> None:
        """Count this response as open; refuse oversized bodies before reading them."""
        self.responses.opened()
        self._counted = True
        length = self.request.headers.get("Content-Length")
        if length is not None and length.isdigit() and int(length) > self.max_body_size:
            self.send_text(413, PAYLOAD_TOO_LARGE)

    def data_received(self, chunk: bytes) -> None:
        """Collect the body, stopping with 413 once it passes the limit."""
        if self._finished:
            return
        self._received += len(chunk)
        if self._received > self.max_body_size:
            self._chunks = []
            self.send_text(413, PAYLOAD_TOO_LARGE)
            return
        self._chunks.append(chunk)

    async def _create(self, put_id: str | None) -> None:
        try:
            request = parse_envelope(
                self.request.headers.get("Content-Type"), b"".join(self._chunks)
            )
        except EnvelopeError as exc:
            self.send_text(exc.status, exc.text)
            return
        mode = request_mode(self.request.headers)
        request.trace_headers = {
            name: value
            for name in ("traceparent", "tracestate")
            if (value := self.request.headers.get(name)) is not None
        }
        try:
            ref, attached = self.service.create_or_attach(
                request, mode=mode, training=self.training, put_id=put_id
            )
        except NbcogError as error:
            self.send_error_body(error)
            return
        if attached and mode is not Mode.SSE:
            self.send_json(202, ref.prediction.snapshot(with_input=True))
            return
        await self._respond(ref, mode)

    async def _respond(self, ref: PredictionRef, mode: Mode) -> None:
        if mode is Mode.SSE:
            await self._stream(ref)
        elif mode is Mode.ASYNC:
            self.send_json(202, {"id": ref.prediction.id, "status": "starting"})
        else:
            await self._wait_sync(ref)

    async def _stream(self, ref: PredictionRef) -> None:
        # Each batch of events goes out when written: Nagle's algorithm would hold a small
        # write back until the client acknowledges the previous one (up to its delayed-ACK
        # timeout, 40 ms on Linux) whenever one is unacknowledged. Tornado restores the
        # default when the response finishes.
        _client_stream(self.request).set_nodelay(True)
        try:
            await stream_events(self, ref, closer=self._closer, keepalive=self.keepalive)
        except StreamClosedError:
            return
        except NbcogError as error:  # TooManySubscribers, before anything was written
            self.send_error_body(error)

    async def _wait_sync(self, ref: PredictionRef) -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def finish(_: PredictionRef) -> None:
            if not done.done():
                done.set_result(None)

        ref.on_done(finish)
        self._waiting = ref
        if self._closer.closed:  # the client left before we started waiting
            self.service.cancel(ref.prediction.id)
        await done
        self._waiting = None
        if _client_stream(self.request).closed():
            return
        completed = ref.completed
        if completed is not None and ref.prediction.status is Status.SUCCEEDED:
            # A succeeded sync body is the completed snapshot: reuse its encoding (spec §9).
            self.set_header("Content-Type", "application/json")
            self.finish_body(completed.json.encode())
            return
        self.send_json(200, ref.prediction.sync_body())

    def finish(self, chunk: str | bytes | dict[str, Any] | None = None) -> asyncio.Future[None]:
        """Finish as Tornado does; the response stops counting as open once it is flushed."""
        flushed = super().finish(chunk)
        flushed.add_done_callback(lambda _: self._uncount())
        return flushed

    def on_connection_close(self) -> None:
        """A sync client that hangs up cancels its prediction (spec §11.4)."""
        self._closer.close()
        self._uncount()
        if self._waiting is not None:
            self.service.cancel(self._waiting.prediction.id)
        super().on_connection_close()

    def _uncount(self) -> None:
        if self._counted:
            self._counted = False
            self.responses.closed()


class PostHandler(CreateHandler):
    """``POST /predictions``: create with the body id or a generated one."""

    async def post(self) -> None:
        """Create (unless ``prepare`` already answered)."""
        if not self._finished:
            await self._create(None)


class PutHandler(CreateHandler):
    """``PUT /predictions/{id}``: create with the path id, or attach when it is in flight."""

    async def put(self, prediction_id: str) -> None:
        """Create or attach (unless ``prepare`` already answered)."""
        if not self._finished:
            await self._create(prediction_id)
