"""Health and setup lifecycle over HTTP (spec §4, §5, §17): STARTING, READY, BUSY, UNHEALTHY,
SETUP_FAILED, the setup timeout and ``setup(weights)``, against real nbcog servers."""

from __future__ import annotations

import threading
import time

import pytest
import requests
from helpers import wait_until
from lifecycle_helpers import WAIT_FOR, Background, health, source, wait_for_status

NOT_READY = (
    b'{"error":"Setup has not finished yet. Wait until it has finished, or GET /health-check '
    b'for status.","status":"failed"}'
)
NO_SCHEMA = b'{"error":"OpenAPI schema not available"}'
HC_FALSE = "Healthcheck failed: user-defined healthcheck returned False"
HC_TIMEOUT = "Healthcheck failed: user-defined healthcheck timed out after 5.0 seconds"

GATED_SETUP = (
    WAIT_FOR
    + """
from typing import Iterator
from cog import BaseRunner, streaming

class Predictor(BaseRunner):
    def setup(self) -> None:
        wait_for("@TMP@/setup-gate")
        print("setup passed the gate")
        mark("@TMP@/setup-done")

    def healthcheck(self) -> bool:
        mark("@TMP@/healthcheck-called")
        return True

    @streaming
    def run(self, text: str = "hi") -> Iterator[str]:
        yield text
"""
)


def _assert_refuses_creates(url: str) -> None:
    """POST, PUT and SSE creates all get the exact 503, and the schema its 503."""
    post = requests.post(url + "/predictions", json={"input": {"text": "x"}}, timeout=10)
    put = requests.put(url + "/predictions/p1", json={"input": {"text": "x"}}, timeout=10)
    sse = requests.post(
        url + "/predictions",
        json={"input": {"text": "x"}},
        headers={"Accept": "text/event-stream"},
        timeout=10,
    )
    for response in (post, put, sse):
        assert (response.status_code, response.content) == (503, NOT_READY)
        assert response.headers["Content-Type"] == "application/json"
    schema = requests.get(url + "/openapi.json", timeout=10)
    assert (schema.status_code, schema.content) == (503, NO_SCHEMA)


def test_starting_while_setup_runs(serve_source, tmp_path):
    """While setup() runs: STARTING, / answers, schema and every create (SSE too) get 503."""
    with serve_source(source(GATED_SETUP, tmp_path), wait_ready=False) as s:
        try:
            assert s.health.value == "STARTING"
            root = requests.get(s.url + "/", timeout=10)
            assert root.status_code == 200
            assert root.json()["predictions_url"] == "/predictions"
            body = health(s.url)
            assert body["status"] == "STARTING"
            assert set(body["setup"]) == {"started_at", "status"}
            assert body["setup"]["status"] == "starting"
            assert body["setup"]["started_at"].endswith("+00:00")
            _assert_refuses_creates(s.url)
            cancel = requests.post(s.url + "/predictions/p1/cancel", timeout=10)
            assert (cancel.status_code, cancel.content) == (404, b"{}")
            assert not (tmp_path / "healthcheck-called").exists()
            assert health(s.url)["status"] == "STARTING"
        finally:
            (tmp_path / "setup-gate").touch()
        ready = wait_for_status(s.url, "READY")
        assert ready["setup"]["status"] == "succeeded"
        assert ready["setup"]["logs"] == "setup passed the gate\n"
        assert ready["setup"]["completed_at"] >= ready["setup"]["started_at"]
        assert (tmp_path / "healthcheck-called").exists()
        assert requests.get(s.url + "/openapi.json", timeout=10).json()["openapi"] == "3.0.2"
        done = requests.post(s.url + "/predictions", json={"input": {"text": "x"}}, timeout=10)
        assert done.json()["output"] == ["x"]


def test_ready_busy_ready(serve_source, tmp_path):
    """One slot: READY, BUSY while a prediction runs, READY again once it ends."""
    src = (
        WAIT_FOR
        + """
from cog import BaseRunner

class Predictor(BaseRunner):
    def run(self) -> str:
        mark("@TMP@/running")
        wait_for("@TMP@/release")
        return "done"
"""
    )
    with serve_source(source(src, tmp_path)) as s:
        assert health(s.url)["status"] == "READY"
        sync = Background("POST", s.url + "/predictions", json={})
        try:
            wait_until((tmp_path / "running").exists, "the prediction to start")
            assert health(s.url)["status"] == "BUSY"
        finally:
            (tmp_path / "release").touch()
        assert sync.result().json()["output"] == "done"
        assert health(s.url)["status"] == "READY"


SETUP_RAISES = """
from cog import BaseRunner

class Predictor(BaseRunner):
    def setup(self) -> None:
        print("loading weights")
        raise RuntimeError("setup exploded")

    def healthcheck(self) -> bool:
        open("@TMP@/healthcheck-called", "w").close()
        return True

    def run(self) -> str:
        return "never"
"""


def test_setup_failed_when_setup_raises(serve_source, tmp_path):
    """setup() raising gives SETUP_FAILED with its output and error in the setup logs."""
    with serve_source(source(SETUP_RAISES, tmp_path)) as s:
        assert s.health.value == "SETUP_FAILED"
        body = health(s.url)
        assert body["status"] == "SETUP_FAILED"
        setup = body["setup"]
        assert setup["status"] == "failed"
        assert setup["completed_at"] >= setup["started_at"]
        assert setup["logs"].startswith("loading weights\n")
        assert "RuntimeError: setup exploded" in setup["logs"]
        assert "user_healthcheck_error" not in body
        assert not (tmp_path / "healthcheck-called").exists()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            "def run(self) -> str:\n        return 'a'\n\n"
            "    def predict(self) -> str:\n        return 'b'",
            "Predictor must define either run() or predict(), not both",
        ),
        (
            "def other(self) -> str:\n        return 'a'",
            "run or predict method not found: Predictor",
        ),
    ],
    ids=["both", "neither"],
)
def test_setup_failed_when_loading_fails(serve_source, body, message):
    """A class with both run() and predict(), or neither, fails loading: SETUP_FAILED."""
    src = f"from cog import BaseRunner\n\nclass Predictor(BaseRunner):\n    {body}\n"
    with serve_source(src) as s:
        assert s.health.value == "SETUP_FAILED"
        setup = health(s.url)["setup"]
    assert setup["status"] == "failed"
    assert message in setup["logs"]


def test_setup_failed_server_stays_up(serve_source, tmp_path):
    """After a setup failure the server keeps answering: health, /, and 503 for every create."""
    with serve_source(source(SETUP_RAISES, tmp_path)) as s:
        for _ in range(3):
            _assert_refuses_creates(s.url)
            assert health(s.url)["status"] == "SETUP_FAILED"
            assert requests.get(s.url + "/", timeout=10).status_code == 200


HEALTHCHECK = """
import asyncio
from cog import BaseRunner

class Predictor(BaseRunner):
    @@HC@@

    def run(self) -> str:
        return "ran"
"""


@pytest.mark.parametrize(
    ("healthcheck", "error"),
    [
        ("def healthcheck(self) -> bool:\n        return False", HC_FALSE),
        (
            "def healthcheck(self) -> bool:\n        raise RuntimeError('Critical system error')",
            "Healthcheck failed: RuntimeError: Critical system error",
        ),
        (
            "async def healthcheck(self) -> bool:\n"
            "        await asyncio.sleep(0)\n"
            "        return False",
            HC_FALSE,
        ),
        (
            "async def healthcheck(self) -> bool:\n        raise ValueError('async broke')",
            "Healthcheck failed: ValueError: async broke",
        ),
        (
            "def healthcheck(self) -> bool:\n        raise SystemExit(3)",
            "Healthcheck failed: SystemExit: 3",
        ),
    ],
    ids=["false", "raises", "async-false", "async-raises", "sys-exit"],
)
def test_unhealthy(serve_source, healthcheck, error):
    """A failing user healthcheck gives UNHEALTHY with its error; predictions still run."""
    with serve_source(HEALTHCHECK.replace("@@HC@@", healthcheck)) as s:
        body = health(s.url)
        assert body["status"] == "UNHEALTHY"
        assert body["user_healthcheck_error"] == error
        assert body["setup"]["status"] == "succeeded"
        run = requests.post(s.url + "/predictions", json={}, timeout=10)
        assert (run.status_code, run.json()["output"]) == (200, "ran")


def test_sys_exit_in_async_hooks_keeps_predictor_loop(serve_source):
    """sys.exit() in an async healthcheck is UNHEALTHY (coglet: SystemExit: 3) and leaves the
    async predictor loop running for later predictions."""
    src = """
import sys
from cog import BaseRunner

class Predictor(BaseRunner):
    async def healthcheck(self) -> bool:
        sys.exit(3)

    async def run(self) -> str:
        return "still here"
"""
    with serve_source(src) as s:
        for _ in range(2):
            body = health(s.url)
            assert body["status"] == "UNHEALTHY"
            assert body["user_healthcheck_error"] == "Healthcheck failed: SystemExit: 3"
        run = requests.post(s.url + "/predictions", json={}, timeout=10)
    assert run.json()["output"] == "still here"


def test_sys_exit_in_async_setup_is_setup_failed(serve_source):
    """sys.exit() in an async setup() is SETUP_FAILED, and the server keeps answering."""
    src = """
import sys
from cog import BaseRunner

class Predictor(BaseRunner):
    async def setup(self) -> None:
        print("exiting")
        sys.exit(4)

    async def run(self) -> str:
        return "never"
"""
    with serve_source(src) as s:
        assert s.health.value == "SETUP_FAILED"
        setup = health(s.url)["setup"]
        assert setup["status"] == "failed"
        assert setup["logs"].startswith("exiting\n")
        assert setup["logs"].endswith("SystemExit: 4\n")
        _assert_refuses_creates(s.url)


@pytest.mark.parametrize("value", ["None", "True", "0", "'yes'"])
def test_healthcheck_non_false_is_healthy(serve_source, value):
    """Anything but the bool False from healthcheck() counts as healthy (READY)."""
    hc = f"def healthcheck(self):\n        return {value}"
    with serve_source(HEALTHCHECK.replace("@@HC@@", hc)) as s:
        body = health(s.url)
    assert body["status"] == "READY"
    assert "user_healthcheck_error" not in body


def test_healthcheck_recomputed_per_request_and_overrides_busy(serve_source, tmp_path):
    """UNHEALTHY follows the healthcheck on each GET, and overrides BUSY during a prediction."""
    src = (
        WAIT_FOR
        + """
import os
from cog import BaseRunner

class Predictor(BaseRunner):
    def healthcheck(self) -> bool:
        return not os.path.exists("@TMP@/sick")

    def run(self) -> str:
        mark("@TMP@/running")
        wait_for("@TMP@/release")
        return "done"
"""
    )
    sick = tmp_path / "sick"
    with serve_source(source(src, tmp_path)) as s:
        assert health(s.url)["status"] == "READY"
        sick.touch()
        assert health(s.url)["status"] == "UNHEALTHY"
        sick.unlink()
        assert health(s.url)["status"] == "READY"
        sync = Background("POST", s.url + "/predictions", json={})
        try:
            wait_until((tmp_path / "running").exists, "the prediction to start")
            assert health(s.url)["status"] == "BUSY"
            sick.touch()
            body = health(s.url)
            assert body["status"] == "UNHEALTHY"
            assert body["user_healthcheck_error"] == HC_FALSE
        finally:
            (tmp_path / "release").touch()
        assert sync.result().json()["status"] == "succeeded"


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sync", "async"])
def test_healthcheck_times_out_after_5_seconds(serve_source, tmp_path, kind):
    """A healthcheck still running after 5 s makes the GET answer UNHEALTHY with the timeout."""
    if kind == "sync":
        hc = (
            'def healthcheck(self) -> bool:\n        wait_for("@TMP@/hc-gate")\n        return True'
        )
    else:
        hc = (
            "async def healthcheck(self) -> bool:\n"
            '        while not os.path.exists("@TMP@/hc-gate"):\n'
            "            await asyncio.sleep(0.01)\n"
            "        return True"
        )
    src = WAIT_FOR + "import os\n" + HEALTHCHECK.replace("@@HC@@", hc)
    with serve_source(source(src, tmp_path)) as s:
        try:
            started = time.monotonic()
            body = health(s.url)
            elapsed = time.monotonic() - started
        finally:
            (tmp_path / "hc-gate").touch()
        assert body["status"] == "UNHEALTHY"
        assert body["user_healthcheck_error"] == HC_TIMEOUT
        assert 4.9 <= elapsed < 30
        # Once the healthcheck answers in time again, so does the health-check.
        wait_for_status(s.url, "READY", timeout=60)


def test_setup_timeout(serve_source, tmp_path, monkeypatch):
    """COG_SETUP_TIMEOUT ends a slow setup as SETUP_FAILED; a setup finishing later is ignored."""
    monkeypatch.setenv("COG_SETUP_TIMEOUT", "1")
    earlier = set(threading.enumerate())
    with serve_source(source(GATED_SETUP, tmp_path)) as s:
        setup_threads = [
            t for t in threading.enumerate() if t.name == "nbcog-setup" and t not in earlier
        ]
        try:
            assert s.health.value == "SETUP_FAILED"
            body = health(s.url)
            assert body["status"] == "SETUP_FAILED"
            assert body["setup"]["status"] == "failed"
            assert "worker setup timed out" in body["setup"]["logs"]
        finally:
            (tmp_path / "setup-gate").touch()
        assert len(setup_threads) == 1
        setup_threads[0].join(30)
        assert (tmp_path / "setup-done").exists()
        # The setup thread handed its (late) success to the loop before it ended; this
        # round trip runs after that hand-over, so the service has seen it.
        s.call(lambda: None)
        after = health(s.url)
        assert after["status"] == "SETUP_FAILED"
        assert after["setup"]["status"] == "failed"
        assert after["setup"]["completed_at"] == body["setup"]["completed_at"]
        _assert_refuses_creates(s.url)


@pytest.mark.parametrize("value", ["0", "-3", "soon"])
def test_setup_timeout_ignored_when_not_positive_integer(
    serve_source, tmp_path, monkeypatch, value
):
    """COG_SETUP_TIMEOUT of 0, negative or not an integer sets no deadline."""
    monkeypatch.setenv("COG_SETUP_TIMEOUT", value)
    with serve_source(source(GATED_SETUP, tmp_path), wait_ready=False) as s:
        try:
            s.call(lambda: None)  # a zero-delay timer would have fired by now
            assert health(s.url)["status"] == "STARTING"
        finally:
            (tmp_path / "setup-gate").touch()
        wait_for_status(s.url, "READY")


WEIGHTS = """
from typing import Any
from cog import BaseRunner

class Predictor(BaseRunner):
    def setup(self, weights) -> None:
        self.weights = weights

    def run(self) -> Any:
        return self.weights
"""


@pytest.mark.parametrize("weights", ["https://example.com/weights.tar", None])
def test_setup_receives_cog_weights(serve_source, monkeypatch, weights):
    """setup(self, weights) gets COG_WEIGHTS, or None when it is unset."""
    if weights is None:
        monkeypatch.delenv("COG_WEIGHTS", raising=False)
    else:
        monkeypatch.setenv("COG_WEIGHTS", weights)
    with serve_source(WEIGHTS) as s:
        body = requests.post(s.url + "/predictions", json={}, timeout=10).json()
    assert body["status"] == "succeeded"
    assert body["output"] == weights
