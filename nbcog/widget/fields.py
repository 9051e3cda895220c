"""One input control per ``Input`` property of the OpenAPI schema (spec §5), for ``InputForm``.

| schema                                  | control                                   |
|-----------------------------------------|-------------------------------------------|
| ``choices`` (an inlined ``enum``)       | ``Dropdown``                              |
| ``boolean``                             | ``Checkbox``                              |
| integer/number with ``ge`` and ``le``   | ``IntSlider`` / ``FloatSlider``           |
| integer/number with one bound           | ``BoundedIntText`` / ``BoundedFloatText`` |
| integer/number, no bounds               | ``IntText`` / ``FloatText``               |
| integer/number without a default        | ``Text`` (empty means "not given")        |
| ``Secret`` (``x-cog-secret``)           | ``Password``                              |
| ``Path`` / ``File`` (``format: uri``)   | a URL ``Text`` and a ``FileUpload``       |
| long strings (prompts, long defaults)   | ``Textarea``                              |
| other strings                           | ``Text``                                  |
| lists, dicts, unions                    | ``Textarea`` holding JSON                 |

Controls never validate what the server validates: a value is read as given and sent, and the
server's 422 messages are shown next to the field they name. Only JSON that does not parse is
reported here, since it cannot be sent at all.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from html import escape
from typing import Any

import ipywidgets

LONG_STRING_NAMES = ("prompt", "text", "message", "content", "instruction", "system", "template")
"""A string input whose name contains one of these is edited in a text area."""

_ABSENT: tuple[bool, Any] = (False, None)
_JS_SAFE_INT = 2**53 - 1
_ERROR_STYLE = "color:#c62828"


class FieldError(ValueError):
    """A value that cannot even be sent (JSON that does not parse)."""


@dataclass
class Field:
    """One input: its control, its row in the form, and how to read its value."""

    name: str
    control: ipywidgets.Widget
    box: ipywidgets.Widget
    error: ipywidgets.HTML
    read: Callable[[], tuple[bool, Any]]

    def show_errors(self, messages: list[str]) -> None:
        """Show ``messages`` under the control (none clears it)."""
        self.error.value = "<br>".join(
            f'<span class="nbcog-field-error" style="{_ERROR_STYLE}">{escape(m)}</span>'
            for m in messages
        )

    def value(self) -> tuple[bool, Any]:
        """``(given, value)``; raises ``FieldError`` when the text cannot be read."""
        return self.read()


def enum_of(prop: dict[str, Any]) -> list[Any] | None:
    """The allowed values of a ``choices`` input (``allOf`` of an inlined enum schema)."""
    if "enum" in prop:
        return list(prop["enum"])
    for part in prop.get("allOf", []):
        if isinstance(part, dict) and "enum" in part:
            return list(part["enum"])
    return None


def is_long_string(name: str, prop: dict[str, Any]) -> bool:
    """Prompts and strings with long or multi-line defaults get a text area."""
    max_length = prop.get("maxLength")
    if max_length is not None and max_length <= 200:
        return False
    default = prop.get("default")
    if isinstance(default, str) and ("\n" in default or len(default) > 60):
        return True
    return any(word in name.lower() for word in LONG_STRING_NAMES)


def _help(prop: dict[str, Any], choices: list[Any] | None) -> str:
    parts = []
    if prop.get("description"):
        parts.append(escape(prop["description"]))
    bounds = [
        f"≥ {prop['minimum']}" if "minimum" in prop else "",
        f"≤ {prop['maximum']}" if "maximum" in prop else "",
    ]
    if any(bounds):
        parts.append(" and ".join(b for b in bounds if b))
    if "default" in prop and not prop.get("x-cog-secret"):
        parts.append(f"default: <code>{escape(json.dumps(prop['default']))}</code>")
    if choices:
        parts.append("one of " + ", ".join(escape(json.dumps(c)) for c in choices))
    if prop.get("deprecated"):
        parts.append("deprecated")
    return f'<span class="nbcog-field-help" style="opacity:0.75">{" · ".join(parts)}</span>'


def _text_reader(widget: ipywidgets.Widget, prop: dict[str, Any]) -> Callable[[], tuple[bool, Any]]:
    """Empty means "not given", unless the user cleared a string default on purpose."""
    keeps_empty = isinstance(prop.get("default"), str)

    def read() -> tuple[bool, Any]:
        text = widget.value
        return (True, text) if text or keeps_empty else _ABSENT

    return read


def _number_control(
    prop: dict[str, Any], integer: bool
) -> tuple[ipywidgets.Widget, Callable[[], tuple[bool, Any]]]:
    low, high, default = prop.get("minimum"), prop.get("maximum"), prop.get("default")
    if default is None:
        text = ipywidgets.Text(placeholder="(not set)")

        def read_text() -> tuple[bool, Any]:
            raw = text.value.strip()
            if not raw:
                return _ABSENT
            try:
                return True, int(raw) if integer else float(raw)
            except ValueError:
                return True, raw  # the server says why: '"abc" is not of type "integer"'

        return text, read_text
    if low is not None and high is not None:
        if integer:
            control: ipywidgets.Widget = ipywidgets.IntSlider(
                value=default, min=low, max=high, continuous_update=False
            )
        else:
            step = (high - low) / 100 or 0.01
            control = ipywidgets.FloatSlider(
                value=default, min=low, max=high, step=step, continuous_update=False
            )
    elif low is not None or high is not None:
        lo = low if low is not None else -_JS_SAFE_INT
        hi = high if high is not None else _JS_SAFE_INT
        kind = ipywidgets.BoundedIntText if integer else ipywidgets.BoundedFloatText
        control = kind(value=default, min=lo, max=hi)
    else:
        control = (ipywidgets.IntText if integer else ipywidgets.FloatText)(value=default)
    return control, lambda: (True, control.value)


def _upload_control(
    prop: dict[str, Any],
) -> tuple[ipywidgets.Widget, Callable[[], tuple[bool, Any]]]:
    url = ipywidgets.Text(placeholder="https://… or data: URL, or upload a file")
    upload = ipywidgets.FileUpload(multiple=False, accept=prop.get("x-cog-accept", ""))

    def read() -> tuple[bool, Any]:
        if upload.value:
            file = upload.value[0]
            mime = file.get("type") or "application/octet-stream"
            data = base64.b64encode(bytes(file["content"])).decode()
            return True, f"data:{mime};base64,{data}"
        return (True, url.value) if url.value else _ABSENT

    return ipywidgets.HBox([url, upload]), read


def _json_control(prop: dict[str, Any]) -> tuple[ipywidgets.Widget, Callable[[], tuple[bool, Any]]]:
    initial = json.dumps(prop["default"]) if "default" in prop else ""
    area = ipywidgets.Textarea(value=initial, placeholder="JSON")

    def read() -> tuple[bool, Any]:
        raw = area.value.strip()
        if not raw:
            return _ABSENT
        try:
            return True, json.loads(raw)
        except json.JSONDecodeError as exc:
            msg = f"not valid JSON: {exc}"
            raise FieldError(msg) from None

    return area, read


def _control(
    name: str, prop: dict[str, Any]
) -> tuple[ipywidgets.Widget, Callable[[], tuple[bool, Any]]]:
    choices = enum_of(prop)
    kind = prop.get("type")
    if choices is not None:
        default = prop.get("default")
        dropdown = ipywidgets.Dropdown(
            options=choices, value=default if default in choices else None
        )
        return dropdown, lambda: (True, dropdown.value) if dropdown.value is not None else _ABSENT
    if kind == "boolean":
        box = ipywidgets.Checkbox(value=bool(prop.get("default", False)), indent=False)
        return box, lambda: (True, box.value)
    if kind in ("integer", "number"):
        return _number_control(prop, kind == "integer")
    if kind == "string":
        if prop.get("x-cog-secret") or prop.get("format") == "password":
            secret = ipywidgets.Password(value=prop.get("default") or "")
            return secret, _text_reader(secret, prop)
        if prop.get("format") == "uri":
            return _upload_control(prop)
        default = prop.get("default")
        text_kind = ipywidgets.Textarea if is_long_string(name, prop) else ipywidgets.Text
        text = text_kind(value=default if isinstance(default, str) else "")
        return text, _text_reader(text, prop)
    return _json_control(prop)


def build_field(name: str, prop: dict[str, Any], *, required: bool) -> Field:
    """The control, label, help line and error line of one input property."""
    control, read = _control(name, prop)
    title = escape(prop.get("title") or name.replace("_", " ").title())  # choices have none
    label = ipywidgets.HTML(
        f"<b>{title}</b>{' *' if required else ''}", layout=ipywidgets.Layout(width="10em")
    )
    help_line = ipywidgets.HTML(_help(prop, enum_of(prop)))
    error = ipywidgets.HTML("")
    box = ipywidgets.VBox([ipywidgets.HBox([label, control]), help_line, error])
    return Field(name, control, box, error, read)
