"""Latency of a sync prediction to a server inside a real ipykernel, from outside the kernel.

    python -m bench.kernel_latency [--requests 300]

Starts a kernel with jupyter_client, defines a trivial predictor in a cell, serves it, and
times ``POST /predictions`` (one keep-alive connection, http.client) in four situations: kernel
idle; a cell awaiting (``await asyncio.sleep``, the kernel loop turns); a cell blocked in
``%cog predict`` (the loop turns nested); and, in ``--thread`` mode, a cell in ``time.sleep``.
Prints percentiles in milliseconds.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "support"))
from kernelkit import Kernel, gate_source, open_gate, wait_ready

PREDICTOR = """
from cog import BaseRunner, concurrent

class SyncPredictor(BaseRunner):
    def run(self, text: str = "x") -> str:
        return text

class Predictor(BaseRunner):
    @concurrent(max=2)
    async def run(self, text: str = "x", hold: str = "") -> str:
        if hold:
            print("holding", flush=True)
            await await_for(hold)
        return text
"""


def measure(url: str, count: int) -> list[float]:
    """Milliseconds per sync prediction, ``count`` of them back to back on one connection."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    body = json.dumps({"input": {"text": "hi"}})
    headers = {"Content-Type": "application/json"}
    times = []
    for _ in range(count + 10):
        started = time.perf_counter()
        connection.request("POST", "/predictions", body, headers)
        response = connection.getresponse()
        assert json.loads(response.read())["output"] == "hi"
        times.append((time.perf_counter() - started) * 1000)
    connection.close()
    return times[10:]  # the first few warm the connection and the worker


def report(label: str, times: list[float]) -> None:
    """One line: p50, p90, p99 and max."""
    ordered = sorted(times)
    p = {q: ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))] for q in (50, 90, 99)}
    print(
        f"{label:<38} n={len(times):<4} p50={p[50]:6.2f}  p90={p[90]:6.2f}  p99={p[99]:6.2f}  "
        f"max={max(times):6.2f}  mean={statistics.mean(times):6.2f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--python", default=sys.executable, help="the kernel's Python")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="nbcog-bench-"))
    kernel = Kernel(args.python, tmp)
    try:
        kernel.ok("%load_ext nbcog")
        kernel.ok(gate_source(tmp) + PREDICTOR)
        kernel.ok("%cog serve SyncPredictor --port 0")
        sync_url = kernel.value("__import__('nbcog').kernel.serving.servers()[-1].url")
        kernel.ok("%cog serve Predictor --port 0")
        url = kernel.value("__import__('nbcog').kernel.serving.servers()[-1].url")
        wait_ready(sync_url)
        wait_ready(url)
        report("kernel loop, idle, def run", measure(sync_url, args.requests))
        report("kernel loop, idle, async def run", measure(url, args.requests))

        cell = kernel.submit(
            gate_source(tmp) + "print('awaiting', flush=True)\nawait await_for('g1')"
        )
        kernel.wait_for_text(cell, "awaiting")
        report("kernel loop, cell awaits, def run", measure(sync_url, args.requests))
        report("kernel loop, cell awaits, async def", measure(url, args.requests))
        open_gate(tmp, "g1")
        kernel.finish(cell).check()

        cell = kernel.submit("%cog predict -i hold=g2")
        kernel.wait_for_text(cell, "holding")
        report("kernel loop, %cog predict, async def", measure(url, args.requests))
        open_gate(tmp, "g2")
        kernel.finish(cell).check()

        kernel.ok("%cog stop\n%cog serve SyncPredictor --port 0 --thread")
        url = kernel.value("__import__('nbcog').kernel.serving.servers()[-1].url")
        wait_ready(url)
        report("thread, idle, def run", measure(url, args.requests))
        cell = kernel.submit(gate_source(tmp) + "print('sleeping', flush=True)\nwait_for('g3')")
        kernel.wait_for_text(cell, "sleeping")
        report("thread, cell in time.sleep, def run", measure(url, args.requests))
        open_gate(tmp, "g3")
        kernel.finish(cell).check()
    finally:
        kernel.shutdown()


if __name__ == "__main__":
    main()
