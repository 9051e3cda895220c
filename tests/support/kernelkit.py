"""A real ipykernel for the ``test_kernel_*`` tests: started with jupyter_client, driven by cells.

``Kernel.run(code)`` executes a cell and returns a ``Cell`` with everything the kernel sent
for it (stream text, displays, the error). ``Kernel.submit(code)`` sends a cell without waiting,
so the test can talk to the server while the cell runs; ``Kernel.wait_for_text`` blocks until
that cell has printed a marker (proof that it is running), ``Kernel.finish`` collects it.

Kernels run with the test's Python (ipykernel 7) or, when ``NBCOG_IPYKERNEL6_PYTHON`` names
a Python with ipykernel 6 (``scripts/test`` makes that virtualenv once), with that one too:
the ``kernel`` fixture is parametrised over both.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import queue
import socket
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from helpers import wait_until
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from jupyter_core.utils import ensure_event_loop

ROOT = Path(__file__).resolve().parents[2]
IPYKERNEL6_ENV = "NBCOG_IPYKERNEL6_PYTHON"
START_TIMEOUT = 60.0
CELL_TIMEOUT = 120.0
# What a healthy kernel never prints: unhandled errors in callbacks, tasks and threads.
_NOISE = (
    "Traceback",
    "Task was destroyed",
    "Exception in callback",
    "never retrieved",
    "Exception in thread",
)


@dataclass
class Cell:
    """What one executed cell produced."""

    msg_id: str
    status: str = "running"
    stdout: str = ""
    stderr: str = ""
    displays: list[dict[str, Any]] = field(default_factory=list)
    results: list[dict[str, Any]] = field(default_factory=list)  # execute_result: Out[n]
    updates: list[dict[str, Any]] = field(default_factory=list)  # update_display_data
    error: dict[str, Any] | None = None
    traceback: list[str] = field(default_factory=list)
    """The error's ``traceback`` lines, as the notebook shows them (ANSI colours included)."""
    idle: bool = False

    @property
    def text(self) -> str:
        """stdout, stderr and the text/plain of displays, in one string."""
        plain = [d.get("text/plain", "") for d in self.displays]
        return self.stdout + self.stderr + "\n".join(plain)

    @property
    def usage_error(self) -> str | None:
        """The message of a ``UsageError`` (IPython prints those on stderr, without a traceback)."""
        if self.status != "error" or not self.stderr.startswith("UsageError: "):
            return None
        return self.stderr.removeprefix("UsageError: ").rstrip("\n")

    def check(self) -> Cell:
        """Fail the test with the kernel's traceback when the cell raised."""
        assert self.status == "ok", f"cell failed: {self.error}\n{self.text}"
        return self


class Kernel:
    """One ipykernel process and a blocking client for it."""

    def __init__(self, python: str, cwd: Path, env: dict[str, str] | None = None) -> None:
        spec_dir = cwd / "kernelspec" / "nbcog-test"
        spec_dir.mkdir(parents=True)
        argv = [python, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
        spec = {"argv": argv, "display_name": "nbcog test", "language": "python"}
        (spec_dir / "kernel.json").write_text(json.dumps(spec))
        specs = KernelSpecManager(kernel_dirs=[str(cwd / "kernelspec")])
        self.manager = KernelManager(kernel_name="nbcog-test", kernel_spec_manager=specs)
        environment = dict(os.environ)
        environment["PYTHONPATH"] = os.pathsep.join(
            [str(ROOT), *filter(None, [environment.get("PYTHONPATH")])]
        )
        environment.update(env or {})
        self.log = (cwd / "kernel.log").open("w")
        self.manager.start_kernel(cwd=str(cwd), env=environment, stdout=self.log, stderr=self.log)
        self.client = self.manager.blocking_client()
        self.client.start_channels()
        self._cells: dict[str, Cell] = {}
        self.updates: list[dict[str, Any]] = []
        self.orphans: list[str] = []
        self.client.wait_for_ready(timeout=START_TIMEOUT)

    # -- cells ---------------------------------------------------------------------------

    def submit(self, code: str) -> Cell:
        """Send a cell for execution; returns at once."""
        msg_id = self.client.execute(textwrap.dedent(code), allow_stdin=False)
        cell = self._cells[msg_id] = Cell(msg_id)
        return cell

    def _pump(self, timeout: float) -> bool:
        """Handle one iopub or shell message; False when none came within ``timeout``."""
        for channel in (self.client.iopub_channel, self.client.shell_channel):
            try:
                msg = channel.get_msg(
                    timeout=0 if channel is self.client.shell_channel else timeout
                )
            except queue.Empty:
                continue
            self._handle(msg)
            return True
        return False

    def _handle(self, msg: dict[str, Any]) -> None:
        if msg["msg_type"] == "update_display_data":  # parented to whichever cell ran last
            self.updates.append(msg["content"]["data"])
        cell = self._cells.get(msg["parent_header"].get("msg_id", ""))
        if cell is None:
            if msg["msg_type"] == "stream":
                self.orphans.append(msg["content"]["text"])
            return
        kind, content = msg["msg_type"], msg["content"]
        if kind == "stream":
            if content["name"] == "stdout":
                cell.stdout += content["text"]
            else:
                cell.stderr += content["text"]
        elif kind in ("display_data", "execute_result"):
            cell.displays.append(content["data"])
            if kind == "execute_result":
                cell.results.append(content["data"])
        elif kind == "update_display_data":
            cell.updates.append(content["data"])
        elif kind == "error":
            cell.error = {"ename": content["ename"], "evalue": content["evalue"]}
            cell.traceback = content["traceback"]
        elif kind == "execute_reply":
            cell.status = content["status"]
        elif kind == "status" and content["execution_state"] == "idle":
            cell.idle = True

    def pump_until(self, cell: Cell, condition: Callable[[Cell], bool], timeout: float) -> Cell:
        """Pump messages until ``condition(cell)`` holds."""
        deadline = time.monotonic() + timeout
        while not condition(cell):
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"timed out waiting on cell {cell.msg_id}: {cell}"
            self._pump(min(remaining, 0.2))
        return cell

    def wait_for_update(self, marker: str, timeout: float = CELL_TIMEOUT) -> str:
        """Wait for an ``update_display_data`` whose text has ``marker``; returns that text."""
        deadline = time.monotonic() + timeout
        while True:
            for data in self.updates:
                if marker in data.get("text/plain", ""):
                    return data["text/plain"]
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no display update with {marker!r}: {self.updates}"
            self._pump(min(remaining, 0.2))

    def wait_for_text(self, cell: Cell, marker: str, timeout: float = CELL_TIMEOUT) -> Cell:
        """Wait until the cell has printed ``marker`` (so it is running now)."""
        return self.pump_until(cell, lambda c: marker in c.text or c.status != "running", timeout)

    def finish(self, cell: Cell, timeout: float = CELL_TIMEOUT) -> Cell:
        """Wait for the cell's reply and for its last output (the kernel's idle status)."""
        return self.pump_until(cell, lambda c: c.status != "running" and c.idle, timeout)

    def run(self, code: str, timeout: float = CELL_TIMEOUT) -> Cell:
        """Execute a cell and wait for it."""
        return self.finish(self.submit(code), timeout)

    def ok(self, code: str, timeout: float = CELL_TIMEOUT) -> Cell:
        """Execute a cell that must succeed."""
        return self.run(code, timeout).check()

    def value(self, expression: str) -> Any:
        """Evaluate ``expression`` in the kernel; it must be JSON-serialisable."""
        cell = self.ok(f"import json as _json; print(_json.dumps({expression}))")
        return json.loads(cell.stdout.strip().splitlines()[-1])

    def assert_quiet(self) -> None:
        """No traceback or asyncio complaint was printed anywhere (stray output included)."""
        while self._pump(0.05):
            pass
        printed = self.orphans + [cell.stderr for cell in self._cells.values()]
        for text in printed:
            for marker in _NOISE:
                assert marker not in text, f"the kernel printed {marker!r}:\n{text}"

    # -- process ---------------------------------------------------------------------------

    def interrupt(self) -> None:
        """SIGINT to the kernel, as the notebook's stop button does."""
        self.manager.interrupt_kernel()

    def shutdown(self) -> None:
        """Ask the kernel to shut down and wait for its process to end."""
        self.client.stop_channels()
        if self.manager.has_kernel:
            self.manager.shutdown_kernel(now=False)
        self.log.close()


def kernel_pythons() -> list[Any]:
    """The ``kernel`` fixture's parameters: ipykernel 7 (this Python) and ipykernel 6."""
    six = os.environ.get(IPYKERNEL6_ENV)
    skip6 = pytest.mark.skipif(not six, reason=f"set {IPYKERNEL6_ENV} (scripts/test does)")
    return [
        pytest.param(sys.executable, id="ipykernel7"),
        pytest.param(six or "", id="ipykernel6", marks=skip6),
    ]


class Spares:
    """One kernel per interpreter booted ahead, so a test does not wait for its kernel to start.

    A spare starts (on a thread, in a directory of its own) and runs ``%load_ext nbcog`` while the
    previous test runs; ``take`` waits for that, moves the kernel into the test's ``tmp_path``
    (the cwd its relative paths and ``predict.py:Name`` refs are read from) and boots the next
    spare. Every test still gets a kernel nobody used before.
    """

    def __init__(self, root: Path) -> None:
        self._root = root
        self._booting: dict[str, concurrent.futures.Future[Kernel]] = {}
        self._threads = concurrent.futures.ThreadPoolExecutor(thread_name_prefix="spare-kernel")

    def _boot(self, python: str) -> None:
        home = self._root / f"spare-{len(list(self._root.iterdir()))}"
        home.mkdir()

        def start() -> Kernel:
            try:
                k = Kernel(python, home)
                k.ok("%load_ext nbcog")
                return k
            finally:  # jupyter_client made this thread a loop; the kernel no longer needs it
                ensure_event_loop().close()

        self._booting[python] = self._threads.submit(start)

    def take(self, python: str, cwd: Path) -> Kernel:
        if python not in self._booting:
            self._boot(python)
        k = self._booting.pop(python).result(timeout=START_TIMEOUT + CELL_TIMEOUT)
        self._boot(python)
        k.ok(f"import os as _os; _os.chdir({str(cwd)!r}); del _os")
        return k

    def close(self) -> None:
        for booting in self._booting.values():
            booting.result().shutdown()
        self._booting.clear()
        self._threads.shutdown()


@pytest.fixture(scope="session")
def kernel_spares(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Spares]:
    """The session's spare kernels (shut down at the end)."""
    spares = Spares(tmp_path_factory.mktemp("kernels"))
    yield spares
    spares.close()


@pytest.fixture(params=kernel_pythons())
def kernel(
    request: pytest.FixtureRequest, tmp_path: Path, kernel_spares: Spares
) -> Iterator[Kernel]:
    """A kernel nobody used before, with ``%load_ext nbcog`` done, shut down after the test."""
    k = kernel_spares.take(request.param, tmp_path)
    try:
        yield k
        k.assert_quiet()
    finally:
        k.shutdown()


# -- the predictors and helpers the tests share ----------------------------------------------

ECHO = """
from cog import BaseRunner, Input

class Predictor(BaseRunner):
    def setup(self) -> None:
        print("loading echo")

    def run(self, text: str = Input(description="what to echo"), times: int = 1) -> str:
        print(f"echoing {text}")
        return text * times
"""


def gate_source(tmp: Path) -> str:
    """Predictor-side helpers: wait for a file the test creates (bounded), poll async too."""
    return f"""
import asyncio as _asyncio, os as _os, time as _time
_TMP = {str(tmp)!r}

def wait_for(name, limit=60.0):
    deadline = _time.monotonic() + limit
    while not _os.path.exists(_os.path.join(_TMP, name)):
        assert _time.monotonic() < deadline, name
        _time.sleep(0.005)

async def await_for(name, limit=60.0):
    deadline = _time.monotonic() + limit
    while not _os.path.exists(_os.path.join(_TMP, name)):
        assert _time.monotonic() < deadline, name
        await _asyncio.sleep(0.005)
"""


def open_gate(tmp: Path, name: str) -> None:
    """Create the file a predictor or a cell is waiting for."""
    (tmp / name).write_text("")


def serve(kernel: Kernel, args: str = "Predictor --port 0") -> str:
    """``%cog serve ARGS`` and return the server's URL."""
    kernel.ok(f"%cog serve {args}")
    return kernel.value("__import__('nbcog').kernel.serving.servers()[-1].url")


def wait_ready(url: str, timeout: float = 60.0) -> dict[str, Any]:
    """Poll the health-check until setup has ended (and the port is open); returns its body."""

    def setup_ended() -> dict[str, Any] | None:
        try:
            body: dict[str, Any] = requests.get(url + "/health-check", timeout=10).json()
        except requests.ConnectionError:  # a server process still starting
            return None
        return body if body["status"] != "STARTING" else None

    ready: dict[str, Any] = wait_until(setup_ended, f"{url} to end setup", timeout)
    return ready


def refused(url: str) -> bool:
    """Nothing listens at ``url``'s port any more."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    with socket.socket() as probe:
        return probe.connect_ex((host, int(port))) != 0


def sse_events(response: requests.Response) -> Iterator[tuple[str, Any]]:
    """``(event, data)`` pairs of an SSE response, as they arrive."""
    name = "message"
    for line in response.iter_lines(decode_unicode=True):
        if line.startswith("event: "):
            name = line[len("event: ") :]
        elif line.startswith("data: "):
            yield name, json.loads(line[len("data: ") :])
