"""Fixtures: a ``PredictionService`` around a real ``Runtime`` and a fake loop (no HTTP)."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fake_loop import FakeLoop

from nbcog.runner.runtime import Runtime
from nbcog.runner.webhooks import WebhookSender
from nbcog.service import PredictionService

MakeService = Callable[..., tuple[PredictionService, FakeLoop]]


@pytest.fixture
def make_service(tmp_path: Path) -> Iterator[MakeService]:
    """``make_service(source, start=True, **options)``: serve ``source``'s ``Predictor``.

    With ``start`` the service is started and the loop run until setup has ended. Every
    service made is closed at the end of the test.
    """
    made: list[tuple[PredictionService, WebhookSender]] = []
    counter = iter(range(1_000_000))

    def make(
        source: str, *, start: bool = True, **options: Any
    ) -> tuple[PredictionService, FakeLoop]:
        path = tmp_path / f"predict_{next(counter)}.py"
        path.write_text(textwrap.dedent(source))
        loop = FakeLoop()
        webhooks = WebhookSender(user_agent="nbcog-test")
        service = PredictionService(
            Runtime(f"{path}:Predictor"), loop=loop, webhooks=webhooks, **options
        )
        made.append((service, webhooks))
        if start:
            service.start()
            ended: list[object] = []
            service.on_setup_done(ended.append)
            loop.run_until(lambda: ended, "setup to end")
        return service, loop

    yield make
    for service, webhooks in made:
        service.close()
        webhooks.close()
