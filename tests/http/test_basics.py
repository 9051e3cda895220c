"""The JSON endpoints against a real server: discovery, health, schema, create modes, cancel."""

from __future__ import annotations

import json
import threading

import requests

from nbcog.testing import serve_in_thread

ECHO = """
from cog import BaseRunner, Input

class Predictor(BaseRunner):
    def setup(self) -> None:
        print("loading weights")

    def run(self, text: str = Input(description="what to echo"), times: int = 1) -> str:
        print(f"echoing {text}")
        return text * times
"""

SLOW = """
import time
from cog import BaseRunner

class Predictor(BaseRunner):
    def run(self, seconds: float = 30.0) -> str:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            time.sleep(0.01)
        return "done"
"""


def test_root_lists_the_api(serve_source):
    """GET / answers coglet's discovery document with the cog SDK version."""
    import cog

    with serve_source(ECHO) as s:
        r = requests.get(s.url + "/", timeout=5)
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/json"
    assert (
        r.content
        == json.dumps(
            {
                "cog_version": cog.__version__,
                "docs_url": "/docs",
                "healthcheck_url": "/health-check",
                "openapi_url": "/openapi.json",
                "predictions_cancel_url": "/predictions/{prediction_id}/cancel",
                "predictions_idempotent_url": "/predictions/{prediction_id}",
                "predictions_url": "/predictions",
                "shutdown_url": "/shutdown",
            },
            separators=(",", ":"),
            sort_keys=True,
        ).encode()
    )


def test_health_ready_with_setup_logs(serve_source):
    """After setup the health-check is READY with setup status, times, logs and versions."""
    import platform

    import cog

    with serve_source(ECHO) as s:
        body = requests.get(s.url + "/health-check", timeout=5).json()
    assert body["status"] == "READY"
    assert body["setup"]["status"] == "succeeded"
    assert body["setup"]["logs"] == "loading weights\n"
    assert body["setup"]["started_at"].endswith("+00:00")
    assert body["setup"]["completed_at"] >= body["setup"]["started_at"]
    assert body["version"]["python_sdk"] == cog.__version__
    assert body["version"]["python"] == platform.python_version()
    assert "coglet" in body["version"]
    assert "user_healthcheck_error" not in body


def test_sync_prediction_body(serve_source):
    """A sync POST waits and returns id, status, output, logs and metrics.predict_time."""
    with serve_source(ECHO) as s:
        r = requests.post(
            s.url + "/predictions",
            json={"id": "p1", "input": {"text": "ab", "times": 2}},
            timeout=10,
        )
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"id", "status", "output", "logs", "metrics"}
    assert body["id"] == "p1"
    assert body["status"] == "succeeded"
    assert body["output"] == "abab"
    assert body["logs"] == "echoing ab\n"
    assert set(body["metrics"]) == {"predict_time"}
    assert body["metrics"]["predict_time"] > 0


def test_generated_ids_are_unique_and_prefixed(serve_source):
    """Without an id the server makes pred_<hex ns> ids, never the same twice."""
    with serve_source(ECHO) as s:
        ids = [
            requests.post(s.url + "/predictions", json={"input": {"text": "x"}}, timeout=10).json()[
                "id"
            ]
            for _ in range(20)
        ]
    assert len(set(ids)) == 20
    assert all(i.startswith("pred_") and int(i[5:], 16) > 0 for i in ids)


def test_back_to_back_sync_requests_never_409(serve_source):
    """The slot is freed before the sync response is written: no spurious 409 (spec §21.1)."""
    with serve_source(ECHO) as s, requests.Session() as http:
        codes = [
            http.post(s.url + "/predictions", json={"input": {"text": "x"}}, timeout=10).status_code
            for _ in range(300)
        ]
    assert codes == [200] * 300


def test_async_prediction_returns_202_then_runs(serve_source):
    """Prefer: respond-async answers 202 {id, status: starting} at once."""
    with serve_source(ECHO) as s:
        r = requests.post(
            s.url + "/predictions",
            json={"id": "a1", "input": {"text": "x"}},
            headers={"Prefer": "respond-async"},
            timeout=10,
        )
    assert r.status_code == 202
    assert r.content == b'{"id":"a1","status":"starting"}'


def test_prefer_must_match_exactly(serve_source):
    """'Respond-Async' and 'respond-async, wait=5' are sync requests (case-sensitive match)."""
    with serve_source(ECHO) as s:
        for prefer in ("Respond-Async", "respond-async, wait=5"):
            r = requests.post(
                s.url + "/predictions",
                json={"input": {"text": "x"}},
                headers={"Prefer": prefer},
                timeout=10,
            )
            assert r.status_code == 200
            assert r.json()["status"] == "succeeded"


def test_put_attaches_to_in_flight_prediction(serve_source):
    """PUT with an in-flight id answers 202 with the snapshot and input, not a second run."""
    with serve_source(SLOW) as s:
        first = requests.put(
            s.url + "/predictions/same",
            json={"input": {"seconds": 30, "junk": 1}},
            headers={"Prefer": "respond-async"},
            timeout=10,
        )
        assert first.status_code == 202
        again = requests.put(
            s.url + "/predictions/same", json={"input": {"seconds": 1}}, timeout=10
        )
        assert again.status_code == 202
        body = again.json()
        assert body["id"] == "same"
        assert body["input"] == {"seconds": 30}
        assert body["status"] in ("starting", "processing")
        assert requests.post(s.url + "/predictions/same/cancel", timeout=5).status_code == 200


def test_put_id_mismatch_is_422(serve_source):
    """A PUT body id that differs from the path id gets coglet's 422 detail."""
    with serve_source(ECHO) as s:
        r = requests.put(
            s.url + "/predictions/a", json={"id": "b", "input": {"text": "x"}}, timeout=10
        )
    assert r.status_code == 422
    assert r.json() == {
        "detail": [
            {
                "loc": ["body", "id"],
                "msg": "prediction ID must match the ID supplied in the URL",
                "type": "value_error",
            }
        ]
    }


def test_busy_then_409_then_cancel(serve_source):
    """One slot: a second create gets 409 and health says BUSY; cancel gives 200, then 404."""
    with serve_source(SLOW) as s:
        r = requests.post(
            s.url + "/predictions",
            json={"id": "long"},
            headers={"Prefer": "respond-async"},
            timeout=5,
        )
        assert r.status_code == 202
        assert requests.get(s.url + "/health-check", timeout=5).json()["status"] == "BUSY"
        busy = requests.post(s.url + "/predictions", json={}, timeout=5)
        assert busy.status_code == 409
        assert (
            busy.content == b'{"error":"At capacity - all prediction slots busy","status":"failed"}'
        )
        again = requests.post(s.url + "/predictions", json={"id": "long"}, timeout=5)
        assert again.status_code == 409
        assert requests.post(s.url + "/predictions/long/cancel", timeout=5).content == b"{}"
        assert requests.post(s.url + "/predictions/long/cancel", timeout=5).status_code in (
            200,
            404,
        )
        # The slot comes back once the cancel has landed; the next sync request runs.
        body = requests.post(s.url + "/predictions", json={"input": {"seconds": 0}}, timeout=10)
        while body.status_code == 409:
            body = requests.post(s.url + "/predictions", json={"input": {"seconds": 0}}, timeout=10)
        assert body.json()["output"] == "done"
        gone = requests.post(s.url + "/predictions/long/cancel", timeout=5)
        assert (gone.status_code, gone.content) == (404, b"{}")
        assert requests.get(s.url + "/health-check", timeout=5).json()["status"] == "READY"


def test_sync_prediction_canceled_by_id(serve_source):
    """A sync request with a client id can be cancelled; its body is the canceled shape."""
    with serve_source(SLOW) as s:
        result: dict[str, requests.Response] = {}
        sync = threading.Thread(
            target=lambda: result.setdefault(
                "r", requests.post(s.url + "/predictions", json={"id": "long"}, timeout=30)
            )
        )
        sync.start()
        while requests.post(s.url + "/predictions/long/cancel", timeout=5).status_code != 200:
            pass
        sync.join(10)
        body = result["r"].json()
        assert body["status"] == "canceled"
        assert set(body) == {"id", "status", "logs", "metrics"}


def test_unknown_path_and_wrong_method(serve_source):
    """Unknown paths get 404 and wrong methods 405, both with empty bodies."""
    with serve_source(ECHO) as s:
        missing = requests.get(s.url + "/nope", timeout=5)
        docs = requests.get(s.url + "/docs", timeout=5)
        wrong = requests.get(s.url + "/predictions", timeout=5)
        put_root = requests.put(s.url + "/predictions", timeout=5)
    assert (missing.status_code, missing.content) == (404, b"")
    assert (docs.status_code, docs.content) == (404, b"")
    assert (wrong.status_code, wrong.content) == (405, b"")
    assert (put_root.status_code, put_root.content) == (405, b"")


def test_shutdown_stops_server_not_process(tmp_path):
    """POST /shutdown answers {} and stops the server; this process keeps running."""
    path = tmp_path / "p.py"
    path.write_text(ECHO)
    with serve_in_thread(f"{path}:Predictor") as s:
        r = requests.post(s.url + "/shutdown", timeout=5)
        assert (r.status_code, r.content) == (200, b"{}")
        s.call(lambda: None)
        assert not s.server.running
        try:
            requests.get(s.url + "/", timeout=2)
        except requests.ConnectionError:
            pass
        else:
            raise AssertionError("server still answering after /shutdown")


TOKENS = """
from cog import BaseRunner
from typing import Iterator

class Predictor(BaseRunner):
    def run(self, n: int) -> Iterator[str]:
        for i in range(n):
            yield str(i)
"""


def test_recent_predictions_stay_within_their_byte_budget_oldest_evicted_first(serve_source):
    """Finished predictions kept for status views fit ``recent_bytes``; the oldest go first."""
    with serve_source(TOKENS, recent_bytes=20_000) as s:

        def kept() -> list[int]:
            return s.call(lambda: [len(p.chunks) for p in s.server.service.recent])

        for n in (100, 101, 102):  # about 6 kB each (a str object per chunk)
            assert requests.post(s.url + "/predictions", json={"input": {"n": n}}, timeout=10).ok
        assert kept() == [102, 101, 100]
        assert requests.post(s.url + "/predictions", json={"input": {"n": 150}}, timeout=10).ok
        assert kept() == [150, 102]
        assert s.call(lambda: s.server.service.recent_retained_bytes) <= 20_000
        assert requests.post(s.url + "/predictions", json={"input": {"n": 500}}, timeout=10).ok
        assert kept() == [150, 102]  # bigger than the whole budget: not kept, nothing evicted
