"""A disconnect storm: hundreds of SSE readers on one prediction, half of them dropping mid-stream.

Every reader attaches (PUT, ``Accept: text/event-stream``) to one async-created prediction
held at a gate, so all of them are subscribed before the first token. Then the tokens flow,
and a seeded random half of the readers leave at a random event, some with FIN, some with
RST. Every reader that stays must get every event in order; afterwards the server must be
back where it started: no task, file descriptor or thread left behind.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import selectors
import socket
import struct
import textwrap
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from faults import exchange, health, request
from helpers import wait_until

from nbcog.testing import RunningServer, serve_in_thread

READERS = 300
TOKENS = 400
WAIT = 60.0

PREDICTOR = """
import os
import time
from typing import Iterator

from cog import BaseRunner, streaming


class Predictor(BaseRunner):
    @streaming
    def run(self, n: int, gate: str) -> Iterator[str]:
        deadline = time.monotonic() + 120
        while not os.path.exists(gate) and time.monotonic() < deadline:
            time.sleep(0.005)
        for i in range(n):
            yield f"t{i}"
            if i % 20 == 0:
                time.sleep(0.002)  # let readers drop while the stream is still going
"""


@dataclass
class Reader:
    """One SSE client: its socket, what it has parsed, and when (if ever) it leaves."""

    sock: socket.socket
    leave_after: int | None  # events; None stays to the end
    reset: bool = False
    buffer: bytes = b""
    head_done: bool = False
    events: list[tuple[str, Any]] = field(default_factory=list)
    closed: bool = False

    def feed(self, data: bytes) -> None:
        self.buffer += data
        if not self.head_done:
            head, separator, rest = self.buffer.partition(b"\r\n\r\n")
            if not separator:
                return
            assert head.split(b" ", 2)[1] == b"200", head
            self.head_done, self.buffer = True, rest
        *blocks, self.buffer = self.buffer.split(b"\n\n")
        for block in blocks:
            name, data_line = block.decode().split("\n", 1)
            self.events.append((name.removeprefix("event: "), json.loads(data_line[6:])))


def attach_request(prediction_id: str) -> bytes:
    return (
        f"PUT /predictions/{prediction_id} HTTP/1.0\r\nHost: 127.0.0.1\r\n"
        "Accept: text/event-stream\r\nContent-Type: application/json\r\n"
        "Content-Length: 2\r\n\r\n{}"
    ).encode()


def census(s: RunningServer) -> tuple[int, int, int]:
    """(asyncio tasks on the server loop, open fds of this process, threads)."""
    tasks = s.call(lambda: len(asyncio.all_tasks()))
    return tasks, len(os.listdir("/proc/self/fd")), threading.active_count()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[RunningServer]:
    path = tmp_path / "predict.py"
    path.write_text(textwrap.dedent(PREDICTOR))
    with serve_in_thread(f"{path}:Predictor") as running:
        yield running


@pytest.mark.slow
def test_readers_that_stay_get_every_event_in_order_and_nothing_leaks(
    served: RunningServer, tmp_path: Path
) -> None:
    """300 readers, a random half dropping (FIN or RST): the rest get all; no leftovers."""
    s = served
    gate = tmp_path / "gate"
    baseline = census(s)
    body = json.dumps({"input": {"n": TOKENS, "gate": str(gate)}}).encode()
    put = request("PUT", "/predictions/storm", body, headers={"Prefer": "respond-async"})
    assert exchange(s.server.port, put).status == 202  # its own connection, closed after
    chooser = random.Random(12)
    readers = []
    selector = selectors.DefaultSelector()
    for _ in range(READERS):
        sock = socket.create_connection(("127.0.0.1", s.server.port), timeout=WAIT)
        sock.sendall(attach_request("storm"))
        sock.setblocking(False)
        leave = chooser.randrange(0, TOKENS + 1) if chooser.random() < 0.5 else None
        reader = Reader(sock, leave, reset=chooser.random() < 0.5)
        readers.append(reader)
        selector.register(sock, selectors.EVENT_READ, reader)

    def subscribers() -> int:
        entry = s.server.service.get("storm") if s.server.service else None
        return -1 if entry is None else entry.stream_stats().subscribers

    wait_until(lambda: s.call(subscribers) == READERS, "every reader subscribed")
    gate.touch()
    open_readers = READERS
    deadline = time.monotonic() + WAIT
    while open_readers:
        assert time.monotonic() < deadline, "readers still open"
        for key, _ in selector.select(timeout=1.0):
            reader = key.data
            try:
                data = reader.sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                continue
            if data:
                reader.feed(data)
            leaving = reader.leave_after is not None and len(reader.events) >= reader.leave_after
            if not data or leaving:
                if leaving and reader.reset:
                    linger = struct.pack("ii", 1, 0)
                    reader.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
                selector.unregister(reader.sock)
                reader.sock.close()
                reader.closed = True
                open_readers -= 1
    selector.close()

    expected = ["start", *("output" for _ in range(TOKENS)), "completed"]
    stayers = [r for r in readers if r.leave_after is None]
    assert 100 < len(stayers) < 200
    for reader in stayers:
        assert [name for name, _ in reader.events] == expected
        chunks = [data["chunk"] for name, data in reader.events if name == "output"]
        assert chunks == [f"t{i}" for i in range(TOKENS)]
        assert reader.events[-1][1]["status"] == "succeeded"
    leavers = [r for r in readers if r.leave_after is not None]
    for reader in leavers:  # whatever a leaver got before leaving was a clean prefix
        names = [name for name, _ in reader.events]
        assert names == expected[: len(names)]

    wait_until(lambda: s.call(subscribers) == -1, "the prediction ended and was forgotten")
    # At most what there was before (a thread of an earlier test may have ended meanwhile).
    wait_until(
        lambda: all(now <= before for now, before in zip(census(s), baseline, strict=True)),
        f"back to {baseline} (now {census(s)})",
    )
    assert health(s.server.port) == "READY"
