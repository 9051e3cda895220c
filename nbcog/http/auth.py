"""The optional bearer token (``--token``, ``NBCOG_TOKEN``): off by default, so Cog clients work.

With a token, every request but ``GET /health-check`` must carry ``Authorization: Bearer
TOKEN``; anything else gets 401 with a JSON body, before routing, so unknown paths and wrong
methods do not reveal what exists. The check wraps the application as a tornado ``Router``
(``TokenGate``), so the handlers know nothing about it and a hot reload keeps it by wrapping
the new application the same way. The token is compared in constant time and never logged:
tornado's access log and error logs show the method, path and address, not the headers.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
from typing import Any

import tornado.httputil
import tornado.routing
import tornado.web

from nbcog.core.jsonenc import dumpb

TOKEN_ENV = "NBCOG_TOKEN"  # noqa: S105 (the variable's name, not a secret)
OPEN_ROUTE = ("GET", "/health-check")
UNAUTHORIZED = {
    "detail": "missing or wrong token: send the header 'Authorization: Bearer <token>' "
    "(the token was given to --token or NBCOG_TOKEN, or printed when the server started)"
}


def new_token() -> str:
    """A random URL-safe token (32 bytes of entropy), for ``--token`` without a value."""
    return secrets.token_urlsafe(32)


def is_loopback(host: str) -> bool:
    """The interface is reachable from this machine only (``127.0.0.1``, ``::1``, ``localhost``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def exposure_warning(host: str, token: str | None) -> str | None:
    """The one-line warning for a server reachable from the network without a token."""
    if token or is_loopback(host):
        return None
    return (
        f"nbcog: warning: serving on {host} without a token: anyone who can reach this "
        "machine can run predictions (add --token)"
    )


def authorized(headers: tornado.httputil.HTTPHeaders, token: str) -> bool:
    """``Authorization: Bearer <token>`` is present and right (constant-time compare)."""
    scheme, _, value = headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(value.strip().encode(), token.encode())


@tornado.web.stream_request_body
class UnauthorizedHandler(tornado.web.RequestHandler):
    """Any request without the right token: 401 at once; a body is dropped, never buffered."""

    def set_default_headers(self) -> None:
        """No ``Server`` header, as the API's other responses."""
        self.clear_header("Server")

    def prepare(self) -> None:
        """Answer before the body is read and before any method dispatch."""
        self.set_status(401)
        self.set_header("WWW-Authenticate", 'Bearer realm="nbcog"')
        self.set_header("Content-Type", "application/json")
        self.finish(dumpb(UNAUTHORIZED))

    def data_received(self, chunk: bytes) -> None:
        """Drop the body of a refused request."""


class TokenGate(tornado.routing.Router):
    """Routes an authorized request to ``app``, any other to ``UnauthorizedHandler``."""

    def __init__(self, app: tornado.web.Application, token: str) -> None:
        self.app = app
        self._token = token

    def find_handler(
        self, request: tornado.httputil.HTTPServerRequest, **kwargs: Any
    ) -> tornado.httputil.HTTPMessageDelegate:
        """The application's own handler when the token is right or the route is open."""
        if (request.method, request.path) == OPEN_ROUTE or authorized(request.headers, self._token):
            return self.app.find_handler(request, **kwargs)
        return self.app.get_handler_delegate(request, UnauthorizedHandler, {})


def guard(
    app: tornado.web.Application, token: str | None
) -> tornado.httputil.HTTPServerConnectionDelegate:
    """``app`` behind the token check, or ``app`` itself when there is no token."""
    return app if not token else TokenGate(app, token)
