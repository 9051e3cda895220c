"""Server lifecycle in a real ipykernel: hot reload, interrupt, stop, %reload_ext, shutdown, ports.

Predictors wait on files the test creates; "freed" means a connect to the port is refused.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time

import pytest
import requests
from helpers import wait_until
from kernelkit import (
    ECHO,
    ROOT,
    Kernel,
    gate_source,
    kernel,
    kernel_pythons,
    open_gate,
    refused,
    serve,
    sse_events,
    wait_ready,
)

pytestmark = pytest.mark.slow
__all__ = ["kernel"]  # the fixture, imported for pytest

VERSIONED = """
from cog import BaseRunner

class Predictor(BaseRunner):
    def setup(self) -> None:
        print("setup {version}")

    def run(self, text: str = "", hold: str = "") -> str:
        if hold:
            print("holding", flush=True)
            wait_for(hold)
        return "{version}:" + text
"""

STREAMING_SLOW = """
from cog import BaseRunner, ConcatenateIterator, streaming

class Predictor(BaseRunner):
    @streaming
    def run(self, hold: str) -> ConcatenateIterator[str]:
        yield "first"
        wait_for(hold)
        yield "never"
"""


def nbcog_threads(kernel):
    """Names of nbcog's threads alive in the kernel."""
    names = kernel.value("[t.name for t in __import__('threading').enumerate()]")
    return sorted(name for name in names if name.startswith("nbcog"))


def wait_no_threads(kernel, timeout=30.0):
    """nbcog's worker, setup and loop threads all end (bounded poll of a real observable)."""
    wait_until(lambda: nbcog_threads(kernel) == [], "nbcog's threads to end", timeout)


def test_hot_reload_changes_the_output_on_the_same_url(kernel, tmp_path):
    """Re-running the defining cell and %cog serve swaps in the new code on the same URL."""
    kernel.ok(gate_source(tmp_path) + VERSIONED.replace("{version}", "v1"))
    url = serve(kernel)
    assert wait_ready(url)["setup"]["logs"] == "setup v1\n"
    assert (
        requests.post(url + "/predictions", json={"input": {"text": "a"}}, timeout=30).json()[
            "output"
        ]
        == "v1:a"
    )
    kernel.ok(gate_source(tmp_path) + VERSIONED.replace("{version}", "v2"))
    cell = kernel.ok("%cog serve Predictor --port 0")
    assert cell.stdout == (
        f"nbcog: reloaded Predictor at {url} (same port); no predictions were in flight; "
        "running setup() again\n"
    )
    assert kernel.value("[h.url for h in __import__('nbcog').kernel.serving.servers()]") == [url]
    health = wait_ready(url)
    assert health["setup"]["logs"] == "setup v2\n"
    assert (
        requests.post(url + "/predictions", json={"input": {"text": "a"}}, timeout=30).json()[
            "output"
        ]
        == "v2:a"
    )


def test_reload_cancels_predictions_in_flight(kernel, tmp_path):
    """Predictions in flight at a reload end canceled: sync body and SSE completed say so."""
    kernel.ok(gate_source(tmp_path) + VERSIONED.replace("{version}", "v1"))
    url = serve(kernel)
    wait_ready(url)
    answers = []
    client = threading.Thread(
        target=lambda: answers.append(
            requests.post(
                url + "/predictions", json={"id": "old-one", "input": {"hold": "never"}}, timeout=60
            ).json()
        )
    )
    client.start()
    wait_until(lambda: requests.get(url + "/health-check", timeout=10).json()["status"] == "BUSY")
    kernel.ok(gate_source(tmp_path) + VERSIONED.replace("{version}", "v2"))
    cell = kernel.ok("%cog serve Predictor --port 0")
    assert "cancelled 1 in flight on the old code: old-one" in cell.stdout
    client.join(60)
    assert answers[0]["id"] == "old-one"
    assert answers[0]["status"] == "canceled"
    assert wait_ready(url)["setup"]["logs"] == "setup v2\n"


def test_reload_cancels_an_sse_stream_with_a_completed_event(kernel, tmp_path):
    """An SSE client of a prediction cancelled by a reload gets completed/canceled, then EOF."""
    kernel.ok(gate_source(tmp_path) + STREAMING_SLOW)
    url = serve(kernel)
    wait_ready(url)
    with requests.post(
        url + "/predictions",
        json={"id": "streamed", "input": {"hold": "never"}},
        headers={"Accept": "text/event-stream"},
        stream=True,
        timeout=60,
    ) as response:
        events = sse_events(response)
        assert next(events)[0] == "start"
        assert next(events) == ("output", {"chunk": "first", "index": 0})
        kernel.ok("%cog serve Predictor --port 0")
        rest = list(events)
    assert [name for name, _ in rest] == ["completed"]
    completed = rest[0][1]
    assert set(completed) == {"id", "logs", "metrics", "output", "status"}
    assert (completed["id"], completed["status"], completed["output"]) == (
        "streamed",
        "canceled",
        ["first"],
    )


@pytest.mark.parametrize("mode", ["", " --thread"], ids=["kernel-loop", "thread"])
def test_interrupt_cancels_only_the_cell_prediction(kernel, tmp_path, mode):
    """Interrupting %cog predict cancels its prediction; the server and the kernel go on."""
    kernel.ok(gate_source(tmp_path) + VERSIONED.replace("{version}", "v1"))
    url = serve(kernel, "Predictor --port 0" + mode)
    wait_ready(url)
    cell = kernel.submit("%cog predict --plain -i text=x -i hold=never")
    kernel.wait_for_text(cell, "holding")
    kernel.interrupt()
    kernel.finish(cell)
    assert cell.error["ename"] == "KeyboardInterrupt"
    assert cell.stderr.startswith("cancelling pred_")
    assert requests.get(url + "/health-check", timeout=10).json()["status"] == "READY"
    body = requests.post(url + "/predictions", json={"input": {"text": "after"}}, timeout=30).json()
    assert body["output"] == "v1:after"
    status = kernel.ok("%cog status").stdout
    recent = status.split("recent:    ")[1].splitlines()[0].split("; ")
    assert [line.split(" ")[1] for line in recent] == ["succeeded", "canceled"]
    assert kernel.ok("print('still alive')").stdout == "still alive\n"


def test_second_interrupt_stops_waiting_for_a_stuck_prediction(kernel, tmp_path):
    """A predictor that cancelling cannot stop keeps the cell waiting; interrupt twice to go."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    # Blocked in C (open/read of a FIFO) and deaf to the cancel even if it lands between two
    # C calls: the state of a model stuck in a long native call, made deterministic.
    kernel.ok(
        f"""
from cog import BaseRunner, CancelationException

class Predictor(BaseRunner):
    def run(self) -> str:
        print("blocking in C", flush=True)
        while True:
            try:
                with open({str(fifo)!r}) as pipe:
                    return pipe.read()
            except CancelationException:
                continue
"""
    )
    url = serve(kernel)
    wait_ready(url)
    cell = kernel.submit("%cog predict --plain")
    kernel.wait_for_text(cell, "blocking in C")
    kernel.interrupt()
    kernel.wait_for_text(cell, "cancelling pred_")
    kernel.interrupt()
    assert kernel.finish(cell).error["ename"] == "KeyboardInterrupt"
    assert requests.get(url + "/health-check", timeout=10).json()["status"] == "BUSY"

    def ready_after_poking_the_fifo() -> bool:
        if requests.get(url + "/health-check", timeout=10).json()["status"] == "READY":
            return True
        with contextlib.suppress(OSError):  # ENXIO: no reader in open() right now
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))  # its open() returns, read() EOF
        return False

    wait_until(ready_after_poking_the_fifo, "READY")
    status = kernel.ok("%cog status").stdout
    assert status.split("recent:    ")[1].split(" ")[1] == "canceled"


def test_interrupt_leaves_other_predictions_running(kernel, tmp_path):
    """With two slots, interrupting the cell's prediction leaves an outside one to finish."""
    kernel.ok(
        gate_source(tmp_path)
        + """
from cog import BaseRunner, concurrent

class Predictor(BaseRunner):
    @concurrent(max=2)
    async def run(self, hold: str) -> str:
        print("holding " + hold, flush=True)
        await await_for(hold)
        return "released " + hold
"""
    )
    url = serve(kernel)
    wait_ready(url)
    outside = []
    client = threading.Thread(
        target=lambda: outside.append(
            requests.post(
                url + "/predictions", json={"input": {"hold": "outside"}}, timeout=60
            ).json()
        )
    )
    client.start()
    cell = kernel.submit("%cog predict --plain -i hold=never")
    kernel.wait_for_text(cell, "holding never")
    kernel.interrupt()
    assert kernel.finish(cell).error["ename"] == "KeyboardInterrupt"
    open_gate(tmp_path, "outside")
    client.join(60)
    assert outside[0]["status"] == "succeeded"
    assert outside[0]["output"] == "released outside"


def test_cog_stop_frees_the_port_and_threads(kernel, tmp_path):
    """%cog stop closes the socket and ends every nbcog thread; serving again works."""
    kernel.ok(ECHO)
    url = serve(kernel)
    wait_ready(url)
    requests.post(url + "/predictions", json={"input": {"text": "a"}}, timeout=30)
    cell = kernel.ok("%cog stop")
    assert cell.stdout == f"nbcog: stopped Predictor at {url}\n"
    assert refused(url)
    wait_no_threads(kernel)
    assert kernel.ok("%cog stop").stdout == "nbcog: no server is running\n"
    again = serve(kernel, f"Predictor --port {url.rsplit(':', 1)[1]}")
    assert again == url
    wait_ready(url)


def test_reload_ext_stops_the_servers(kernel, tmp_path):
    """%reload_ext nbcog stops this kernel's servers (no leak) and %cog works again after."""
    kernel.ok(ECHO + "\nOther = Predictor")
    kernel_url = serve(kernel)
    thread_url = serve(kernel, "Other --port 0 --thread")
    assert thread_url != kernel_url
    wait_ready(kernel_url)
    wait_ready(thread_url)
    kernel.ok("%reload_ext nbcog")
    assert refused(kernel_url)
    assert refused(thread_url)
    wait_no_threads(kernel)
    url = serve(kernel)
    assert wait_ready(url)["status"] == "READY"


@pytest.mark.parametrize("python", kernel_pythons())
def test_kernel_shutdown_closes_the_server(python, tmp_path):
    """Shutting the kernel down closes its server's port promptly."""
    k = Kernel(python, tmp_path)
    try:
        k.ok("%load_ext nbcog")
        k.ok(ECHO)
        url = serve(k)
        wait_ready(url)
    finally:
        started = time.monotonic()
        k.shutdown()
    assert refused(url)
    assert time.monotonic() - started < 30


def test_explicit_taken_port_names_the_holder(kernel, tmp_path):
    """--port held by another program is a UsageError naming it, with its pid."""
    kernel.ok(ECHO)
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        cell = kernel.run(f"%cog serve Predictor --port {port}")
    assert cell.usage_error.startswith(
        f"port {port} on 127.0.0.1 is taken by another program, pid {os.getpid()} ("
    )
    assert cell.usage_error.endswith(
        "; stop it, or pick another port (leave the port out to take 5000 or the next free one)"
    )
    assert (
        kernel.ok("%cog status").stdout
        == "nbcog: no server is running; start one with %cog serve NAME\n"
    )


def test_taken_port_held_by_another_nbcog_is_named(kernel, tmp_path):
    """--port held by an nbcog server in another process says so (nbcog version, pid)."""
    predictor = tmp_path / "predict.py"
    predictor.write_text(ECHO)
    with socket.socket() as picker:
        picker.bind(("127.0.0.1", 0))
        port = picker.getsockname()[1]
    other = subprocess.Popen(
        [sys.executable, "-m", "nbcog", "serve", f"{predictor}:Predictor", "--port", str(port)],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_ready(f"http://127.0.0.1:{port}")
        kernel.ok(ECHO)
        cell = kernel.run(f"%cog serve Predictor --port {port}")
    finally:
        other.terminate()
        other.wait(30)
    holder = f"is taken by another nbcog server (nbcog 0.1.0), pid {other.pid} ("
    assert holder in cell.usage_error


def _free(port):
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_default_port_is_5000_else_the_next_free_one(kernel, tmp_path):
    """Without --port: 5000 when free, else the next free port, saying who holds 5000."""
    kernel.ok(ECHO)
    with contextlib.ExitStack() as stack:
        if _free(5000):
            holder = stack.enter_context(socket.socket())
            with contextlib.suppress(OSError):
                holder.bind(("127.0.0.1", 5000))
                holder.listen()
        cell = kernel.ok("%cog serve Predictor")
        url = kernel.value("__import__('nbcog').kernel.serving.servers()[-1].url")
    port = int(url.rsplit(":", 1)[1])
    assert 5000 < port < 5100
    assert cell.stdout.startswith("nbcog: port 5000 is taken by ")
    assert f"; serving on port {port} instead\n" in cell.stdout
    kernel.ok("%cog stop")
    cell = kernel.ok("%cog serve Predictor")
    url = kernel.value("__import__('nbcog').kernel.serving.servers()[-1].url")
    if url != "http://127.0.0.1:5000":  # someone else took 5000 meanwhile: it must say so
        assert cell.stdout.startswith("nbcog: port 5000 is taken by ")
        assert f"; serving on port {url.rsplit(':', 1)[1]} instead\n" in cell.stdout
