"""One measurement each: the functions take a port and return numbers, nothing else.

Every function times only the exchange itself (connections are made before the clock starts)
and checks the answer afterwards; a wrong answer raises ``BenchError`` rather than producing
a fast-looking figure. ``bench.run`` calls them alternately on each server.
"""

from __future__ import annotations

import base64
import itertools
import socket
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from bench.client import (
    RECV,
    Connection,
    Stream,
    StreamReader,
    build_request,
    check_token_stream,
    connect,
    finish_many,
    read_many,
    read_stream,
)

RETRY_409 = 2000


class BenchError(RuntimeError):
    """A server answered wrongly; the figure would be meaningless."""


def _stream_request(tokens: int, delay_ms: float = 0.0) -> bytes:
    return build_request(
        "POST", "/predictions", {"input": {"n": tokens, "delay_ms": delay_ms}}, sse=True
    )


def sse_until_accepted(port: int, request: bytes, *, stamps: bool = False) -> Stream:
    """Stream ``request`` on a fresh connection, retrying coglet's spurious 409s.

    The connection is made before each attempt's clock starts, and closed afterwards.
    """
    for _ in range(RETRY_409):
        with connect(port) as sock:
            stream = read_stream(sock, request, stamps=stamps)
        if stream.status == 200:
            return stream
        if stream.status != 409:
            raise BenchError(f"SSE request got {stream.status}: {stream.raw[:200]!r}")
        time.sleep(0.001)
    raise BenchError(f"still 409 after {RETRY_409} attempts")


@dataclass
class Throughput:
    """Delivered tokens per second, and whether the server cut the stream off as lagged."""

    tokens_per_s: float
    lagged: bool


def sse_throughput(port: int, tokens: int) -> Throughput:
    """One ``tokens``-token SSE prediction: output events received / (request to stream end).

    coglet's own writer can fall more than 1024 events behind its worker on a loaded machine;
    it then ends the stream with the lag ``error`` (spec §11.6). That run counts the tokens it
    did deliver and is reported as lagged.
    """
    stream = sse_until_accepted(port, _stream_request(tokens))
    lagged = _check(stream, tokens, lag_ok=True)
    return Throughput(stream.outputs / (stream.ended - stream.sent), lagged)  # type: ignore[operator]


def long_stream(port: int, folder: Path, tokens: int) -> Throughput:
    """A ``tokens``-token prediction that always runs to its end, streamed to one subscriber.

    It is created async (so a lagged subscriber being cut off cannot cancel it) and held at a
    gate until the SSE subscriber has attached; the body is counted, not kept. Returns once
    the server is idle again.
    """
    gate = folder / f"gate-{uuid.uuid4().hex[:12]}"
    payload = {"n": tokens, "gate": str(gate)}
    prediction_id = _create_async(port, payload)
    try:
        attach = build_request("PUT", f"/predictions/{prediction_id}", {"input": payload}, sse=True)
        sock = connect(port)
        try:
            reader = StreamReader(time.perf_counter(), keep=False)
            sock.sendall(attach)
            while not reader.stream.status:
                reader.feed(sock.recv(RECV), time.perf_counter())
            if reader.stream.status != 200:
                raise BenchError(f"attach got {reader.stream.status}")
            gate.touch()
            while not reader.done:
                reader.feed(sock.recv(RECV), time.perf_counter())
        finally:
            sock.close()
    finally:
        gate.touch()
    stream = reader.stream
    elapsed = stream.ended - (stream.first_output or stream.sent)  # type: ignore[operator]
    return Throughput(stream.outputs / elapsed, stream.outputs != tokens)


def _create_async(port: int, payload: dict[str, object], prediction_id: str | None = None) -> str:
    """POST with ``Prefer: respond-async`` (retrying coglet's spurious 409s); returns the id."""
    body: dict[str, object] = {"input": payload}
    if prediction_id is not None:
        body["id"] = prediction_id
    request = build_request("POST", "/predictions", body, prefer_async=True)
    connection = Connection(port)
    try:
        for _ in range(RETRY_409):
            response, _ = connection.exchange(request)
            if response.status == 202:
                return str(response.json()["id"])
            if response.status != 409:
                raise BenchError(f"async create got {response.status}: {response.body[:200]!r}")
            time.sleep(0.001)
    finally:
        connection.close()
    raise BenchError(f"still 409 after {RETRY_409} attempts")


def first_output(port: int) -> float:
    """Seconds from sending a one-token SSE prediction to reading its ``output`` event."""
    stream = sse_until_accepted(port, _stream_request(1))
    _check(stream, 1)
    return stream.first_output - stream.sent  # type: ignore[operator]


def paced_gaps(port: int, tokens: int, delay_ms: float) -> list[float]:
    """Arrival gaps (seconds) between consecutive tokens of a stream paced ``delay_ms`` apart.

    Tokens that arrive in the same read get the same time, so a token held back and sent
    with the next one shows up as a gap of 0 followed by a double gap.
    """
    stream = sse_until_accepted(port, _stream_request(tokens, delay_ms), stamps=True)
    _check(stream, tokens)
    arrivals = [stamp for stamp, count in stream.stamps for _ in range(count)]
    return [later - earlier for earlier, later in itertools.pairwise(arrivals)]


@dataclass
class SyncBlock:
    """Latencies of the accepted requests of a block, and how many got 409."""

    latencies: list[float]
    conflicts: int


def sync_block(connection: Connection, count: int) -> SyncBlock:
    """``count`` back-to-back sync predictions of the trivial predictor on one connection."""
    request = build_request("POST", "/predictions", {"input": {"text": "hi"}})
    latencies, conflicts = [], 0
    for _ in range(count):
        response, elapsed = connection.exchange(request)
        if response.status == 409:
            conflicts += 1
            continue
        if response.status != 200 or response.json().get("output") != "hi":
            raise BenchError(f"sync prediction got {response.status}: {response.body[:200]!r}")
        latencies.append(elapsed)
    return SyncBlock(latencies, conflicts)


@dataclass
class LateJoin:
    """Late subscribers to one held prediction: replay speed and completeness."""

    events_per_s: float
    complete: int
    subscribers: int


def late_subscribers(
    port: int, folder: Path, subscribers: int, tokens: int, *, create: bool = True
) -> LateJoin:
    """``subscribers`` PUT-attach SSE streams join one prediction after its ``tokens`` tokens.

    The prediction (``late.py``, created async so no subscriber owns it) touches a ready file
    after its last token and is then held open until a release file exists, so the figure is
    the replay alone: events (start + ``tokens`` outputs per subscriber) divided by the time
    from sending the attaches until every subscriber has its last output. Then the prediction
    is released and every stream is checked: start, every output in order, completed.
    ``create=False`` only attaches (for the ceiling server, which needs no prediction).
    """
    prediction_id = f"bench-late-{uuid.uuid4().hex[:12]}"
    ready, release = folder / f"ready-{prediction_id}", folder / f"release-{prediction_id}"
    payload = {"n": tokens, "ready": str(ready), "release": str(release)}
    socks: list[socket.socket] = []
    try:
        if create:
            _create_async(port, payload, prediction_id)
            _wait_for_file(ready)
        socks = [connect(port) for _ in range(subscribers)]
        attach = build_request("PUT", f"/predictions/{prediction_id}", {"input": payload}, sse=True)
        sent, readers = read_many(socks, attach, target=tokens)
        done = [r.stream.reached or r.stream.ended for r in readers]
        release.touch()
        finish_many(socks, readers)
    finally:
        release.touch()
        for sock in socks:
            sock.close()
    complete = 0
    for reader in readers:
        stream = reader.finish()
        if stream.status == 200 and check_token_stream(stream.raw, tokens) == (None, False):
            complete += 1
    elapsed = max(t for t in done if t is not None) - sent
    return LateJoin(subscribers * (tokens + 1) / elapsed, complete, subscribers)


def _wait_for_file(path: Path, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise BenchError(f"the predictor never created {path.name}")
        time.sleep(0.001)


def path_output(connection: Connection, size_mb: int) -> float:
    """Seconds for a sync prediction returning a ``size_mb`` MB ``Path`` (as a data URL)."""
    request = build_request("POST", "/predictions", {"input": {"size_mb": size_mb}})
    for _ in range(RETRY_409):
        response, elapsed = connection.exchange(request)
        if response.status != 409:
            break
        time.sleep(0.001)
    if response.status != 200:
        raise BenchError(f"path prediction got {response.status}: {response.body[:200]!r}")
    output = response.json().get("output", "")
    prefix, _, data = output.partition(";base64,")
    if not prefix.startswith("data:") or len(base64.b64decode(data)) != size_mb * 1024 * 1024:
        raise BenchError(f"path output is not a {size_mb} MB data URL: {output[:80]!r}")
    return elapsed


def _check(stream: Stream, tokens: int, *, lag_ok: bool = False) -> bool:
    """Raise ``BenchError`` unless the stream is complete (or lagged, with ``lag_ok``)."""
    problem, lagged = check_token_stream(stream.raw, tokens)
    if problem is None and lagged and not lag_ok:
        problem = "the server cut the stream off as lagged"
    if problem is not None:
        raise BenchError(problem)
    return lagged
