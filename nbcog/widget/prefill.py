"""Filling an ``InputForm`` with a previous prediction's inputs (re-run with edits).

Values are put back as the server received them: a file input's ``data:`` or ``http`` URL goes
into the field's URL box, so the same file is sent again; JSON fields get the JSON text. A
``Secret`` field is never filled: the service stores only its mask, so the user types it again.
"""

from __future__ import annotations

import json
from typing import Any

import ipywidgets
import traitlets

from nbcog.widget.fields import Field


def fill(field: Field, value: Any) -> bool:
    """Set ``field``'s control to ``value``; False when the control cannot show it."""
    control = field.control
    if isinstance(control, ipywidgets.Password):
        return False
    if isinstance(control, ipywidgets.HBox):  # a file: URL text box + upload button
        control.children[0].value = str(value)
        return True
    if isinstance(control, ipywidgets.Textarea) and control.placeholder == "JSON":
        control.value = json.dumps(value)
        return True
    if isinstance(control, ipywidgets.Text) and not isinstance(value, str):
        control.value = json.dumps(value)  # a number field without a default is a text box
        return True
    if isinstance(control, ipywidgets.Dropdown) and value not in control.options:
        return False
    try:
        control.value = value
    except traitlets.TraitError:  # a value the control refuses (out of a slider's range)
        return False
    return True
