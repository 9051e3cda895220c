"""Setup and health (spec §4, §12, §17) with the fake loop's clock: no waiting for timeouts."""

from __future__ import annotations

from pathlib import Path

from nbcog.service import CreateRequest, Health, Mode

SLOW_SETUP = """
import os
import time

from cog import BasePredictor


class Predictor(BasePredictor):
    def setup(self) -> None:
        print("loading weights")
        while not os.path.exists({gate!r}):
            time.sleep(0.005)

    def predict(self) -> str:
        return "ok"
"""

GATED = """
import os
import time

from cog import BasePredictor


class Predictor(BasePredictor):
    def predict(self, gate: str = "") -> str:
        while gate and not os.path.exists(gate):
            time.sleep(0.005)
        return "done"
"""


def test_the_setup_timeout_fires_on_the_loop_clock(make_service, monkeypatch, tmp_path: Path):
    """COG_SETUP_TIMEOUT seconds of loop time end setup SETUP_FAILED; a late end is ignored."""
    monkeypatch.setenv("COG_SETUP_TIMEOUT", "5")
    gate = tmp_path / "gate"
    service, loop = make_service(SLOW_SETUP.format(gate=str(gate)), start=False)
    heard: list[Health] = []
    service.on_setup_done(heard.append)
    service.start()
    loop.advance(4.9)
    assert (service.health, heard) == (Health.STARTING, [])
    assert service.health_body()["setup"]["status"] == "starting"
    loop.advance(0.1)
    assert (service.health, heard) == (Health.SETUP_FAILED, [Health.SETUP_FAILED])
    setup = service.setup_view()
    assert setup is not None
    assert setup["status"] == "failed"
    assert setup["logs"].endswith("worker setup timed out\n")

    gate.touch()  # setup() now returns: its end reaches the loop, and changes nothing
    loop.run_until(lambda: loop.ran == 1, "the late setup's end")
    assert (service.health, service.openapi, heard) == (
        Health.SETUP_FAILED,
        None,
        [Health.SETUP_FAILED],
    )


def test_no_timeout_means_setup_waits_however_long_the_clock_runs(
    make_service, monkeypatch, tmp_path: Path
):
    """Without COG_SETUP_TIMEOUT no timer is set: setup ends when setup() returns."""
    monkeypatch.delenv("COG_SETUP_TIMEOUT", raising=False)
    gate = tmp_path / "gate"
    service, loop = make_service(SLOW_SETUP.format(gate=str(gate)), start=False)
    service.start()
    loop.advance(10_000)
    assert service.health is Health.STARTING
    gate.touch()
    loop.run_until(lambda: service.health is not Health.STARTING, "setup")
    assert service.health is Health.READY
    assert service.openapi is not None
    assert "loading weights" in service.health_body()["setup"]["logs"]


def test_health_is_busy_while_every_slot_is_taken(make_service, tmp_path: Path):
    """One slot: BUSY while a prediction runs, READY again once it ended."""
    service, loop = make_service(GATED)
    assert service.health_body()["status"] == "READY"
    gate = tmp_path / "gate"
    ref = service.create(CreateRequest(input={"gate": str(gate)}), mode=Mode.ASYNC)
    assert service.health_body()["status"] == "BUSY"
    assert service.health_body("it hurts")["status"] == "UNHEALTHY"
    gate.touch()
    loop.run_until(lambda: ref.is_terminal, "the prediction")
    assert service.health_body()["status"] == "READY"
    late: list[Health] = []
    service.on_setup_done(late.append)  # after the end: called at once
    assert late == [Health.READY]
