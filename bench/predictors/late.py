"""Streams ``n`` tokens, touches ``ready``, then holds the prediction until ``release`` exists.

Late subscribers attach while it is held, so what they measure is the replay of the history
alone; creating ``release`` (a file path) lets the prediction succeed and every stream end.
"""

import os
import time
from collections.abc import Iterator
from pathlib import Path

from cog import BasePredictor, streaming


class Predictor(BasePredictor):
    @streaming
    def run(self, n: int = 5000, ready: str = "", release: str = "") -> Iterator[str]:
        for _ in range(n):
            yield " tok"
        if ready:
            Path(ready).touch()
        deadline = time.monotonic() + 120
        while release and not os.path.exists(release) and time.monotonic() < deadline:
            time.sleep(0.002)
