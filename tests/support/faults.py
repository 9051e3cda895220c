"""Helpers for the fault-injection tests: raw HTTP exchanges and log checks.

Requests are written byte for byte to a socket, so a test can send what no HTTP client
library would (lone surrogate escapes, a 100 KiB URL, a TLS ClientHello), and a response
that never comes fails the test at the socket timeout instead of hanging it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import socket
from dataclasses import dataclass, field
from typing import Any

TIMEOUT = 20.0


@dataclass
class Response:
    """A raw HTTP response: status, headers (lowercased names) and the body."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.body)


def exchange(port: int, data: bytes) -> Response:
    """Send ``data`` on a new connection, read one response (until close or its length)."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        # If the server answered and stopped reading, its answer is still readable.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(data)
        received = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                msg = f"no complete response within {TIMEOUT} s; got {received[:200]!r}"
                raise AssertionError(msg) from None
            if not chunk:
                break
            received += chunk
    return parse_response(received)


def parse_response(raw: bytes) -> Response:
    """Split one HTTP/1.1 response (Content-Length, chunked or read to close)."""
    head, separator, rest = raw.partition(b"\r\n\r\n")
    assert separator, f"no response head in {raw[:200]!r}"
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding") == "chunked":
        body = b""
        while rest:
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line, 16)
            if size == 0:
                break
            body += rest[:size]
            rest = rest[size + 2 :]
        return Response(status, headers, body)
    if "content-length" in headers:
        return Response(status, headers, rest[: int(headers["content-length"])])
    return Response(status, headers, rest)


def request(
    method: str,
    path: str,
    body: bytes | None = None,
    *,
    content_type: str | None = "application/json",
    headers: dict[str, str] | None = None,
) -> bytes:
    """The bytes of one request that closes its connection."""
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    if body is not None:
        if content_type is not None:
            lines.append(f"Content-Type: {content_type}")
        lines.append(f"Content-Length: {len(body)}")
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return "\r\n".join(lines).encode() + b"\r\n\r\n" + (body or b"")


def health(port: int) -> str:
    """The health-check status."""
    response = exchange(port, request("GET", "/health-check"))
    assert response.status == 200, response
    return str(response.json()["status"])


_TRACEBACK = re.compile(r"Traceback \(most recent call last\)")


def tracebacks(records: list[logging.LogRecord]) -> list[str]:
    """Log records that carry a traceback (an exception logged, or one in the text)."""
    return [
        f"{r.name}: {r.getMessage()[:300]}"
        for r in records
        if r.exc_info is not None or _TRACEBACK.search(r.getMessage())
    ]
