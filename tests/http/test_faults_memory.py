"""Memory: finished predictions are kept within their byte budget, in a real server process.

``python -m nbcog serve`` runs the echo predictor of ``bench/predictors`` with
``NBCOG_RECENT_BYTES`` set; the test sends large predictions and reads the server's VmRSS
after each (``bench/recent_memory.py`` draws the same curve at full size). Before issue 12
every finished prediction stayed in memory (up to 100 of them): RSS grew by twice the
payload per prediction, about 160 MiB here.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import wait_until

from bench.recent_memory import measure, rss_mib

PREDICTOR = Path(__file__).resolve().parents[2] / "bench" / "predictors" / "echo.py"
BANNER = re.compile(r"nbcog: serving \S+ at http://127\.0\.0\.1:(\d+)\n")
MiB = 1024 * 1024
BUDGET_MIB = 16
PAYLOAD_MIB = 4  # input 4 MiB, output a 4 MiB copy: 8 MiB kept per finished prediction
COUNT = 20


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[int, int]]:
    """A CLI server on port 0 with a 16 MiB budget: (port, pid)."""
    shutil.copy(PREDICTOR, tmp_path / "predict.py")
    log = tmp_path / "server.log"
    env = {**os.environ, "NBCOG_RECENT_BYTES": str(BUDGET_MIB * MiB)}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "nbcog", "serve", "predict.py:Predictor", "--port", "0"],
            cwd=tmp_path,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:

        def banner() -> re.Match[str] | None:
            assert proc.poll() is None, log.read_text(errors="replace")
            return BANNER.search(log.read_text(errors="replace"))

        found = wait_until(banner, "the banner")
        yield int(found.group(1)), proc.pid
    finally:
        proc.terminate()
        proc.wait(30)


@pytest.mark.slow
def test_rss_stays_under_the_budget_plus_one_predictions_working_set(
    server: tuple[int, int],
) -> None:
    """20 predictions of 8 MiB each: RSS flattens below idle + budget + a working-set margin."""
    port, pid = server
    curve = measure(port, lambda: rss_mib(pid), count=COUNT, mib=PAYLOAD_MIB)
    # The margin is what one prediction in flight needs at its peak (request bytes, decoded
    # text, parsed input, output, response JSON and its bytes: about 8 payloads), which the
    # allocator may keep for the next one. Kept predictions alone would add 160 MiB.
    margin = 8 * PAYLOAD_MIB
    assert max(curve.after) < curve.idle + BUDGET_MIB + margin, curve
    # And it is flat: the second half grows by less than one prediction's worth.
    half = COUNT // 2
    assert max(curve.after[half:]) - max(curve.after[:half]) < 2 * PAYLOAD_MIB, curve
