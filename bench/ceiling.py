"""A server that answers every request with pre-built bytes: the client's speed limit.

``python -m bench.ceiling PORT`` answers the benchmark's requests the way a prediction server
would (same status lines, SSE events and JSON shapes) but with no work at all: each response
is built once, cached, and written with ``sendall``. Whatever the benchmark measures against
it is the most the client itself can observe, so the client is fast enough when this ceiling
is far above both real servers.
"""

from __future__ import annotations

import base64
import functools
import json
import socket
import sys
import threading

from bench.client import HOST

CHUNK = 64 * 1024


def _chunked(body: bytes) -> bytes:
    parts = [
        b"%x\r\n%s\r\n" % (len(body[i : i + CHUNK]), body[i : i + CHUNK])
        for i in range(0, len(body), CHUNK)
    ]
    return b"".join(parts) + b"0\r\n\r\n"


@functools.lru_cache(maxsize=16)
def sse_response(tokens: int) -> bytes:
    """start, ``tokens`` outputs and completed, chunked, as the servers send them."""
    events = [b'event: start\ndata: {"id":"pred_ceiling","status":"processing"}\n\n']
    events += [
        b'event: output\ndata: {"chunk":" tok","index":%d}\n\n' % index for index in range(tokens)
    ]
    done = {"id": "pred_ceiling", "logs": "", "metrics": {}, "output": [" tok"] * tokens}
    done["status"] = "succeeded"
    events.append(b"event: completed\ndata: " + json.dumps(done).encode() + b"\n\n")
    head = (
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
        b"transfer-encoding: chunked\r\n\r\n"
    )
    return head + _chunked(b"".join(events))


@functools.lru_cache(maxsize=16)
def json_response(body: bytes) -> bytes:
    """A 200 JSON response with ``Content-Length``."""
    head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
    return head % len(body) + body


@functools.lru_cache(maxsize=4)
def file_output(size_mb: int) -> bytes:
    """A sync body whose output is a ``size_mb`` MB file as a data URL."""
    data = base64.b64encode(bytes(size_mb * 1024 * 1024)).decode()
    body = {"output": f"data:application/octet-stream;base64,{data}", "status": "succeeded"}
    return json_response(json.dumps(body).encode())


def answer(head: bytes, body: bytes) -> bytes:
    """The canned response for one request."""
    if head.startswith(b"GET /health-check"):
        return json_response(b'{"status":"READY"}')
    payload = json.loads(body or b"{}").get("input") or {}
    if b"text/event-stream" in head:
        return sse_response(int(payload.get("n", 1)))
    if "size_mb" in payload:
        return file_output(int(payload["size_mb"]))
    return json_response(
        json.dumps({"output": payload.get("text"), "status": "succeeded"}).encode()
    )


def serve_connection(conn: socket.socket) -> None:
    """Answer requests on one keep-alive connection until the client closes it."""
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buf = b""
    with conn:
        while True:
            while (end := buf.find(b"\r\n\r\n")) < 0:
                data = conn.recv(1 << 16)
                if not data:
                    return
                buf += data
            head, buf = buf[:end], buf[end + 4 :]
            length = 0
            for line in head.split(b"\r\n")[1:]:
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            while len(buf) < length:
                data = conn.recv(1 << 16)
                if not data:
                    return
                buf += data
            body, buf = buf[:length], buf[length:]
            try:
                conn.sendall(answer(head, body))
            except OSError:
                return


def main(port: int) -> None:
    """Serve on ``HOST:port`` until killed; one thread per connection."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((HOST, port))
    listener.listen(256)
    print(f"ceiling: serving on {HOST}:{port}", file=sys.stderr, flush=True)
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=serve_connection, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    main(int(sys.argv[1]))
