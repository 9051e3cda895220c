"""Re-running from the monitor (issue 15): as it was, or from the input form filled with the
prediction's inputs; files re-sent as received; a Secret input asked again, never shown."""

from __future__ import annotations

import base64
import json

import pytest
import requests
from helpers import wait_until
from widget_helpers import (
    on_loop,
    recording_comms,  # noqa: F401 - fixture
    serve_file,
)

from nbcog.widget import ServerMonitor
from nbcog.widget.form import InputForm

pytestmark = pytest.mark.usefixtures("recording_comms")

SOURCE = """
from typing import Optional
from cog import BaseRunner, Input, Path, Secret

class Predictor(BaseRunner):
    def run(
        self,
        text: str,
        times: int = Input(default=1, ge=1, le=5),
        doc: Optional[Path] = Input(default=None),
        key: Secret = Input(default=None),
        extra: dict = Input(default={}),
    ) -> str:
        secret = key.get_secret_value() if key is not None else ""
        body = doc.read_text() if doc else ""
        return f"{text * times}|{body}|{len(secret)}|{json.dumps(extra, sort_keys=True)}"

import json
"""
SECRET = "sk-widget-5521"
DOC = "data:text/plain;base64," + base64.b64encode(b"from a file").decode()


def _post(running, **inputs):
    return requests.post(running.url + "/predictions", json={"input": inputs}, timeout=30).json()


def _final(running, monitor):
    """Wait until the monitor's open view has ended; return its synced state."""
    view = wait_until(lambda: on_loop(running, lambda: monitor.view), what="a view")
    wait_until(lambda: on_loop(running, lambda: view.done), what="the re-run to end")
    return on_loop(running, view.get_state)


def test_rerun_as_it_was_sends_the_same_inputs(tmp_path):
    """Re-run: a new prediction with the same inputs (the file as it was received) is shown."""
    with serve_file(tmp_path, SOURCE) as running:
        service = running.server.service
        first = _post(running, text="ab", times=2, doc=DOC, extra={"k": [1, 2]})
        monitor = on_loop(running, lambda: ServerMonitor(service, base_url=running.url))
        monitor.list._handle_custom_msg({"kind": "rerun", "id": first["id"]}, [])
        state = _final(running, monitor)
        inputs = on_loop(running, lambda: service.recent[0].input)
        # The list is redrawn on the monitor's next flush, maybe after the view has ended.
        newest = [state["prediction_id"], first["id"]]
        wait_until(
            lambda: (
                on_loop(running, lambda: [row["id"] for row in monitor.list.rows][:2]) == newest
            ),
            what="the re-run listed first",
        )
        on_loop(running, monitor.close)
    assert state["prediction_id"] != first["id"]
    assert state["status"] == "succeeded"
    assert state["output_text"] == 'abab|from a file|0|{"k": [1, 2]}'
    assert inputs["doc"] == DOC


def test_edit_opens_the_filled_form_and_runs_the_edit(tmp_path):
    """Edit: the form holds the prediction's inputs; changing one and Run gives the new output."""
    with serve_file(tmp_path, SOURCE) as running:
        service = running.server.service
        first = _post(running, text="ab", times=2, doc=DOC, extra={"k": 1})
        monitor = on_loop(running, lambda: ServerMonitor(service, base_url=running.url))
        monitor.list._handle_custom_msg({"kind": "edit", "id": first["id"]}, [])
        form = wait_until(lambda: on_loop(running, lambda: monitor.form), what="the form")
        assert isinstance(form, InputForm)
        values = on_loop(running, lambda: form.values()[0])
        assert values == {"text": "ab", "times": 2, "doc": DOC, "extra": {"k": 1}}

        def edit() -> None:
            form.fields["times"].control.value = 3

        on_loop(running, edit)
        entry = on_loop(running, form.submit)
        wait_until(lambda: on_loop(running, lambda: entry.prediction.is_terminal))
        output = on_loop(running, lambda: entry.prediction.snapshot()["output"])
        on_loop(running, monitor.close)
    assert output == 'ababab|from a file|0|{"k": 1}'


def test_rerun_with_a_secret_asks_for_it_again(tmp_path):
    """A prediction with a Secret: re-run opens the form with the secret empty and says why;
    the secret is in no row, view, snippet or form value."""
    with serve_file(tmp_path, SOURCE) as running:
        service = running.server.service
        first = _post(running, text="s", key=SECRET)
        assert first["output"] == f"s||{len(SECRET)}|{{}}"
        monitor = on_loop(running, lambda: ServerMonitor(service, base_url=running.url))
        monitor.list._handle_custom_msg({"kind": "rerun", "id": first["id"]}, [])
        form = wait_until(lambda: on_loop(running, lambda: monitor.form), what="the form")
        note = on_loop(running, lambda: form.message.value)
        values = on_loop(running, lambda: form.values()[0])
        rows = on_loop(running, lambda: monitor.list.rows)
        view = on_loop(running, lambda: monitor.show(first["id"]))
        view_state = on_loop(running, view.get_state)
        made = on_loop(running, lambda: len(service.recent))
        on_loop(running, monitor.close)
    assert "Enter key again: secret inputs are never stored." in note
    assert "key" not in values
    assert values["text"] == "s"
    shown = json.dumps([rows, view_state, values], default=str)
    assert SECRET not in shown
    assert "<your secret>" in view_state["curl"]
    assert made == 1  # opening the form ran nothing
