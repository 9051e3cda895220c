"""A real webhook receiver for the webhook tests: records POSTs, answers scripted statuses."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

WAIT = 30.0


@dataclass
class Received:
    """One POST as the receiver saw it."""

    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


class Receiver:
    """A stdlib HTTP server on 127.0.0.1 that records POSTs and answers scripted statuses.

    With ``listening=False`` the port is bound but not listening, so connections are refused
    (a receiver that is down) until ``listen()``.
    """

    def __init__(self, *, listening: bool = True) -> None:
        self.received: list[Received] = []
        self.statuses: list[int] = []  # answered in order; 200 once used up
        self.always: int | None = None
        self.gate = threading.Event()
        self.gate.set()
        self._cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver._cond:
                    receiver.received.append(Received(self.path, dict(self.headers), body))
                    receiver._cond.notify_all()
                receiver.gate.wait(60)
                with receiver._cond:
                    status = receiver.always or (
                        receiver.statuses.pop(0) if receiver.statuses else 200
                    )
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                """Silence: the test reads ``received`` instead."""

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler, bind_and_activate=False)
        self.server.daemon_threads = True
        self.server.server_bind()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self._thread: threading.Thread | None = None
        if listening:
            self.listen()

    def listen(self) -> None:
        """Start accepting connections."""
        self.server.server_activate()
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def wait_for(self, count: int) -> list[Received]:
        """Wait (bounded) until at least ``count`` POSTs have arrived; return them all."""
        with self._cond:
            arrived = self._cond.wait_for(lambda: len(self.received) >= count, WAIT)
            assert arrived, f"expected {count} webhooks, got {len(self.received)}"
            return list(self.received)

    def wait_for_match(self, predicate: Callable[[Received], bool]) -> Received:
        """Wait (bounded) for a POST that satisfies ``predicate``; return it."""
        with self._cond:
            found = self._cond.wait_for(lambda: [r for r in self.received if predicate(r)], WAIT)
            assert found, f"no matching webhook among {len(self.received)}"
            return found[0]

    def bodies(self) -> list[Any]:
        """Every body received so far, decoded."""
        with self._cond:
            return [r.json for r in self.received]

    def close(self) -> None:
        """Stop serving and free the port."""
        self.gate.set()
        if self._thread is not None:
            self.server.shutdown()
        self.server.server_close()
