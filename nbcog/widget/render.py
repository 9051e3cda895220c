"""What a view or the monitor showed, for frontends without the widget: HTML and plain text.

The widget's ``text/html`` fallback: frontends without the widget manager (nbviewer, GitHub,
nbconvert, a notebook reopened without its kernel) render it instead of the live view. Only
inline styles, since sanitisers strip ``<style>`` from untrusted outputs. ``view_text`` is the
``text/plain`` form, for terminals (``jupyter console``) and text exports: everything a person
needs, once.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from html import escape
from typing import Any

STATIC_TEXT_LIMIT = 1_000_000
"""Characters of output text and of logs kept in the static rendering (notebooks stay small)."""

_COLORS = {
    "starting": "#9e9e9e",
    "processing": "#1976d2",
    "succeeded": "#2e7d32",
    "failed": "#c62828",
    "canceled": "#ef6c00",
}
_PRE = "white-space:pre-wrap;word-break:break-word;font-family:monospace;margin:4px 0"


def badge(status: str) -> str:
    """A coloured status pill."""
    color = _COLORS.get(status, "#888")
    return (
        f'<span style="background:{color};color:#fff;border-radius:10px;padding:1px 8px;'
        f'font-weight:600">{escape(status)}</span>'
    )


def _clip(text: str) -> str:
    if len(text) <= STATIC_TEXT_LIMIT:
        return escape(text)
    hidden = len(text) - STATIC_TEXT_LIMIT
    return escape(text[:STATIC_TEXT_LIMIT]) + f"\n… ({hidden} more characters not saved)"


def _item(item: dict[str, Any]) -> str:
    if item["kind"] == "json":
        return f'<pre style="{_PRE}">{escape(item["text"])}</pre>'
    src, name = escape(item["src"], quote=True), escape(item["name"])
    link = f'<a href="{src}" download="{escape(item["name"], quote=True)}">⬇ {name}</a>'
    if item["kind"] == "image":
        return f'<div><img src="{src}" alt="{name}" style="max-width:100%"></div>{link}'
    if item["kind"] in ("audio", "video"):
        return f'<div><{item["kind"]} controls src="{src}"></{item["kind"]}></div>{link}'
    return f"<div>{link}</div>"


def _metric_rows(value: Any, prefix: str, rows: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    if isinstance(value, dict) and value:
        for key in sorted(value):
            _metric_rows(value[key], f"{prefix}.{key}" if prefix else key, rows)
    elif prefix:
        rows.append((prefix, value))
    return rows


def view_html(meta: dict[str, Any], state: dict[str, Any]) -> str:
    """A prediction view: status, elapsed time, output, error and traceback, metrics, logs."""
    parts = [
        '<div style="border:1px solid #ddd;border-radius:4px;padding:6px 8px">',
        f"<div>{badge(state['status'])} <code>{escape(meta['kind'])} "
        f"{escape(meta['prediction_id'])}</code>",
    ]
    if meta.get("predict_time") is not None:
        parts.append(f" {meta['predict_time']:.2f} s")
    parts.append("</div>")
    parts.extend(f'<div style="color:#8a4b00">⚠ {escape(n)}</div>' for n in state["notices"])
    if state["output_text"]:
        parts.append(f'<pre style="{_PRE}">{_clip(state["output_text"])}</pre>')
    parts.extend(_item(item) for item in state["output_items"])
    if state["error"]:
        parts.append(f'<pre style="{_PRE};color:#c62828">{escape(state["error"])}</pre>')
    if state["traceback"]:
        parts.append(
            f'<details><summary>Traceback</summary><pre style="{_PRE}">'
            f"{_clip(state['traceback'])}</pre></details>"
        )
    rows = _metric_rows(state["metrics"], "", [])
    if rows:
        cells = "".join(
            f"<tr><td>{escape(key)}</td><td>{escape(json.dumps(value))}</td>"
            f"<td>{escape(state['metric_modes'].get(key, ''))}</td></tr>"
            for key, value in rows
        )
        parts.append(f"<table><tr><th>metric</th><th>value</th><th>mode</th></tr>{cells}</table>")
    if state["logs"]:
        parts.append(
            f'<details><summary>Logs</summary><pre style="{_PRE}">{_clip(state["logs"])}</pre>'
            "</details>"
        )
    parts.append("</div>")
    return "".join(parts)


def failure_lines(state: dict[str, Any]) -> list[str]:
    """A failure in plain text, its error line once: the traceback ends with it when there is one.

    ``state["error"]`` is already what the predictor raised (``ViewState`` applies
    ``failure_reason``), e.g. ``ValueError: n=3 is not supported``.
    """
    error, trace = state["error"], state["traceback"].rstrip("\n").splitlines()
    if not trace:
        return [error] if error else []
    return trace if not error or trace[-1] == error else [error, *trace]


def view_text(meta: dict[str, Any], state: dict[str, Any]) -> str:
    """A prediction view as plain text: status and time, output, files, failure, logs."""
    head = f"{meta['kind']} {meta['prediction_id']}: {state['status']}"
    if meta.get("predict_time") is not None:
        head += f" in {meta['predict_time']:.2f} s"
    lines = [head]
    lines.extend(f"! {notice}" for notice in state["notices"])
    if state["output_text"]:
        lines.append(state["output_text"][:STATIC_TEXT_LIMIT].rstrip("\n"))
    for item in state["output_items"]:
        lines.append(item["text"] if item["kind"] == "json" else f"file: {item['name']}")
    lines.extend(failure_lines(state))
    if state["logs"]:
        lines.append("logs:")
        lines.extend(f"  {line}" for line in state["logs"][:STATIC_TEXT_LIMIT].splitlines())
    return "\n".join(lines)


def _clock(ms: float | None) -> str:
    if ms is None:
        return ""
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%H:%M:%S UTC")


def monitor_html(rows: list[dict[str, Any]], notice: str = "") -> str:
    """The monitor's table of predictions, newest first, under what happened to the server."""
    body = "".join(
        f"<tr><td><code>{escape(row['id'])}</code></td>"
        f'<td title="{escape(row["error"], quote=True)}">{badge(row["status"])}</td>'
        f"<td>{escape(row['kind'])}</td><td>{_clock(row['created_ms'])}</td>"
        f"<td>{escape(row['input'])}</td></tr>"
        for row in rows
    )
    banner = f'<div style="color:#8a4b00">⚠ {escape(notice)}</div>' if notice else ""
    return (
        f"{banner}<table><tr><th>id</th><th>status</th><th>kind</th><th>created</th>"
        f"<th>input</th></tr>{body}</table>"
    )
