"""Schemathesis against ``/openapi.json`` of two predictors: no 5xx, no response off-schema.

The stateless phases (coverage and fuzzing: valid and invalid inputs generated from the
schema, with a fixed seed and a bounded example count) run with schemathesis' own CLI in a
subprocess against a real server on a free port, and the run must pass both checks. A
typed predictor exercises every constraint the schema can state (lengths, pattern, bounds,
choices, lists, secrets, optionals); a streaming one the SSE-capable document.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from nbcog.testing import serve_in_thread

TYPED = """
from typing import Optional

from cog import BasePredictor, Input, Secret


class Predictor(BasePredictor):
    def predict(
        self,
        prompt: str = Input(description="text", min_length=1, max_length=50, regex="^[a-z ]+$"),
        steps: int = Input(default=5, ge=1, le=10),
        scale: float = Input(default=0.5, ge=0.0, le=1.0),
        loud: bool = False,
        colour: str = Input(default="red", choices=["red", "green"]),
        tags: list[int] = Input(default=[1]),
        token: Secret = Input(default=None),
        note: Optional[str] = None,
    ) -> dict[str, str]:
        return {"prompt": prompt * (2 if loud else 1), "colour": colour, "steps": str(steps)}
"""

STREAMING = """
from typing import Iterator

from cog import BaseRunner, streaming


class Predictor(BaseRunner):
    @streaming
    def run(self, text: str = "hi", n: int = 2) -> Iterator[str]:
        for i in range(max(0, min(n, 20))):
            yield f"{text}{i}"
"""


@pytest.mark.slow
@pytest.mark.parametrize("source", [TYPED, STREAMING], ids=["typed", "streaming"])
def test_schemathesis_finds_no_server_error_and_no_schema_violation(
    tmp_path: Path, source: str
) -> None:
    """Seeded stateless schemathesis run: every case passes not_a_server_error and schema."""
    path = tmp_path / "predict.py"
    path.write_text(textwrap.dedent(source))
    with serve_in_thread(f"{path}:Predictor") as s:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "schemathesis.cli",
                "run",
                f"{s.url}/openapi.json",
                "--checks",
                "not_a_server_error,response_schema_conformance",
                "--phases",
                "coverage,fuzzing",
                "--max-examples",
                "25",
                "--seed",
                "12",
                "--workers",
                "1",
                "--generation-database",
                "none",
                "--request-timeout",
                "30",
                "--no-color",
            ],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    summary = result.stdout[-3000:]
    assert result.returncode == 0, summary
    assert " passed" in summary
    assert "failed" not in summary.split("Test cases:", 1)[1], summary
