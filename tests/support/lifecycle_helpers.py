"""Helpers for the HTTP lifecycle tests: bounded waits, file gates, background requests, SSE.

Predictors under test wait on *files the test creates* (gates) instead of sleeping, and they
announce progress by creating marker files; both live in the test's ``tmp_path``, whose path
is spliced into the predictor source in place of ``@TMP@``.
"""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
from helpers import wait_until

# Predictor-side snippet: wait for a gate file, for at most a minute, so that a failed test
# never leaves a thread polling forever.
WAIT_FOR = """
import os as _os
import time as _time

def wait_for(path, limit=60.0):
    deadline = _time.monotonic() + limit
    while not _os.path.exists(path):
        if _time.monotonic() > deadline:
            raise TimeoutError(path)
        _time.sleep(0.005)

def mark(path):
    open(path, "w").close()
"""


def source(template: str, tmp: Path) -> str:
    """The predictor source with ``@TMP@`` replaced by ``tmp`` (a str literal's contents)."""
    return template.replace("@TMP@", str(tmp))


def health(url: str) -> dict[str, Any]:
    """The health-check body (always HTTP 200)."""
    response = requests.get(url + "/health-check", timeout=30)
    assert response.status_code == 200
    return response.json()


def wait_for_status(url: str, status: str, timeout: float = 30.0) -> dict[str, Any]:
    """Poll the health-check until it reports ``status``; return that body."""
    return wait_until(
        lambda: (body := health(url))["status"] == status and body, f"health {status}", timeout
    )


class Background:
    """An HTTP request made on a thread; ``result()`` joins and returns the response."""

    def __init__(self, method: str, url: str, **kwargs: Any) -> None:
        kwargs.setdefault("timeout", 60)
        self._response: requests.Response | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(method, url, kwargs), daemon=True)
        self._thread.start()

    def _run(self, method: str, url: str, kwargs: dict[str, Any]) -> None:
        try:
            self._response = requests.request(method, url, **kwargs)
        except BaseException as exc:  # reported by result()
            self._error = exc

    def done(self) -> bool:
        """The response has arrived (or the request failed)."""
        return not self._thread.is_alive()

    def result(self, timeout: float = 60.0) -> requests.Response:
        """Wait for the response."""
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "request still running"
        if self._error is not None:
            raise self._error
        assert self._response is not None
        return self._response


class SSEStream:
    """A ``text/event-stream`` response read event by event over a raw ``http.client`` socket."""

    def __init__(self, url: str, method: str, path: str, body: dict[str, Any]) -> None:
        parts = urlsplit(url)
        self._conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
        self._conn.request(
            method,
            path,
            body=json.dumps(body),
            headers={"Content-Type": "application/json", "Accept": "text/event-stream"},
        )
        self.response = self._conn.getresponse()

    def events(self) -> Iterator[tuple[str, Any]]:
        """Yield ``(event, data)`` until the server closes the stream (comments skipped)."""
        name, data = "message", []
        while True:
            line = self.response.readline()
            if not line:
                return
            text = line.decode().rstrip("\n")
            if text == "":
                if data:
                    yield name, json.loads("\n".join(data))
                name, data = "message", []
            elif text.startswith("event: "):
                name = text[len("event: ") :]
            elif text.startswith("data: "):
                data.append(text[len("data: ") :])

    def close(self) -> None:
        """Drop the connection."""
        self._conn.close()
