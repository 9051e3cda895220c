"""Answering requests Tornado would drop without a word: huge heads, TLS on the plain port.

Tornado reads a request head until the blank line and, past ``max_header_size``, closes the
connection with no response; bytes that can never start a request (a TLS ClientHello) make it
wait for a blank line that never comes. coglet (hyper) answers those, and so does nbcog:

* **414 URI Too Long**: the request line alone is longer than the head limit;
* **431 Request Header Fields Too Large**: the head is;
* **400 Bad Request**: the first byte cannot start a method (``0x16`` opens a TLS handshake).

The check sits in the one place Tornado measures a pending head (``IOStream._check_max_bytes``,
called on every read that has not found the blank line yet), so a normal request pays one
byte comparison. The refusal is written straight to the socket, then the connection closes
*gracefully*: a duplicate of the socket stays open to send FIN and read what the client is
still sending (up to 1 MiB, 2 s), because closing with unread data would send RST, and the
client could lose the response before reading it.
"""

from __future__ import annotations

import contextlib
import socket
from typing import Any

import tornado.httpserver
from tornado.ioloop import IOLoop
from tornado.iostream import IOStream, UnsatisfiableReadError

__all__ = ["MAX_HEADER_BYTES", "GuardedHTTPServer"]

MAX_HEADER_BYTES = 64 * 1024
"""Request heads (request line and headers) above this are refused (Tornado's default)."""

_HEAD_END = b"\r?\n\r?\n"  # the pattern Tornado's HTTP1Connection reads a head with
# RFC 9110 token characters (what a method is made of), and the empty lines a client may
# send before a request.
_REQUEST_START = frozenset(
    b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz\r\n"
)
_REFUSALS = {
    400: b"HTTP/1.1 400 Bad Request\r\n",
    414: b"HTTP/1.1 414 URI Too Long\r\n",
    431: b"HTTP/1.1 431 Request Header Fields Too Large\r\n",
}
_LINGER_BYTES = 1 << 20
_LINGER_SECONDS = 2.0


def refusal_status(head: bytes | bytearray, size: int, limit: int) -> int | None:
    """The status a request head still being read must be refused with, if any.

    Args:
        head: the bytes received so far for this head (at least one).
        size: how many there are (Tornado passes its buffer size).
        limit: the head limit.
    """
    if head[0] not in _REQUEST_START:
        return 400
    if size > limit:
        return 414 if head.find(b"\n", 0, limit) < 0 else 431
    return None


class _GuardedStream(IOStream):
    """An ``IOStream`` that answers a refused request head instead of dropping it."""

    def __init__(self, sock: socket.socket, *, max_header_size: int, **kwargs: Any) -> None:
        super().__init__(sock, **kwargs)
        self._max_header_size = max_header_size
        self._refusal: int | None = None

    def _check_max_bytes(self, delimiter: Any, size: int) -> None:
        regex = self._read_regex
        if regex is not None and regex.pattern == _HEAD_END and size:
            status = refusal_status(self._read_buffer, size, self._max_header_size)
            if status is not None:
                self._refusal = status
                msg = f"request head refused with {status}"
                raise UnsatisfiableReadError(msg)
        super()._check_max_bytes(delimiter, size)

    def close(self, exc_info: Any = False) -> None:
        """Close; a refused head first gets its status line and a graceful close."""
        status, self._refusal = self._refusal, None
        if status is not None and not self.closed():
            self._refuse(status)
        super().close(exc_info)

    def _refuse(self, status: int) -> None:
        response = _REFUSALS[status] + b"Content-Length: 0\r\nConnection: close\r\n\r\n"
        try:
            self.socket.send(response)
            lingering = self.socket.dup()
            lingering.shutdown(socket.SHUT_WR)
        except OSError:
            return
        _drain_then_close(self.io_loop, lingering)


def _drain_then_close(io_loop: IOLoop, sock: socket.socket) -> None:
    """Read and discard what the client still sends, then close (at EOF, 1 MiB or 2 s)."""
    sock.setblocking(False)
    received = 0

    def close() -> None:
        with contextlib.suppress(KeyError, ValueError):
            io_loop.remove_handler(sock)
        io_loop.remove_timeout(timer)
        sock.close()

    def on_readable(_fd: Any, _events: int) -> None:
        nonlocal received
        try:
            data = sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        received += len(data)
        if not data or received > _LINGER_BYTES:
            close()

    timer = io_loop.call_later(_LINGER_SECONDS, close)
    io_loop.add_handler(sock, on_readable, IOLoop.READ)


class GuardedHTTPServer(tornado.httpserver.HTTPServer):
    """Tornado's ``HTTPServer`` whose connections refuse bad request heads with a status."""

    def handle_stream(self, stream: IOStream, address: tuple[Any, ...]) -> None:
        """Serve the connection through a ``_GuardedStream`` on the same socket.

        The stream Tornado made has not been used yet (nothing registered, nothing read),
        so it is simply replaced.
        """
        guarded = _GuardedStream(
            stream.socket,
            max_header_size=self.conn_params.max_header_size or MAX_HEADER_BYTES,
            max_buffer_size=stream.max_buffer_size,
            read_chunk_size=stream.read_chunk_size,
            max_write_buffer_size=stream.max_write_buffer_size,
        )
        super().handle_stream(guarded, address)
