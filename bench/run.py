"""``python -m bench``: nbcog against coglet 0.23.1, interleaved, on the same predictors.

Each group of figures starts one nbcog and one coglet server on the same predictor folder,
then alternates the measurements between them (rep 1 nbcog, rep 1 coglet, rep 2 coglet,
rep 2 nbcog, ...) so that machine noise hits both alike. The client ceiling (the client
against pre-built bytes) is measured first. See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

from bench import figures
from bench.client import Connection
from bench.report import Results, ceiling_table, table
from bench.servers import PortPool, ServerProcess, prepare_folder, start_server

FIGURES = ("sse", "ttfo", "gaps", "sync", "late", "path", "memory")
KINDS = ("nbcog", "coglet")
T = TypeVar("T")


@dataclass(frozen=True)
class Sizes:
    """How big each measurement is (``--quick`` shrinks everything)."""

    sse_tokens: int = 100_000
    sse_reps: int = 3
    ttfo_runs: int = 200
    paced_tokens: int = 500
    paced_delay_ms: float = 2.0
    paced_reps: int = 2
    sync_requests: int = 500
    sync_block: int = 100
    late_subscribers: int = 50
    late_tokens: int = 5000
    late_reps: int = 3
    history_capacity: int = 6000
    path_mb: int = 20
    path_reps: int = 5
    memory_tokens: int = 1_000_000


FULL = Sizes()
QUICK = Sizes(
    sse_tokens=10_000,
    sse_reps=1,
    ttfo_runs=20,
    paced_tokens=100,
    paced_reps=1,
    sync_requests=100,
    sync_block=50,
    late_subscribers=10,
    late_tokens=500,
    late_reps=1,
    path_mb=2,
    path_reps=1,
    memory_tokens=50_000,
)


def labels(sizes: Sizes) -> dict[str, str]:
    """Row labels with the sizes actually run."""
    s = sizes
    paced = f"paced {s.paced_tokens} x {s.paced_delay_ms:g} ms gaps"
    return {
        "sse_tps": f"SSE {s.sse_tokens:,} tokens, tok/s",
        "sse_lagged": f"SSE {s.sse_tokens:,} tokens, runs cut off as lagged",
        "ttfo_ms": f"first output, median of {s.ttfo_runs}, ms",
        "gap_p50_ms": f"{paced} p50, ms",
        "gap_p99_ms": f"{paced} p99, ms",
        "sync_p50_ms": f"sync trivial x{s.sync_requests} p50, ms",
        "sync_p99_ms": f"sync trivial x{s.sync_requests} p99, ms",
        "sync_409": f"sync spurious 409s / {s.sync_requests}",
        "late_eps": f"{s.late_subscribers} late subs x {s.late_tokens:,} tok, ev/s",
        "late_full": f"{s.late_subscribers} late subs, full replay",
        "path_s": f"{s.path_mb} MB Path output, s",
        "rss_after1": f"RSS after 1st {s.memory_tokens:,}-tok stream, MiB",
        "rss_after2": f"RSS after 2nd {s.memory_tokens:,}-tok stream, MiB",
        "long_tps": f"{s.memory_tokens:,}-token stream, tok/s",
        "long_lagged": f"{s.memory_tokens:,}-token stream, subscriber lagged",
    }


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def progress(message: str) -> None:
    """A line on stderr, so long runs show where they are."""
    print(message, file=sys.stderr, flush=True)


def each(values: dict[str, T], summary: Callable[[T], Any]) -> dict[str, Any]:
    """``summary`` applied to every server's values."""
    return {kind: summary(value) for kind, value in values.items()}


def alternate(servers: dict[str, T], rep: int) -> Iterator[tuple[str, T]]:
    """The servers in an order that flips every repetition (no server always goes first)."""
    items = list(servers.items())
    return iter(items if rep % 2 == 0 else items[::-1])


class Bench:
    """One benchmark run: the servers it started, and what it measured."""

    def __init__(self, sizes: Sizes, kinds: Sequence[str], pool: PortPool, root: Path) -> None:
        self.sizes = sizes
        self.kinds = list(kinds)
        self.pool = pool
        self.root = root
        self.results: Results = {}
        self.ceiling: dict[str, Any] = {}
        self._folders: dict[str, Path] = {}

    def folder(self, predictor: str) -> Path:
        """The prepared folder of a predictor (copied once, schema written once)."""
        if predictor not in self._folders:
            self._folders[predictor] = prepare_folder(self.root, predictor)
        return self._folders[predictor]

    def start(
        self, stack: ExitStack, predictor: str, env: dict[str, str] | None = None
    ) -> dict[str, ServerProcess]:
        """Start one server of each kind on ``predictor``; ``stack`` stops them."""
        servers = {}
        for kind in self.kinds:
            server = start_server(kind, self.folder(predictor), self.pool.take(), env)
            stack.callback(server.stop)
            servers[kind] = server
            progress(
                f"started {kind} on {predictor}.py at port {server.port} (pid {server.proc.pid})"
            )
        return servers

    def record(self, key: str, values: dict[str, Any]) -> None:
        """Store one figure for every server, and say so."""
        self.results[key] = values
        shown = (f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items())
        progress(f"  {key}: " + ", ".join(shown))

    def record_throughput(self, prefix: str, runs: dict[str, list[figures.Throughput]]) -> None:
        """``<prefix>_tps`` (median) and ``<prefix>_lagged`` (runs cut off as lagged)."""
        self.record(
            f"{prefix}_tps", each(runs, lambda v: statistics.median(r.tokens_per_s for r in v))
        )
        self.record(
            f"{prefix}_lagged", each(runs, lambda v: f"{sum(r.lagged for r in v)}/{len(v)}")
        )

    # -- groups ------------------------------------------------------------------------

    def client_ceiling(self) -> None:
        """The client against pre-built bytes: the fastest any server could look."""
        s = self.sizes
        with ExitStack() as stack:
            server = start_server("ceiling", self.root, self.pool.take())
            stack.callback(server.stop)
            port = server.port
            self.ceiling["sse_tps"] = max(
                figures.sse_throughput(port, s.sse_tokens).tokens_per_s for _ in range(3)
            )
            runs = [figures.first_output(port) for _ in range(max(20, s.ttfo_runs // 4))]
            self.ceiling["ttfo_ms"] = statistics.median(runs) * 1000
            connection = Connection(port)
            block = figures.sync_block(connection, s.sync_requests)
            connection.close()
            self.ceiling["sync_p50_ms"] = percentile(block.latencies, 50) * 1000
            self.ceiling["sync_p99_ms"] = percentile(block.latencies, 99) * 1000
            late = figures.late_subscribers(
                port, self.root, s.late_subscribers, s.late_tokens, create=False
            )
            self.ceiling["late_eps"] = late.events_per_s
            connection = Connection(port)
            self.ceiling["path_s"] = min(
                figures.path_output(connection, s.path_mb) for _ in range(3)
            )
            connection.close()
        progress("  ceiling: " + ", ".join(f"{k}={v:.4g}" for k, v in self.ceiling.items()))

    def stream(self, wanted: set[str]) -> None:
        """SSE throughput, time to first output, paced gaps (``stream.py``)."""
        s = self.sizes
        with ExitStack() as stack:
            ports = {k: server.port for k, server in self.start(stack, "stream").items()}
            for port in ports.values():
                figures.sse_throughput(port, 1000)
                figures.first_output(port)
            if "sse" in wanted:
                runs = self._repeat(
                    ports, s.sse_reps, lambda p: figures.sse_throughput(p, s.sse_tokens)
                )
                self.record_throughput("sse", runs)
            if "ttfo" in wanted:
                ttfo = self._repeat(ports, s.ttfo_runs, figures.first_output)
                self.record("ttfo_ms", {k: statistics.median(v) * 1000 for k, v in ttfo.items()})
            if "gaps" in wanted:
                reps = self._repeat(
                    ports,
                    s.paced_reps,
                    lambda p: figures.paced_gaps(p, s.paced_tokens, s.paced_delay_ms),
                )
                gaps = {k: [g for rep in v for g in rep] for k, v in reps.items()}
                self.record("gap_p50_ms", {k: percentile(v, 50) * 1000 for k, v in gaps.items()})
                self.record("gap_p99_ms", {k: percentile(v, 99) * 1000 for k, v in gaps.items()})

    def sync(self) -> None:
        """Back-to-back sync predictions of ``trivial.py``, in alternating blocks."""
        s = self.sizes
        with ExitStack() as stack:
            connections = self._warm_connections(
                stack, self.start(stack, "trivial"), lambda c: figures.sync_block(c, 20)
            )
            blocks = self._repeat(
                connections,
                max(1, s.sync_requests // s.sync_block),
                lambda c: figures.sync_block(c, s.sync_block),
            )
            latencies = {k: [t for b in v for t in b.latencies] for k, v in blocks.items()}
            self.record("sync_p50_ms", {k: percentile(v, 50) * 1000 for k, v in latencies.items()})
            self.record("sync_p99_ms", {k: percentile(v, 99) * 1000 for k, v in latencies.items()})
            self.record("sync_409", {k: sum(b.conflicts for b in v) for k, v in blocks.items()})

    def late(self) -> None:
        """Late PUT-attach subscribers replaying one held stream (``late.py``)."""
        s = self.sizes
        env = {"COG_STREAM_HISTORY_CAPACITY": str(s.history_capacity)}
        with ExitStack() as stack:
            ports = {k: server.port for k, server in self.start(stack, "late", env).items()}
            folder = self.folder("late")
            for port in ports.values():
                figures.late_subscribers(port, folder, 2, 100)
            runs = self._repeat(
                ports,
                s.late_reps,
                lambda p: figures.late_subscribers(p, folder, s.late_subscribers, s.late_tokens),
            )
            self.record(
                "late_eps", each(runs, lambda v: statistics.median(r.events_per_s for r in v))
            )
            full = {}
            for kind, joins in runs.items():
                complete, total = sum(j.complete for j in joins), sum(j.subscribers for j in joins)
                full[kind] = f"all {total}" if complete == total else f"{complete}/{total}"
            self.record("late_full", full)

    def path(self) -> None:
        """A ``size_mb`` MB ``Path`` output as a data URL (``path.py``)."""
        s = self.sizes
        with ExitStack() as stack:
            connections = self._warm_connections(
                stack, self.start(stack, "path"), lambda c: figures.path_output(c, s.path_mb)
            )
            runs = self._repeat(
                connections, s.path_reps, lambda c: figures.path_output(c, s.path_mb)
            )
            self.record("path_s", {k: statistics.median(v) for k, v in runs.items()})

    def memory(self) -> None:
        """RSS of fresh servers: idle, after one long stream, after a second one."""
        s = self.sizes
        with ExitStack() as stack:
            servers = self.start(stack, "stream")
            folder = self.folder("stream")
            self.record("rss_idle", {k: server.rss_mib() for k, server in servers.items()})
            after: dict[str, list[float]] = {k: [] for k in servers}
            runs: dict[str, list[figures.Throughput]] = {k: [] for k in servers}
            for rep in range(2):
                for kind, server in alternate(servers, rep):
                    run = figures.long_stream(server.port, folder, s.memory_tokens)
                    server.wait_ready()
                    runs[kind].append(run)
                    after[kind].append(server.rss_mib())
                    lag = " (subscriber lagged)" if run.lagged else ""
                    rss = after[kind][-1]
                    speed = f"{run.tokens_per_s:.0f} tok/s{lag}"
                    progress(f"  {kind} long stream {rep + 1}: {speed}, {rss:.1f} MiB")
            self.record("rss_after1", {k: v[0] for k, v in after.items()})
            self.record("rss_after2", {k: v[1] for k, v in after.items()})
            self.record("rss_growth", {k: v[1] - v[0] for k, v in after.items()})
            self.record_throughput("long", runs)

    @staticmethod
    def _warm_connections(
        stack: ExitStack, servers: dict[str, Any], warm_up: Callable[[Connection], Any]
    ) -> dict[str, Connection]:
        """One keep-alive connection per server (closed with ``stack``), each used once first."""
        connections = {k: Connection(server.port) for k, server in servers.items()}
        for connection in connections.values():
            stack.callback(connection.close)
            warm_up(connection)
        return connections

    @staticmethod
    def _repeat(
        targets: dict[str, T], reps: int, measure: Callable[[T], Any]
    ) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {k: [] for k in targets}
        for rep in range(reps):
            for kind, target in alternate(targets, rep):
                out[kind].append(measure(target))
        return out


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--only",
        default=",".join(FIGURES),
        help=f"comma-separated subset of: {','.join(FIGURES)} (default: all)",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes (the smoke test's)")
    parser.add_argument(
        "--servers", default=",".join(KINDS), help="nbcog,coglet (default) or just one of them"
    )
    parser.add_argument("--no-ceiling", action="store_true", help="skip the client-ceiling run")
    parser.add_argument("--ports", default="5230-5249", help="port range to use (5230-5249)")
    parser.add_argument("--json", type=Path, help="also write the results here as JSON")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the selected figures; print the tables; returns the exit code."""
    args = _parser().parse_args(argv)
    wanted = {name.strip() for name in args.only.split(",") if name.strip()}
    kinds = [kind.strip() for kind in args.servers.split(",") if kind.strip()]
    unknown = (wanted - set(FIGURES)) | (set(kinds) - set(KINDS))
    if unknown:
        print(f"unknown figures or servers: {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    first, last = (int(p) for p in args.ports.split("-"))
    sizes = QUICK if args.quick else FULL
    root = Path(tempfile.mkdtemp(prefix="nbcog-bench-"))
    bench = Bench(sizes, kinds, PortPool(first, last), root)
    load = os.getloadavg()[0]
    progress(
        f"bench: {os.cpu_count()} CPUs, load {load:.2f}, sizes {'quick' if args.quick else 'full'}"
    )
    try:
        if not args.no_ceiling:
            bench.client_ceiling()
        if wanted & {"sse", "ttfo", "gaps"}:
            bench.stream(wanted)
        if "sync" in wanted:
            bench.sync()
        if "late" in wanted:
            bench.late()
        if "path" in wanted:
            bench.path()
        if "memory" in wanted:
            bench.memory()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if bench.ceiling:
        print("Client ceiling (the client alone against pre-built bytes):\n")
        print(ceiling_table(bench.ceiling, bench.results) + "\n")
    print(f"nbcog vs coglet 0.23.1 ({os.cpu_count()} CPUs, load at start {load:.2f}):\n")
    print(table(bench.results, labels(sizes)))
    if args.json:
        payload = {"sizes": asdict(sizes), "results": bench.results, "ceiling": bench.ceiling}
        args.json.write_text(json.dumps(payload, indent=2))
    return 0
