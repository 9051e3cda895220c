"""Fixtures: real nbcog servers on 127.0.0.1, predictors written to files with the cog SDK."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import pytest
from cliprocs import launch as launch  # the `launch` fixture: nbcog CLI subprocesses
from kernelkit import kernel_spares as kernel_spares  # kernels booted ahead, for `kernel`

from nbcog.testing import RunningServer, serve_in_thread

ServeSource = Callable[..., AbstractContextManager[RunningServer]]


@pytest.fixture
def serve_source(tmp_path: Path) -> ServeSource:
    """Write predictor source to ``predict.py`` in a temp dir and serve ``predict.py:NAME``."""
    counter = iter(range(1_000_000))

    @contextmanager
    def _serve(source: str, name: str = "Predictor", **options: Any) -> Iterator[RunningServer]:
        path = tmp_path / f"predict_{next(counter)}.py"
        path.write_text(textwrap.dedent(source))
        with serve_in_thread(f"{path}:{name}", **options) as running:
            yield running

    return _serve
