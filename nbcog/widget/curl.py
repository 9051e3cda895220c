"""The "copy as curl" text: the HTTP request equivalent to a prediction made in the notebook."""

from __future__ import annotations

import shlex
from typing import Any

from nbcog.core.jsonenc import dumps

DEFAULT_BASE_URL = "http://localhost:5000"


def curl_command(
    base_url: str | None, input_values: dict[str, Any], *, streaming: bool, training: bool
) -> str:
    """A ``curl`` command that creates the same prediction over Cog's HTTP API.

    Streaming predictors get ``-N`` and ``Accept: text/event-stream``, so the events arrive as
    they do in the widget. Secrets appear masked, as the server echoes them.
    """
    url = (base_url or DEFAULT_BASE_URL).rstrip("/")
    route = "trainings" if training else "predictions"
    lines = [f"curl -s{'N' if streaming and not training else ''} -X POST {url}/{route}"]
    lines.append("-H 'Content-Type: application/json'")
    if streaming and not training:
        lines.append("-H 'Accept: text/event-stream'")
    lines.append(f"-d {shlex.quote(dumps({'input': input_values}))}")
    return " \\\n  ".join(lines)
