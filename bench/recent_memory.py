"""RSS of a server after N large finished predictions: the curve of issue 12's memory bound.

``python -m bench.recent_memory`` starts ``python -m nbcog serve`` on ``predictors/echo.py``
(and coglet on the same one, unless ``--servers nbcog``), sends ``--count`` sync predictions of a
``--mib`` MiB input each (the output is a copy of the same size), and prints the server's
VmRSS after each, once it is READY again. nbcog keeps finished predictions for its status
displays within ``NBCOG_RECENT_BYTES`` (``--budget-mib``, default 64), so its curve flattens
at about the budget; before issue 12 it climbed by twice the payload per prediction up to 100
predictions. ``--svg FILE`` also draws the curves.

``tests/http/test_faults_memory.py`` runs ``measure`` with small sizes and asserts the bound. The
servers' RSS is of the process tree (coglet's worker included).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import requests

from bench import servers

MiB = 1024 * 1024
_WAIT = 120.0


def rss_mib(pid: int) -> float:
    """VmRSS of process ``pid``, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


@dataclass
class Curve:
    """RSS after setup (``idle``) and after each prediction (``after``), in MiB."""

    server: str
    idle: float
    after: list[float] = field(default_factory=list)


def _wait_ready(port: int) -> None:
    deadline = time.monotonic() + _WAIT
    while time.monotonic() < deadline:
        try:
            if (
                requests.get(f"http://127.0.0.1:{port}/health-check", timeout=5).json()["status"]
                == "READY"
            ):
                return
        except requests.RequestException:
            pass
        time.sleep(0.02)
    raise RuntimeError("server not READY")


def measure(
    port: int, rss: Callable[[], float], *, count: int, mib: float, server: str = "nbcog"
) -> Curve:
    """Send ``count`` echo predictions of ``mib`` MiB each; ``rss()`` (MiB) after each."""
    session = requests.Session()
    _wait_ready(port)
    curve = Curve(server, rss())
    size = int(mib * MiB)
    for n in range(count):
        text = (f"{n:08d}" * (size // 8 + 1))[:size]
        body = json.dumps({"input": {"text": text}})
        response = session.post(
            f"http://127.0.0.1:{port}/predictions",
            data=body,
            headers={"Content-Type": "application/json"},
            timeout=_WAIT,
        )
        result = response.json()
        if result.get("status") != "succeeded" or result["output"] != text[::-1]:
            raise RuntimeError(f"prediction {n}: {str(result)[:200]}")
        del body, response, result
        _wait_ready(port)
        curve.after.append(rss())
    session.close()
    return curve


def svg(curves: list[Curve], budget_mib: float) -> str:
    """A line chart of the curves (RSS over predictions), with the budget drawn in."""
    width, height, pad = 640, 360, 48
    top = max(max([*c.after, c.idle]) for c in curves) * 1.1
    count = max(len(c.after) for c in curves)

    def point(i: int, value: float) -> str:
        x = pad + (width - 2 * pad) * i / max(count, 1)
        y = height - pad - (height - 2 * pad) * value / top
        return f"{x:.1f},{y:.1f}"

    colours = {"nbcog": "#1f77b4", "coglet": "#ff7f0e"}
    lines = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        'font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{pad}" y="20">Server RSS (MiB) after each finished echo prediction</text>',
    ]
    base = curves[0].idle
    y = point(0, base + budget_mib).split(",")[1]
    lines.append(
        f'<line x1="{pad}" x2="{width - pad}" y1="{y}" y2="{y}" stroke="#999" '
        'stroke-dasharray="4"/>'
        f'<text x="{width - pad - 150}" y="{float(y) - 4}">idle + budget</text>'
    )
    for curve in curves:
        values = [curve.idle, *curve.after]
        points = " ".join(point(i, v) for i, v in enumerate(values))
        colour = colours.get(curve.server, "black")
        lines.append(
            f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{points}"/>'
        )
        lines.append(
            f'<text x="{width - pad + 4}" y="{point(len(values) - 1, values[-1]).split(",")[1]}" '
            f'fill="{colour}">{curve.server}</text>'
        )
    lines.append(
        f'<text x="{pad}" y="{height - 12}">predictions 0..{count}; top {top:.0f} MiB</text>'
    )
    lines.append("</svg>")
    return "\n".join(lines)


def main() -> None:
    """Measure and print the curves (and draw them with ``--svg``)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=12)
    parser.add_argument("--mib", type=float, default=20.0)
    parser.add_argument("--budget-mib", type=float, default=64.0)
    parser.add_argument("--servers", default="nbcog,coglet")
    parser.add_argument("--ports", default="5250-5259")
    parser.add_argument("--svg", type=Path)
    args = parser.parse_args()
    first, last = (int(p) for p in args.ports.split("-"))
    ports = servers.PortPool(first, last)
    curves = []
    with tempfile.TemporaryDirectory() as tmp:
        for kind in args.servers.split(","):
            folder = servers.prepare_folder(Path(tmp) / kind, "echo")
            env = {"NBCOG_RECENT_BYTES": str(int(args.budget_mib * MiB))}
            server = servers.start_server(kind, folder, ports.take(), env)
            try:
                curves.append(
                    measure(
                        server.port, server.rss_mib, count=args.count, mib=args.mib, server=kind
                    )
                )
            finally:
                server.stop()
    for curve in curves:
        after = " ".join(f"{v:.0f}" for v in curve.after)
        print(f"{curve.server:7s} idle {curve.idle:.0f} MiB; after each: {after}")
    if args.svg is not None:
        args.svg.write_text(svg(curves, args.budget_mib))


if __name__ == "__main__":
    main()
