"""Returns a ``size_mb`` MB file as a ``Path`` output (a data URL on the wire)."""

import os
import tempfile

from cog import BasePredictor, Path


class Predictor(BasePredictor):
    def setup(self) -> None:
        self.blob = os.urandom(1024 * 1024)

    def run(self, size_mb: int = 20) -> Path:
        fd, name = tempfile.mkstemp(suffix=".bin")
        with os.fdopen(fd, "wb") as out:
            for _ in range(size_mb):
                out.write(self.blob)
        return Path(name)
