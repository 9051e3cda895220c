"""InputForm built from the served predictor's OpenAPI schema; Run goes through service.create."""

from __future__ import annotations

import ipywidgets
import pytest
from helpers import wait_until
from widget_helpers import (
    on_loop,
    recording_comms,  # noqa: F401 - fixture
    serve_file,
)

from nbcog.widget import InputForm

pytestmark = pytest.mark.usefixtures("recording_comms")

INPUTS = """
import os
import time
from typing import Optional
from cog import BaseRunner, Input, Path, Secret

class Predictor(BaseRunner):
    def run(
        self,
        prompt: str = Input(description="what to say", default="hello"),
        steps: int = Input(description="how many", ge=1, le=10, default=3),
        scale: float = Input(ge=0, le=1, default=0.5),
        width: int = Input(ge=64, default=512),
        color: str = Input(choices=["red", "green"], default="red"),
        loud: bool = False,
        image: Path = Input(description="a file"),
        api_key: Secret = Input(default=None),
        seed: Optional[int] = None,
        tags: list[str] = Input(default=[]),
        name: str = "x",
        gate: str = "",
    ) -> str:
        deadline = time.monotonic() + 60
        while gate and not os.path.exists(gate) and time.monotonic() < deadline:
            time.sleep(0.01)
        size = os.path.getsize(image) if os.path.exists(image) else -1
        secret = api_key.get_secret_value() if api_key else None
        parts = [prompt, steps, scale, width, color, loud, size, secret, seed, tags, name]
        return "|".join(str(part) for part in parts)
"""

SLOW_SETUP = """
import os
import time
from cog import BaseRunner

class Predictor(BaseRunner):
    def setup(self) -> None:
        deadline = time.monotonic() + 60
        while not os.path.exists(os.environ["NBCOG_TEST_GATE"]) and time.monotonic() < deadline:
            time.sleep(0.01)

    def run(self, n: int = 1) -> int:
        return n
"""

UPLOAD = {
    "name": "note.txt",
    "type": "text/plain",
    "size": 5,
    "content": memoryview(b"hello"),
    "last_modified": 0,
}


def _control(form, name):
    return form.fields[name].control


def _errors(form):
    return {name: field.error.value for name, field in form.fields.items() if field.error.value}


def test_controls_follow_the_schema(tmp_path):
    """Sliders for bounded numbers, dropdown, checkbox, text area, upload, password, defaults."""
    with serve_file(tmp_path, INPUTS) as running:
        form = on_loop(running, lambda: InputForm(running.server.service))
        steps, scale, width = (_control(form, n) for n in ("steps", "scale", "width"))
        order = list(form.fields)
        kinds = {name: type(field.control) for name, field in form.fields.items()}
        help_steps = form.fields["steps"].box.children[1].value
        help_prompt = form.fields["prompt"].box.children[1].value
        label_image = form.fields["image"].box.children[0].children[0].value
        upload_box = _control(form, "image")
        on_loop(running, form.close)
    assert order[:3] == ["prompt", "steps", "scale"]
    assert kinds == {
        "prompt": ipywidgets.Textarea,
        "steps": ipywidgets.IntSlider,
        "scale": ipywidgets.FloatSlider,
        "width": ipywidgets.BoundedIntText,
        "color": ipywidgets.Dropdown,
        "loud": ipywidgets.Checkbox,
        "image": ipywidgets.HBox,
        "api_key": ipywidgets.Password,
        "seed": ipywidgets.Text,
        "tags": ipywidgets.Textarea,
        "name": ipywidgets.Text,
        "gate": ipywidgets.Text,
    }
    assert (steps.min, steps.max, steps.value) == (1, 10, 3)
    assert (scale.min, scale.max, scale.value) == (0, 1, 0.5)
    assert (width.min, width.value) == (64, 512)
    assert _control(form, "color").options == ("red", "green")
    assert _control(form, "color").value == "red"
    assert _control(form, "prompt").value == "hello"
    assert _control(form, "tags").value == "[]"
    assert isinstance(upload_box.children[1], ipywidgets.FileUpload)
    assert "how many" in help_steps and "≥ 1 and ≤ 10" in help_steps
    assert "what to say" in help_prompt and "default: <code>&quot;hello&quot;</code>" in help_prompt
    assert label_image == "<b>Image</b> *"


def test_run_submits_through_the_service(tmp_path):
    """Run creates a prediction through the core path and shows its view with the output."""
    with serve_file(tmp_path, INPUTS) as running:
        service = running.server.service
        form = on_loop(running, lambda: InputForm(service, base_url=running.url))

        def fill():
            _control(form, "steps").value = 7
            _control(form, "color").value = "green"
            _control(form, "loud").value = True
            _control(form, "image").children[1].set_state({"value": [UPLOAD]})  # as from JS
            _control(form, "api_key").value = "s3cret"
            _control(form, "seed").value = "42"
            _control(form, "tags").value = '["a", "b"]'

        on_loop(running, fill)
        form.run_button.click()  # as the browser's click: handed to the loop thread
        wait_until(lambda: on_loop(running, lambda: form.view and form.view.done), what="the run")
        state = on_loop(running, form.view.get_state)
        echoed = on_loop(running, lambda: service.recent[0].input)
        on_loop(running, form.close)
    assert state["status"] == "succeeded"
    assert state["output_text"] == "hello|7|0.5|512|green|True|5|s3cret|42|['a', 'b']|x"
    assert echoed["api_key"] == "**********"
    assert echoed["image"] == "data:text/plain;base64,aGVsbG8="


def test_validation_errors_are_shown_next_to_their_fields(tmp_path):
    """The server's 422 messages appear under the fields they name; nothing is created."""
    with serve_file(tmp_path, INPUTS) as running:
        service = running.server.service
        form = on_loop(running, lambda: InputForm(service))
        on_loop(running, lambda: setattr(_control(form, "seed"), "value", "abc"))
        created = on_loop(running, form.submit)
        errors = on_loop(running, lambda: _errors(form))
        on_loop(running, form.close)
    assert created is None and form.view is None
    assert errors == {
        "seed": '<span class="nbcog-field-error" style="color:#c62828">'
        "&quot;abc&quot; is not of type &quot;integer&quot;</span>",
        "image": '<span class="nbcog-field-error" style="color:#c62828">Field required</span>',
    }


def test_unreadable_json_is_reported_before_sending(tmp_path):
    """A list input that is not JSON is flagged at its field and nothing is submitted."""
    with serve_file(tmp_path, INPUTS) as running:
        service = running.server.service
        form = on_loop(running, lambda: InputForm(service))
        on_loop(running, lambda: setattr(_control(form, "tags"), "value", "[1"))
        created = on_loop(running, form.submit)
        errors = on_loop(running, lambda: _errors(form))
        recent = on_loop(running, lambda: list(service.recent) + service.inflight())
        on_loop(running, form.close)
    assert created is None and recent == []
    assert list(errors) == ["tags"]
    assert "not valid JSON: Expecting" in errors["tags"]


def test_busy_server_answer_is_shown(tmp_path):
    """With the only slot taken, Run shows coglet's 409 text and creates nothing."""
    gate = tmp_path / "gate"
    with serve_file(tmp_path, INPUTS) as running:
        service = running.server.service
        form = on_loop(running, lambda: InputForm(service))

        def fill(value):
            _control(form, "image").children[0].value = "not-a-url"
            _control(form, "gate").value = value

        on_loop(running, lambda: fill(str(gate)))
        first = on_loop(running, form.submit)
        second = on_loop(running, form.submit)
        message = on_loop(running, lambda: form.message.value)
        gate.write_text("go")
        wait_until(lambda: on_loop(running, lambda: first.prediction.is_terminal))
        on_loop(running, form.close)
    assert first is not None and second is None
    assert message == (
        '<span class="nbcog-field-error" style="color:#c62828">'
        "At capacity - all prediction slots busy</span>"
    )


def test_form_waits_for_setup(tmp_path, monkeypatch):
    """Built while setup runs, the form says so, then fills itself in when setup succeeds."""
    gate = tmp_path / "setup-gate"
    monkeypatch.setenv("NBCOG_TEST_GATE", str(gate))
    with serve_file(tmp_path, SLOW_SETUP, wait_ready=False) as running:
        form = on_loop(running, lambda: InputForm(running.server.service))
        waiting = on_loop(running, lambda: (form.message.value, list(form.fields)))
        gate.write_text("go")
        wait_until(lambda: on_loop(running, lambda: list(form.fields)), what="the fields")
        fields = on_loop(running, lambda: list(form.fields))
        on_loop(running, form.close)
    assert waiting == ("Waiting for setup() to finish…", [])
    assert fields == ["n"]
