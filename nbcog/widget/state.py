"""What a prediction view shows, folded from the broadcaster's events, and the deltas it sends.

This module is the widget's sans-IO core: no ipywidgets, no loop, no clock of its own. The view
(``view.py``) feeds it events as they arrive and, at most ~20 times a second, takes one *delta*:
only what was added since the last one (new text, new log text, new media items, the metric keys
that changed, the new status). Deltas are what keep the bytes sent to the frontend linear in the
output: re-sending the whole text on every update would be quadratic.

Every delta carries a sequence number, and ``full()`` says which delta it includes, so a view
rendered mid-stream can ask for the full state and then apply only the deltas after it.
"""

from __future__ import annotations

import json
import mimetypes
from collections.abc import Mapping
from typing import Any

from nbcog.core import events
from nbcog.core.events import Event
from nbcog.core.failures import failure_reason
from nbcog.core.metrics import aggregate_metric
from nbcog.core.outputs import JsonPart, Part, chunk_part, chunk_schema
from nbcog.service import PredictionState

TIMELINE_LIMIT = 200
"""Timeline rows kept: start, first output, logs, metrics and the end, not one row per token."""

TERMINAL = frozenset({"succeeded", "failed", "canceled"})
_MEDIA = ("image", "audio", "video")
_OCTET_STREAM = "application/octet-stream"


def display_item(part: Part, index: int) -> str | dict[str, Any]:
    """A text chunk (returned as the string), or the synced display item of a file or JSON value.

    A file is a media item (image, audio, video) or a download link, by MIME type, named
    ``output_{index}`` plus the type's extension when its URL gives no file name.
    """
    if isinstance(part, str):
        return part
    if isinstance(part, JsonPart):
        return {
            "kind": "json",
            "index": index,
            "text": json.dumps(part.value, indent=2, default=str),
        }
    mime = part.mime or _OCTET_STREAM
    if part.is_data:
        name = f"output_{index}{mimetypes.guess_extension(mime) or '.bin'}"
    else:
        name = part.url_name or f"output_{index}"
    major = mime.split("/", 1)[0]
    kind = major if major in _MEDIA else "file"
    return {"kind": kind, "index": index, "src": part.url, "name": name, "mime": mime}


def _summary(value: Any, limit: int = 80) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    text = text.strip().replace("\n", " ⏎ ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


class ViewState:
    """One prediction as the view shows it, plus what has not been sent yet.

    Args:
        output_schema: the OpenAPI ``Output`` (or ``TrainingOutput``) schema, to tell text
            chunks from files.
    """

    def __init__(self, output_schema: Mapping[str, Any] | None = None) -> None:
        self._item_schema = chunk_schema(output_schema)
        self.status = "starting"
        self._text: list[str] = []
        self.items: list[dict[str, Any]] = []
        self._logs: list[str] = []
        self.metrics: dict[str, Any] = {}
        self.metric_modes: dict[str, str] = {}
        self.error = ""
        """What the predictor raised (``failure_reason``): coglet's wrapping stays on the wire."""
        self.traceback = ""
        self.timeline: list[dict[str, Any]] = []
        self.timeline_dropped = 0
        self.notices: list[str] = []
        self.output_count = 0
        self.seq = 0
        self.needs_full = False
        self._p_text: list[str] = []  # text and logs not sent yet (moved by _keep_pending_text)
        self._p_logs: list[str] = []
        self._reset_pending()

    def _reset_pending(self) -> None:
        """Forget what was sent (or superseded): items, metric keys, timeline, status."""
        self._p_items: list[dict[str, Any]] = []
        self._p_metric_keys: set[str] = set()
        self._p_modes: dict[str, str] = {}
        self._p_timeline: list[dict[str, Any]] = []
        self._p_notices: list[str] = []
        self._p_status = False

    # -- folding -----------------------------------------------------------------------

    @property
    def done(self) -> bool:
        """The prediction is terminal: nothing will change any more."""
        return self.status in TERMINAL

    @property
    def output_text(self) -> str:
        """All text chunks so far, concatenated (tokens of a ``ConcatenateIterator``).

        Text is kept as one block per delta sent plus the pending parts, so memory stays
        small and no update re-joins the whole text. Reading never mutates.
        """
        return "".join(self._text) + "".join(self._p_text)

    @property
    def logs(self) -> str:
        """All log text so far, stdout and stderr interleaved as they arrived."""
        return "".join(self._logs) + "".join(self._p_logs)

    def apply(self, event: Event, t: float) -> None:
        """Fold one broadcaster event (``t``: seconds since the prediction was created)."""
        name, data = event.name, event.data
        if name == events.OUTPUT:
            self._add_chunk(data["chunk"], t)
        elif name == events.LOG:
            self._p_logs.append(data["data"])
            self._mark(t, "log", f"{data['source']}: {_summary(data['data'])}")
        elif name == events.METRIC:
            key, value, mode = data["name"], data["value"], data["mode"]
            aggregate_metric(self.metrics, key, value, mode)
            self._p_metric_keys.add(key.split(".", 1)[0])
            self.metric_modes[key] = mode
            self._p_modes[key] = mode
            self._mark(t, "metric", f"{key} {mode} {_summary(value, 40)}")
        elif name == events.START:
            self._set_status("processing", t)
        elif name == events.COMPLETED:
            self._complete(data, t)

    def _add_chunk(self, chunk: Any, t: float, *, mark: bool = True) -> None:
        index = self.output_count
        self.output_count += 1
        shown = display_item(chunk_part(chunk, index, self._item_schema), index)
        if isinstance(shown, str):
            self._p_text.append(shown)
        else:
            self.items.append(shown)
            self._p_items.append(shown)
        if index == 0 and mark:
            self._mark(t, "output", "first output")

    def _set_status(self, status: str, t: float) -> None:
        if status != self.status:
            self.status = status
            self._p_status = True
            self._mark(t, "status", status)

    def _complete(self, snapshot: dict[str, Any], t: float) -> None:
        self.error = failure_reason(snapshot.get("error") or "")
        self.metrics = dict(snapshot.get("metrics") or {})
        self._p_metric_keys.update(self.metrics)
        self._set_status(snapshot["status"], t)
        self._mark(t, "completed", f"{snapshot['status']}, {self.output_count} output chunks")

    def set_traceback(self, text: str | None) -> None:
        """The failed prediction's traceback (not part of Cog's wire format)."""
        self.traceback = text or ""
        self._p_status = True

    def notice(self, text: str, t: float) -> None:
        """A message the view must show prominently (lag, truncated history)."""
        self.notices.append(text)
        self._p_notices.append(text)
        self._mark(t, "notice", text)

    def _mark(self, t: float, event: str, detail: str) -> None:
        row = {"t": round(t, 3), "event": event, "detail": detail}
        if len(self.timeline) >= TIMELINE_LIMIT and event not in ("completed", "notice"):
            self.timeline_dropped += 1
            return
        self.timeline.append(row)
        self._p_timeline.append(row)

    def load(self, prediction: PredictionState, t: float) -> None:
        """Replace everything with ``prediction``'s own state (it holds every chunk and log).

        Used when the event history cannot be replayed whole (evicted, or this view lagged),
        and for predictions that finished before the view existed. The next update sent is
        then a full state, not a delta.
        """
        snapshot = prediction.snapshot()
        self._text, self._p_text, self.items, self.output_count = [], [], [], 0
        self._p_logs = []
        for chunk in prediction.chunks:
            self._add_chunk(chunk, t, mark=False)
        self._keep_pending_text()
        self._logs = [prediction.logs]
        self.metrics = snapshot["metrics"]
        self.status = prediction.status.value
        self.error = failure_reason(prediction.error or "")
        if self.done and not any(row["event"] == "completed" for row in self.timeline):
            self._mark(t, "completed", f"{self.status}, {self.output_count} output chunks")
        self.needs_full = True
        self._reset_pending()

    # -- what the frontend gets -----------------------------------------------------------

    def _keep_pending_text(self) -> tuple[str, str]:
        """Move the pending text and logs into one block each; return them."""
        text, logs = "".join(self._p_text), "".join(self._p_logs)
        if text:
            self._text = [*self._text, text]
        if logs:
            self._logs = [*self._logs, logs]
        self._p_text, self._p_logs = [], []
        return text, logs

    def take_delta(self) -> dict[str, Any] | None:
        """What changed since the last delta, numbered; None when nothing did."""
        delta: dict[str, Any] = {}
        text, logs = self._keep_pending_text()
        if text:
            delta["output_text"] = text
        if self._p_items:
            delta["output_items"] = self._p_items
        if logs:
            delta["logs"] = logs
        if self._p_metric_keys:
            delta["metrics"] = {
                k: self.metrics[k] for k in self._p_metric_keys if k in self.metrics
            }
            delta["metrics_deleted"] = sorted(
                k for k in self._p_metric_keys if k not in self.metrics
            )
        if self._p_modes:
            delta["metric_modes"] = self._p_modes
        if self._p_timeline:
            delta["timeline"] = self._p_timeline
        if self._p_notices:
            delta["notices"] = self._p_notices
        if self._p_status:
            delta.update(status=self.status, error=self.error, traceback=self.traceback)
        self._reset_pending()
        if not delta:
            return None
        self.seq += 1
        delta["seq"] = self.seq
        return delta

    def full(self) -> dict[str, Any]:
        """Everything folded so far, labelled with the last delta's ``seq``.

        Take (and send) the pending delta first, so that no change is both in this state and
        in a later delta.
        """
        return {
            "seq": self.seq,
            "status": self.status,
            "output_text": self.output_text,
            "output_items": list(self.items),
            "logs": self.logs,
            "metrics": self.metrics,
            "metric_modes": dict(self.metric_modes),
            "error": self.error,
            "traceback": self.traceback,
            "timeline": list(self.timeline),
            "timeline_dropped": self.timeline_dropped,
            "notices": list(self.notices),
            "output_count": self.output_count,
        }
