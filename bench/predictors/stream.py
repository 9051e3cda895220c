"""Streams ``n`` one-word tokens, optionally ``delay_ms`` apart (SSE speed, gaps, memory).

With ``gate`` (a file path) it waits for that file before the first token, so a subscriber
can attach to an async-created prediction before anything has been produced.
"""

import os
import time
from collections.abc import Iterator

from cog import BasePredictor, streaming


class Predictor(BasePredictor):
    @streaming
    def run(self, n: int = 1, delay_ms: float = 0.0, gate: str = "") -> Iterator[str]:
        deadline = time.monotonic() + 120
        while gate and not os.path.exists(gate) and time.monotonic() < deadline:
            time.sleep(0.001)
        if delay_ms <= 0:
            for _ in range(n):
                yield " tok"
            return
        delay = delay_ms / 1000.0
        for _ in range(n):
            time.sleep(delay)
            yield " tok"
