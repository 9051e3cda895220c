"""Who holds a TCP port, worded for the error a user sees when ``%cog serve`` cannot bind.

Two independent clues, both best effort and only gathered on the error path:

* the owning process, from ``/proc/net/tcp{,6}`` (the listening socket's inode) and the
  ``/proc/*/fd`` links that point at it (Linux; elsewhere nothing is found);
* what answers there: ``GET /health-check`` with a short timeout tells an nbcog server (its
  ``version`` has an ``nbcog`` key) from another Cog server (``coglet``) or anything else.

This process's own servers are never probed (a server on the kernel's loop cannot answer while
the cell that probes it is running); the kernel's registry names them instead.
"""

from __future__ import annotations

import http.client
import json
import os
from pathlib import Path

PROBE_TIMEOUT = 1.0
_LISTEN = "0A"


def listening_processes(port: int, proc: Path = Path("/proc")) -> list[tuple[int, str]]:
    """``(pid, command line)`` of the processes with a socket listening on ``port``."""
    inodes = set()
    for table in ("tcp", "tcp6"):
        try:
            rows = (proc / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if (
                len(fields) > 9
                and fields[3] == _LISTEN
                and int(fields[1].rsplit(":", 1)[1], 16) == port
            ):
                inodes.add(f"socket:[{fields[9]}]")
    if not inodes:
        return []
    found = []
    for entry in proc.iterdir():
        if entry.name.isdigit() and _links(entry / "fd") & inodes:
            try:
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
            except OSError:  # the process just ended
                continue
            found.append((int(entry.name), command.decode(errors="replace").strip()))
    return found


def _links(fd_dir: Path) -> set[str]:
    """Where a process's file descriptors point; fds that close meanwhile are skipped."""
    try:
        fds = list(fd_dir.iterdir())
    except OSError:  # the process ended, or its fds are not ours to read
        return set()
    links = set()
    for fd in fds:
        try:
            links.add(os.readlink(fd))
        except OSError:
            continue
    return links


def probe(host: str, port: int, timeout: float = PROBE_TIMEOUT) -> str | None:
    """What serves ``GET /health-check`` there: ``"nbcog 0.1.0"``, ``"coglet 0.23.1"`` or None."""
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request("GET", "/health-check")
        body = json.loads(connection.getresponse().read())
    except (OSError, ValueError, http.client.HTTPException):
        return None
    finally:
        connection.close()
    version = body.get("version") if isinstance(body, dict) else None
    if not isinstance(version, dict):
        return None
    for name in ("nbcog", "coglet"):
        if name in version:
            return f"{name} {version[name]}"
    return None


def describe_holder(host: str, port: int) -> str:
    """Who holds ``port``, e.g. ``another nbcog server (nbcog 0.1.0), pid 12 (python ...)``."""
    processes = listening_processes(port)
    ours = any(pid == os.getpid() for pid, _ in processes)
    answer = None if ours else probe("127.0.0.1" if host in ("", "0.0.0.0", "::") else host, port)  # noqa: S104
    if ours:
        what = "this process (a listener not started by %cog serve or nbcog.serve)"
    elif answer is not None and answer.startswith("nbcog"):
        what = f"another nbcog server ({answer})"
    elif answer is not None:
        what = f"a Cog server ({answer})"
    else:
        what = "another program"
    others = [
        f"pid {pid} ({_shorten(command)})" for pid, command in processes if pid != os.getpid()
    ]
    return what + (", " + ", ".join(others) if others else "")


def _shorten(command: str, limit: int = 80) -> str:
    return command if len(command) <= limit else command[: limit - 1] + "…"
