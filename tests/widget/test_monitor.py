"""ServerMonitor and the service's prediction listeners, against a real server (issue 5)."""

from __future__ import annotations

import logging

import pytest
import requests
from helpers import wait_until
from widget_helpers import (
    on_loop,
    recording_comms,  # noqa: F401 - fixture
    serve_file,
)

from nbcog.service import CreateRequest, Mode
from nbcog.widget import ServerMonitor

pytestmark = pytest.mark.usefixtures("recording_comms")

ECHO = """
import os
import time
from cog import BaseRunner

class Predictor(BaseRunner):
    def run(self, text: str = "hi", gate: str = "") -> str:
        print(f"echo {text}")
        deadline = time.monotonic() + 60
        while gate and not os.path.exists(gate) and time.monotonic() < deadline:
            time.sleep(0.01)
        return text.upper()
"""


def _statuses(running, monitor):
    return on_loop(running, lambda: [(row["id"], row["status"]) for row in monitor.list.rows])


def test_listener_hears_creates_and_ends_from_http_and_in_process(tmp_path):
    """add_listener reports every prediction, HTTP or in-process, created then finished."""
    with serve_file(tmp_path, ECHO) as running:
        service = running.server.service
        heard: list[tuple[str, str, str]] = []
        on_loop(
            running,
            lambda: service.add_listener(
                lambda kind, entry: heard.append(
                    (kind, entry.prediction.id, entry.prediction.status.value)
                )
            ),
        )
        requests.post(running.url + "/predictions", json={"id": "over_http"}, timeout=30)
        entry = on_loop(running, lambda: service.create(CreateRequest(id="local"), mode=Mode.ASYNC))
        wait_until(lambda: on_loop(running, lambda: entry.prediction.is_terminal))
        wait_until(lambda: len(heard) == 4, what="four notifications")
    assert heard == [
        ("created", "over_http", "starting"),
        ("finished", "over_http", "succeeded"),
        ("created", "local", "starting"),
        ("finished", "local", "succeeded"),
    ]


def test_failing_listener_never_breaks_a_prediction(tmp_path, caplog):
    """A listener that raises is logged; the prediction and other listeners carry on."""
    with serve_file(tmp_path, ECHO) as running:
        service = running.server.service
        heard: list[str] = []

        def broken(kind, entry):
            raise RuntimeError("listener bug")

        on_loop(running, lambda: service.add_listener(broken))
        on_loop(running, lambda: service.add_listener(lambda kind, entry: heard.append(kind)))
        with caplog.at_level(logging.ERROR, logger="nbcog"):
            body = requests.post(running.url + "/predictions", json={}, timeout=30).json()
        wait_until(lambda: heard == ["created", "finished"], what="the second listener")
    assert body["output"] == "HI"
    assert "nbcog prediction listener failed" in caplog.text


def test_monitor_lists_http_and_notebook_predictions_newest_first(tmp_path):
    """Predictions made over HTTP from outside and in-process all appear, newest first, live."""
    gate = tmp_path / "gate"
    with serve_file(tmp_path, ECHO) as running:
        service = running.server.service
        requests.post(
            running.url + "/predictions", json={"id": "before", "input": {"text": "x"}}, timeout=30
        )
        monitor = on_loop(running, lambda: ServerMonitor(service, base_url=running.url))
        assert _statuses(running, monitor) == [("before", "succeeded")]
        response = requests.post(
            running.url + "/predictions",
            json={"id": "outside", "input": {"gate": str(gate)}},
            headers={"Prefer": "respond-async"},
            timeout=30,
        )
        assert response.status_code == 202
        wait_until(
            lambda: (
                _statuses(running, monitor) == [("outside", "processing"), ("before", "succeeded")]
            ),
            what="the running HTTP prediction",
        )
        gate.write_text("go")
        wait_until(
            lambda: _statuses(running, monitor)[0] == ("outside", "succeeded"),
            what="the HTTP prediction to end",
        )
        entry = on_loop(
            running, lambda: service.create(CreateRequest(id="inside"), mode=Mode.ASYNC)
        )
        wait_until(lambda: on_loop(running, lambda: entry.prediction.is_terminal))
        wait_until(
            lambda: (
                _statuses(running, monitor)
                == [("inside", "succeeded"), ("outside", "succeeded"), ("before", "succeeded")]
            ),
            what="all three rows",
        )
        rows = on_loop(running, lambda: monitor.list.rows)
        on_loop(running, monitor.close)
    assert rows[2]["input"] == '{"text": "x"}'
    assert rows[1]["input"].startswith('{"gate": "/') and rows[1]["input"].endswith("…")
    assert len(rows[1]["input"]) == 60
    assert {row["kind"] for row in rows} == {"prediction"}
    assert all(row["completed_ms"] >= row["created_ms"] > 0 for row in rows)
    assert rows[0]["created_ms"] >= rows[1]["created_ms"] >= rows[2]["created_ms"]


def test_clicking_a_row_opens_its_view(tmp_path):
    """The frontend's open message shows that prediction's view, finished or in flight."""
    with serve_file(tmp_path, ECHO) as running:
        service = running.server.service
        requests.post(
            running.url + "/predictions", json={"id": "first", "input": {"text": "a"}}, timeout=30
        )
        monitor = on_loop(running, lambda: ServerMonitor(service, base_url=running.url))
        monitor.list._handle_custom_msg({"kind": "open", "id": "first"}, [])
        wait_until(lambda: on_loop(running, lambda: monitor.detail.children), what="a view")
        view = on_loop(running, lambda: monitor.detail.children[0])
        state = on_loop(running, view.get_state)
        selected = on_loop(running, lambda: monitor.list.selected)
        on_loop(running, monitor.close)
    assert selected == "first"
    assert state["prediction_id"] == "first"
    assert state["output_items"] == [] and state["logs"] == "echo a\n"
    assert state["status"] == "succeeded"


def test_closed_monitor_stops_listening(tmp_path):
    """After close() the monitor no longer changes when predictions come and go."""
    with serve_file(tmp_path, ECHO) as running:
        service = running.server.service
        monitor = on_loop(running, lambda: ServerMonitor(service))
        on_loop(running, monitor.close)
        requests.post(running.url + "/predictions", json={}, timeout=30)
        heard: list[str] = []
        on_loop(running, lambda: service.add_listener(lambda kind, entry: heard.append(kind)))
        requests.post(running.url + "/predictions", json={}, timeout=30)
        wait_until(lambda: heard == ["created", "finished"], what="a later listener")
        rows = on_loop(running, lambda: monitor.list.rows)
    assert rows == []


def test_monitor_bundle_has_a_static_table(tmp_path):
    """The monitor's display bundle has an HTML table for saved notebooks."""
    with serve_file(tmp_path, ECHO) as running:
        service = running.server.service
        requests.post(running.url + "/predictions", json={"id": "p1"}, timeout=30)
        monitor = on_loop(running, lambda: ServerMonitor(service))
        data, _ = on_loop(running, monitor._repr_mimebundle_)
        on_loop(running, monitor.close)
    assert data["text/plain"] == "nbcog monitor: 1 predictions"
    assert "<code>p1</code>" in data["text/html"]
    assert ">succeeded</span>" in data["text/html"]


FAILING = """
from cog import BaseRunner

class Predictor(BaseRunner):
    def run(self, n: int = 3) -> str:
        raise ValueError(f"n={n} is not supported")
"""


def test_failed_row_says_what_the_predictor_raised(tmp_path):
    """A failed row carries `ValueError: ...` (its status's tooltip), not coglet's wrapping."""
    with serve_file(tmp_path, FAILING) as running:
        service = running.server.service
        body = requests.post(running.url + "/predictions", json={"id": "p1"}, timeout=30).json()
        monitor = on_loop(running, lambda: ServerMonitor(service))
        rows = on_loop(running, lambda: monitor.list.rows)
        data, _ = on_loop(running, monitor._repr_mimebundle_)
        on_loop(running, monitor.close)
    assert body["error"] == "Prediction failed: Prediction failed: ValueError: n=3 is not supported"
    assert rows[0]["error"] == "ValueError: n=3 is not supported"
    assert '<td title="ValueError: n=3 is not supported">' in data["text/html"]
