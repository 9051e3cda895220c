"""``python -m nbcog`` as a real subprocess: launch it, learn its port from its banner, wait for
READY, and run one-shot commands. Used by the CLI tests and by the HTTP token tests."""

from __future__ import annotations

import http.client
import os
import re
import socket
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from helpers import wait_until

import nbcog

REPO = Path(nbcog.__file__).resolve().parent.parent
PORTS = range(5190, 5210)
WAIT = 60.0

BANNER = re.compile(r"nbcog: serving \S+ at http://127\.0\.0\.1:(\d+)\n")
COGLET_BANNER = re.compile(r"Starting coglet server on 127\.0\.0\.1:(\d+)")


def bind_assigned_port() -> socket.socket:
    """A listening socket on the first free port of 5190-5209 (held, so nobody else gets it)."""
    for port in PORTS:
        sock = socket.socket()
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            sock.close()
            continue
        sock.listen()
        return sock
    pytest.skip("no free port in 5190-5209")


def child_env(**extra: str) -> dict[str, str]:
    """This environment with the repository importable (nbcog need not be installed)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("COG_")}
    paths = [str(REPO), *filter(None, [extra.pop("PYTHONPATH", None), env.get("PYTHONPATH")])]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env.update(extra)
    return env


@dataclass
class Process:
    """A server subprocess whose stdout and stderr go to files (no pipe to fill up).

    ``port`` is learnt from the server's own banner, so a test never mistakes another
    process's server (say, a parallel test run) for its own.
    """

    proc: subprocess.Popen[bytes]
    log: Path
    out: Path
    banner: re.Pattern[str] = BANNER
    port: int | None = None

    @property
    def url(self) -> str:
        assert self.port is not None, "wait_listening() first"
        return f"http://127.0.0.1:{self.port}"

    def stderr(self) -> str:
        return self.log.read_text(errors="replace")

    def stdout(self) -> str:
        return self.out.read_text(errors="replace")

    def wait_listening(self, timeout: float = WAIT) -> bool:
        """Wait for the banner (True, port known) or for the process to exit (False)."""

        def banner() -> bool:
            found = self.banner.search(self.stderr())
            if found:
                self.port = int(found.group(1))
            return bool(found) or self.proc.poll() is not None

        wait_until(banner, "the server's banner", timeout)
        return self.port is not None

    def health(self) -> str | None:
        """The health-check status, or None while nothing answers."""
        try:
            return requests.get(self.url + "/health-check", timeout=5).json()["status"]
        except requests.ConnectionError:
            return None

    def wait_ready(self, timeout: float = WAIT) -> None:
        """Poll until READY; fail at once (with the stderr) if the process dies."""
        assert self.wait_listening(timeout), f"exited {self.proc.returncode}: {self.stderr()}"

        def ready() -> bool:
            assert self.proc.poll() is None, f"exited {self.proc.returncode}: {self.stderr()}"
            return self.health() == "READY"

        wait_until(ready, f"READY at {self.url}", timeout)

    def wait_exit(self, timeout: float = WAIT) -> int:
        return self.proc.wait(timeout)


@pytest.fixture
def launch(tmp_path: Path) -> Iterator[Callable[..., Process]]:
    """Start ``python -m nbcog ARGS`` (or ``command ARGS``); ``serve`` gets ``--port 0`` by default.

    Every child still running at the end is killed.
    """
    started: list[subprocess.Popen[bytes]] = []

    def _launch(
        args: list[str],
        *,
        cwd: Path,
        command: list[str] | None = None,
        banner: re.Pattern[str] = BANNER,
        **env: str,
    ) -> Process:
        if command is None:
            command = [sys.executable, "-m", "nbcog"]
        if args[:1] == ["serve"] and "--port" not in args:
            args = [*args, "--port", "0"]
        log = tmp_path / f"stderr-{len(started)}.txt"
        out = tmp_path / f"stdout-{len(started)}.txt"
        with log.open("wb") as err, out.open("wb") as stdout:
            proc = subprocess.Popen(
                [*command, *args],
                cwd=cwd,
                env=child_env(**env),
                stdout=stdout,
                stderr=err,
            )
        started.append(proc)
        return Process(proc, log, out, banner)

    yield _launch
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def write(directory: Path, name: str, source: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(textwrap.dedent(source))
    return path


def raw_request(
    url: str, method: str, path: str, body: bytes = b"", **headers: str
) -> tuple[int, bytes]:
    """One request the way curl makes it: raw bytes, explicit headers, no client library."""
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=WAIT)
    try:
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def run_cli(args: list[str], *, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nbcog", *args],
        cwd=cwd,
        env=child_env(**env),
        capture_output=True,
        text=True,
        timeout=WAIT,
        check=False,
    )
