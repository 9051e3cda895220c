"""A deliberately cheap HTTP/1.1 client on raw sockets, so the servers are what is measured.

Requests are pre-built bytes (``build_request``); responses are read with large ``recv``s and
only counted while the clock runs: an SSE stream is timed by counting ``event: output``
markers per ``recv`` (with a small carry-over so a marker split across two reads still counts
once), and the body is parsed and checked only after the clock has stopped (``dechunk``,
``sse_events``). ``bench.ceiling`` serves pre-built bytes to show how fast this client is on
its own.
"""

from __future__ import annotations

import json
import selectors
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

HOST = "127.0.0.1"
RECV = 1 << 20
OUTPUT_MARKER = b"event: output"
_CARRY = len(OUTPUT_MARKER) - 1
_CHUNKED_END = b"\r\n0\r\n\r\n"
SSE_ACCEPT = "text/event-stream"


def build_request(
    method: str,
    path: str,
    body: dict[str, Any] | None = None,
    *,
    sse: bool = False,
    prefer_async: bool = False,
) -> bytes:
    """The complete request bytes, built once before any clock starts."""
    payload = b"" if body is None else json.dumps(body).encode()
    lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}"]
    if body is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {len(payload)}"]
    if sse:
        lines.append(f"Accept: {SSE_ACCEPT}")
    if prefer_async:
        lines.append("Prefer: respond-async")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload


def connect(port: int, timeout: float = 300.0) -> socket.socket:
    """A connected TCP socket with Nagle off (requests are single writes anyway)."""
    sock = socket.create_connection((HOST, port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


@dataclass
class Response:
    """A complete (non-streamed) response; header names are lower-case."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """The body as JSON."""
        return json.loads(self.body)


def _parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers


class Connection:
    """One keep-alive connection for request/response exchanges (sync JSON, attach 202s)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sock: socket.socket | None = None
        self._buf = b""

    def _socket(self) -> socket.socket:
        if self.sock is None:
            self.sock = connect(self.port)
            self._buf = b""
        return self.sock

    def close(self) -> None:
        """Close the socket (the next request reconnects)."""
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def exchange(self, request: bytes) -> tuple[Response, float]:
        """Send ``request``, read the whole response; returns it and the seconds it took."""
        sock = self._socket()
        start = time.perf_counter()
        sock.sendall(request)
        response = self._read(sock)
        elapsed = time.perf_counter() - start
        if response.headers.get("connection", "").lower() == "close":
            self.close()
        return response, elapsed

    def _read(self, sock: socket.socket) -> Response:
        buf = self._buf
        while (end := buf.find(b"\r\n\r\n")) < 0:
            data = sock.recv(RECV)
            if not data:
                raise ConnectionError("server closed the connection before the headers")
            buf += data
        status, headers = _parse_head(buf[:end])
        rest = buf[end + 4 :]
        if "content-length" in headers:
            body, self._buf = _read_exact(sock, rest, int(headers["content-length"]))
        elif headers.get("transfer-encoding") == "chunked":
            raw = _read_until_chunked_end(sock, rest)
            body, self._buf = dechunk(raw), b""
        else:
            body, self._buf = rest + _read_to_close(sock), b""
            self.close()
        return Response(status, headers, body)


def _read_exact(sock: socket.socket, have: bytes, length: int) -> tuple[bytes, bytes]:
    if len(have) >= length:
        return have[:length], have[length:]
    body = bytearray(length)
    view = memoryview(body)
    view[: len(have)] = have
    got = len(have)
    while got < length:
        n = sock.recv_into(view[got:], length - got)
        if n == 0:
            raise ConnectionError("server closed the connection mid-body")
        got += n
    return bytes(body), b""


def _read_until_chunked_end(sock: socket.socket, have: bytes) -> bytes:
    parts = [have]
    tail = have[-16:]
    while not (tail.endswith(_CHUNKED_END) or tail == b"0\r\n\r\n"):
        data = sock.recv(RECV)
        if not data:
            break
        parts.append(data)
        tail = (tail + data)[-16:]
    return b"".join(parts)


def _read_to_close(sock: socket.socket) -> bytes:
    parts = []
    while data := sock.recv(RECV):
        parts.append(data)
    return b"".join(parts)


@dataclass
class Stream:
    """What one SSE response looked like from the client's side.

    Times are ``perf_counter`` seconds; ``stamps`` holds ``(time, outputs in that recv)``
    for every read that carried output events (only when asked for).
    """

    status: int
    sent: float
    first_output: float | None = None
    reached: float | None = None
    ended: float | None = None
    outputs: int = 0
    raw: bytes = b""
    stamps: list[tuple[float, int]] = field(default_factory=list)


class StreamReader:
    """Incremental reader of one SSE response: feed it ``recv`` results as they arrive.

    Args:
        keep: keep the raw body for checking afterwards (off for million-token streams).
        stamps: record the arrival time of each read that carried output events.
        target: note the time at which this many output events had arrived.
    """

    __slots__ = ("_head", "_length", "_parts", "_tail", "keep", "stamps", "stream", "target")

    def __init__(self, sent: float, *, keep: bool = True, stamps: bool = False, target: int = 0):
        self.stream = Stream(status=0, sent=sent)
        self.keep = keep
        self.stamps = stamps
        self.target = target
        self._head = b""
        self._parts: list[bytes] = []
        self._tail = b""
        self._length = -1

    @property
    def done(self) -> bool:
        """The response has ended (terminating chunk seen, or connection closed)."""
        return self.stream.ended is not None

    def feed(self, data: bytes, now: float) -> None:
        """Account for one ``recv``; ``b""`` means the server closed the connection."""
        stream = self.stream
        if not data:
            stream.ended = now
            return
        if not stream.status:
            self._head += data
            end = self._head.find(b"\r\n\r\n")
            if end < 0:
                return
            stream.status, headers = _parse_head(self._head[:end])
            data = self._head[end + 4 :]
            if stream.status != 200:  # an error answer (409, 406...): keep it whole
                self.keep = True
                self._length = int(headers.get("content-length", "0"))
        if self.keep:
            self._parts.append(data)
        if self._length >= 0:
            if sum(map(len, self._parts)) >= self._length:
                stream.ended = now
            return
        count = data.count(OUTPUT_MARKER) + (self._tail + data[:_CARRY]).count(OUTPUT_MARKER)
        tail = data[-16:] if len(data) >= 16 else (self._tail + data)[-16:]
        self._tail = tail[-_CARRY:]
        if count:
            if stream.first_output is None:
                stream.first_output = now
            stream.outputs += count
            if self.stamps:
                stream.stamps.append((now, count))
            if self.target and stream.reached is None and stream.outputs >= self.target:
                stream.reached = now
        if tail.endswith(_CHUNKED_END) or tail == b"0\r\n\r\n":
            stream.ended = now

    def finish(self) -> Stream:
        """The stream, with ``raw`` set to the response body (headers stripped) if kept."""
        if self.keep:
            self.stream.raw = b"".join(self._parts)
        return self.stream


def read_stream(
    sock: socket.socket, request: bytes, *, keep: bool = True, stamps: bool = False
) -> Stream:
    """Send ``request`` and read its SSE response to the end."""
    recv = sock.recv
    now = time.perf_counter
    reader = StreamReader(now(), keep=keep, stamps=stamps)  # the clock includes the send
    sock.sendall(request)
    while not reader.done:
        reader.feed(recv(RECV), now())
    return reader.finish()


def read_many(
    socks: Sequence[socket.socket], request: bytes, *, target: int, timeout: float = 600.0
) -> tuple[float, list[StreamReader]]:
    """Send ``request`` on every socket at once and read all the SSE responses concurrently.

    Returns the send time and one reader per socket; each reader's ``stream.reached`` is the
    time its ``target``-th output event arrived. Stops when every stream has reached the
    target (the streams stay open: call ``finish_many`` to read them to their end).
    """
    sent = time.perf_counter()
    for sock in socks:
        sock.sendall(request)  # a few hundred bytes: never blocks
    for sock in socks:
        sock.setblocking(False)
    readers = [StreamReader(sent, target=target) for _ in socks]
    _pump(socks, readers, lambda r: r.stream.reached is not None or r.done, timeout)
    return sent, readers


def finish_many(
    socks: Sequence[socket.socket], readers: Sequence[StreamReader], timeout: float = 600.0
) -> None:
    """Read every stream of ``read_many`` to its end."""
    _pump(socks, readers, lambda r: r.done, timeout)


def _pump(
    socks: Sequence[socket.socket],
    readers: Sequence[StreamReader],
    satisfied: Callable[[StreamReader], bool],
    timeout: float,
) -> None:
    deadline = time.monotonic() + timeout
    now = time.perf_counter
    with selectors.DefaultSelector() as selector:
        for sock, reader in zip(socks, readers, strict=True):
            if not satisfied(reader):
                selector.register(sock, selectors.EVENT_READ, reader)
        while selector.get_map():
            if time.monotonic() > deadline:
                raise TimeoutError("streams did not finish in time")
            for key, _ in selector.select(1.0):
                reader = key.data
                try:
                    data = key.fileobj.recv(RECV)  # type: ignore[union-attr]
                except BlockingIOError:
                    continue
                reader.feed(data, now())
                if satisfied(reader):
                    selector.unregister(key.fileobj)


def dechunk(raw: bytes) -> bytes:
    """Undo ``Transfer-Encoding: chunked`` (checked after timing, never during)."""
    out = []
    pos = 0
    while True:
        eol = raw.index(b"\r\n", pos)
        size = int(raw[pos:eol].split(b";", 1)[0], 16)
        if size == 0:
            return b"".join(out)
        start = eol + 2
        out.append(raw[start : start + size])
        pos = start + size + 2


def sse_events(body: bytes) -> list[tuple[str, Any]]:
    """``[(event, data), ...]`` of a de-chunked SSE body; comments are skipped."""
    events = []
    for block in body.split(b"\n\n"):
        name, data = "message", None
        for line in block.split(b"\n"):
            if line.startswith(b"event: "):
                name = line[7:].decode()
            elif line.startswith(b"data: "):
                data = json.loads(line[6:])
        if data is not None:
            events.append((name, data))
    return events


LAGGED = "SSE stream lagged; events were dropped"


def check_token_stream(raw: bytes, tokens: int) -> tuple[str | None, bool]:
    """``(problem, lagged)`` for a chunked SSE body that should carry ``tokens`` outputs.

    A good stream is start, outputs 0..tokens-1 in order, completed (succeeded). A stream the
    server cut off as lagged (start, outputs in order, then the lag ``error`` event, spec
    §11.6) is no problem but ``lagged``. Anything else is a one-line ``problem``.
    """
    try:
        events = sse_events(dechunk(raw))
    except (ValueError, json.JSONDecodeError) as exc:
        return f"unparseable stream: {exc}", False
    if len(events) < 2 or events[0][0] != "start":
        return f"stream starts with {events[:1]}", False
    last_name, last = events[-1]
    lagged = last_name == "error" and last.get("error") == LAGGED
    if not lagged and len(events) != tokens + 2:
        return f"{len(events)} events, expected {tokens + 2}: {[e[0] for e in events[-3:]]}", False
    for index, (name, data) in enumerate(events[1:-1]):
        if name != "output" or data.get("index") != index:
            return f"event {index + 1} is {name} {data}, expected output {index}", False
    if lagged:
        return None, True
    if last_name != "completed" or last.get("status") != "succeeded":
        return f"stream ends with {last_name} {str(last)[:100]}", False
    return None, False
