"""Starting, watching and stopping the servers under test, each in its own process group.

Both servers serve the same predictor file from the same folder: nbcog with
``python -m nbcog serve predict.py:Predictor``, coglet as spec §23 says (venv ``bin`` first on
``PATH``, ``COG_PREDICT_TYPE_STUB``, ``PORT``, and nbcog's schema in
``.cog/openapi_schema.json``). Every process is started with ``start_new_session`` and stopped
by signalling its own process group, so nothing this harness did not start is ever touched.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.client import HOST, Connection, build_request

REPO = Path(__file__).resolve().parent.parent
PREDICTORS = Path(__file__).resolve().parent / "predictors"
STUB = "predict.py:Predictor"
READY_TIMEOUT = 90.0


class PortPool:
    """Hands out ports from a fixed range, skipping any that something else is bound to."""

    def __init__(self, first: int, last: int) -> None:
        self._ports = list(range(first, last + 1))

    def take(self) -> int:
        """The next free port of the range."""
        while self._ports:
            port = self._ports.pop(0)
            if _free(port):
                return port
        raise RuntimeError("no free port left in the benchmark's range")


def _free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
    return True


def prepare_folder(root: Path, predictor: str) -> Path:
    """``root/<predictor>/predict.py`` plus ``.cog/openapi_schema.json`` from nbcog's schema."""
    folder = root / predictor
    (folder / ".cog").mkdir(parents=True)
    shutil.copy(PREDICTORS / f"{predictor}.py", folder / "predict.py")
    schema = subprocess.run(
        [sys.executable, "-m", "nbcog", "schema", STUB],
        cwd=folder,
        env=_env({}),
        capture_output=True,
        check=True,
        timeout=120,
    ).stdout
    json.loads(schema)  # fail here, not inside coglet, if the schema is broken
    (folder / ".cog" / "openapi_schema.json").write_bytes(schema)
    return folder


def _env(extra: dict[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    # coglet's worker runs the `python` it finds on PATH (spec §23).
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.update(extra)
    return env


@dataclass
class ServerProcess:
    """A running nbcog or coglet server (its process group leader is ``proc``)."""

    kind: str
    port: int
    folder: Path
    proc: subprocess.Popen[bytes]
    log: Path
    extra_env: dict[str, str] = field(default_factory=dict)

    def rss_mib(self) -> float:
        """VmRSS of the server process plus all its descendants (coglet's worker), in MiB."""
        return sum(_rss_kib(pid) for pid in _tree(self.proc.pid)) / 1024

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        """Poll ``GET /health-check`` until READY; raise (with the log tail) if it dies."""
        deadline = time.monotonic() + timeout
        request = build_request("GET", "/health-check")
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.kind} exited: {self.log_tail()}")
            connection = Connection(self.port)
            try:
                response, _ = connection.exchange(request)
                if response.json().get("status") == "READY":
                    return
            except OSError:
                pass
            finally:
                connection.close()
            time.sleep(0.02)
        raise RuntimeError(f"{self.kind} not READY after {timeout} s: {self.log_tail()}")

    def log_tail(self) -> str:
        """The last lines of the server's stderr/stdout."""
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-15:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        """SIGTERM the process group, then SIGKILL it if it lingers; reap the leader."""
        if self.proc.returncode is None:
            _signal_group(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                _signal_group(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        # A worker that outlived its leader is still in the group.
        _signal_group(self.proc.pid, signal.SIGKILL)


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def start_server(
    kind: str, folder: Path, port: int, extra_env: dict[str, str] | None = None
) -> ServerProcess:
    """Start ``kind`` (nbcog, coglet, or the ``ceiling``) in ``folder``; wait until READY."""
    extra = dict(extra_env or {})
    if kind == "nbcog":
        command = [sys.executable, "-m", "nbcog", "serve", STUB, "--port", str(port)]
    elif kind == "coglet":
        command = [sys.executable, "-m", "cog.server.http", "--host", HOST]
        extra |= {"PORT": str(port), "COG_PREDICT_TYPE_STUB": STUB}
    elif kind == "ceiling":
        command = [sys.executable, "-m", "bench.ceiling", str(port)]
    else:
        raise ValueError(kind)
    log = folder / f"{kind}-{port}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            command,
            cwd=folder,
            env=_env(extra),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = ServerProcess(kind, port, folder, proc, log, extra)
    try:
        server.wait_ready()
    except BaseException:
        server.stop()
        raise
    return server


def _tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def _rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0
