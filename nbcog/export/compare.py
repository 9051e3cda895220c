"""The requests ``--check`` sends to both servers, and how their answers are compared and shown.

Each answer is reduced to what must be equal: ``metrics.predict_time`` (how long it took) and
the document's ``info.version`` are set aside, everything else must match, SSE events one by
one. Prediction ids are chosen by the client, so whole bodies can be compared. The table shows
one row per request and, under it, each differing field with nbcog's and coglet's value.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

REQUEST_TIMEOUT = 120.0


@dataclass
class Answer:
    """One server's answer to one request, reduced to what must be equal."""

    summary: str
    body: Any


@dataclass
class Row:
    """One compared request."""

    request: str
    nbcog: Answer
    coglet: Answer

    @property
    def same(self) -> bool:
        return bool(self.nbcog.body == self.coglet.body)


@dataclass
class Report:
    """The rows, the time each phase took, and the table to print."""

    directory: Path
    packages: list[str]
    rows: list[Row] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    coglet_version: str = ""

    @property
    def ok(self) -> bool:
        return all(row.same for row in self.rows)

    def table(self) -> str:
        """The comparison table, the differences under it, and how long it took."""
        width = max(len(row.request) for row in self.rows)
        short = [(r, r.nbcog.summary[:26], r.coglet.summary[:26]) for r in self.rows]
        lines = [
            f"nbcog --check: {self.directory} served by coglet {self.coglet_version} from a fresh"
            f" virtualenv ({', '.join(self.packages)}), next to nbcog serving the original",
            f"  {'request':<{width}}  {'nbcog':<26}  {'coglet':<26}  same",
        ]
        for row, ours, theirs in short:
            lines.append(
                f"  {row.request:<{width}}  {ours:<26}  {theirs:<26}  {'yes' if row.same else 'NO'}"
            )
        for row in self.rows:
            if not row.same:
                lines.append(f"{row.request} differs:")
                lines += [f"  {line}" for line in differences(row.nbcog.body, row.coglet.body)]
        total = sum(self.timings.values())
        phases = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in self.timings.items())
        verdict = "same answers" if self.ok else "DIFFERENT answers"
        lines.append(f"{verdict}; checked in {total:.1f} s ({phases})")
        return "\n".join(lines)


def differences(ours: Any, theirs: Any, path: str = "", limit: int = 8) -> list[str]:
    """Where two JSON values differ, one line per differing leaf (at most ``limit``)."""
    found: list[str] = []

    def walk(a: Any, b: Any, where: str) -> None:
        if len(found) >= limit or a == b:
            return
        if isinstance(a, dict) and isinstance(b, dict):
            for key in sorted(set(a) | set(b), key=str):
                walk(a.get(key, "<missing>"), b.get(key, "<missing>"), f"{where}.{key}")
            return
        if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
            for i, (x, y) in enumerate(zip(a, b, strict=True)):
                walk(x, y, f"{where}[{i}]")
            return
        found.append(f"{where.lstrip('.') or 'body'}: nbcog {_short(a)} | coglet {_short(b)}")

    walk(ours, theirs, path)
    return found


def _short(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) or value != "<missing>" else value
    return text if len(text) <= 60 else text[:57] + "..."


def compare(ours: str, theirs: str, inputs: dict[str, Any] | None) -> list[Row]:
    """Send the same requests to nbcog (``ours``) and coglet (``theirs``); one row each."""
    urls = {"nbcog": ours, "coglet": theirs}
    documents = {name: _get_json(url + "/openapi.json") for name, url in urls.items()}
    rows = [_row("GET /openapi.json", documents, _openapi_answer)]
    document = documents["nbcog"][1]
    payload = {"input": inputs if inputs is not None else {}}
    label = "POST /predictions (-i inputs)" if inputs else "POST /predictions (defaults)"
    answers = {n: _post(u, {"id": "nbcog-check-json", **payload}) for n, u in urls.items()}
    rows.append(_row(label, answers, _prediction_answer))
    if document.get("paths", {}).get("/predictions", {}).get("post", {}).get("x-cog-streaming"):
        sse = {"id": "nbcog-check-sse", **payload}
        streams = {n: _post(u, sse, stream=True) for n, u in urls.items()}
        rows.append(_row("POST /predictions (SSE)", streams, _stream_answer))
    invalid = {"id": "nbcog-check-422", "input": invalid_input(document)}
    rejected = {n: _post(u, invalid) for n, u in urls.items()}
    rows.append(_row("POST /predictions (invalid)", rejected, _plain_answer))
    return rows


def _get_json(url: str) -> tuple[int, Any]:
    response = requests.get(url, timeout=REQUEST_TIMEOUT)
    return response.status_code, _json_or_text(response)


def _post(url: str, body: dict[str, Any], *, stream: bool = False) -> tuple[int, Any]:
    """POST a prediction; coglet's spurious 409 right after a sync answer is retried."""
    headers = {"Accept": "text/event-stream"} if stream else {}
    deadline = time.monotonic() + REQUEST_TIMEOUT
    while True:
        response = requests.post(
            url + "/predictions", json=body, headers=headers, timeout=REQUEST_TIMEOUT
        )
        if response.status_code != 409 or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    if stream and response.headers.get("Content-Type", "").startswith("text/event-stream"):
        return response.status_code, sse_events(response.text)
    return response.status_code, _json_or_text(response)


def _json_or_text(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text


def sse_events(text: str) -> list[dict[str, Any]]:
    """``{event, data}`` of each event of a whole SSE body (comments and ``id:`` left out)."""
    events: list[dict[str, Any]] = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        name, data = "message", []
        for line in block.splitlines():
            if line.startswith("event:"):
                name = line.partition(":")[2].strip()
            elif line.startswith("data:"):
                data.append(line.partition(":")[2].removeprefix(" "))
        if data:
            events.append({"event": name, "data": _without_timing(json.loads("\n".join(data)))})
    return events


def _without_timing(body: Any) -> Any:
    """A prediction body without ``metrics.predict_time``, the one field that differs by nature."""
    if isinstance(body, dict) and isinstance(body.get("metrics"), dict):
        metrics = {k: v for k, v in body["metrics"].items() if k != "predict_time"}
        return {**body, "metrics": metrics}
    return body


def _row(request: str, answers: dict[str, tuple[int, Any]], reduce: Callable[..., Answer]) -> Row:
    return Row(request, reduce(*answers["nbcog"]), reduce(*answers["coglet"]))


def _openapi_answer(status: int, body: Any) -> Answer:
    if isinstance(body, dict) and isinstance(body.get("info"), dict):
        body = {**body, "info": {k: v for k, v in body["info"].items() if k != "version"}}
    return Answer(str(status), {"status": status, "document": body})


def _prediction_answer(status: int, body: Any) -> Answer:
    state = body.get("status", "") if isinstance(body, dict) else ""
    return Answer(f"{status} {state}".strip(), {"status": status, "body": _without_timing(body)})


def _stream_answer(status: int, body: Any) -> Answer:
    if isinstance(body, list):
        last = body[-1]["data"] if body else {}
        state = last.get("status", "") if isinstance(last, dict) else ""
        return Answer(f"{status}, {len(body)} events, {state}", {"status": status, "events": body})
    return Answer(f"{status} (not SSE)", {"status": status, "body": body})


def _plain_answer(status: int, body: Any) -> Answer:
    return Answer(str(status), {"status": status, "body": body})


def invalid_input(document: dict[str, Any]) -> Any:
    """An input every server must reject with a 422: a wrongly typed value for a typed field."""
    schemas = document.get("components", {}).get("schemas", {})
    properties = schemas.get("Input", {}).get("properties", {})
    wrong = {"string": 12345, "integer": "not a number", "number": "not a number"}
    for name, schema in properties.items():
        if schema.get("type") in wrong and not schema.get("nullable"):
            return {name: wrong[schema["type"]]}
    return ["not", "an", "object"]
