"""The benchmark harness runs end to end (quick sizes, nbcog only, client ceiling included)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FIGURES = [
    "sse_tps",
    "sse_lagged",
    "ttfo_ms",
    "gap_p50_ms",
    "gap_p99_ms",
    "sync_p50_ms",
    "sync_p99_ms",
    "sync_409",
    "late_eps",
    "late_full",
    "path_s",
    "rss_idle",
    "rss_after1",
    "rss_after2",
    "rss_growth",
    "long_tps",
    "long_lagged",
]


@pytest.mark.slow
def test_quick_bench_measures_every_figure_for_nbcog(tmp_path: Path) -> None:
    """`python -m bench --quick --servers nbcog` prints the table and measures every figure."""
    out = tmp_path / "results.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--servers", "nbcog", "--json", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "nbcog vs coglet 0.23.1" in done.stdout
    assert "Client ceiling" in done.stdout
    payload = json.loads(out.read_text())
    results = payload["results"]
    assert sorted(results) == sorted(FIGURES)
    assert all(set(values) == {"nbcog"} for values in results.values())
    assert results["sync_409"]["nbcog"] == 0
    assert results["late_full"]["nbcog"] == f"all {payload['sizes']['late_subscribers']}"
    assert results["sse_lagged"]["nbcog"] == "0/1"
    assert results["long_lagged"]["nbcog"] == "0/2"
    positive = [v["nbcog"] for k, v in results.items() if k not in ("sync_409", "rss_growth")]
    assert all(value > 0 for value in positive if not isinstance(value, str))
    assert set(payload["ceiling"]) == {
        "sse_tps",
        "ttfo_ms",
        "sync_p50_ms",
        "sync_p99_ms",
        "late_eps",
        "path_s",
    }
