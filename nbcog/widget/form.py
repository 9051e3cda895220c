"""``InputForm``: the predictor's inputs as controls, built from the served ``Input`` schema.

Run submits through ``PredictionService.create`` (async mode), the same core path as
``POST /predictions``: the same validation, the same 422 messages (shown next to the field they
name), the same 409/503 answers, and the prediction appears in every monitor and can be
attached to over HTTP. The new prediction's ``PredictionView`` is shown under the form.
"""

from __future__ import annotations

from collections.abc import Callable
from html import escape
from typing import Any

import ipywidgets

from nbcog.core.errors import InputValidationError, NbcogError
from nbcog.service import CreateRequest, Health, Mode, PredictionRef, PredictionService
from nbcog.widget.context import CreationContext
from nbcog.widget.fields import Field, FieldError, build_field
from nbcog.widget.prefill import fill
from nbcog.widget.view import PredictionView

ROOT_FIELD = "__root__"


def error_field(detail: dict[str, Any]) -> str:
    """The input a 422 ``detail`` entry names (``nums/1`` -> ``nums``), or ``__root__``."""
    loc = detail.get("loc", [])
    if len(loc) < 3:
        return ROOT_FIELD
    return str(loc[2]).split("/", 1)[0]


class InputForm(ipywidgets.VBox):  # type: ignore[misc]  # ipywidgets is untyped
    """A form for the served predictor's inputs, with a Run button.

    Args:
        service: the service to create predictions on.
        base_url: the server's URL, for the views' "copy as curl".
        token: the server's bearer token, for the views' snippets.
        training: build the training form and submit trainings.
        on_submit: called with each new ``PredictionView`` (on the loop thread).

    Build it on the serving loop's thread. Before setup has succeeded it says so, and it fills
    itself in when setup ends.
    """

    def __init__(
        self,
        service: PredictionService,
        *,
        base_url: str | None = None,
        training: bool = False,
        on_submit: Callable[[PredictionView], None] | None = None,
        token: str | None = None,
    ) -> None:
        self.fields: dict[str, Field] = {}
        self.run_button = ipywidgets.Button(description="Run", button_style="primary")
        self.message = ipywidgets.HTML("")
        self.result = ipywidgets.VBox()
        self.view: PredictionView | None = None
        super().__init__([self.message])
        self.add_class("nbcog-form")
        self._context = CreationContext()
        self._service = service
        self._base_url = base_url
        self._token = token
        self._training = training
        self._on_submit = on_submit
        self.run_button.on_click(
            lambda _button: service.loop.call_soon_threadsafe(self._context.run, self.submit)
        )
        if service.health is Health.STARTING:
            self.message.value = "Waiting for setup() to finish…"
            service.on_setup_done(lambda health: self._context.run(self._build, health))
        else:
            self._build(service.health)

    def _build(self, health: Health) -> None:
        if not self._service.is_ready or self._service.schema is None:
            self.message.value = f"Setup did not succeed ({health.value}); nothing can run."
            return
        schema = self._service.schema.input(training=self._training)
        required = set(schema.get("required", []))
        properties = schema.get("properties", {})
        order = sorted(properties, key=lambda name: properties[name].get("x-order", 0))
        self.fields = {
            name: build_field(name, properties[name], required=name in required) for name in order
        }
        self.message.value = ""
        self.children = [
            *(field.box for field in self.fields.values()),
            self.run_button,
            self.message,
            self.result,
        ]

    def prefill(self, values: dict[str, Any], note: str = "") -> None:
        """Fill the fields with ``values`` (a previous prediction's inputs) and show ``note``.

        Call after setup has succeeded (the fields exist then); Secret fields stay empty.
        """
        for name, value in values.items():
            field = self.fields.get(name)
            if field is not None:
                fill(field, value)
        self.message.value = f"<span class='nbcog-form-note'>{escape(note)}</span>" if note else ""

    def values(self) -> tuple[dict[str, Any], dict[str, str]]:
        """The input to send, and the fields whose text could not be read (name -> message)."""
        values: dict[str, Any] = {}
        problems: dict[str, str] = {}
        for name, field in self.fields.items():
            try:
                given, value = field.value()
            except FieldError as exc:
                problems[name] = str(exc)
                continue
            if given:
                values[name] = value
        return values, problems

    def submit(self) -> PredictionRef | None:
        """Create a prediction from the form; on errors show them and return None.

        Call on the loop thread (Run does).
        """
        for field in self.fields.values():
            field.show_errors([])
        self.message.value = ""
        values, problems = self.values()
        if problems:
            for name, problem in problems.items():
                self.fields[name].show_errors([problem])
            return None
        try:
            entry = self._service.create(
                CreateRequest(input=values), mode=Mode.ASYNC, training=self._training
            )
        except InputValidationError as exc:
            self._show_detail(exc.detail)
            return None
        except NbcogError as exc:
            body = exc.body if isinstance(exc.body, dict) else {}
            self._show_message(str(body.get("error", exc.body)))
            return None
        if self.view is not None:
            self.view.close()
        self.view = PredictionView(entry, self._service, base_url=self._base_url, token=self._token)
        self.result.children = (self.view,)
        if self._on_submit is not None:
            self._on_submit(self.view)
        return entry

    def _show_detail(self, detail: list[dict[str, Any]]) -> None:
        by_field: dict[str, list[str]] = {}
        for item in detail:
            by_field.setdefault(error_field(item), []).append(item.get("msg", ""))
        unplaced = []
        for name, messages in by_field.items():
            if name in self.fields:
                self.fields[name].show_errors(messages)
            else:
                unplaced.extend(messages)
        if unplaced:
            self._show_message("; ".join(unplaced))

    def _show_message(self, text: str) -> None:
        self.message.value = (
            f'<span class="nbcog-field-error" style="color:#c62828">{escape(text)}</span>'
        )

    def close(self) -> None:
        """Close the form, its controls and any view it shows (predictions go on)."""
        if self.view is not None:
            self.view.close()
        for field in self.fields.values():
            field.box.close()
        super().close()
