"""Dead webhook receivers hold up nobody, and pending deliveries stay bounded (spec §15).

A "dead" receiver here accepts each connection and resets it at once, so every attempt the
sender makes is seen (and counted) without a timeout. Every receiver writes to one shared
journal, so the tests assert on the order in which attempts arrived, never on durations.
"""

from __future__ import annotations

import logging
import socket
import struct
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from helpers import wait_until

from nbcog.runner.webhooks import WebhookSender, backoff_delay

WAIT = 30.0


class Journal:
    """Arrivals at every receiver, in order: ``("dead", n)`` or ``("live", 0)``."""

    def __init__(self) -> None:
        self.entries: list[tuple[str, int]] = []
        self._cond = threading.Condition()

    def add(self, entry: tuple[str, int]) -> None:
        with self._cond:
            self.entries.append(entry)
            self._cond.notify_all()

    def wait_for(self, entry: tuple[str, int]) -> list[tuple[str, int]]:
        """Block until ``entry`` has arrived (bounded); the journal up to then."""
        with self._cond:
            assert self._cond.wait_for(lambda: entry in self.entries, WAIT), self.entries
            return list(self.entries)


class _SocketReceiver:
    """A listening socket whose every accepted connection goes to ``_take``, on a thread."""

    def __init__(self, number: int, journal: Journal) -> None:
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}/hook"
        self._number = number
        self._journal = journal
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return  # closed
            self._take(conn)

    def _take(self, conn: socket.socket) -> None:
        """What the receiver does with one connection (journal it, then reset or hold it)."""
        raise NotImplementedError

    def close(self) -> None:
        self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        self._thread.join(WAIT)


class DeadReceiver(_SocketReceiver):
    """Accepts connections and resets them unread: each attempt is journaled, none succeeds."""

    def _take(self, conn: socket.socket) -> None:
        self._journal.add(("dead", self._number))
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()


class SilentReceiver(_SocketReceiver):
    """Accepts connections and never answers (until closed): each attempt holds its sender."""

    def __init__(self, number: int, journal: Journal) -> None:
        self._held: list[socket.socket] = []
        super().__init__(number, journal)

    def _take(self, conn: socket.socket) -> None:
        self._held.append(conn)
        self._journal.add(("silent", self._number))

    def close(self) -> None:
        super().close()
        for conn in self._held:
            conn.close()


class LiveReceiver:
    """Answers 200 to every POST and journals it."""

    def __init__(self, journal: Journal) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["Content-Length"]))
                journal.add(("live", 0))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the journal says what happened."""

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hook"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,))
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(WAIT)


@pytest.fixture
def journal() -> Journal:
    return Journal()


@pytest.fixture
def dead(journal: Journal) -> Iterator[list[DeadReceiver]]:
    receivers = [DeadReceiver(n, journal) for n in range(8)]
    yield receivers
    for receiver in receivers:
        receiver.close()


@pytest.fixture
def live(journal: Journal) -> Iterator[LiveReceiver]:
    receiver = LiveReceiver(journal)
    yield receiver
    receiver.close()


def test_a_live_receiver_is_called_before_any_dead_ones_retry(
    journal: Journal, dead: list[DeadReceiver], live: LiveReceiver
) -> None:
    """8 dead receivers, then a live one: it is called before any dead one's first retry."""
    sender = WebhookSender(user_agent="nbcog/test")  # coglet's backoff: retry 1 after 0.2 s
    try:
        for receiver in dead:
            sender.submit(receiver.url, b"{}", {}, terminal=True)
        sender.submit(live.url, b"{}", {}, terminal=True)
        seen = journal.wait_for(("live", 0))
        # Each dead receiver has been tried; the live one came before any second try.
        retried = [n for n in range(8) if seen.count(("dead", n)) > 1]
        assert retried == []
        for n in range(8):  # the dead ones are retried all the same (coglet's policy)
            journal.wait_for(("dead", n))
        with journal._cond:
            assert journal._cond.wait_for(
                lambda: any(journal.entries.count(("dead", n)) > 1 for n in range(8)), WAIT
            ), "a dead receiver was never retried"
        # The live one done, the dead ones' retries wait in the schedule, holding no thread.
        wait_until(lambda: sender.pending == sender.retrying == 8, "8 retries waiting")
    finally:
        sender.close(timeout=0)


def test_retries_wait_without_holding_a_delivery_thread(
    journal: Journal, dead: list[DeadReceiver], live: LiveReceiver
) -> None:
    """One delivery thread, 8 receivers in backoff: later webhooks still go out at once."""
    sender = WebhookSender(user_agent="nbcog/test", max_workers=1, backoff=lambda n: 3600.0)
    try:
        for receiver in dead:
            sender.submit(receiver.url, b"{}", {}, terminal=True)
        for n in range(8):
            journal.wait_for(("dead", n))
        for _ in range(3):
            sender.submit(live.url, b"{}", {}, terminal=False)
        sender.submit(live.url, b"{}", {}, terminal=True)
        with journal._cond:
            assert journal._cond.wait_for(lambda: journal.entries.count(("live", 0)) == 4, WAIT)
    finally:
        sender.close(timeout=0)


def test_receivers_that_never_answer_do_not_hold_up_a_live_one(
    journal: Journal, live: LiveReceiver
) -> None:
    """6 receivers hang every request, with 2 delivery threads: a live one is still called."""
    silent = [SilentReceiver(n, journal) for n in range(6)]
    sender = WebhookSender(user_agent="nbcog/test", max_workers=2)
    try:
        for receiver in silent:
            sender.submit(receiver.url, b"{}", {}, terminal=True)
        for n in range(6):  # each one is holding a request open: 6 threads busy
            journal.wait_for(("silent", n))
        sender.submit(live.url, b"{}", {}, terminal=False)
        journal.wait_for(("live", 0))
    finally:
        sender.close(timeout=0)
        for receiver in silent:  # the held requests fail now, and their threads exit
            receiver.close()
    assert sender.drain(WAIT)


def test_pending_deliveries_are_bounded(
    dead: list[DeadReceiver], journal: Journal, caplog: pytest.LogCaptureFixture
) -> None:
    """Past ``max_pending``: progress webhooks are dropped, a completed one displaces a retry."""
    sender = WebhookSender(user_agent="nbcog/test", max_pending=3, backoff=lambda n: 3600.0)
    caplog.set_level(logging.WARNING, logger="nbcog.webhooks")
    try:
        for receiver in dead[:3]:
            sender.submit(receiver.url, b"{}", {}, terminal=True)
        wait_until(lambda: sender.retrying == 3, "3 retries waiting")
        assert sender.pending == 3
        sender.submit(dead[3].url, b"{}", {}, terminal=False)  # dropped
        assert (sender.pending, sender.dropped) == (3, 1)
        assert (
            caplog.messages[-1] == f"webhook to {dead[3].url} dropped: 3 webhooks already pending"
        )
        sender.submit(dead[4].url, b"{}", {}, terminal=True)  # takes a waiting retry's place
        assert (sender.pending, sender.retrying, sender.dropped) == (3, 2, 2)
        journal.wait_for(("dead", 4))
        assert any(
            message.endswith(f"3 webhooks pending, making room for one to {dead[4].url}")
            for message in caplog.messages
        )
    finally:
        sender.close(timeout=0)
    assert sender.drain(WAIT)  # close() abandoned the waiting retries


def test_the_retry_policy_is_still_coglets() -> None:
    """12 retries, 0.2 s doubling to 102.4 s: the schedule changes where they wait, not when."""
    assert [backoff_delay(n) for n in (1, 2, 3, 10, 11, 12)] == [0.2, 0.4, 0.8, 102.4, 102.4, 102.4]
