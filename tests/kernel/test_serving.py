"""A server in a real ipykernel answers outside clients: idle, awaiting, %cog predict, --thread.

Every test starts a kernel with jupyter_client, loads the extension, defines a predictor in a
cell and serves it; the test process is the outside client (requests, SSE read as it arrives).
Cells that must stay busy wait for a file the test creates, so nothing depends on timing.
"""

from __future__ import annotations

import threading

import pytest
import requests
from kernelkit import ECHO, gate_source, kernel, open_gate, serve, sse_events, wait_ready

pytestmark = pytest.mark.slow
__all__ = ["kernel"]  # the fixture, imported for pytest

STREAMER = """
from cog import AsyncConcatenateIterator, BaseRunner, concurrent, streaming

class Predictor(BaseRunner):
    def setup(self) -> None:
        print("loading streamer")

    @streaming
    @concurrent(max=2)
    async def run(self, text: str, gates: int = 0, tag: str = "") -> AsyncConcatenateIterator[str]:
        print(f"run {tag or text}")
        for index, char in enumerate(text):
            if index < gates:
                await await_for(f"{tag}-{index}")
            yield char
"""


def define(kernel, tmp_path, source):
    """Run the gate helpers and ``source`` in a cell (the predictor is defined in the notebook)."""
    kernel.ok(gate_source(tmp_path) + source)


def check_outside_clients(url, *, streaming=False):
    """Health-check, a sync prediction and (for streaming predictors) an SSE stream all work."""
    health = requests.get(url + "/health-check", timeout=10).json()
    assert health["status"] == "READY"
    if streaming:
        body = requests.post(
            url + "/predictions", json={"input": {"text": "ab"}}, timeout=30
        ).json()
        assert body["status"] == "succeeded"
        assert body["output"] == ["a", "b"]
        assert body["logs"] == "run ab\n"
        with requests.post(
            url + "/predictions",
            json={"id": "outside-sse", "input": {"text": "xy"}},
            headers={"Accept": "text/event-stream"},
            stream=True,
            timeout=30,
        ) as response:
            assert response.status_code == 200
            names = [(name, data) for name, data in sse_events(response)]
        assert names[0] == ("start", {"id": "outside-sse", "status": "processing"})
        assert ("output", {"chunk": "x", "index": 0}) in names
        assert ("output", {"chunk": "y", "index": 1}) in names
        assert names[-1][0] == "completed"
        assert names[-1][1]["output"] == ["x", "y"]
    else:
        body = requests.post(
            url + "/predictions", json={"input": {"text": "ab", "times": 2}}, timeout=30
        )
        assert body.status_code == 200
        assert body.json()["output"] == "abab"
        assert body.json()["logs"] == "echoing ab\n"


def test_serve_answers_while_the_kernel_is_idle(kernel, tmp_path):
    """%cog serve returns at once with the URL; health, sync and SSE are answered while idle."""
    define(kernel, tmp_path, STREAMER)
    cell = kernel.ok("%cog serve Predictor --port 0")
    url = kernel.value("__import__('nbcog').kernel.serving.servers()[-1].url")
    assert f"nbcog: serving Predictor at {url} (kernel loop)" in cell.stdout
    assert f"curl -s {url}/health-check" in cell.stdout
    assert "a cell that blocks without awaiting" in cell.stdout  # said once when serving
    shown = [display["text/plain"] for display in cell.displays]
    assert "setup of Predictor: starting" in shown  # the setup progress line
    assert shown[-1] == "nbcog monitor: 0 predictions"  # then the live monitor widget
    assert "application/vnd.jupyter.widget-view+json" in cell.displays[-1]
    health = wait_ready(url)
    assert health["setup"]["logs"] == "loading streamer\n"
    check_outside_clients(url, streaming=True)
    assert kernel.value("'nest_asyncio2' in __import__('sys').modules") is False


def test_serve_answers_while_a_cell_awaits(kernel, tmp_path):
    """A cell that awaits keeps the kernel loop turning: outside clients are answered meanwhile."""
    define(kernel, tmp_path, ECHO)
    url = serve(kernel)
    wait_ready(url)
    cell = kernel.submit(
        gate_source(tmp_path)
        + "print('awaiting', flush=True)\nawait await_for('cell')\nprint('done')"
    )
    kernel.wait_for_text(cell, "awaiting")
    check_outside_clients(url)
    assert cell.status == "running"
    open_gate(tmp_path, "cell")
    assert "done" in kernel.finish(cell).check().stdout


def test_outside_clients_and_sse_flow_while_a_cell_runs_cog_predict(kernel, tmp_path):
    """%cog predict blocks its cell but the loop turns: outside requests and SSE streams flow."""
    define(kernel, tmp_path, STREAMER)
    url = serve(kernel)
    wait_ready(url)
    cell = kernel.submit("%cog predict --plain -i text=inside -i gates=1 -i tag=cell")
    kernel.wait_for_text(cell, "run cell")  # the predictor's log, shown live in the cell
    queued = kernel.submit("print('queued cell ran')")  # must run after, not vanish
    health = requests.get(url + "/health-check", timeout=10).json()
    assert health["status"] == "READY"  # one of the two slots is taken by the cell
    with requests.post(
        url + "/predictions",
        json={"id": "flowing", "input": {"text": "abc", "gates": 3, "tag": "out"}},
        headers={"Accept": "text/event-stream"},
        stream=True,
        timeout=30,
    ) as response:
        events = sse_events(response)
        assert next(events) == ("start", {"id": "flowing", "status": "processing"})
        assert next(events) == ("log", {"source": "stdout", "data": "run out\n"})
        for index, char in enumerate("abc"):
            open_gate(tmp_path, f"out-{index}")
            assert next(events) == ("output", {"chunk": char, "index": index})
            assert cell.status == "running"
        name, data = next(events)
        assert (name, data["status"], data["output"]) == ("completed", "succeeded", ["a", "b", "c"])
    assert queued.status == "running"
    open_gate(tmp_path, "cell-0")
    done = kernel.finish(cell).check()
    assert done.displays[-1]["text/plain"] == "inside"
    assert kernel.finish(queued).check().stdout == "queued cell ran\n"


def test_thread_mode_answers_while_a_cell_blocks(kernel, tmp_path):
    """--thread serves from its own loop: a cell in time.sleep does not pause the server."""
    define(kernel, tmp_path, STREAMER)
    cell = kernel.ok("%cog serve Predictor --port 0 --thread")
    assert "(thread)" in cell.stdout
    assert "a cell that blocks without awaiting" not in cell.stdout
    url = kernel.value("__import__('nbcog').kernel.serving.servers()[-1].url")
    wait_ready(url)
    blocking = kernel.submit(
        gate_source(tmp_path) + "print('sleeping', flush=True)\nwait_for('cell')\nprint('woke')"
    )
    kernel.wait_for_text(blocking, "sleeping")
    check_outside_clients(url, streaming=True)
    assert blocking.status == "running"
    open_gate(tmp_path, "cell")
    kernel.finish(blocking).check()
    names = kernel.value("[t.name for t in __import__('threading').enumerate()]")
    assert "nbcog-server" in names
    kernel.ok("%cog stop")
    names = kernel.value("[t.name for t in __import__('threading').enumerate()]")
    assert "nbcog-server" not in names


def test_cog_predict_in_thread_mode_shows_logs_and_output(kernel, tmp_path):
    """%cog predict against a --thread server blocks the cell, streams logs, shows the output."""
    define(kernel, tmp_path, ECHO)
    kernel.ok("%cog serve Predictor --port 0 --thread")
    cell = kernel.ok("%cog predict --plain -i text=hey -i times=2")
    assert cell.stdout == "echoing hey\n"
    assert cell.displays[-1] == {"text/plain": "heyhey"}


def test_blocking_cell_shows_as_loop_lag_in_status(kernel, tmp_path):
    """A cell that blocks the kernel loop shows up as loop lag in %cog status."""
    define(kernel, tmp_path, ECHO)
    url = serve(kernel)
    wait_ready(url)
    kernel.ok("import time; time.sleep(1.0)")
    status = kernel.ok("%cog status").stdout
    assert status.startswith(f"Predictor at {url} (kernel loop)\n")
    assert "  health:    READY (setup succeeded)\n" in status
    worst = float(status.split("ms now, ")[1].split(" ms worst")[0])
    assert worst >= 500.0  # ticks every 0.25 s: a 1 s block makes one at least 0.75 s late


def test_sync_request_waits_for_a_blocking_cell_in_kernel_loop_mode(kernel, tmp_path):
    """On the kernel loop a blocking cell pauses the server; the request is answered after it."""
    define(kernel, tmp_path, ECHO)
    url = serve(kernel)
    wait_ready(url)
    blocking = kernel.submit(
        gate_source(tmp_path) + "print('blocking', flush=True)\nwait_for('cell')"
    )
    kernel.wait_for_text(blocking, "blocking")
    answers = []
    client = threading.Thread(
        target=lambda: answers.append(
            requests.post(url + "/predictions", json={"input": {"text": "z"}}, timeout=60).json()
        )
    )
    client.start()
    client.join(0.5)
    assert answers == []  # not answered while the cell blocks the loop (it cannot be)
    open_gate(tmp_path, "cell")
    kernel.finish(blocking).check()
    client.join(60)
    assert answers[0]["output"] == "z"
