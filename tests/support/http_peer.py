"""A real HTTP peer for the HTTP tests: the far side of input downloads, uploads and webhooks.

It serves files to ``Path``/``File`` inputs (GET), receives output uploads (PUT) and webhooks
(POST), and records every request so a test can assert on what nbcog sent. Answers come from
``routes``; an unknown path gets 404, so a download of a missing file fails as it would on a
real host.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Recorded:
    """One request the peer received."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Peer:
    """What the peer answers (``routes``: path without query -> status, headers, body)."""

    url: str
    routes: dict[str, tuple[int, dict[str, str], bytes]] = field(default_factory=dict)
    unknown: tuple[int, dict[str, str], bytes] = (404, {}, b"")
    """The answer for paths not in ``routes`` (a sink for any upload: ``(200, {}, b"")``)."""
    _received: list[Recorded] = field(default_factory=list)
    _changed: threading.Condition = field(default_factory=threading.Condition)

    def route(self, path: str, status: int = 200, body: bytes = b"", **headers: str) -> None:
        """Answer requests for ``path`` with ``status``, ``body`` and ``headers``."""
        self.routes[path] = (status, headers, body)

    def received(self, method: str | None = None) -> list[Recorded]:
        """The requests so far (only those with ``method``, if given), oldest first."""
        with self._changed:
            return [r for r in self._received if method is None or r.method == method]

    def wait_for(self, method: str, count: int, timeout: float = 30.0) -> list[Recorded]:
        """Block until ``count`` requests with ``method`` have arrived; fail after ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(matching := [r for r in self._received if r.method == method]) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    msg = f"peer got {len(matching)} {method} requests, expected {count}"
                    raise AssertionError(msg)
                self._changed.wait(left)
            return matching

    def _record(self, request: Recorded) -> None:
        with self._changed:
            self._received.append(request)
            self._changed.notify_all()


@contextmanager
def serve_peer() -> Iterator[Peer]:
    """Run a ``Peer`` on 127.0.0.1 (a free port) until the block ends."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            peer._record(Recorded(self.command, self.path, dict(self.headers), body))
            status, headers, payload = peer.routes.get(self.path.split("?")[0], peer.unknown)
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_PUT = do_POST = _handle

        def log_message(self, format: str, *args: object) -> None:
            """Keep test output quiet."""

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 64  # the default 5 drops parallel connects (1 s SYN retry)

    server = Server(("127.0.0.1", 0), Handler)
    peer = Peer(url=f"http://127.0.0.1:{server.server_port}")
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        yield peer
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
