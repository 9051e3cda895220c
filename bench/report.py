"""The results table: each figure for both servers, the nbcog/coglet ratio and the target.

Targets come from issue 3 ("Speed"); bracketed numbers are coglet 0.23.1's figures on the
reference 2-core machine. Whether a target is met is judged against the coglet figure of
*this* run, since both servers ran on the same machine at the same time.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Results = dict[str, dict[str, Any]]


@dataclass(frozen=True)
class Row:
    """One figure: how to show it and what nbcog must reach."""

    key: str
    label: str
    fmt: Callable[[Any], str]
    target: str
    met: Callable[[Any, Any], bool | None] | None = None


def _num(digits: int) -> Callable[[Any], str]:
    return lambda v: f"{v:,.{digits}f}"


def _rate(value: float) -> str:
    return f"{value / 1000:,.1f}k" if value < 1e6 else f"{value / 1e6:,.2f}M"


def _at_most(factor: float = 1.0) -> Callable[[Any, Any], bool | None]:
    return lambda ours, theirs: None if theirs is None else ours <= theirs * factor


def _at_least(factor: float = 1.0) -> Callable[[Any, Any], bool | None]:
    return lambda ours, theirs: None if theirs is None else ours >= theirs * factor


def _flat(growth: float, _theirs: Any) -> bool:
    """A second long stream may not keep more than a few MiB of the first."""
    return growth <= 8.0


ROWS = [
    Row("sse_tps", "SSE stream, tok/s", _rate, ">= 4x coglet [23.8k]", _at_least(4)),
    Row(
        "sse_lagged",
        "SSE stream, runs cut off as lagged",
        str,
        "0",
        lambda ours, _: ours.startswith("0/"),
    ),
    Row("ttfo_ms", "first output, median ms", _num(3), "<= coglet [0.75]", _at_most()),
    Row("gap_p50_ms", "paced gaps p50, ms", _num(3), "<= coglet", _at_most()),
    Row("gap_p99_ms", "paced gaps p99, ms", _num(3), "<= coglet [2.65]", _at_most()),
    Row("sync_p50_ms", "sync trivial p50, ms", _num(3), "<= coglet [0.556]", _at_most()),
    Row("sync_p99_ms", "sync trivial p99, ms", _num(3), "<= coglet [0.866]", _at_most()),
    Row("sync_409", "sync spurious 409s", str, "0 [coglet: 32/500]", lambda ours, _: ours == 0),
    Row("late_eps", "late subscribers, ev/s", _rate, ">= coglet [507k]", _at_least()),
    Row(
        "late_full",
        "late subscribers, full replay",
        str,
        "all",
        lambda ours, _: ours.startswith("all"),
    ),
    Row("path_s", "20 MB Path output, s", _num(3), "<= coglet [0.127]", _at_most()),
    Row("rss_idle", "RSS idle, MiB", _num(1), "<= coglet [84]", _at_most()),
    Row("rss_after1", "RSS after 1st long stream, MiB", _num(1), "<= coglet [209]", _at_most()),
    Row("rss_after2", "RSS after 2nd long stream, MiB", _num(1), "<= coglet", _at_most()),
    Row("rss_growth", "RSS growth 1st->2nd, MiB", _num(1), "flat (<= 8)", _flat),
    Row("long_tps", "long stream, tok/s", _rate, "(info)"),
    Row("long_lagged", "long stream, subscriber lagged", str, "(info)"),
]


def _ratio(ours: Any, theirs: Any) -> str:
    if not isinstance(ours, (int, float)) or not isinstance(theirs, (int, float)):
        return "-"
    if theirs == 0:
        return "-" if ours == 0 else "inf"
    return f"{ours / theirs:.2f}"


def table(results: Results, labels: dict[str, str]) -> str:
    """Rows that were measured, with nbcog, coglet, ratio, target and met columns.

    ``labels`` maps figure keys to the size actually run (quick mode changes sizes).
    """
    header = ("figure", "nbcog", "coglet", "nbcog/coglet", "target", "met")
    lines = [header]
    for row in ROWS:
        values = results.get(row.key)
        if not values:
            continue
        ours, theirs = values.get("nbcog"), values.get("coglet")
        verdict = None if row.met is None or ours is None else row.met(ours, theirs)
        met = {None: "-", True: "yes", False: "NO"}[verdict]
        lines.append(
            (
                labels.get(row.key, row.label),
                "-" if ours is None else row.fmt(ours),
                "-" if theirs is None else row.fmt(theirs),
                _ratio(ours, theirs),
                row.target,
                met,
            )
        )
    return _render(lines)


def ceiling_table(ceiling: dict[str, Any], results: Results) -> str:
    """The client alone against pre-built bytes, and its margin over the faster server."""
    lines = [("figure", "client ceiling", "x faster server")]
    for row in ROWS:
        if row.key not in ceiling:
            continue
        value = ceiling[row.key]
        servers = [v for v in results.get(row.key, {}).values() if isinstance(v, (int, float))]
        margin = "-"
        if servers:
            best = max(servers) if row.key.endswith(("tps", "eps")) else min(servers)
            ratio = value / best if row.key.endswith(("tps", "eps")) else best / value
            margin = f"{ratio:.1f}" if math.isfinite(ratio) else "-"
        lines.append((row.label, row.fmt(value), margin))
    return _render(lines)


def _render(lines: list[tuple[str, ...]]) -> str:
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    out = []
    for n, line in enumerate(lines):
        out.append(
            "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        )
        if n == 0:
            out.append("  ".join("-" * width for width in widths))
    return "\n".join(out)
