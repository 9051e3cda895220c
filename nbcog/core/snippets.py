"""Code that makes a prediction over Cog's HTTP API, for every client: the one snippet builder.

``curl`` (JSON, and SSE with ``-sN``), Python with ``requests`` (JSON, and an SSE loop),
JavaScript with ``fetch`` (reading the SSE stream when the model streams) and the ``cog
predict -i ...`` line, all from the same ``Target`` (URL, token, streaming) and inputs. The
monitor's views, the serving cell's ready message and ``%cog snippet`` use it; the tests run
every snippet against a live server. Pure: no I/O, stdlib only.

Inputs are written as the server received them (files as their ``data:`` or ``http`` URLs;
a ``data:`` URL over ``INLINE_FILE_LIMIT`` becomes a placeholder saying what to put there);
a ``Secret`` input arrives masked, and is replaced by a placeholder that says to fill it in,
so no snippet ever carries a secret.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from nbcog.core.jsonenc import dumps

LANGUAGES = ("curl", "python", "js", "cog")
SECRET_PLACEHOLDER = "<your secret>"  # noqa: S105 - what a snippet shows instead of a secret
LINE_WIDTH = 80
INLINE_FILE_LIMIT = 64 * 1024
"""A ``data:`` URL input longer than this is shown as a placeholder: a snippet is code for a
person to read and paste (and a view syncs every language's to the browser), not a copy of a
20 MB upload. Re-running a prediction sends its real input, never a snippet."""
SSE_ACCEPT = "text/event-stream"  # exactly this: jupyter-server-proxy streams only then


@dataclass(frozen=True)
class Target:
    """Where and how to call: base URL (the proxy URL under JupyterHub), token, streaming."""

    url: str
    token: str | None = None
    streaming: bool = False
    training: bool = False
    secrets: Sequence[str] = field(default_factory=tuple)
    """Names of ``Secret`` inputs: their values are never written into a snippet."""

    @property
    def endpoint(self) -> str:
        """``URL/predictions`` (or ``/trainings``)."""
        route = "trainings" if self.training else "predictions"
        return f"{self.url.rstrip('/')}/{route}"

    @property
    def sse(self) -> bool:
        """An SSE variant exists: the model streams (trainings never do)."""
        return self.streaming and not self.training

    def headers(self, *, sse: bool) -> dict[str, str]:
        """The request headers, token included."""
        headers = {"Content-Type": "application/json"}
        if sse:
            headers["Accept"] = SSE_ACCEPT
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    def body(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """``{"input": ...}`` with secrets replaced by the placeholder."""
        shown = {
            name: SECRET_PLACEHOLDER if name in self.secrets else _shown_value(value)
            for name, value in inputs.items()
        }
        return {"input": shown}


def _shown_value(value: Any) -> Any:
    """``value``, with large ``data:`` URLs (also in lists) replaced by a placeholder."""
    if isinstance(value, list):
        return [_shown_value(item) for item in value]
    if isinstance(value, str) and value.startswith("data:") and len(value) > INLINE_FILE_LIMIT:
        kind = value[5:].split(",", 1)[0].split(";", 1)[0] or "file"
        return f"<{kind}, {len(value) // 1024} KiB as a data: URL: give a data: or https: URL>"
    return value


def curl(target: Target, inputs: Mapping[str, Any], *, sse: bool = False) -> str:
    """A ``curl`` command; with ``sse``, ``-sN`` so the events print as they arrive."""
    lines = [f"curl -s{'N' if sse else ''} -X POST {target.endpoint}"]
    lines += [f"-H {shlex.quote(f'{k}: {v}')}" for k, v in target.headers(sse=sse).items()]
    lines.append(f"-d {shlex.quote(dumps(target.body(inputs)))}")
    return " \\\n  ".join(lines)


def _literal(value: Any, indent: str = "") -> str:
    """A Python literal: on one line when short, else one item per line (4-space indent)."""
    flat = repr(value)
    if len(indent) + len(flat) <= LINE_WIDTH or not isinstance(value, dict | list) or not value:
        return flat
    inner = indent + "    "
    if isinstance(value, dict):
        items = [f"{inner}{key!r}: {_literal(item, inner)}," for key, item in value.items()]
        return "{\n" + "\n".join(items) + f"\n{indent}}}"
    items = [f"{inner}{_literal(item, inner)}," for item in value]
    return "[\n" + "\n".join(items) + f"\n{indent}]"


def python(target: Target, inputs: Mapping[str, Any], *, sse: bool = False) -> str:
    """Python with ``requests``: print the output, or with ``sse`` each chunk as it comes."""
    payload = _literal(target.body(inputs))
    headers = _literal(target.headers(sse=sse))
    head = [
        "import json" if sse else None,
        "import requests",
        "",
        f"payload = {payload}",
        f"headers = {headers}",
    ]
    if not sse:
        body = [
            f"response = requests.post({target.endpoint!r}, json=payload, headers=headers)",
            "response.raise_for_status()",
            "prediction = response.json()",
            'print(prediction["output"] if prediction["status"] == "succeeded" '
            'else prediction["error"])',
        ]
    else:
        body = [
            "with requests.post(",
            f"    {target.endpoint!r}, json=payload, headers=headers, stream=True",
            ") as response:",
            "    response.raise_for_status()",
            "    event = None",
            "    for line in response.iter_lines(decode_unicode=True):",
            '        if line.startswith("event:"):',
            "            event = line[6:].strip()",
            '        elif line.startswith("data:"):',
            "            data = json.loads(line[5:])",
            '            if event == "output":',
            '                print(data["chunk"], flush=True)',
            '            elif event == "completed" and data["status"] != "succeeded":',
            '                print(data["status"], data.get("error"))',
        ]
    return "\n".join(line for line in [*head, *body] if line is not None)


def javascript(target: Target, inputs: Mapping[str, Any], *, sse: bool = False) -> str:
    """JavaScript ``fetch`` (browser console or ``node`` as an ES module, top-level await)."""
    headers = json.dumps(target.headers(sse=sse), indent=2).replace("\n", "\n  ")
    request = [
        f"const response = await fetch({json.dumps(target.endpoint)}, {{",
        '  method: "POST",',
        f"  headers: {headers},",
        f"  body: JSON.stringify({json.dumps(target.body(inputs))}),",
        "});",
    ]
    if not sse:
        return "\n".join(
            [
                *request,
                "const prediction = await response.json();",
                'console.log(prediction.status === "succeeded" ? prediction.output : '
                "prediction.error);",
            ]
        )
    return "\n".join(
        [
            *request,
            "const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();",
            'let buffer = "";',
            "for (;;) {",
            "  const { value, done } = await reader.read();",
            "  if (done) break;",
            "  buffer += value;",
            "  let end;",
            '  while ((end = buffer.indexOf("\\n\\n")) >= 0) {',
            '    const lines = buffer.slice(0, end).split("\\n");',
            "    buffer = buffer.slice(end + 2);",
            '    const event = lines.find((l) => l.startsWith("event:"))?.slice(6).trim();',
            '    const data = lines.find((l) => l.startsWith("data:"))?.slice(5);',
            "    if (data === undefined) continue;",
            "    const payload = JSON.parse(data);",
            '    if (event === "output") console.log(payload.chunk);',
            '    else if (event === "completed" && payload.status !== "succeeded")',
            "      console.log(payload.status, payload.error);",
            "  }",
            "}",
        ]
    )


def _cog_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value)


def cog_predict(target: Target, inputs: Mapping[str, Any]) -> str:
    """The ``cog predict -i k=v ...`` line (``cog train`` for trainings); lists repeat ``-i``."""
    words = ["cog", "train" if target.training else "predict"]
    for name, value in target.body(inputs)["input"].items():
        for item in value if isinstance(value, list) else [value]:
            words += ["-i", shlex.quote(f"{name}={_cog_value(item)}")]
    return " ".join(words)


def snippet(language: str, target: Target, inputs: Mapping[str, Any]) -> str:
    """The snippet in ``language`` (one of ``LANGUAGES``): JSON, then SSE when the model streams.

    Raises:
        ValueError: an unknown language.
    """
    if language == "cog":
        return cog_predict(target, inputs)
    builders = {"curl": curl, "python": python, "js": javascript}
    if language not in builders:
        msg = f"unknown language {language!r}; choose one of {', '.join(LANGUAGES)}"
        raise ValueError(msg)
    build = builders[language]
    comment = "//" if language == "js" else "#"
    if not target.sse:
        return build(target, inputs)
    if language == "js":  # fetch reads the stream: the JSON variant adds nothing there
        return build(target, inputs, sse=True)
    return (
        f"{comment} the output as JSON, once the prediction has ended\n"
        f"{build(target, inputs)}\n\n"
        f"{comment} streamed over SSE as it is produced\n"
        f"{build(target, inputs, sse=True)}"
    )


def all_snippets(target: Target, inputs: Mapping[str, Any]) -> dict[str, str]:
    """Every language's snippet, keyed by language (what a prediction's view shows)."""
    return {language: snippet(language, target, inputs) for language in LANGUAGES}
